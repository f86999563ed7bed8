// Calls to a peer the session learns is gone fail at once (issue 12), on a ManualClock.
import { Type } from '@sinclair/typebox';
import {
  ManualClock,
  ServiceUnavailableError,
  Session,
  StanzaError,
  TimeoutError,
  errorReply,
  xml,
} from '@xmppbus/core';
import { method } from '@xmppbus/schema';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcClient, RpcServer } from './index.js';

const Hang = method({
  ns: 'urn:example:hang:1',
  name: 'hang',
  request: Type.Object({}),
  response: Type.Object({}),
});

let hub: MemoryHub;
let clock: ManualClock;
let sessions: Session[];

beforeEach(() => {
  hub = memoryHub();
  clock = new ManualClock(Date.UTC(2030, 0, 1));
  sessions = [];
});

afterEach(async () => {
  for (const s of sessions) await s.close();
});

async function session(address: string, probeInterval?: number): Promise<Session> {
  const s = new Session({
    transport: hub.connect(address),
    clock,
    ...(probeInterval !== undefined ? { probeInterval } : {}),
  });
  sessions.push(s);
  await s.start();
  return s;
}

/** A callee whose handler never answers, and a caller with a long timeout. */
async function setup(callee = 'callee.test', probeInterval?: number): Promise<{ client: RpcClient; caller: Session }> {
  const b = await session(callee);
  const server = new RpcServer({ session: b });
  server.handle(Hang, () => new Promise(() => undefined));
  await server.start();
  const caller = await session('caller.test', probeInterval);
  const client = new RpcClient({ session: caller, timeout: 60_000 });
  await client.start();
  return { client, caller };
}

/** Lets queued microtasks (memory-hub deliveries) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

describe('pending calls to a peer that is gone fail fast', () => {
  it('the callee drops mid-call: the probe bounces and the call fails with ServiceUnavailableError', async () => {
    const { client, caller } = await setup();
    const call = client.call(Hang, 'callee.test', {}).catch((e: unknown) => e);
    await settle();
    expect(caller.caller.pending).toBe(1);
    hub.disconnect('callee.test');
    clock.advance(5_000); // the probe interval: the caller pings callee.test
    const err = await call;
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect(err).toMatchObject({ condition: 'remote-server-timeout', retryable: true });
    expect((err as Error).message).toMatch(/callee\.test became unavailable while this request waited/);
    expect(caller.caller.pending).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('a live but slow callee is probed and the call keeps waiting until its own timeout', async () => {
    const { client, caller } = await setup();
    const call = client.call(Hang, 'callee.test', {}, { timeout: 12_000 }).catch((e: unknown) => e);
    await settle();
    clock.advance(5_000);
    await settle(); // the ping is answered
    clock.advance(5_000);
    await settle();
    expect(caller.caller.pending).toBe(1);
    clock.advance(2_000);
    expect(await call).toBeInstanceOf(TimeoutError);
    expect(caller.caller.pending).toBe(0);
  });

  it('probes a long call with doubling intervals (5, 10, 20 … s, capped at 64 intervals), one ping at a time', async () => {
    const { client } = await setup();
    const pings: number[] = [];
    const callee = sessions[0]!;
    callee.transport.onStanza((s) => {
      if (s.getChild('ping', 'urn:xmpp:ping')) pings.push(clock.now());
    });
    const t0 = clock.now();
    const call = client.call(Hang, 'callee.test', {}, { timeout: 600_000 }).catch((e: unknown) => e);
    for (let t = 0; t < 600_000; t += 1_000) {
      clock.advance(1_000);
      await settle();
    }
    expect(await call).toBeInstanceOf(TimeoutError);
    expect(pings.map((at) => (at - t0) / 1000)).toEqual([5, 15, 35, 75, 155, 315]);
  });

  it('another stanza to the peer bouncing as gone fails the calls waiting on it at once (no probe needed)', async () => {
    const { client, caller } = await setup('svc.test', 0);
    const call = client.call(Hang, 'w1@svc.test', {}).catch((e: unknown) => e);
    await settle();
    hub.disconnect('svc.test');
    await caller.send(xml('message', { to: 'svc.test', type: 'normal' }, xml('body', null, 'x')));
    const err = await call;
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as ServiceUnavailableError).condition).toBe('remote-server-timeout');
  });

  it('presence unavailable from the full JID called fails its calls; an xmppbus drain announcement does not', async () => {
    const caller = await session('caller.test', 0);
    const alice = await session('alice@test/phone');
    alice.router.handle('urn:example:hang:1', 'hang', () => undefined); // never answers
    const waiting = (id: string): Promise<unknown> =>
      caller.caller
        .request(xml('iq', { type: 'get', to: 'alice@test/phone', id }, xml('hang', { xmlns: 'urn:example:hang:1' })), {
          timeout: 60_000,
        })
        .catch((e: unknown) => e);
    const first = waiting('q1');
    await settle();
    await alice.send(
      xml(
        'presence',
        { to: 'caller.test', type: 'unavailable' },
        xml('instance', { xmlns: 'urn:xmppbus:rpc:1', state: 'draining' }),
      ),
    );
    await settle();
    expect(caller.caller.pending).toBe(1);
    await alice.send(xml('presence', { to: 'caller.test', type: 'unavailable' }));
    const err = (await first) as ServiceUnavailableError;
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect(err).toMatchObject({ condition: 'recipient-unavailable', retryable: true });
    expect(caller.caller.pending).toBe(0);
  });

  it('a live entity without ping (a pub/sub service) answers the probe service-unavailable: the calls keep waiting', async () => {
    const caller = await session('caller.test');
    const pubsub = hub.connect('pubsub.test'); // answers ping as Prosody's and ejabberd's pub/sub do (measured)
    const pings: string[] = [];
    pubsub.onStanza((iq) => {
      if (iq.getChild('ping', 'urn:xmpp:ping') === undefined) return; // the request itself: slow, unanswered
      pings.push(iq.attrs['id'] ?? '');
      void pubsub.send(errorReply(iq, new StanzaError({ condition: 'service-unavailable' })));
    });
    const waiting = caller.caller
      .request(
        xml('iq', { type: 'set', to: 'pubsub.test' }, xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' })),
        {
          timeout: 12_000,
        },
      )
      .catch((e: unknown) => e);
    await settle();
    clock.advance(5_000);
    await settle();
    expect(pings).toHaveLength(1);
    expect(caller.caller.pending).toBe(1);
    clock.advance(7_000);
    expect(await waiting).toBeInstanceOf(TimeoutError);
    await pubsub.close();
  });

  it('probing off (probeInterval: 0): the call waits for its own timeout', async () => {
    const { client, caller } = await setup('callee.test', 0);
    const call = client.call(Hang, 'callee.test', {}, { timeout: 8_000 }).catch((e: unknown) => e);
    await settle();
    hub.disconnect('callee.test');
    clock.advance(5_000);
    await settle();
    expect(caller.caller.pending).toBe(1);
    clock.advance(3_000);
    expect(await call).toBeInstanceOf(TimeoutError);
  });
});
