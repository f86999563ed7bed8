import { Type } from '@sinclair/typebox';
import { IqCaller, ServiceUnavailableError, deferred } from '@xmppbus/core';
import { method } from '@xmppbus/schema';
import { memoryHub, type MemoryHub, type MemoryTransport } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcClient, RpcServer, discoverInstances, type ServiceClient } from './index.js';

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
let caller: MemoryTransport;
const instances: MemoryTransport[] = [];
const handles: ServiceClient[] = [];

function startInstance(jid: string, gate?: Promise<void>): { t: MemoryTransport; server: RpcServer; calls: string[] } {
  const t = hub.connect(jid);
  instances.push(t);
  const server = new RpcServer({ transport: t });
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
  return { t, server, calls };
}

beforeEach(() => {
  hub = memoryHub();
  caller = hub.connect('web.test');
});

afterEach(async () => {
  for (const h of handles.splice(0)) h.close();
  for (const t of instances.splice(0)) await t.close();
  await caller.close();
});

function service(client: RpcClient, ...args: Parameters<RpcClient['service']>): ServiceClient {
  const h = client.service(...args);
  handles.push(h);
  return h;
}

describe('ServiceClient (memory hub)', () => {
  it('round-robin spreads calls evenly over the instances', async () => {
    const i1 = startInstance('inv-1.test');
    const i2 = startInstance('inv-2.test');
    const i3 = startInstance('inv-3.test');
    const client = new RpcClient({ transport: caller });
    const svc = service(client, ['inv-1.test', 'inv-2.test', 'inv-3.test'], { strategy: 'round-robin' });
    for (let i = 0; i < 30; i++) await svc.call(Lookup, { sku: `s${i}` });
    expect([i1.calls.length, i2.calls.length, i3.calls.length]).toEqual([10, 10, 10]);
  });

  it('least-in-flight avoids the instance that is busy', async () => {
    const gate = deferred<void>();
    const slow = startInstance('inv-1.test', gate.promise);
    const fast = startInstance('inv-2.test');
    const client = new RpcClient({ transport: caller });
    const svc = service(client, ['inv-1.test', 'inv-2.test'], { strategy: 'least-in-flight' });
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
    const i1 = startInstance('inv-1.test');
    const i2 = startInstance('inv-2.test');
    const client = new RpcClient({ transport: caller });
    const svc = service(client, ['inv-1.test', 'inv-2.test'], { strategy: 'round-robin' });
    await svc.call(Lookup, { sku: 'warm' });
    await i1.t.close();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => svc.call(Lookup, { sku: `k${i}` })));
    expect(results.every((r) => r.by === 'inv-2.test')).toBe(true);
    expect(svc.instances.find((i) => i.jid === 'inv-1.test')!.state).toBe('down');
    expect(i2.calls.length).toBeGreaterThanOrEqual(20);
    expect(IqCaller.for(caller).pending).toBe(0);
  });

  it('moves idempotent calls in flight on a vanished instance to another one', async () => {
    const never = new Promise<void>(() => {});
    const i1 = startInstance('inv-1.test', never);
    startInstance('inv-2.test');
    const client = new RpcClient({ transport: caller });
    const svc = service(client, ['inv-1.test', 'inv-2.test'], { strategy: 'round-robin', probeInterval: 20 });
    const calls = [svc.call(Hold, {}, { timeout: 10_000 }), svc.call(Hold, {}, { timeout: 10_000 })];
    await waitFor(() => i1.calls.length === 1);
    await i1.t.close(); // its reply will never come; the health probe notices, the call moves on
    const results = await Promise.all(calls);
    expect(results.map((r) => r.by)).toEqual(['inv-2.test', 'inv-2.test']);
  });

  it('does not retry non-idempotent calls: the caller sees the typed unavailable error', async () => {
    const i1 = startInstance('inv-1.test');
    startInstance('inv-2.test');
    const client = new RpcClient({ transport: caller });
    const svc = service(client, ['inv-1.test', 'inv-2.test'], { strategy: 'round-robin' });
    await i1.t.close();
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
    const i1 = startInstance('inv-1.test', gate.promise);
    const i2 = startInstance('inv-2.test');
    const client = new RpcClient({ transport: caller });
    const svc = service(client, ['inv-1.test', 'inv-2.test'], { strategy: 'round-robin' });
    await svc.call(Lookup, { sku: 'warm-1' });
    await svc.call(Lookup, { sku: 'warm-2' });
    const inflight = svc.call(Hold, {});
    await waitFor(() => i1.calls.includes('hold') || i2.calls.includes('hold'));
    const target = i1.calls.includes('hold') ? i1 : i2;
    const other = target === i1 ? i2 : i1;
    const drained = target.server.drain();
    await waitFor(() => svc.instances.find((i) => i.jid === target.t.address)!.state === 'draining');
    const before = other.calls.length;
    for (let i = 0; i < 6; i++) await svc.call(Lookup, { sku: `d${i}` });
    expect(other.calls.length - before).toBe(6);
    gate.resolve();
    await expect(inflight).resolves.toEqual({ by: target.t.address });
    await drained;
  });

  it('keeps a draining instance out until a restarted one says it serves again', async () => {
    const i1 = startInstance('inv-1.test');
    startInstance('inv-2.test');
    const client = new RpcClient({ transport: caller });
    const svc = service(client, ['inv-1.test', 'inv-2.test'], { strategy: 'round-robin', probeInterval: 10 });
    const state = (): string => svc.instances.find((i) => i.jid === 'inv-1.test')!.state;
    await i1.server.drain();
    await waitFor(() => state() === 'draining');
    // Still connected and answering pings, but draining: several probe rounds later it is still out.
    await new Promise((r) => setTimeout(r, 150));
    expect(state()).toBe('draining');
    for (let i = 0; i < 4; i++) await expect(svc.call(Reserve, { sku: 'x' })).resolves.toEqual({ by: 'inv-2.test' });
    // The process restarts under the same name: its presence answer brings it back.
    await i1.t.close();
    const again = startInstance('inv-1.test');
    await waitFor(() => state() === 'up');
    for (let i = 0; i < 4; i++) await svc.call(Lookup, { sku: `r${i}` });
    expect(again.calls.length).toBe(2);
  });

  it('probes a down instance and uses it again once it is back', async () => {
    const i1 = startInstance('inv-1.test');
    startInstance('inv-2.test');
    const client = new RpcClient({ transport: caller });
    const svc = service(client, ['inv-1.test', 'inv-2.test'], { strategy: 'round-robin', probeInterval: 10 });
    hub.disconnect('inv-1.test');
    for (let i = 0; i < 4; i++) await svc.call(Lookup, { sku: `a${i}` });
    expect(svc.instances.find((i) => i.jid === 'inv-1.test')!.state).toBe('down');
    hub.reconnect('inv-1.test');
    await waitFor(() => svc.instances.find((i) => i.jid === 'inv-1.test')!.state === 'up');
    const n = i1.calls.length;
    for (let i = 0; i < 4; i++) await svc.call(Lookup, { sku: `b${i}` });
    expect(i1.calls.length - n).toBe(2);
  });

  it('discovers instances through disco#items of a directory and disco#info of each', async () => {
    // The hub has no server entity: play one that lists three components, one of them offline.
    const server = hub.connect('localhost');
    instances.push(server);
    const { IqRouter } = await import('@xmppbus/core');
    const router = IqRouter.for(server);
    for (const jid of ['inv-1.test', 'inv-2.test', 'inv-9.test', 'pubsub.test']) router.addDiscoItem({ jid });
    startInstance('inv-1.test');
    startInstance('inv-2.test');
    const found = await discoverInstances(caller, { server: 'localhost', match: /^inv-/, feature: NS });
    expect(found).toEqual(['inv-1.test', 'inv-2.test']);
    const client = new RpcClient({ transport: caller });
    const svc = service(client, { discover: { server: 'localhost', match: /^inv-/, feature: NS } });
    const r = await svc.call(Lookup, { sku: 'q' });
    expect(['inv-1.test', 'inv-2.test']).toContain(r.by);
    expect(svc.instances.map((i) => i.jid).sort()).toEqual(['inv-1.test', 'inv-2.test']);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}
