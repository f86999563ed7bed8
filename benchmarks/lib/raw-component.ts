// A raw XEP-0114 component for the pub/sub benchmark's baseline: hand-written strings out, string
// scanning in, no xmppbus code on its path.
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
let rawIds = 0;
/** IQ ids as long as xmppbus' random ids (16 chars), so both stanzas have the same size. */
export const rawId = (): string => `r${String(rawIds++).padStart(15, '0')}`;

export class RawComponent {
  #sock!: Socket;
  #buf = '';
  #waiters = new Map<string, (reply: string) => void>();
  onMessage: ((text: string) => void) | undefined;
  constructor(readonly domain: string) {}

  async connect(port: number, secret: string): Promise<void> {
    this.#sock = netConnect({ host: '127.0.0.1', port });
    this.#sock.setNoDelay(true);
    this.#sock.setEncoding('utf8');
    await new Promise<void>((res, rej) => {
      this.#sock.once('connect', res);
      this.#sock.once('error', rej);
    });
    this.#sock.write(
      `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${this.domain}'>`,
    );
    let head = '';
    await new Promise<void>((res, rej) => {
      const onData = (d: string): void => {
        head += d;
        if (head.includes('<stream:error')) rej(new Error(`${this.domain}: ${head}`));
        const m = /\bid=['"]([^'"]+)['"]/.exec(head);
        if (m && head.includes('>')) {
          this.#sock.off('data', onData);
          const digest = createHash('sha1')
            .update(m[1]! + secret)
            .digest('hex');
          this.#sock.write(`<handshake>${digest}</handshake>`);
          const onAck = (d2: string): void => {
            head += d2;
            if (head.includes('<stream:error')) rej(new Error(`${this.domain}: ${head}`));
            if (head.includes('<handshake')) {
              this.#sock.off('data', onAck);
              res();
            }
          };
          this.#sock.on('data', onAck);
        }
      };
      this.#sock.on('data', onData);
    });
    this.#sock.on('data', (d: string) => this.#onData(d));
  }

  #onData(d: string): void {
    this.#buf += d;
    let end: number;
    // Stanzas of interest: <iq …/> or <iq …>…</iq>, <message …>…</message>.
    for (;;) {
      const buf = this.#buf;
      if (buf.startsWith('<message')) {
        end = buf.indexOf('</message>');
        if (end < 0) return;
        end += 10;
        this.onMessage?.(buf.slice(0, end));
      } else if (buf.startsWith('<iq')) {
        const gt = buf.indexOf('>');
        if (gt < 0) return;
        if (buf[gt - 1] === '/') end = gt + 1;
        else {
          const close = buf.indexOf('</iq>');
          if (close < 0) return;
          end = close + 5;
        }
        const stanza = buf.slice(0, end);
        const id = /\bid=['"]([^'"]+)['"]/.exec(stanza)?.[1];
        const w = id === undefined ? undefined : this.#waiters.get(id);
        if (w) {
          this.#waiters.delete(id!);
          w(stanza);
        } else if (/type=['"]error['"]/.test(stanza)) throw new Error(`raw IQ error: ${stanza}`);
      } else {
        const lt = buf.indexOf('<', 1);
        if (lt < 0) return;
        end = lt;
      }
      this.#buf = this.#buf.slice(end);
    }
  }

  /** Sends an IQ; resolves with the reply stanza's text. */
  request(id: string, s: string): Promise<string> {
    return new Promise((res) => {
      this.#waiters.set(id, res);
      this.#sock.write(s);
    });
  }

  /** A request that must succeed in time (setup: create, subscribe, delete; publishes). */
  async call(id: string, s: string, ms = 10_000): Promise<void> {
    const reply = await deadline(this.request(id, s), ms, `raw IQ ${s.slice(0, 200)}`);
    if (/type=['"]error['"]/.test(reply.slice(0, reply.indexOf('>')))) throw new Error(`raw IQ error: ${reply}`);
  }

  /**
   * Waits until the server has no route to `domain` any more (an IQ to it bounces), so the next
   * run may connect under that name: ejabberd drops a closed component's route a moment after the
   * socket closes, and would meanwhile route replies to the dead link.
   */
  async waitGone(domain: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const id = rawId();
      const reply = await Promise.race([
        this.request(
          id,
          `<iq type='get' id='${id}' from='${this.domain}' to='${domain}'><ping xmlns='urn:xmpp:ping'/></iq>`,
        ),
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 300)),
      ]);
      if (reply !== undefined && /type=['"]error['"]/.test(reply)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${domain} is still routed`);
  }

  /** Ends the stream and waits until the server closed its side (so the name is free again). */
  async close(): Promise<void> {
    const closed = new Promise<void>((res) => this.#sock.once('close', () => res()));
    this.#sock.end('</stream:stream>');
    const t = setTimeout(() => this.#sock.destroy(), 5_000);
    await closed;
    clearTimeout(t);
  }
}

export function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
