// Parts of the soak run (issue 9), shared by `npm run bench -- soak` (service in a child process)
// and test/soak.test.ts (service in process): the receiving service with its budget sampler, a
// hostile c2s account writing raw maximal stanzas, and a legitimate sender at a steady rate.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Type } from '@sinclair/typebox';
import { AccessPolicy, Session, sleep, StanzaError } from '@xmppbus/core';
import { Messenger } from '@xmppbus/messaging';
import { RpcClient, RpcServer } from '@xmppbus/rpc';
import { event, method } from '@xmppbus/schema';
import { sqliteMessageStore } from '@xmppbus/store-sqlite';
import { clientTransport } from '@xmppbus/transport-client';
import { componentTransport } from '@xmppbus/transport-component';

export const SOAK_NS = 'urn:xmppbus:soak:1';
export const Work = method({
  ns: SOAK_NS,
  name: 'work',
  request: Type.Object({ n: Type.Integer(), blob: Type.Optional(Type.String()) }),
  response: Type.Object({ n: Type.Integer() }),
});
/** A legitimate message: sequence number, QoS level and send time (epoch ms, for the latency). */
export const Note = event({
  ns: SOAK_NS,
  name: 'note',
  schema: Type.Object({ i: Type.Integer(), q: Type.Integer(), t: Type.Number() }),
});
/** A contract the hostile account is not allowed to use (its tries are answered `forbidden`). */
export const Secret = event({
  ns: 'urn:xmppbus:soak:secret:1',
  name: 'secret',
  schema: Type.Object({ i: Type.Integer() }),
});

export const SOAK_USERS: [string, string][] = [
  ['legit', 'legit-pw'],
  ['hostile', 'hostile-pw'],
];
export const SERVICE = 'svc-a.localhost';

// ---------------------------------------------------------------------------------------------
// The receiving service.

export interface Peak {
  bytes: number;
  count: number;
}
export interface ServiceStats {
  rpc: { peak: Peak; peakHostile: Peak; peakLegit: Peak; rejected: number };
  queue: { peak: Peak };
  pending: { peak: Peak; evicted: number; expired: number };
  accessDenied: number;
  heapUsedMb: { start: number; peak: number; now: number };
  handled: { rpc: number; legitNotes: number; hostileNotes: number };
}

export interface SoakService {
  readonly rpc: RpcServer;
  readonly messenger: Messenger;
  readonly session: Session;
  /** Samples budgets and heap now (also done every `sampleMs` and in every handler). */
  sample(): void;
  stats(): ServiceStats;
  close(): Promise<void>;
}

export interface SoakServiceOptions {
  componentService: string;
  secret: string;
  domain?: string;
  /** SQLite file of the Messenger's store. */
  dbFile: string;
  /** Called for every legitimate Note handled (i, q, t as sent). */
  onLegit: (note: { i: number; q: number; t: number }) => void;
  sampleMs?: number;
}

const mb = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;
const max = (p: Peak, u: { bytes: number; count: number }): void => {
  p.bytes = Math.max(p.bytes, u.bytes);
  p.count = Math.max(p.count, u.count);
};

/** RpcServer + Messenger (SQLite) on one component session, DEFAULT budgets, both accounts allowed by rule. */
export async function startSoakService(o: SoakServiceOptions): Promise<SoakService> {
  const domain = o.domain ?? SERVICE;
  const transport = await componentTransport({ service: o.componentService, domain, password: o.secret });
  const access = new AccessPolicy({
    rules: [{ from: 'legit@localhost' }, { from: 'hostile@localhost', to: SOAK_NS }],
  });
  const session = new Session({ transport, access });
  const rpc = new RpcServer({ session });
  const messenger = new Messenger({ session, store: sqliteMessageStore(o.dbFile) });
  const heap0 = process.memoryUsage().heapUsed;
  const st: ServiceStats = {
    rpc: {
      peak: { bytes: 0, count: 0 },
      peakHostile: { bytes: 0, count: 0 },
      peakLegit: { bytes: 0, count: 0 },
      rejected: 0,
    },
    queue: { peak: { bytes: 0, count: 0 } },
    pending: { peak: { bytes: 0, count: 0 }, evicted: 0, expired: 0 },
    accessDenied: 0,
    heapUsedMb: { start: mb(heap0), peak: mb(heap0), now: mb(heap0) },
    handled: { rpc: 0, legitNotes: 0, hostileNotes: 0 },
  };
  const sample = (): void => {
    max(st.rpc.peak, rpc.usage);
    max(st.rpc.peakHostile, rpc.usageOf('hostile@localhost'));
    max(st.rpc.peakLegit, rpc.usageOf('legit@localhost'));
    const u = messenger.inboundUsage;
    max(st.queue.peak, u.queue);
    max(st.pending.peak, u.pending);
    const heap = mb(process.memoryUsage().heapUsed);
    st.heapUsedMb.peak = Math.max(st.heapUsedMb.peak, heap);
    st.heapUsedMb.now = heap;
  };
  rpc.handle(Work, async ({ n }) => {
    sample();
    st.handled.rpc++;
    // The hostile account's admitted calls (n < 0) hold their budget a little while.
    if (n < 0) await sleep(20);
    return { n };
  });
  messenger.handle(Note, (v, ctx) => {
    sample();
    if (ctx.from.startsWith('legit@')) {
      st.handled.legitNotes++;
      o.onLegit(v);
    } else st.handled.hostileNotes++;
  });
  messenger.handle(Secret, () => undefined);
  await rpc.start();
  await messenger.start();
  const timer = setInterval(sample, o.sampleMs ?? 100);
  return {
    rpc,
    messenger,
    session,
    sample,
    stats() {
      sample();
      const u = messenger.inboundUsage;
      st.pending.evicted = u.evicted;
      st.pending.expired = u.expired;
      st.rpc.rejected = rpc.rejected;
      st.accessDenied = session.access.denied;
      return structuredClone(st);
    },
    async close() {
      clearInterval(timer);
      await rpc.close();
      await messenger.close();
      await session.close();
      await transport.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The hostile account: a raw c2s stream (SASL PLAIN on loopback), so it writes stanzas our API
// would never produce, as fast as the server reads them (TCP backpressure), optionally with at
// most `window` stanzas unanswered.

/** Fits a 240 KiB payload in Prosody's and ejabberd's 256 KiB c2s stanza cap. */
const EMPTY_CHILDREN = '<a/>'.repeat(61_000);
const TEXT_BLOB = 'x'.repeat(240 * 1024);

export type HostileKind = 'rpc-nodes' | 'rpc-text' | 'qos1-nodes' | 'qos2-undelivered' | 'forbidden';
/** One round of the flood: mostly the pathological shape, each kind the API refuses to produce. */
export const HOSTILE_ROUND: readonly HostileKind[] = [
  'rpc-nodes',
  'qos1-nodes',
  'qos2-undelivered',
  'rpc-nodes',
  'rpc-text',
  'qos1-nodes',
  'qos2-undelivered',
  'forbidden',
];

/** The parts of one hostile stanza (head + body + tail, the body shared, never copied). */
function hostileStanza(kind: HostileKind, to: string, id: string): string[] {
  const iq = `<iq type='set' to='${to}' id='${id}'>`;
  const note = `<note xmlns='${SOAK_NS}'><i>-1</i><q>0</q><t>0</t></note>`;
  switch (kind) {
    case 'rpc-nodes':
      return [`${iq}<work xmlns='${SOAK_NS}'><n>-1</n><blob>`, EMPTY_CHILDREN, '</blob></work></iq>'];
    case 'rpc-text':
      return [`${iq}<work xmlns='${SOAK_NS}'><n>-1</n><blob>`, TEXT_BLOB, '</blob></work></iq>'];
    case 'qos1-nodes':
      return [
        `${iq}<acknowledged xmlns='urn:xmpp:qos'><message>${note}<pad xmlns='urn:soak:pad'>`,
        EMPTY_CHILDREN,
        '</pad></message></acknowledged></iq>',
      ];
    case 'qos2-undelivered':
      // `assured` that is never followed by `deliver`: it waits in the pending store.
      return [
        `${iq}<assured xmlns='urn:xmpp:qos' msgId='${id}'><message>${note}<pad xmlns='urn:soak:pad'>`,
        EMPTY_CHILDREN,
        '</pad></message></assured></iq>',
      ];
    case 'forbidden':
      return [
        `${iq}<acknowledged xmlns='urn:xmpp:qos'><message><secret xmlns='urn:xmppbus:soak:secret:1'><i>1</i></secret></message></acknowledged></iq>`,
      ];
  }
}

export interface HostileCounts {
  sent: number;
  sentBytes: number;
  answered: number;
  results: number;
  /** Errors by stanza error condition. */
  errors: Record<string, number>;
  /** resource-constraint + policy-violation + forbidden answers. */
  refused: number;
  byKind: Record<string, number>;
}

const REFUSALS = new Set(['resource-constraint', 'policy-violation', 'forbidden']);

export class HostileFlood {
  readonly counts: HostileCounts = {
    sent: 0,
    sentBytes: 0,
    answered: 0,
    results: 0,
    errors: {},
    refused: 0,
    byKind: {},
  };
  #buf = '';
  #stopped = false;
  #answered: (() => void) | undefined;
  #closedReason: string | undefined;
  #closing = false;

  private constructor(
    private readonly sock: Socket,
    private readonly to: string,
  ) {}

  static async login(o: {
    host: string;
    port: number;
    domain: string;
    username: string;
    password: string;
    to: string;
  }): Promise<HostileFlood> {
    const sock = connect({ host: o.host, port: o.port, noDelay: true });
    sock.setEncoding('utf8');
    await once(sock, 'connect');
    // One listener for the whole login: `until` waits for a pattern in what arrived since the last match.
    let head = '';
    let waiter: (() => void) | undefined;
    const onLogin = (d: string): void => {
      head += d;
      waiter?.();
    };
    sock.on('data', onLogin);
    const until = (re: RegExp): Promise<void> =>
      new Promise((resolve, reject) => {
        waiter = () => {
          if (re.test(head)) {
            head = '';
            waiter = undefined;
            resolve();
          } else if (/stream:error|<failure/.test(head)) {
            waiter = undefined;
            reject(new Error(`hostile login failed: ${head.slice(0, 500)}`));
          }
        };
        waiter();
      });
    const open = `<?xml version='1.0'?><stream:stream to='${o.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
    sock.write(open);
    await until(/<\/stream:features>/);
    const plain = Buffer.from(`\0${o.username}\0${o.password}`).toString('base64');
    sock.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
    await until(/<success/);
    sock.write(open);
    await until(/<\/stream:features>/);
    sock.write(
      `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>flood</resource></bind></iq>`,
    );
    await until(/id=['"]bind1['"][\s\S]*<\/iq>/);
    sock.off('data', onLogin);
    const flood = new HostileFlood(sock, o.to);
    sock.on('data', (d: string) => flood.#data(d));
    sock.on('close', () => {
      if (!flood.#closing) flood.#closedReason ??= 'socket closed by the server';
      flood.#wake();
    });
    sock.on('error', (e) => {
      flood.#closedReason = e.message;
    });
    return flood;
  }

  #wake(): void {
    const w = this.#answered;
    this.#answered = undefined;
    w?.();
  }

  #data(d: string): void {
    let buf = this.#buf + d;
    const re = /<iq\b[^>]*?(?:\/>|>[\s\S]*?<\/iq>)/g;
    let m: RegExpExecArray | null;
    let end = 0;
    while ((m = re.exec(buf)) !== null) {
      end = re.lastIndex;
      const s = m[0];
      const type = /\stype=['"](\w+)['"]/.exec(s)?.[1];
      if (type === 'result' || type === 'error') this.counts.answered++;
      if (type === 'result') this.counts.results++;
      else if (type === 'error') {
        const cond = /<([a-z-]+)\s+xmlns=['"]urn:ietf:params:xml:ns:xmpp-stanzas['"]/.exec(s)?.[1] ?? 'unknown';
        this.counts.errors[cond] = (this.counts.errors[cond] ?? 0) + 1;
        if (REFUSALS.has(cond)) this.counts.refused++;
      }
    }
    if (/<stream:error/.test(buf)) this.#closedReason = `stream error: ${buf.slice(buf.indexOf('<stream:error'), 300)}`;
    this.#buf = buf.slice(end);
    if (this.#buf.length > 1 << 20) this.#buf = this.#buf.slice(-4096);
    this.#wake();
  }

  /** Why the stream ended, if it did. */
  get closedReason(): string | undefined {
    return this.#closedReason;
  }

  /** Floods until `stop()`: round after round of HOSTILE_ROUND, at most `window` unanswered. */
  async run(window = Infinity): Promise<void> {
    let n = 0;
    while (!this.#stopped && this.#closedReason === undefined) {
      if (this.counts.sent - this.counts.answered >= window) {
        await new Promise<void>((r) => (this.#answered = r));
        continue;
      }
      const kind = HOSTILE_ROUND[n % HOSTILE_ROUND.length]!;
      const parts = hostileStanza(kind, this.to, `h${n++}`);
      let ok = true;
      for (const p of parts) {
        ok = this.sock.write(p);
        this.counts.sentBytes += Buffer.byteLength(p);
      }
      this.counts.sent++;
      this.counts.byKind[kind] = (this.counts.byKind[kind] ?? 0) + 1;
      if (!ok) await this.#writable();
    }
  }

  /** Resolves on 'drain' or 'close', whichever comes first, leaving no listener behind. */
  #writable(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.sock.off('drain', done).off('close', done);
        resolve();
      };
      this.sock.on('drain', done).on('close', done);
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#wake();
  }

  /** Waits (up to `ms`) for answers to what was sent, then closes the stream. */
  async close(ms = 5_000): Promise<void> {
    this.stop();
    const end = Date.now() + ms;
    while (this.counts.answered < this.counts.sent && this.#closedReason === undefined && Date.now() < end) {
      await new Promise<void>((r) => {
        this.#answered = r;
        setTimeout(r, 100);
      });
    }
    this.#closing = true;
    this.sock.end('</stream:stream>');
    this.sock.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// The legitimate sender: a second c2s account, one RPC call, one QoS 1 and one QoS 2 message per
// tick, at a steady modest rate.

export interface LegitResult {
  calls: number;
  callsOk: number;
  callErrors: Record<string, number>;
  callLatencies: number[];
  sent: { q1: number; q2: number };
  sendFailed: number;
  deadLettered: number;
}

export class LegitSender {
  readonly result: LegitResult = {
    calls: 0,
    callsOk: 0,
    callErrors: {},
    callLatencies: [],
    sent: { q1: 0, q2: 0 },
    sendFailed: 0,
    deadLettered: 0,
  };
  readonly #pending = new Set<Promise<unknown>>();

  private constructor(
    readonly session: Session,
    readonly client: RpcClient,
    readonly messenger: Messenger,
    private readonly to: string,
    private readonly closeTransport: () => Promise<void>,
  ) {}

  static async start(o: { c2sService: string; domain: string; to: string }): Promise<LegitSender> {
    const [username, password] = SOAK_USERS[0]!;
    const t = await clientTransport({
      service: o.c2sService,
      domain: o.domain,
      username,
      password,
      mechanism: 'PLAIN',
      allowPlainWithoutTls: true,
      timeout: 30_000,
    });
    const session = new Session({ transport: t });
    const client = new RpcClient({ session, retry: false, timeout: 10_000 });
    const messenger = new Messenger({ session, attemptTimeout: 5_000, retry: { initialDelay: 50, maxDelay: 1_000 } });
    await client.start();
    await messenger.start();
    return new LegitSender(session, client, messenger, o.to, () => t.close());
  }

  #track(p: Promise<unknown>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /** One tick: a call and a QoS 1 and a QoS 2 message. */
  tick(i: number): void {
    const r = this.result;
    r.calls++;
    const t0 = performance.now();
    this.#track(
      this.client.call(Work, this.to, { n: i }).then(
        (v) => {
          if (v.n === i) {
            r.callsOk++;
            r.callLatencies.push(performance.now() - t0);
          } else r.callErrors['wrong-answer'] = (r.callErrors['wrong-answer'] ?? 0) + 1;
        },
        (e: unknown) => {
          const k = e instanceof StanzaError ? e.condition : e instanceof Error ? e.name : String(e);
          r.callErrors[k] = (r.callErrors[k] ?? 0) + 1;
        },
      ),
    );
    for (const q of [1, 2] as const) {
      r.sent[q === 1 ? 'q1' : 'q2']++;
      this.#track(
        this.messenger
          .send(Note, this.to, { i, q, t: performance.timeOrigin + performance.now() }, { qos: q })
          .catch(() => {
            r.sendFailed++;
          }),
      );
    }
  }

  /** Ticks every `periodMs` until `signal` aborts. */
  async run(periodMs: number, signal: AbortSignal): Promise<void> {
    let i = 0;
    const start = performance.now();
    while (!signal.aborted) {
      this.tick(i++);
      const next = start + i * periodMs;
      await sleep(Math.max(0, next - performance.now()));
    }
  }

  /** Waits for every call to settle and the outbox to drain. */
  async drain(timeout = 60_000): Promise<void> {
    await this.messenger.flush({ timeout });
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
    this.result.deadLettered = this.messenger.counters.deadLettered;
  }

  async close(): Promise<void> {
    await this.client.close();
    await this.messenger.close();
    await this.session.close();
    await this.closeTransport();
  }
}

/** Legitimate messages sent but never handled: (qos, i) pairs in `sent` missing from `seen`. */
export function lostOf(sent: { q1: number; q2: number }, seen: Set<string>): number {
  let lost = 0;
  for (const [q, n] of [
    [1, sent.q1],
    [2, sent.q2],
  ] as const)
    for (let i = 0; i < n; i++) if (!seen.has(`${q}:${i}`)) lost++;
  return lost;
}
