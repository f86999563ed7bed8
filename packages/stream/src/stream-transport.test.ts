// StreamTransport's lifecycle without sockets: a minimal subclass negotiates a toy stream, an
// injected connector hands out in-memory links to a scripted server, and a ManualClock drives
// the reconnect delays and attempt deadlines.
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  ClosedError,
  ConfigError,
  ConflictError,
  ConnectionError,
  ManualClock,
  PayloadTooLargeError,
  ProtocolError,
  TimeoutError,
  localName,
  waitForStatus,
  xml,
  type Element,
  type TransportStatus,
  type WaitOptions,
} from '@xmppbus/core';
import { StreamLink } from './stream-link.js';
import { StreamTransport, type StreamTransportOptions } from './stream-transport.js';
import { duplexPair } from './testing/duplex-pair.js';
import { waitFor } from '@xmppbus/testing';

const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/** The smallest possible negotiation: the server answers the header, then says `<ready/>`. */
class TestTransport extends StreamTransport {
  readonly address = 'me.test';

  private constructor(options: StreamTransportOptions) {
    super({ host: 'scripted', port: 1 }, options);
  }

  static async start(options: StreamTransportOptions, wait: WaitOptions = {}): Promise<TestTransport> {
    const t = new TestTransport(options);
    await t._start(wait);
    return t;
  }

  protected async _negotiate(link: StreamLink, signal: AbortSignal): Promise<void> {
    await link.openStream(HEADER, signal);
    const ready = await link.next(signal);
    if (localName(ready) !== 'ready') throw new ProtocolError(`expected <ready/>, got <${ready.name}>`);
  }
}

type Mode = 'ok' | 'refuse' | 'silent' | 'conflict';

class ScriptedServer {
  mode: Mode = 'ok';
  attempts = 0;
  /** What the transport sent once online, per connection. */
  received: string[] = [];
  #sockets: Duplex[] = [];

  connect = (): Promise<StreamLink> => {
    this.attempts++;
    if (this.mode === 'refuse') return Promise.reject(new ConnectionError('connect ECONNREFUSED (scripted)'));
    const mode = this.mode;
    const [client, server] = duplexPair();
    const index = this.received.push('') - 1;
    server.setEncoding('utf8');
    let online = false;
    server.on('data', (chunk: string) => {
      if (online) {
        this.received[index] += chunk;
        return;
      }
      if (!chunk.startsWith('<stream:stream') || mode === 'silent') return;
      server.write("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>");
      if (mode === 'conflict') {
        server.write("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
        return;
      }
      online = true;
      server.write('<ready/>');
    });
    this.#sockets.push(server);
    return Promise.resolve(StreamLink.over(client));
  };

  /** The server-side end of the newest connection. */
  get socket(): Duplex {
    return this.#sockets.at(-1)!;
  }

  drop(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets = [];
  }
}

function options(srv: ScriptedServer, clock: ManualClock, extra: StreamTransportOptions = {}): StreamTransportOptions {
  return { clock, connect: srv.connect, random: () => 0, closeGraceMs: 0, ...extra };
}

/** In-process work only: the shared `waitFor`, bounded by event-loop turns, not time. */
function until(cond: () => boolean, what: string): Promise<void> {
  return waitFor(cond, { turns: 10_000, what });
}

/** Waits for the attempt in flight to fail (a new lastError) and the next retry to be scheduled. */
async function rescheduled(t: StreamTransport, clock: ManualClock, before: Error | undefined): Promise<void> {
  await until(() => t.lastError !== before && clock.pending === 1, 'the attempt failed and a retry was scheduled');
}

/**
 * Walks an outage against a refusing server and returns the delays between attempts, measured
 * on the clock: each retry must not start one ms early and must start exactly on time.
 */
async function measureDelays(t: StreamTransport, srv: ScriptedServer, clock: ManualClock, n: number) {
  const delays: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = clock.now();
    const attempts = srv.attempts;
    let waited = 0;
    while (srv.attempts === attempts) {
      if (waited > 1_000_000) throw new Error('no retry within 1000 s');
      const before = t.lastError;
      clock.advance(1);
      waited++;
      if (srv.attempts !== attempts) await rescheduled(t, clock, before);
    }
    delays.push(clock.now() - start);
  }
  return delays;
}

describe('StreamTransport', () => {
  it('connects through the injected connector and exchanges stanzas both ways', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(options(srv, clock));
    expect(t.status).toBe('online');
    expect(clock.pending).toBe(0); // the attempt deadline was cancelled

    const inbound: Element[] = [];
    t.onStanza((el) => inbound.push(el));
    srv.socket.write("<message id='in-1'><body>hi</body></message>");
    await until(() => inbound.length === 1, 'inbound stanza dispatched');
    expect(inbound[0]!.getChildText('body')).toBe('hi');

    await t.send(xml('message', { id: 'out-1', to: 'x.test' }, xml('body', {}, 'a&b')));
    await until(() => srv.received[0]!.includes('out-1'), 'outbound stanza written');
    expect(srv.received[0]).toBe('<message id="out-1" to="x.test"><body>a&amp;b</body></message>');
    await t.close();
    expect(srv.received[0]!.endsWith('</stream:stream>')).toBe(true);
  });

  it('refuses stanzas over maxStanzaBytes locally, online or queued', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(options(srv, clock, { maxStanzaBytes: 100 }));
    const big = xml('message', { to: 'x.test' }, xml('body', {}, 'é'.repeat(60)));
    await expect(t.send(big)).rejects.toBeInstanceOf(PayloadTooLargeError);
    srv.mode = 'refuse';
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    await expect(t.send(big)).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect(t.pendingSends).toBe(0);
    await t.close();
  });

  it('refuses stanzas nested deeper than maxDepth before writing a byte (issue 9, finding 6)', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(options(srv, clock, { maxDepth: 8 }));
    const nest = (levels: number): Element => {
      let el = xml('leaf');
      for (let i = 1; i < levels; i++) el = xml('n', {}, el);
      return xml('message', { to: 'x.test' }, el);
    };
    await t.send(nest(8));
    await expect(t.send(nest(9))).rejects.toBeInstanceOf(PayloadTooLargeError);
    // 10k levels (ejabberd 23.01 crashes on ~5,000): refused, no stack overflow, nothing sent.
    await expect(t.send(nest(10_000))).rejects.toBeInstanceOf(PayloadTooLargeError);
    await t.send(xml('message', { id: 'after' }));
    await until(() => srv.received[0]!.includes('after'), 'later stanza written');
    expect(srv.received[0]!.match(/<message/g)).toHaveLength(2);
    expect(t.status).toBe('online');
    await t.close();
  });

  it('an inbound stanza over maxStanzaBytes ends the link with <policy-violation/>, then reconnects', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(options(srv, clock, { maxStanzaBytes: 1_000 }));
    const first = srv.socket;
    first.write(`<message><body>${'x'.repeat(2_000)}</body></message>`);
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    expect(t.lastError).toBeInstanceOf(PayloadTooLargeError);
    expect(srv.received[0]).toContain("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    await until(() => first.destroyed, 'the refused connection is closed');
    await t.close();
  });

  it('default schedule: 200 ms ×2 up to 30 s (random = 0 is the top of the jitter window)', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(options(srv, clock));
    srv.mode = 'refuse';
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    expect(await measureDelays(t, srv, clock, 10)).toEqual([
      200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000,
    ]);
    await t.close();
    expect(clock.pending).toBe(0);
  });

  it('follows the RetryOptions given, with jitter from the random seam, and resets once online', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(
      options(srv, clock, {
        reconnect: { initialDelay: 100, factor: 3, maxDelay: 1_000, jitter: 0.5 },
        random: () => 0.5, // three quarters of each base
      }),
    );
    const seen: TransportStatus[] = [];
    t.onStatus((s) => seen.push(s));
    srv.mode = 'refuse';
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    const queued = t.send(xml('message', { id: 'q1', to: 'x.test' }));
    expect(await measureDelays(t, srv, clock, 4)).toEqual([75, 225, 675, 750]);

    srv.mode = 'ok';
    clock.advance(750);
    await waitForStatus(t, 'online', { timeout: 5_000 });
    await queued;
    await until(() => srv.received.at(-1)!.includes('q1'), 'queued stanza flushed on the new link');
    expect(seen).toEqual(['reconnecting', 'online']);

    // The next outage starts from initialDelay again.
    srv.mode = 'refuse';
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    expect(await measureDelays(t, srv, clock, 2)).toEqual([75, 225]);
    await t.close();
  });

  it('reconnect.attempts bounds one outage: then closed with the last error, queued sends rejected', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(
      options(srv, clock, { reconnect: { attempts: 2, initialDelay: 10, jitter: 0 } }),
    );
    let closedWith: Error | undefined;
    t.onStatus((s, err) => {
      if (s === 'closed') closedWith = err;
    });
    srv.mode = 'refuse';
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    const queued = t.send(xml('message', { to: 'x.test' })).catch((e: unknown) => e);
    let before = t.lastError;
    clock.advance(10);
    await rescheduled(t, clock, before);
    before = t.lastError;
    clock.advance(20);
    await until(() => t.status === 'closed', 'closed after the second failed attempt');
    expect(srv.attempts).toBe(3); // the first connect + 2 reconnect attempts
    expect(closedWith).toBeInstanceOf(ConnectionError);
    expect(closedWith).not.toBe(before);
    expect(clock.pending).toBe(0);
    expect(await queued).toBeInstanceOf(ClosedError);
    clock.advance(60_000);
    expect(srv.attempts).toBe(3);
  });

  it('the attempt deadline runs on the clock: first connect', async () => {
    const srv = new ScriptedServer();
    srv.mode = 'silent';
    const clock = new ManualClock();
    let settled: unknown;
    const started = TestTransport.start(options(srv, clock), { timeout: 1_000 }).then(
      () => (settled = 'online'),
      (err: unknown) => (settled = err),
    );
    await until(() => srv.attempts === 1 && clock.pending === 1, 'attempt in flight');
    clock.advance(999);
    await new Promise((r) => setImmediate(r));
    expect(settled).toBeUndefined();
    clock.advance(1);
    await started;
    expect(settled).toBeInstanceOf(TimeoutError);
    expect(clock.pending).toBe(0);
  });

  it('the attempt deadline runs on the clock: a hanging reconnect attempt times out and is retried', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(options(srv, clock, { timeout: 5_000 }));
    srv.mode = 'silent';
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    const before = t.lastError;
    clock.advance(200);
    await until(() => srv.attempts === 2, 'second attempt started');
    clock.advance(4_999);
    await new Promise((r) => setImmediate(r));
    expect(t.lastError).toBe(before);
    clock.advance(1);
    await rescheduled(t, clock, before);
    expect(t.lastError).toBeInstanceOf(TimeoutError);
    expect(t.status).toBe('reconnecting');
    await t.close();
    expect(clock.pending).toBe(0);
  });

  it('close() during a reconnect attempt aborts it and leaves nothing scheduled', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(options(srv, clock));
    srv.mode = 'silent';
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    clock.advance(200);
    await until(() => srv.attempts === 2, 'attempt in flight');
    await t.close();
    expect(t.status).toBe('closed');
    expect(clock.pending).toBe(0);
    await until(() => srv.socket.destroyed, 'the attempt link is gone');
    clock.advance(60_000);
    expect(srv.attempts).toBe(2);
  });

  it('a conflict that takes an online link down is final', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(options(srv, clock));
    srv.socket.write("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
    await until(() => t.status === 'closed', 'closed');
    expect(t.lastError).toBeInstanceOf(ConflictError);
    expect(clock.pending).toBe(0);
  });

  it('a conflict while reconnecting is retried (the old session may linger)', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(options(srv, clock));
    srv.mode = 'conflict';
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    const before = t.lastError;
    clock.advance(200);
    await rescheduled(t, clock, before);
    expect(t.lastError).toBeInstanceOf(ConflictError);
    srv.mode = 'ok';
    clock.advance(400);
    await waitForStatus(t, 'online', { timeout: 5_000 });
    await t.close();
  });

  it('reconnect: false closes on the first drop', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await TestTransport.start(options(srv, clock, { reconnect: false }));
    srv.drop();
    await until(() => t.status === 'closed', 'closed');
    expect(t.lastError).toBeInstanceOf(ConnectionError);
    expect(clock.pending).toBe(0);
    expect(srv.attempts).toBe(1);
  });

  it('nonsense reconnect options fail with ConfigError naming the option', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    await expect(
      TestTransport.start(options(srv, clock, { reconnect: { initialDelay: 500, maxDelay: 100 } })),
    ).rejects.toThrow(ConfigError);
    await expect(TestTransport.start(options(srv, clock, { reconnect: { jitter: 3 } }))).rejects.toThrow(
      /^reconnect\.jitter/,
    );
    expect(srv.attempts).toBe(0);
  });
});
