// RPC batches (urn:xmppbus:rpc:batch:1) through real Prosody and ejabberd: 100 concurrent calls
// mixing successes and failures, each promise settled with its own outcome; a ServiceClient
// batching per instance and failing over when an instance goes away.
import { AccessPolicy, Session, deferred, parseXml, type Element, type StanzaError } from '@xmppbus/core';
import { NS_RPC_BATCH, RpcClient, RpcError, RpcServer, ServiceClient } from '@xmppbus/rpc';
import { ValidationError, method } from '@xmppbus/schema';
import { describeServers } from '@xmppbus/testing';
import { Type } from '@sinclair/typebox';
import { afterEach, expect, it } from 'vitest';
import { canonical, docExample } from './fixtures/protocol-doc.js';
import { Components, CreateOrder, GetOrder, NS_ORDERS } from './rpc-fixtures.js';

/** Served but denied to the caller by the callee's access policy. */
const Secret = method({ ns: NS_ORDERS, name: 'secret', request: Type.Object({}), response: Type.Object({}) });
/** Not served at all (the namespace is). */
const Missing = method({ ns: NS_ORDERS, name: 'missing', request: Type.Object({}), response: Type.Object({}) });

/** A doc example with the test's component names. */
function localExample(name: string): Element {
  return parseXml(
    docExample(name)
      .replaceAll('billing.example.test', 'svc-c.localhost')
      .replaceAll('orders.example.test', 'svc-d.localhost'),
  );
}

/** Server-added attributes and the order of batch outcomes do not matter. */
const canonicalBatch = (el: Element): string => canonical(el, { unordered: ['batch'] });

describeServers('rpc batches', (server, kind) => {
  const components = new Components(server);
  const sessions: Session[] = [];
  afterEach(async () => {
    for (const s of sessions.splice(0)) await s.close();
    await components.closeAll();
  });

  it(`100 concurrent calls go in batches and each settles with its own outcome [${kind}]`, async () => {
    const callee = new Session({
      transport: await components.connect('svc-b.localhost'),
      access: new AccessPolicy({ rules: [{ from: 'svc-a.localhost', to: `${NS_ORDERS}#secret`, effect: 'deny' }] }),
    });
    sessions.push(callee);
    await callee.start();
    // Room for all 100 calls in hand at once: this test is about outcomes, not admission limits.
    const rpc = new RpcServer({ session: callee, limits: { perSenderCount: 256 } });
    rpc.handle(CreateOrder, async ({ sku, qty }) => {
      await new Promise<void>((resolve) => setImmediate(resolve)); // finish out of order
      if (sku.startsWith('none')) throw new RpcError(CreateOrder, 'outOfStock', { sku, available: 0 });
      return { orderId: `${sku}-${qty}`, total: qty };
    });
    rpc.handle(GetOrder, ({ orderId }) => ({ orderId, qty: 1, by: 'b' }));
    rpc.handle(Secret, () => ({}));
    await rpc.start();
    expect(callee.disco.features).toContain(NS_RPC_BATCH);

    const caller = await components.session('svc-a.localhost');
    // validate: false lets bad requests reach the callee, which must refuse those items only.
    const client = new RpcClient({ session: caller, validate: false, timeout: 10_000 });
    await client.start();
    const to = 'svc-b.localhost';
    // The first bursts go as single IQs while the client asks the peer (disco#info).
    for (let i = 0; i < 50 && client.batchStats.batches === 0; i++)
      await Promise.all([1, 2].map((n) => client.call(GetOrder, to, { orderId: `warm${i}-${n}` })));
    expect(client.batchStats.batches).toBeGreaterThan(0);
    const { batches: b0, batchedCalls: c0 } = { ...client.batchStats };

    const kinds = ['ok', 'declared', 'invalid', 'forbidden', 'missing'] as const;
    const calls = Array.from({ length: 100 }, (_, i) => {
      const k = kinds[i % kinds.length]!;
      switch (k) {
        case 'ok':
          return client.call(CreateOrder, to, { sku: `s${i}`, qty: i + 1 });
        case 'declared':
          return client.call(CreateOrder, to, { sku: `none${i}`, qty: 1 });
        case 'invalid':
          return client.call(CreateOrder, to, { sku: `bad${i}`, qty: 0 });
        case 'forbidden':
          return client.call(Secret, to, {});
        case 'missing':
          return client.call(Missing, to, {});
      }
    });
    const outcomes = await Promise.allSettled(calls);
    outcomes.forEach((o, i) => {
      const k = kinds[i % kinds.length]!;
      if (k === 'ok') {
        expect(o).toEqual({ status: 'fulfilled', value: { orderId: `s${i}-${i + 1}`, total: i + 1 } });
        return;
      }
      expect(o.status).toBe('rejected');
      const reason = (o as PromiseRejectedResult).reason as unknown;
      if (k === 'declared') {
        expect(reason).toBeInstanceOf(RpcError);
        expect((reason as RpcError).data).toEqual({ sku: `none${i}`, available: 0 });
      } else if (k === 'invalid') {
        expect(reason).toBeInstanceOf(ValidationError);
        expect((reason as ValidationError).issues[0]?.path).toBe('/qty');
      } else if (k === 'forbidden') {
        expect(reason).toMatchObject({ condition: 'forbidden', type: 'auth' });
      } else {
        expect((reason as StanzaError).condition).toBe('feature-not-implemented');
      }
    });
    // 100 calls in one turn, one batch per method: create (60 calls), secret (20), missing (20).
    expect(client.batchStats.batches - b0).toBe(3);
    expect(client.batchStats.batchedCalls - c0).toBe(100);
    expect(caller.caller.pending).toBe(0);
    expect(client.inFlight).toBe(0);
    expect(rpc.usage).toEqual({ bytes: 0, count: 0 });
  });

  it(`a ServiceClient batches per instance and moves a gone instance's calls to the other [${kind}]`, async () => {
    const served = new Map<string, number>();
    const names = ['svc-e.localhost', 'svc-f.localhost'];
    for (const name of names) {
      const rpc = new RpcServer({ session: await components.session(name), limits: { perSenderCount: 256 } });
      rpc.handle(GetOrder, ({ orderId }) => {
        served.set(name, (served.get(name) ?? 0) + 1);
        return { orderId, qty: 1, by: name };
      });
      await rpc.start();
    }
    const caller = await components.session('svc-a.localhost');
    const svc = new ServiceClient({ session: caller, target: names, timeout: 20_000 });
    await svc.start();
    // Bursts of four spread over both instances, so each is called twice in a turn and asked (disco#info).
    for (let i = 0; i < 50 && svc.batchStats.batches < 2; i++)
      await Promise.all([1, 2, 3, 4].map((n) => svc.call(GetOrder, { orderId: `warm${i}-${n}` })));
    expect(svc.batchStats.batches).toBeGreaterThanOrEqual(2);

    const before = { ...svc.batchStats };
    served.clear();
    const ids = Array.from({ length: 200 }, (_, i) => `o${i}`);
    const replies = await Promise.all(ids.map((orderId) => svc.call(GetOrder, { orderId })));
    expect(replies.map((r) => r.orderId)).toEqual(ids);
    for (const name of names) expect(served.get(name)).toBeGreaterThan(50); // least-in-flight spreads them
    const batched = svc.batchStats.batchedCalls - before.batchedCalls;
    const batches = svc.batchStats.batches - before.batches;
    expect(batched).toBeGreaterThan(100);
    expect(batches).toBeLessThan(batched / 4);

    // svc-e goes away without a word; the client still believes it up. Its share of the next burst
    // fails as a batch (the server bounces it); every call is answered by svc-f instead.
    await components.closeOne('svc-e.localhost');
    served.clear();
    const beforeFailover = svc.batchStats.batches;
    const after = await Promise.all(ids.map((orderId) => svc.call(GetOrder, { orderId })));
    // At least one batch left for svc-e (still believed up) and for svc-f in the first turn.
    expect(svc.batchStats.batches - beforeFailover).toBeGreaterThanOrEqual(2);
    expect(after.map((r) => r.orderId)).toEqual(ids);
    expect(new Set(after.map((r) => r.by))).toEqual(new Set(['svc-f.localhost']));
    expect(served.get('svc-f.localhost')).toBe(200);
    expect(svc.instances.find((i) => i.jid === 'svc-e.localhost')!.state).not.toBe('up');
    expect(caller.caller.pending).toBe(0);
    expect(svc.inFlight).toBe(0);
    await svc.close();
  });

  it(`answers the batch of docs/protocol.md §3.5 with the documented result [${kind}]`, async () => {
    const callee = await components.session('svc-d.localhost');
    const rpc = new RpcServer({ session: callee });
    rpc.handle(CreateOrder, ({ sku, qty }) => {
      if (sku === 'B7') throw new RpcError(CreateOrder, 'outOfStock', { sku, available: 0 });
      return { orderId: `${sku}-${qty}`, total: qty * 9.5 };
    });
    await rpc.start();
    const raw = await components.connect('svc-c.localhost');
    const request = localExample('rpc-batch-request');
    const reply = deferred<Element>();
    raw.onStanza((s) => {
      if (s.attrs['id'] === request.attrs['id']) reply.resolve(s);
    });
    await raw.send(request);
    expect(canonicalBatch(await reply.promise)).toBe(canonicalBatch(localExample('rpc-batch-result')));
  });
});
