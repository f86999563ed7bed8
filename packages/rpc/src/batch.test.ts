import { Type } from '@sinclair/typebox';
import type { Element } from '@xmppbus/core';
import {
  AccessPolicy,
  ManualClock,
  NS_DISCO_INFO,
  Session,
  StanzaError,
  TimeoutError,
  childElements,
  deferred,
  errorReply,
  randomId,
  resultReply,
  xml,
  type Clock,
  type Deferred,
  type StanzaErrorInit,
} from '@xmppbus/core';
import { ValidationError, method } from '@xmppbus/schema';
import { CreateOrder, GetOrder, NS_ORDERS, waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub, type MemoryTransport } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_BATCH_CALLS, NS_RPC_BATCH } from './batch.js';
import { RpcClient, RpcError, RpcServer, type RpcClientOptions, type RpcServerOptions } from './index.js';

/** Answers when the test says so. */
const Hold = method({
  ns: NS_ORDERS,
  name: 'hold',
  request: Type.Object({ n: Type.Integer() }),
  response: Type.Object({ n: Type.Integer() }),
});

let hub: MemoryHub;
let sessions: Session[];

beforeEach(() => {
  hub = memoryHub();
  sessions = [];
});

afterEach(async () => {
  for (const s of sessions) await s.close();
});

function session(address: string, options: { clock?: Clock; access?: AccessPolicy } = {}): Session {
  const s = new Session({ transport: hub.connect(address), ...options });
  sessions.push(s);
  return s;
}

/** The IQ get/set payloads `s` receives, as `batch(n)` or the method name. */
function inbound(s: Session): string[] {
  const seen: string[] = [];
  s.transport.onStanza((st) => {
    const t = st.attrs['type'];
    if (st.name !== 'iq' || (t !== 'get' && t !== 'set')) return;
    const p = childElements(st)[0]!;
    if (p.attrs['xmlns'] === NS_RPC_BATCH) seen.push(`batch(${childElements(p).length})`);
    else if (p.attrs['xmlns'] !== NS_DISCO_INFO) seen.push(p.name);
  });
  return seen;
}

async function setup(
  serverOptions: Omit<RpcServerOptions, 'session'> = {},
  clientOptions: Omit<RpcClientOptions, 'session'> = {},
  sessionOptions: { clock?: Clock; access?: AccessPolicy } = {},
): Promise<{ a: Session; b: Session; c: RpcClient; server: RpcServer; held: Deferred<void>[] }> {
  const a = session('billing.test', sessionOptions);
  const b = session('orders.test', sessionOptions);
  const held: Deferred<void>[] = [];
  const server = new RpcServer({ session: b, ...serverOptions });
  server.handle(CreateOrder, ({ sku, qty }) => {
    if (sku === 'none') throw new RpcError(CreateOrder, 'outOfStock', { sku, available: 0 });
    return { orderId: `${sku}-${qty}`, total: qty };
  });
  server.handle(GetOrder, ({ orderId }) => ({ orderId, qty: 1, by: 'b' }));
  server.handle(Hold, async ({ n }) => {
    const d = deferred<void>();
    held.push(d);
    await d.promise;
    return { n };
  });
  await server.start();
  const c = new RpcClient({ session: a, ...clientOptions });
  await c.start();
  return { a, b, c, server, held };
}

/**
 * A hand-written `orders.test` (no session: nothing answers but this test): lists the batch
 * feature in disco#info, answers single calls, and answers a batch with `refuse` as a whole or
 * with one result per call. Records what it got, in order: `disco`, `batch(n)` or the method name.
 */
function handPeer(refuse?: StanzaErrorInit): { transport: MemoryTransport; seen: string[] } {
  const transport = hub.connect('orders.test');
  const seen: string[] = [];
  const order = (request: Element): Element => {
    const orderId = request.getChildText('orderId') ?? '';
    return xml('get', { xmlns: NS_ORDERS }, xml('orderId', {}, orderId), xml('qty', {}, '1'), xml('by', {}, 'h'));
  };
  transport.onStanza((s) => {
    if (s.name !== 'iq' || s.attrs['type'] === 'result' || s.attrs['type'] === 'error') return;
    const p = childElements(s)[0]!;
    let reply: Element;
    if (p.attrs['xmlns'] === NS_DISCO_INFO) {
      seen.push('disco');
      reply = resultReply(s, xml('query', { xmlns: NS_DISCO_INFO }, xml('feature', { var: NS_RPC_BATCH })));
    } else if (p.attrs['xmlns'] === NS_RPC_BATCH) {
      const calls = childElements(p);
      seen.push(`batch(${calls.length})`);
      reply = refuse
        ? errorReply(s, new StanzaError(refuse))
        : resultReply(
            s,
            xml(
              'batch',
              { xmlns: NS_RPC_BATCH },
              ...calls.map((c) => xml('result', { id: c.attrs['id'] }, order(childElements(c)[0]!))),
            ),
          );
    } else {
      seen.push(p.name);
      reply = resultReply(s, order(p));
    }
    void transport.send(reply);
  });
  return { transport, seen };
}

/** Two calls in one turn make the client ask the peer; resolves once it knows. */
async function negotiate(c: RpcClient, a: Session): Promise<void> {
  let asked = 0;
  const off = a.transport.onStanza((s) => {
    if (s.name === 'iq' && s.attrs['type'] === 'result' && s.getChild('query', NS_DISCO_INFO)) asked++;
  });
  await Promise.all([1, 2].map((i) => c.call(GetOrder, 'orders.test', { orderId: `w${i}` })));
  await waitFor(() => asked === 1, { what: 'disco#info answered' });
  off();
  await Promise.resolve();
}

describe('RPC batches (urn:xmppbus:rpc:batch:1)', () => {
  it('advertises the feature unless disabled', async () => {
    const { b } = await setup();
    expect(b.disco.features).toContain(NS_RPC_BATCH);
    const x = session('other.test');
    const off = new RpcServer({ session: x, batch: false });
    await off.start();
    expect(x.disco.features).not.toContain(NS_RPC_BATCH);
  });

  it('sends calls issued in the same turn as one batch IQ, a lone call in the single form', async () => {
    const { a, b, c } = await setup();
    const seen = inbound(b);
    await negotiate(c, a);
    expect(seen).toEqual(['get', 'get']); // before the answer: single IQs
    seen.length = 0;
    const burst = await Promise.all([1, 2, 3, 4, 5].map((i) => c.call(GetOrder, 'orders.test', { orderId: `o${i}` })));
    expect(burst.map((r) => r.orderId)).toEqual(['o1', 'o2', 'o3', 'o4', 'o5']);
    await c.call(CreateOrder, 'orders.test', { sku: 'A', qty: 2 });
    const next = c.call(GetOrder, 'orders.test', { orderId: 'x' });
    await next;
    expect(seen).toEqual(['batch(5)', 'create', 'get']);
    expect(c.batchStats).toEqual({ batches: 1, batchedCalls: 5 });
    expect(a.caller.pending).toBe(0);
    expect(c.inFlight).toBe(0);
  });

  it('is off by default with a per-attempt timeout (a slow call would time out its batch), on when asked', async () => {
    const perAttempt = { retry: { attempts: 2, attemptTimeout: 5_000 } };
    const { b, c } = await setup({}, perAttempt);
    const seen = inbound(b);
    for (let round = 0; round < 3; round++)
      await Promise.all([1, 2, 3].map((i) => c.call(GetOrder, 'orders.test', { orderId: `o${round}-${i}` })));
    expect(seen).toEqual(Array.from({ length: 9 }, () => 'get'));
    expect(c.batchStats).toEqual({ batches: 0, batchedCalls: 0 });
    const a2 = session('billing2.test');
    const opted = new RpcClient({ session: a2, ...perAttempt, batch: { enabled: true } });
    await opted.start();
    await negotiate(opted, a2);
    await Promise.all([1, 2, 3].map((i) => opted.call(GetOrder, 'orders.test', { orderId: `p${i}` })));
    expect(opted.batchStats).toEqual({ batches: 1, batchedCalls: 3 });
  });

  it('gives every call of a batch its own outcome: result, declared error, forbidden, unknown method, bad payload', async () => {
    const access = new AccessPolicy({ rules: [{ from: 'billing.test', to: `${NS_ORDERS}#hold`, effect: 'deny' }] });
    // validate: false lets an invalid request reach the server, which must refuse that item only.
    const { a, b, c } = await setup({}, { validate: false }, { access });
    const seen = inbound(b);
    await negotiate(c, a);
    seen.length = 0;
    const Unknown = method({ ns: NS_ORDERS, name: 'nope', request: Type.Object({}), response: Type.Object({}) });
    const Elsewhere = method({ ns: 'urn:other', name: 'x', request: Type.Object({}), response: Type.Object({}) });
    // One batch per method (a batch is answered when its slowest call settles), two calls each.
    const outcomes = await Promise.allSettled([
      c.call(CreateOrder, 'orders.test', { sku: 'A', qty: 3 }),
      c.call(CreateOrder, 'orders.test', { sku: 'none', qty: 1 }),
      c.call(CreateOrder, 'orders.test', { sku: 'B', qty: 0 }),
      c.call(Hold, 'orders.test', { n: 1 }),
      c.call(Unknown, 'orders.test', {}),
      c.call(Elsewhere, 'orders.test', {}),
      c.call(Hold, 'orders.test', { n: 2 }),
      c.call(Unknown, 'orders.test', {}),
      c.call(Elsewhere, 'orders.test', {}),
    ]);
    expect(seen.sort()).toEqual(['batch(2)', 'batch(2)', 'batch(2)', 'batch(3)']);
    expect(outcomes[0]).toEqual({ status: 'fulfilled', value: { orderId: 'A-3', total: 3 } });
    const reason = (i: number): unknown => (outcomes[i] as PromiseRejectedResult).reason;
    expect(reason(1)).toBeInstanceOf(RpcError);
    expect((reason(1) as RpcError).data).toEqual({ sku: 'none', available: 0 });
    expect(reason(2)).toBeInstanceOf(ValidationError);
    expect((reason(2) as ValidationError).issues[0]?.path).toBe('/qty');
    for (const i of [3, 6]) expect(reason(i)).toMatchObject({ condition: 'forbidden', type: 'auth' });
    for (const i of [4, 7]) expect(reason(i)).toMatchObject({ condition: 'feature-not-implemented' });
    for (const i of [5, 8]) expect(reason(i)).toMatchObject({ condition: 'service-unavailable' });
  });

  it('settles each call by its id whatever the order the handlers finish in', async () => {
    const { a, c, held } = await setup();
    await negotiate(c, a);
    const calls = [1, 2, 3, 4].map((n) => c.call(Hold, 'orders.test', { n }));
    await waitFor(() => held.length === 4, { what: 'four handlers running' });
    for (const d of [...held].reverse()) d.resolve();
    expect((await Promise.all(calls)).map((r) => r.n)).toEqual([1, 2, 3, 4]);
  });

  it('an aborted call rejects at once; its item is ignored when the batch answers', async () => {
    const { a, c, held } = await setup();
    await negotiate(c, a);
    const ac = new AbortController();
    const first = c.call(Hold, 'orders.test', { n: 1 });
    const aborted = c.call(Hold, 'orders.test', { n: 2 }, { signal: ac.signal });
    await waitFor(() => held.length === 2, { what: 'both running' });
    const why = new Error('changed my mind');
    ac.abort(why);
    await expect(aborted).rejects.toBe(why);
    for (const d of held) d.resolve();
    await expect(first).resolves.toEqual({ n: 1 });
    expect(c.batchStats.batches).toBe(1);
    expect(a.caller.pending).toBe(0);
  });

  it('a call whose own timeout is earlier than the batch’s times out alone', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { a, c, held } = await setup({}, {}, { clock });
    await negotiate(c, a);
    const long = c.call(Hold, 'orders.test', { n: 1 }, { timeout: 10_000 });
    const short = c.call(Hold, 'orders.test', { n: 2 }, { timeout: 100 });
    await waitFor(() => held.length === 2, { what: 'both running' });
    clock.advance(150);
    await expect(short).rejects.toBeInstanceOf(TimeoutError);
    for (const d of held) d.resolve();
    await expect(long).resolves.toEqual({ n: 1 });
    clock.advance(20_000); // the batch IQ's own timer was cancelled by its answer
    expect(a.caller.pending).toBe(0);
  });

  it('sends single IQs to a peer without the feature', async () => {
    const { a, b, c } = await setup({ batch: false });
    const seen = inbound(b);
    await negotiate(c, a);
    await Promise.all([1, 2, 3].map((i) => c.call(GetOrder, 'orders.test', { orderId: `o${i}` })));
    expect(seen).toEqual(['get', 'get', 'get', 'get', 'get']);
    expect(c.batchStats.batches).toBe(0);
  });

  it('never asks when batching is off on the client', async () => {
    const a = session('billing.test');
    const b = session('orders.test');
    let discos = 0;
    b.transport.onStanza((s) => {
      if (s.getChild('query', NS_DISCO_INFO)) discos++;
    });
    const server = new RpcServer({ session: b });
    server.handle(GetOrder, ({ orderId }) => ({ orderId, qty: 1, by: 'b' }));
    await server.start();
    const c = new RpcClient({ session: a, batch: { enabled: false } });
    await c.start();
    await Promise.all([1, 2, 3].map((i) => c.call(GetOrder, 'orders.test', { orderId: `o${i}` })));
    expect(discos).toBe(0);
  });

  it.each([
    ['feature-not-implemented', 'cancel'],
    ['policy-violation', 'modify'], // its budget refuses the batch whole: nothing ran
  ] as const)(
    'a peer that advertises batches but refuses them (%s) gets the calls again one per IQ, then singles',
    async (condition, type) => {
      const a = session('billing.test');
      const { seen } = handPeer({ condition, type });
      const c = new RpcClient({ session: a });
      await c.start();
      await negotiate(c, a);
      seen.length = 0;
      const r = await Promise.all([1, 2, 3].map((i) => c.call(GetOrder, 'orders.test', { orderId: `o${i}` })));
      expect(r.map((x) => x.orderId)).toEqual(['o1', 'o2', 'o3']);
      expect(seen).toEqual(['batch(3)', 'get', 'get', 'get']);
      seen.length = 0;
      await Promise.all([4, 5].map((i) => c.call(GetOrder, 'orders.test', { orderId: `o${i}` })));
      expect(seen).toEqual(['get', 'get']);
    },
  );

  it('a batch IQ that fails as a whole fails every call as it fails a single one', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { a, c } = await setup({}, {}, { clock });
    await negotiate(c, a);
    hub.disconnect('orders.test');
    const calls = Promise.allSettled([1, 2].map((n) => c.call(Hold, 'orders.test', { n }, { timeout: 1000 })));
    const outcomes = await calls;
    for (const o of outcomes) expect(o.status).toBe('rejected');
    const reasons = outcomes.map((o) => (o as PromiseRejectedResult).reason as StanzaError);
    expect(reasons[0]?.name).toBe(reasons[1]?.name);
    expect(reasons[0]?.retryable).toBe(true);
    expect(a.caller.pending).toBe(0);
  });

  it('refuses a malformed or oversized batch as a whole, before running anything', async () => {
    const { a, held } = await setup();
    const send = async (batch: Element): Promise<Element> => {
      const id = randomId();
      const d = deferred<Element>();
      const off = a.transport.onStanza((s) => {
        if (s.attrs['id'] === id) {
          off();
          d.resolve(s);
        }
      });
      await a.transport.send(xml('iq', { type: 'set', id, to: 'orders.test', from: 'billing.test' }, batch));
      return d.promise;
    };
    const item = (id: string): Element => xml('call', { id }, xml('hold', { xmlns: NS_ORDERS }, xml('n', {}, '1')));
    const tooMany = xml('batch', { xmlns: NS_RPC_BATCH });
    for (let i = 0; i <= MAX_BATCH_CALLS; i++) tooMany.cnode(item(`i${i}`));
    const refused = await send(tooMany);
    expect(StanzaError.fromElement(refused)).toMatchObject({ condition: 'policy-violation', type: 'modify' });
    const repeated = await send(xml('batch', { xmlns: NS_RPC_BATCH }, item('x'), item('x')));
    expect(StanzaError.fromElement(repeated)).toMatchObject({ condition: 'bad-request', type: 'modify' });
    // The id belongs on the <call/> wrapper: a bare request element, or a call with two, is malformed.
    const bare = await send(xml('batch', { xmlns: NS_RPC_BATCH }, xml('hold', { xmlns: NS_ORDERS, id: 'x' })));
    expect(StanzaError.fromElement(bare)).toMatchObject({
      condition: 'bad-request',
      text: expect.stringContaining('<call/>'),
    });
    const two = xml('call', { id: 'y' }, xml('hold', { xmlns: NS_ORDERS }), xml('hold', { xmlns: NS_ORDERS }));
    const twice = await send(xml('batch', { xmlns: NS_RPC_BATCH }, two));
    expect(StanzaError.fromElement(twice)).toMatchObject({ condition: 'bad-request' });
    const big = xml('batch', { xmlns: NS_RPC_BATCH });
    for (let i = 0; i < 40; i++)
      big.cnode(
        xml(
          'call',
          { id: `b${i}` },
          xml('create', { xmlns: NS_ORDERS }, xml('sku', {}, 'x'.repeat(30_000)), xml('qty', {}, '1')),
        ),
      );
    const tooBig = await send(big);
    expect(StanzaError.fromElement(tooBig)).toMatchObject({ condition: 'policy-violation' });
    expect(held).toHaveLength(0);
  });

  it('answers a hand-built batch with one result naming each item', async () => {
    const { a } = await setup();
    const id = randomId();
    const d = deferred<Element>();
    a.transport.onStanza((s) => {
      if (s.attrs['id'] === id) d.resolve(s);
    });
    const batch = xml(
      'batch',
      { xmlns: NS_RPC_BATCH },
      xml('call', { id: 'g' }, xml('get', { xmlns: NS_ORDERS }, xml('orderId', {}, 'o9'))),
      xml('call', { id: 'c' }, xml('create', { xmlns: NS_ORDERS }, xml('sku', {}, 'none'), xml('qty', {}, '1'))),
    );
    await a.transport.send(xml('iq', { type: 'set', id, to: 'orders.test', from: 'billing.test' }, batch));
    const reply = await d.promise;
    expect(reply.attrs['type']).toBe('result');
    const out = childElements(reply.getChild('batch', NS_RPC_BATCH)!);
    const byId = new Map(out.map((e) => [e.attrs['id'], e]));
    expect(byId.get('g')?.name).toBe('result');
    expect(byId.get('g')?.getChild('get', NS_ORDERS)?.getChildText('orderId')).toBe('o9');
    const err = byId.get('c')!;
    expect(err.name).toBe('error');
    expect(err.attrs['type']).toBe('cancel');
    expect(err.getChild('outOfStock', NS_ORDERS)?.getChildText('available')).toBe('0');
  });

  it('keeps the answer under the stanza cap: a response that does not fit becomes wait/resource-constraint', async () => {
    hub = memoryHub({ maxStanzaBytes: 16 * 1024 });
    const a = session('billing.test');
    const b = session('orders.test');
    const server = new RpcServer({ session: b });
    server.handle(GetOrder, ({ orderId }) => ({
      orderId,
      qty: 1,
      by: orderId.startsWith('w') ? 'b' : 'x'.repeat(3000),
    }));
    await server.start();
    const c = new RpcClient({ session: a, retry: false }); // shows the refusal (an idempotent call would retry alone)
    await c.start();
    await negotiate(c, a);
    const outcomes = await Promise.allSettled(
      [1, 2, 3, 4, 5, 6].map((i) => c.call(GetOrder, 'orders.test', { orderId: `o${i}` })),
    );
    expect(c.batchStats.batches).toBe(1);
    const ok = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes
      .filter((o) => o.status === 'rejected')
      .map((o) => (o as PromiseRejectedResult).reason as StanzaError);
    expect(ok.length).toBeGreaterThanOrEqual(3);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const e of refused) expect(e).toMatchObject({ condition: 'resource-constraint', type: 'wait' });
  });

  it('counts the answer in UTF-8 bytes: non-ASCII responses that would overflow the cap become wait/resource-constraint', async () => {
    hub = memoryHub({ maxStanzaBytes: 16 * 1024 });
    const a = session('billing.test');
    const b = session('orders.test');
    const server = new RpcServer({ session: b });
    // 1 500 characters of 3 bytes each: ~4.5 KB on the wire, 1.5 K UTF-16 units.
    server.handle(GetOrder, ({ orderId }) => ({
      orderId,
      qty: 1,
      by: orderId.startsWith('w') ? 'b' : '€'.repeat(1500),
    }));
    await server.start();
    const c = new RpcClient({ session: a, retry: false });
    await c.start();
    await negotiate(c, a);
    const outcomes = await Promise.allSettled(
      [1, 2, 3, 4, 5, 6].map((i) => c.call(GetOrder, 'orders.test', { orderId: `o${i}` }, { timeout: 2_000 })),
    );
    expect(c.batchStats.batches).toBe(1);
    const ok = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes
      .filter((o) => o.status === 'rejected')
      .map((o) => (o as PromiseRejectedResult).reason as StanzaError);
    expect(ok.length).toBeGreaterThanOrEqual(2);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const e of refused) expect(e).toMatchObject({ condition: 'resource-constraint', type: 'wait' });
  });

  it('serves in a batch the methods of every RpcServer of the session, one of them without batches', async () => {
    const a = session('billing.test');
    const b = session('orders.test');
    const withBatches = new RpcServer({ session: b });
    withBatches.handle(GetOrder, ({ orderId }) => ({ orderId, qty: 1, by: 'with' }));
    const without = new RpcServer({ session: b, batch: false });
    without.handle(CreateOrder, ({ sku, qty }) => ({ orderId: `${sku}-${qty}`, total: qty }));
    await without.start();
    expect(b.disco.features).not.toContain(NS_RPC_BATCH); // nobody on the session wants batches yet
    await withBatches.start();
    expect(b.disco.features).toContain(NS_RPC_BATCH);
    const c = new RpcClient({ session: a });
    await c.start();
    await negotiate(c, a);
    const [got, , created] = await Promise.all([
      c.call(GetOrder, 'orders.test', { orderId: 'o1' }),
      c.call(GetOrder, 'orders.test', { orderId: 'o2' }),
      c.call(CreateOrder, 'orders.test', { sku: 'Z', qty: 4 }),
      c.call(CreateOrder, 'orders.test', { sku: 'Y', qty: 1 }),
    ]);
    expect(c.batchStats).toEqual({ batches: 2, batchedCalls: 4 });
    expect(got.by).toBe('with');
    expect(created).toEqual({ orderId: 'Z-4', total: 4 });
    await withBatches.close();
    expect(b.disco.features).not.toContain(NS_RPC_BATCH);
  });
});

/**
 * How the call batcher uses the session's feature cache (`session.peerFeatures`): one disco#info
 * per peer for every client of a session, asked again after the peer's unavailable presence, and
 * a refused batch pauses batches for 30 s before the peer is asked again.
 */
describe('CallBatcher and the session feature cache', () => {
  async function client(options: { clock?: Clock } = {}): Promise<{ a: Session; c: RpcClient }> {
    const a = session('billing.test', options);
    const c = new RpcClient({ session: a });
    await c.start();
    return { a, c };
  }

  const burst = (c: RpcClient, ...ids: string[]): Promise<unknown[]> =>
    Promise.all(ids.map((orderId) => c.call(GetOrder, 'orders.test', { orderId })));

  it('two clients of one session ask a peer once, and both then batch', async () => {
    const { seen } = handPeer();
    const { a, c } = await client();
    const c2 = new RpcClient({ session: a });
    await c2.start();
    // Both burst in the same turn: one disco#info between them.
    await Promise.all([burst(c, 'a1', 'a2'), burst(c2, 'b1', 'b2')]);
    await waitFor(() => a.peerFeatures.known('orders.test') !== undefined, { what: 'disco answered' });
    expect(seen.filter((s) => s === 'disco')).toHaveLength(1);
    seen.length = 0;
    await Promise.all([burst(c, 'a3', 'a4'), burst(c2, 'b3', 'b4')]);
    expect(seen).toEqual(['batch(2)', 'batch(2)']);
  });

  it('the peer’s unavailable presence makes the client ask again before it batches again', async () => {
    const { transport, seen } = handPeer();
    const { a, c } = await client();
    await burst(c, 'w1', 'w2');
    await waitFor(() => a.peerFeatures.known('orders.test') !== undefined, { what: 'disco answered' });
    await burst(c, 'o1', 'o2');
    expect(seen).toEqual(['get', 'disco', 'get', 'batch(2)']);
    seen.length = 0;
    await transport.send(xml('presence', { type: 'unavailable', to: 'billing.test' }));
    await waitFor(() => a.peerFeatures.known('orders.test') === undefined, { what: 'presence seen' });
    await burst(c, 'o3', 'o4');
    await waitFor(() => a.peerFeatures.known('orders.test') !== undefined, { what: 'asked again' });
    await burst(c, 'o5', 'o6');
    expect(seen).toEqual(['get', 'disco', 'get', 'batch(2)']);
  });

  it('a refused batch: single IQs for 30 s without asking, then the peer is asked again', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { seen } = handPeer({ condition: 'feature-not-implemented', type: 'cancel' });
    const { a, c } = await client({ clock });
    await burst(c, 'w1', 'w2');
    await waitFor(() => a.peerFeatures.known('orders.test') !== undefined, { what: 'disco answered' });
    seen.length = 0;
    await burst(c, 'o1', 'o2');
    expect(seen).toEqual(['batch(2)', 'get', 'get']); // refused as a whole, then sent one by one
    // The refusal is in the session's cache, for every unit: known, without the feature.
    expect(a.peerFeatures.known('orders.test')?.has(NS_RPC_BATCH)).toBe(false);
    expect(a.peerFeatures.known('orders.test')).toBeDefined();
    seen.length = 0;
    clock.advance(29_999);
    await burst(c, 'o3', 'o4');
    expect(seen).toEqual(['get', 'get']); // no disco, no batch
    seen.length = 0;
    clock.advance(1);
    await burst(c, 'o5', 'o6');
    await waitFor(() => a.peerFeatures.known('orders.test') !== undefined, { what: 'asked again' });
    expect(seen).toEqual(['get', 'disco', 'get']);
    seen.length = 0;
    await burst(c, 'o7', 'o8');
    expect(seen).toEqual(['batch(2)', 'get', 'get']);
  });
});
