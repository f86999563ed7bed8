import { Type } from '@sinclair/typebox';
import {
  ClosedError,
  ManualClock,
  ServiceUnavailableError,
  Session,
  deferred,
  type Clock,
  type Element,
} from '@xmppbus/core';
import { method } from '@xmppbus/schema';
import { waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcServer, ServiceClient, discoverInstances, type ServiceClientOptions } from './index.js';

const NS = 'urn:example:inventory:1';
const Lookup = method({
  ns: NS,
  name: 'lookup',
  request: Type.Object({ sku: Type.String() }),
  response: Type.Object({ sku: Type.String(), by: Type.String() }),
  readOnly: true,
  idempotent: true,
});
const Reserve = method({
  ns: NS,
  name: 'reserve',
  request: Type.Object({ sku: Type.String() }),
  response: Type.Object({ by: Type.String() }),
});
const Hold = method({
  ns: NS,
  name: 'hold',
  request: Type.Object({}),
  response: Type.Object({ by: Type.String() }),
  idempotent: true,
});

let hub: MemoryHub;
let sessions: Session[];
let caller: Session;

interface Started {
  session: Session;
  server: RpcServer;
  calls: string[];
}

async function startInstance(jid: string, gate?: Promise<void>): Promise<Started> {
  const session = newSession(jid);
  const server = new RpcServer({ session });
  const calls: string[] = [];
  server.handle(Lookup, ({ sku }) => {
    calls.push(sku);
    return { sku, by: jid };
  });
  server.handle(Reserve, () => ({ by: jid }));
  server.handle(Hold, async () => {
    calls.push('hold');
    if (gate) await gate;
    return { by: jid };
  });
  await server.start();
  return { session, server, calls };
}

function newSession(address: string, clock?: Clock): Session {
  const s = new Session({ transport: hub.connect(address), ...(clock ? { clock } : {}) });
  sessions.push(s);
  return s;
}

beforeEach(() => {
  hub = memoryHub();
  sessions = [];
  caller = newSession('web.test');
});

afterEach(async () => {
  for (const s of sessions) await s.close();
});

async function service(options: Omit<ServiceClientOptions, 'session'>, on: Session = caller): Promise<ServiceClient> {
  const svc = new ServiceClient({ session: on, ...options });
  await svc.start();
  return svc;
}

const stateOf = (svc: ServiceClient, jid: string): string | undefined =>
  svc.instances.find((i) => i.jid === jid)?.state;

describe('ServiceClient (memory hub)', () => {
  it('round-robin spreads calls evenly over the instances', async () => {
    const i1 = await startInstance('inv-1.test');
    const i2 = await startInstance('inv-2.test');
    const i3 = await startInstance('inv-3.test');
    const svc = await service({ target: ['inv-1.test', 'inv-2.test', 'inv-3.test'], strategy: 'round-robin' });
    for (let i = 0; i < 30; i++) await svc.call(Lookup, { sku: `s${i}` });
    expect([i1.calls.length, i2.calls.length, i3.calls.length]).toEqual([10, 10, 10]);
  });

  it('has no side effects before start(), refuses calls after drain()/close()', async () => {
    await startInstance('inv-1.test');
    const routed = hub.routed;
    const svc = new ServiceClient({ session: caller, target: 'inv-1.test' });
    expect(hub.routed).toBe(routed); // no watch presence before start()
    await expect(svc.call(Lookup, { sku: 'x' })).rejects.toBeInstanceOf(ClosedError);
    await svc.start();
    await expect(svc.call(Lookup, { sku: 'x' })).resolves.toEqual({ sku: 'x', by: 'inv-1.test' });
    await svc.drain({ timeout: 1000 });
    await expect(svc.call(Lookup, { sku: 'y' })).rejects.toBeInstanceOf(ClosedError);
    await svc[Symbol.asyncDispose]();
    expect(svc.status).toBe('closed');
  });

  it('least-in-flight avoids the instance that is busy', async () => {
    const gate = deferred<void>();
    const slow = await startInstance('inv-1.test', gate.promise);
    const fast = await startInstance('inv-2.test');
    const svc = await service({ target: ['inv-1.test', 'inv-2.test'], strategy: 'least-in-flight' });
    // Park 3 calls: they land on both, but inv-1 never answers while gated.
    const held = [svc.call(Hold, {}), svc.call(Hold, {}), svc.call(Hold, {})];
    await waitFor(() => slow.calls.length + fast.calls.length === 3);
    const byNow = svc.instances.find((i) => i.jid === 'inv-1.test')!.inFlight;
    expect(byNow).toBeGreaterThan(0);
    for (let i = 0; i < 10; i++) await svc.call(Lookup, { sku: `x${i}` });
    // Every lookup went to the idle instance.
    expect(slow.calls.filter((c) => c !== 'hold')).toHaveLength(0);
    expect(fast.calls.filter((c) => c !== 'hold')).toHaveLength(10);
    gate.resolve();
    await Promise.all(held);
  });

  it('fails over idempotent calls when an instance dies, without caller-visible errors', async () => {
    const i1 = await startInstance('inv-1.test');
    const i2 = await startInstance('inv-2.test');
    const svc = await service({ target: ['inv-1.test', 'inv-2.test'], strategy: 'round-robin' });
    await svc.call(Lookup, { sku: 'warm' });
    await i1.session.close();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => svc.call(Lookup, { sku: `k${i}` })));
    expect(results.every((r) => r.by === 'inv-2.test')).toBe(true);
    expect(stateOf(svc, 'inv-1.test')).toBe('down');
    expect(i2.calls.length).toBeGreaterThanOrEqual(20);
    expect(caller.caller.pending).toBe(0);
  });

  it('moves idempotent calls in flight on a vanished instance to another one', async () => {
    const clock = new ManualClock(Date.now()); // instances run on the system clock: deadlines must make sense to them
    const web = newSession('web2.test', clock);
    const never = new Promise<void>(() => {});
    const i1 = await startInstance('inv-1.test', never);
    await startInstance('inv-2.test');
    const svc = await service(
      { target: ['inv-1.test', 'inv-2.test'], strategy: 'round-robin', probeInterval: 20 },
      web,
    );
    const calls = [svc.call(Hold, {}, { timeout: 10_000 }), svc.call(Hold, {}, { timeout: 10_000 })];
    await waitFor(() => i1.calls.length === 1);
    await i1.session.close(); // its reply will never come; the health probe notices, the call moves on
    clock.advance(20); // the probe of an instance with a call outstanding for a probe interval
    const results = await Promise.all(calls);
    expect(results.map((r) => r.by)).toEqual(['inv-2.test', 'inv-2.test']);
  });

  it('does not retry non-idempotent calls: the caller sees the typed unavailable error', async () => {
    const i1 = await startInstance('inv-1.test');
    await startInstance('inv-2.test');
    const svc = await service({ target: ['inv-1.test', 'inv-2.test'], strategy: 'round-robin' });
    await i1.session.close();
    const outcomes = await Promise.all(
      [0, 1].map(() =>
        svc.call(Reserve, { sku: 'a' }).then(
          (r) => r.by,
          (e: unknown) => e,
        ),
      ),
    );
    expect(outcomes.filter((o) => o instanceof ServiceUnavailableError)).toHaveLength(1);
    expect(outcomes).toContain('inv-2.test');
    // The dead one is now marked down: subsequent calls go to the live instance only.
    for (let i = 0; i < 5; i++) await expect(svc.call(Reserve, { sku: 'b' })).resolves.toEqual({ by: 'inv-2.test' });
  });

  it('a draining instance tells its watchers by presence; calls go elsewhere, in-flight ones finish', async () => {
    const gate = deferred<void>();
    const i1 = await startInstance('inv-1.test', gate.promise);
    const i2 = await startInstance('inv-2.test');
    const svc = await service({ target: ['inv-1.test', 'inv-2.test'], strategy: 'round-robin' });
    await svc.call(Lookup, { sku: 'warm-1' });
    await svc.call(Lookup, { sku: 'warm-2' });
    const inflight = svc.call(Hold, {});
    await waitFor(() => i1.calls.includes('hold') || i2.calls.includes('hold'));
    const target = i1.calls.includes('hold') ? i1 : i2;
    const other = target === i1 ? i2 : i1;
    const drained = target.server.drain();
    await waitFor(() => stateOf(svc, target.session.address) === 'draining');
    const before = other.calls.length;
    for (let i = 0; i < 6; i++) await svc.call(Lookup, { sku: `d${i}` });
    expect(other.calls.length - before).toBe(6);
    gate.resolve();
    await expect(inflight).resolves.toEqual({ by: target.session.address });
    await drained;
  });

  it('keeps a draining instance out until a restarted one says it serves again', async () => {
    const clock = new ManualClock(Date.now()); // instances run on the system clock: deadlines must make sense to them
    const web = newSession('web2.test', clock);
    const i1 = await startInstance('inv-1.test');
    await startInstance('inv-2.test');
    const svc = await service(
      { target: ['inv-1.test', 'inv-2.test'], strategy: 'round-robin', probeInterval: 10 },
      web,
    );
    const state = (): string | undefined => stateOf(svc, 'inv-1.test');
    // Count the probes inv-1 answers and the presence answers it sends to the client.
    let pings = 0;
    let presences = 0;
    web.transport.onStanza((s: Element) => {
      if (s.attrs['from'] !== 'inv-1.test') return;
      if (s.name === 'iq' && s.attrs['type'] === 'result') pings++;
      if (s.name === 'presence') presences++;
    });
    await i1.server.drain();
    await waitFor(() => state() === 'draining');
    // Still connected and answering pings, but draining: several probe rounds later it is still out.
    for (let round = 1; round <= 3; round++) {
      clock.advance(5 * 10);
      await waitFor(() => pings >= round && presences >= round, { what: `probe round ${round}` });
      expect(state()).toBe('draining');
    }
    for (let i = 0; i < 4; i++) await expect(svc.call(Reserve, { sku: 'x' })).resolves.toEqual({ by: 'inv-2.test' });
    // The process restarts under the same name: its presence answer brings it back.
    await i1.session.close();
    const again = await startInstance('inv-1.test');
    clock.advance(5 * 10);
    await waitFor(() => state() === 'up');
    for (let i = 0; i < 4; i++) await svc.call(Lookup, { sku: `r${i}` });
    expect(again.calls.length).toBe(2);
  });

  it('probes a down instance and uses it again once it is back', async () => {
    const clock = new ManualClock(Date.now()); // instances run on the system clock: deadlines must make sense to them
    const web = newSession('web2.test', clock);
    const i1 = await startInstance('inv-1.test');
    await startInstance('inv-2.test');
    const svc = await service(
      { target: ['inv-1.test', 'inv-2.test'], strategy: 'round-robin', probeInterval: 10 },
      web,
    );
    hub.disconnect('inv-1.test');
    for (let i = 0; i < 4; i++) await svc.call(Lookup, { sku: `a${i}` });
    expect(stateOf(svc, 'inv-1.test')).toBe('down');
    hub.reconnect('inv-1.test');
    clock.advance(10); // the first probe after a failure comes one probe interval later
    await waitFor(() => stateOf(svc, 'inv-1.test') === 'up');
    const n = i1.calls.length;
    for (let i = 0; i < 4; i++) await svc.call(Lookup, { sku: `b${i}` });
    expect(i1.calls.length - n).toBe(2);
  });

  it('discovers instances through disco#items of a directory and disco#info of each', async () => {
    // The hub has no server entity: play one that lists three components, one of them offline.
    const server = newSession('localhost');
    for (const jid of ['inv-1.test', 'inv-2.test', 'inv-9.test', 'pubsub.test']) server.disco.addItem({ jid });
    await server.start();
    await startInstance('inv-1.test');
    await startInstance('inv-2.test');
    await caller.start();
    const found = await discoverInstances(caller, { server: 'localhost', match: /^inv-/, feature: NS });
    expect(found).toEqual(['inv-1.test', 'inv-2.test']);
    const svc = await service({ target: { discover: { server: 'localhost', match: /^inv-/, feature: NS } } });
    const r = await svc.call(Lookup, { sku: 'q' });
    expect(['inv-1.test', 'inv-2.test']).toContain(r.by);
    expect(svc.instances.map((i) => i.jid).sort()).toEqual(['inv-1.test', 'inv-2.test']);
  });
});
