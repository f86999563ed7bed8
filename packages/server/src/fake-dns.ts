/**
 * A tiny DNS responder on 127.0.0.1 for ejabberd's outgoing s2s in tests. ejabberd has no static
 * s2s route option: it asks SRV `_xmpp-server._tcp.<domain>` through the Erlang resolver, which
 * inetrc points here (and never at /etc/resolv.conf). The answer's target is the IP literal
 * `127.0.0.1`, so the follow-up address lookup (glibc, which ignores inetrc) needs no query.
 * Every other question gets NXDOMAIN: nothing is forwarded anywhere.
 */
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket } from 'node:dgram';

const SRV = 33;
const PREFIX = '_xmpp-server._tcp.';

/** One question seen (for tests asserting that only the peer was looked up). */
export interface DnsQuestion {
  readonly name: string;
  readonly type: number;
  readonly answered: boolean;
}

export interface FakeDns {
  readonly port: number;
  /** Questions received so far. */
  readonly questions: readonly DnsQuestion[];
  /** Points SRV answers for `domain` (and its subdomains) at 127.0.0.1:`port`. */
  route(domain: string, port: number): void;
  close(): Promise<void>;
}

/** The question's name and type, or undefined for a packet we do not understand (ignored). */
export function parseQuestion(msg: Buffer): { name: string; type: number; end: number } | undefined {
  if (msg.length < 17) return undefined;
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    const len = msg[off];
    if (len === undefined || (len & 0xc0) !== 0) return undefined; // no compression in questions
    if (len === 0) break;
    labels.push(msg.toString('ascii', off + 1, off + 1 + len));
    off += 1 + len;
  }
  if (off + 5 > msg.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(off + 1), end: off + 5 };
}

function encodeName(name: string): Buffer {
  const parts = name
    .split('.')
    .filter(Boolean)
    .map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

/** The answer to `msg`: SRV for a routed domain, NXDOMAIN otherwise. */
export function answer(
  msg: Buffer,
  lookup: (domain: string) => number | undefined,
): { reply: Buffer; question: DnsQuestion } | undefined {
  const q = parseQuestion(msg);
  if (!q) return undefined;
  const port = q.type === SRV && q.name.startsWith(PREFIX) ? lookup(q.name.slice(PREFIX.length)) : undefined;
  const header = Buffer.alloc(12);
  header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
  // QR + AA + RA, the query's RD copied, rcode NOERROR (0) or NXDOMAIN (3)
  header.writeUInt16BE(0x8480 | (msg.readUInt16BE(2) & 0x0100) | (port === undefined ? 3 : 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(port === undefined ? 0 : 1, 6);
  const parts = [header, msg.subarray(12, q.end)];
  if (port !== undefined) {
    const target = encodeName('127.0.0.1');
    const rr = Buffer.alloc(18);
    rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question
    rr.writeUInt16BE(SRV, 2);
    rr.writeUInt16BE(1, 4); // class IN
    rr.writeUInt32BE(60, 6); // ttl
    rr.writeUInt16BE(6 + target.length, 10);
    rr.writeUInt16BE(0, 12); // priority
    rr.writeUInt16BE(0, 14); // weight
    rr.writeUInt16BE(port, 16);
    parts.push(rr, target);
  }
  return { reply: Buffer.concat(parts), question: { name: q.name, type: q.type, answered: port !== undefined } };
}

/** Starts the responder on a free UDP port of 127.0.0.1. */
export function startFakeDns(): Promise<FakeDns> {
  const routes = new Map<string, number>();
  const questions: DnsQuestion[] = [];
  const lookup = (domain: string): number | undefined => {
    for (let d: string | undefined = domain; d; d = d.includes('.') ? d.slice(d.indexOf('.') + 1) : undefined) {
      const port = routes.get(d);
      if (port !== undefined) return port;
    }
    return undefined;
  };
  const socket: Socket = createSocket('udp4');
  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    const a = answer(msg, lookup);
    if (!a) return;
    if (questions.length < 10_000) questions.push(a.question);
    socket.send(a.reply, from.port, from.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      socket.on('error', () => undefined); // a reply to a vanished client: nothing to do
      socket.unref();
      resolve({
        port: socket.address().port,
        questions,
        route: (domain, port) => void routes.set(domain.toLowerCase(), port),
        close: () => new Promise((r) => socket.close(() => r())),
      });
    });
  });
}
