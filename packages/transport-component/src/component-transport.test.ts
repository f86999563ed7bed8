// The reconnect loop without sockets: an in-memory duplex stands in for TCP, a scripted peer
// plays the server's side of XEP-0114, and a ManualClock drives the backoff timers.
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  AuthError,
  ClosedError,
  ConfigError,
  ConflictError,
  ConnectionError,
  ManualClock,
  waitForStatus,
  xml,
  type TransportStatus,
} from '@xmppbus/core';
import { componentTransport, type ComponentTransport, type ComponentTransportOptions } from './component-transport.js';
import { StreamLink, streamErrorOf } from '@xmppbus/stream';
import { duplexPair } from '@xmppbus/stream/testing';
import { waitFor } from '@xmppbus/testing';

/** The server side: accepts the handshake (or answers with a stream error) and records stanzas. */
class ScriptedServer {
  up = true;
  attempts = 0;
  answer: 'ok' | 'not-authorized' | 'conflict' = 'ok';
  received: string[] = [];
  #sockets: Duplex[] = [];

  connect = (): Promise<StreamLink> => {
    this.attempts++;
    if (!this.up) return Promise.reject(new ConnectionError('connect ECONNREFUSED (scripted)'));
    const [client, server] = duplexPair();
    server.setEncoding('utf8');
    let buf = '';
    let online = false;
    server.on('data', (chunk: string) => {
      buf += chunk;
      if (online) {
        this.received.push(buf);
        buf = '';
        return;
      }
      if (buf.startsWith('<stream:stream') && buf.includes('>')) {
        server.write(
          "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='svc.test'>",
        );
        buf = buf.slice(buf.indexOf('>') + 1);
      }
      const m = /<handshake>([0-9a-f]+)<\/handshake>/.exec(buf);
      if (!m) return;
      buf = '';
      const expected = createHash('sha1').update('s1secret').digest('hex');
      const answer = m[1] === expected ? this.answer : 'not-authorized';
      if (answer === 'ok') {
        online = true;
        server.write('<handshake/>');
      } else {
        server.write(`<stream:error><${answer} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`);
        server.end();
      }
    });
    this.#sockets.push(server);
    return Promise.resolve(StreamLink.over(client));
  };

  /** The link breaks (server killed). */
  drop(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets = [];
  }
}

/** In-process work only: the shared `waitFor`, bounded by event-loop turns, not time. */
function until(cond: () => boolean, what: string): Promise<void> {
  return waitFor(cond, { turns: 10_000, what });
}

/**
 * Waits until the attempt in flight has failed and the next retry is scheduled. The attempt's
 * own deadline is a timer on the same clock, so `clock.pending` alone cannot tell the two apart:
 * a failure is a new `lastError`.
 */
async function rescheduled(t: ComponentTransport, clock: ManualClock, before: Error | undefined): Promise<void> {
  await until(() => t.lastError !== before && clock.pending === 1, 'the attempt failed and a retry was scheduled');
}

function connect(srv: ScriptedServer, clock: ManualClock, extra: Partial<ComponentTransportOptions> = {}) {
  // The test seams (clock, random, connect) are internal options, not part of the public type.
  const options = {
    service: 'xmpp://scripted:5347',
    domain: 'svc.test',
    password: 'secret',
    clock,
    random: () => 0, // top of the jitter window: delays are exactly 200, 400, 800, …
    connect: srv.connect,
    closeGraceMs: 0,
    ...extra,
  };
  return componentTransport(options as ComponentTransportOptions);
}

function statuses(t: ComponentTransport): TransportStatus[] {
  const seen: TransportStatus[] = [];
  t.onStatus((s) => seen.push(s));
  return seen;
}

describe('ComponentTransport reconnect loop (scripted server, manual clock)', () => {
  it('retries on the backoff schedule, flushes queued sends once online, resets the schedule', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await connect(srv, clock);
    const seen = statuses(t);
    expect(t.status).toBe('online');

    srv.up = false;
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    const queued = t.send(xml('message', { to: 'x.test', from: 'svc.test' }, xml('body', {}, 'queued')));
    expect(t.pendingSends).toBe(1);

    expect(clock.pending).toBe(1);
    clock.advance(199);
    expect(srv.attempts).toBe(1); // only the initial connect so far
    let before = t.lastError;
    clock.advance(1);
    await rescheduled(t, clock, before);
    expect(srv.attempts).toBe(2);
    clock.advance(399);
    expect(srv.attempts).toBe(2);
    before = t.lastError;
    clock.advance(1);
    await rescheduled(t, clock, before);
    expect(srv.attempts).toBe(3);

    srv.up = true;
    clock.advance(800);
    await waitForStatus(t, 'online', { timeout: 5_000 });
    await queued;
    await until(() => srv.received.join('').includes('queued'), 'queued stanza reached the server');
    expect(seen).toEqual(['reconnecting', 'online']);

    // Online again resets the schedule: the next outage starts at 200 ms.
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    clock.advance(200);
    await waitForStatus(t, 'online', { timeout: 5_000 });

    await t.close();
    expect(clock.pending).toBe(0);
    expect(t.status).toBe('closed');
  });

  it('stops for good when the server rejects the secret while reconnecting', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await connect(srv, clock);
    let closedWith: Error | undefined;
    t.onStatus((s, err) => {
      if (s === 'closed') closedWith = err;
    });
    srv.answer = 'not-authorized';
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    const queued = t.send(xml('message', { to: 'x.test' })).catch((e: unknown) => e);
    clock.advance(200);
    await until(() => t.status === 'closed', 'closed after the fatal error');
    expect(closedWith).toBeInstanceOf(AuthError);
    expect(clock.pending).toBe(0);
    expect(await queued).toBeInstanceOf(ClosedError);
    expect(srv.attempts).toBe(2);
  });

  it('keeps retrying on a conflict while reconnecting (the old session may linger)', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await connect(srv, clock);
    srv.answer = 'conflict';
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    const before = t.lastError;
    clock.advance(200);
    await rescheduled(t, clock, before);
    expect(t.lastError).toBeInstanceOf(ConflictError);
    expect(srv.attempts).toBe(2);
    expect(t.status).toBe('reconnecting');
    srv.answer = 'ok';
    clock.advance(400);
    await waitForStatus(t, 'online', { timeout: 5_000 });
    await t.close();
  });

  it('close() while waiting to retry cancels the timer and rejects queued sends', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await connect(srv, clock);
    srv.up = false;
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    const queued = t.send(xml('message', { to: 'x.test' })).catch((e: unknown) => e);
    expect(clock.pending).toBe(1);
    await t.close();
    expect(clock.pending).toBe(0);
    expect(t.status).toBe('closed');
    expect(await queued).toBeInstanceOf(ClosedError);
    clock.advance(60_000);
    expect(srv.attempts).toBe(1);
  });

  it('reconnect: false closes on the first drop', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const t = await connect(srv, clock, { reconnect: false });
    srv.drop();
    await until(() => t.status === 'closed', 'closed');
    expect(t.lastError).toBeInstanceOf(ConnectionError);
    expect(clock.pending).toBe(0);
  });

  it('a failed first connect rejects and schedules nothing', async () => {
    const srv = new ScriptedServer();
    srv.answer = 'conflict';
    const clock = new ManualClock();
    await expect(connect(srv, clock)).rejects.toMatchObject({ code: 'ERR_CONFLICT' });
    expect(clock.pending).toBe(0);
    srv.up = false;
    await expect(connect(srv, clock)).rejects.toBeInstanceOf(ConnectionError);
    expect(clock.pending).toBe(0);
  });

  it('a missing or empty secret fails locally with ConfigError naming the option, before connecting', async () => {
    const srv = new ScriptedServer();
    const clock = new ManualClock();
    const unset = process.env['XMPPBUS_TEST_UNSET_SECRET'];
    for (const password of [unset, '', () => '', () => Promise.resolve(undefined as unknown as string)]) {
      const err = await connect(srv, clock, { password: password as string }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/component svc\.test.*`password` option/);
    }
    // A value of the wrong type is named by its type, never printed (it may be the secret itself).
    const err = await connect(srv, clock, { password: () => 1234567 as unknown as string }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('a number, not a string');
    expect((err as Error).message).not.toContain('1234567');
    expect(srv.attempts).toBe(0);
  });

  it('a refused secret is an AuthError naming the component and the server address', async () => {
    const srv = new ScriptedServer();
    srv.answer = 'not-authorized';
    const err = await connect(srv, new ManualClock()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as Error).message).toMatch(
      /^component svc\.test at scripted:5347: the server refused the handshake secret/,
    );
    expect(streamErrorOf(err)?.condition).toBe('not-authorized');
  });
});

describe('ComponentTransport endpoints (several listeners of one cluster)', () => {
  it('re-homes to the next endpoint within one reconnect attempt, then stays there', async () => {
    const a = new ScriptedServer();
    const b = new ScriptedServer();
    const byPort: Record<number, ScriptedServer> = { 1001: a, 1002: b };
    const addresses: number[] = [];
    const clock = new ManualClock();
    const t = await connect(a, clock, {
      service: 'xmpp://node1:1001',
      endpoints: ['xmpp://node2:1002'],
      connect: (address: { port: number }) => {
        addresses.push(address.port);
        return byPort[address.port]!.connect();
      },
    } as Partial<ComponentTransportOptions>);
    expect(addresses).toEqual([1001]);

    // Node 1 dies: the first reconnect attempt is refused there and lands on node 2 at once.
    a.up = false;
    a.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    clock.advance(200);
    await waitForStatus(t, 'online', { timeout: 5_000 });
    expect(addresses).toEqual([1001, 1001, 1002]);
    await t.send(xml('message', { to: 'x.test' }, xml('body', {}, 'via node 2')));
    await until(() => b.received.join('').includes('via node 2'), 'the stanza reached node 2');

    // Node 1 is back, node 2 drops: the next attempt starts at node 2 (the last that worked).
    a.up = true;
    b.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    clock.advance(200);
    await waitForStatus(t, 'online', { timeout: 5_000 });
    expect(addresses).toEqual([1001, 1001, 1002, 1002]);

    await t.close();
    expect(clock.pending).toBe(0);
  });

  it('a listener that never answers the TCP connect (a silent host) is left for the next one after the attempt timeout', async () => {
    const a = new ScriptedServer();
    const b = new ScriptedServer();
    const addresses: number[] = [];
    let blackHole = false;
    const clock = new ManualClock();
    const t = await connect(a, clock, {
      service: 'xmpp://node1:1001',
      endpoints: ['xmpp://node2:1002'],
      timeout: 1_000,
      connect: (address: { port: number }, signal: AbortSignal) => {
        addresses.push(address.port);
        if (address.port === 1002) return b.connect();
        if (!blackHole) return a.connect();
        return new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
      },
    } as Partial<ComponentTransportOptions>);
    blackHole = true;
    a.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    clock.advance(200); // the retry: node 1 swallows the connect
    await until(() => addresses.length === 2, 'the retry reached node 1');
    clock.advance(1_000); // the attempt times out
    await until(() => clock.pending === 1, 'the next retry was scheduled');
    clock.advance(400);
    await waitForStatus(t, 'online', { timeout: 5_000 });
    expect(addresses).toEqual([1001, 1001, 1002]);
    await t.close();
  });

  it('an invalid endpoint is a ConfigError before connecting', async () => {
    const srv = new ScriptedServer();
    const err = await connect(srv, new ManualClock(), {
      endpoints: ['not a uri'],
    } as Partial<ComponentTransportOptions>).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(srv.attempts).toBe(0);
  });
});
