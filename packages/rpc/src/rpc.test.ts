import { Type } from '@sinclair/typebox';
import {
  AbortError,
  ClosedError,
  ConnectionError,
  IqCaller,
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_PING,
  NS_SHIM,
  ServiceUnavailableError,
  StanzaError,
  TimeoutError,
  deferred,
  parseXml,
  randomId,
  xml,
  type Element,
} from '@xmppbus/core';
import { ValidationError, method } from '@xmppbus/schema';
import { memoryHub, type MemoryHub, type MemoryTransport } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { NS_RPC, RpcClient, RpcError, RpcServer } from './index.js';

const NS = 'urn:example:orders:1';

const CreateOrder = method({
  ns: NS,
  name: 'create',
  request: Type.Object({ sku: Type.String(), qty: Type.Integer({ minimum: 1 }) }),
  response: Type.Object({ orderId: Type.String(), total: Type.Number() }),
  errors: {
    outOfStock: { condition: 'conflict', schema: Type.Object({ sku: Type.String(), available: Type.Integer() }) },
    closed: { condition: 'not-allowed' },
  },
});

const GetOrder = method({
  ns: NS,
  name: 'get',
  request: Type.Object({ orderId: Type.String() }),
  response: Type.Object({ orderId: Type.String(), qty: Type.Integer() }),
  readOnly: true,
  idempotent: true,
});

const Slow = method({
  ns: NS,
  name: 'slow',
  request: Type.Object({ ms: Type.Integer() }),
  response: Type.Object({ ok: Type.Boolean() }),
});

let hub: MemoryHub;
let a: MemoryTransport;
let b: MemoryTransport;

beforeEach(() => {
  hub = memoryHub();
  a = hub.connect('billing.test');
  b = hub.connect('orders.test');
});

afterEach(async () => {
  await a.close();
  await b.close();
});

function pending(t: MemoryTransport = a): number {
  return IqCaller.for(t).pending;
}

/** Sends a raw IQ from `from` and resolves with whatever comes back (result or error). */
function rawIq(from: MemoryTransport, iq: Element): Promise<Element> {
  const id = (iq.attrs['id'] ??= randomId());
  const d = deferred<Element>();
  const off = from.onStanza((s) => {
    if (s.name === 'iq' && s.attrs['id'] === id) {
      off();
      d.resolve(s);
    }
  });
  void from.send(iq);
  return d.promise;
}

describe('RpcClient + RpcServer (memory hub)', () => {
  it('calls a method and gets the typed response; set for writes, get for read-only', async () => {
    const server = new RpcServer({ transport: b });
    const seen: string[] = [];
    b.onStanza((s) => {
      if (s.name === 'iq' && s.attrs['type'] !== 'result') seen.push(s.attrs['type'] ?? '');
    });
    server.handle(CreateOrder, ({ sku, qty }, { from }) => ({ orderId: `${sku}-${from}`, total: qty * 9.5 }));
    server.handle(GetOrder, async ({ orderId }) => ({ orderId, qty: 2 }));
    const client = new RpcClient({ transport: a });
    await expect(client.call(CreateOrder, 'orders.test', { sku: 'A1', qty: 2 })).resolves.toEqual({
      orderId: 'A1-billing.test',
      total: 19,
    });
    await expect(client.call(GetOrder, 'orders.test', { orderId: 'o1' })).resolves.toEqual({ orderId: 'o1', qty: 2 });
    expect(seen).toEqual(['set', 'get']);
    expect(pending()).toBe(0);
    expect(client.inFlight).toBe(0);
  });

  it('sends the request as the single IQ child, SHIM headers inside it (deadline, custom)', async () => {
    const server = new RpcServer({ transport: b });
    let iqSeen: Element | undefined;
    b.onStanza((s) => {
      if (s.name === 'iq' && s.attrs['type'] === 'set') iqSeen = parseXml(s.toString());
    });
    let ctxSeen: { deadline: number | undefined; trace: string | undefined } | undefined;
    server.handle(CreateOrder, (_req, ctx) => {
      ctxSeen = { deadline: ctx.deadline, trace: ctx.headers.get('traceparent') };
      return { orderId: 'x', total: 1 };
    });
    const client = new RpcClient({ transport: a });
    const before = Date.now();
    await client.call(
      CreateOrder,
      'orders.test',
      { sku: 'A', qty: 1 },
      { timeout: 5000, headers: { traceparent: '00-abc-def-01' } },
    );
    expect(iqSeen!.children.filter((c) => typeof c !== 'string')).toHaveLength(1);
    const create = iqSeen!.getChild('create', NS)!;
    expect(create.getChild('headers', NS_SHIM)).toBeDefined();
    expect(ctxSeen!.trace).toBe('00-abc-def-01');
    expect(ctxSeen!.deadline).toBeGreaterThanOrEqual(before + 5000 - 5);
    expect(ctxSeen!.deadline).toBeLessThanOrEqual(Date.now() + 5000);
  });

  it('sends the deadline header for calls with a timeout (or always/never, as configured)', async () => {
    const server = new RpcServer({ transport: b });
    const deadlines: (number | undefined)[] = [];
    server.handle(CreateOrder, (_req, ctx) => {
      deadlines.push(ctx.deadline);
      return { orderId: 'x', total: 1 };
    });
    const req = { sku: 'A', qty: 1 };
    const explicit = new RpcClient({ transport: a, timeout: 3000 });
    await explicit.call(CreateOrder, 'orders.test', req); // default timeout: local only
    await explicit.call(CreateOrder, 'orders.test', req, { timeout: 2000 });
    const always = new RpcClient({ transport: a, timeout: 3000, propagateDeadline: 'always' });
    await always.call(CreateOrder, 'orders.test', req);
    const never = new RpcClient({ transport: a, propagateDeadline: 'never' });
    await never.call(CreateOrder, 'orders.test', req, { timeout: 2000 });
    expect(deadlines.map((d) => d !== undefined)).toEqual([false, true, true, false]);
  });

  it('rejects an invalid request locally, before sending', async () => {
    new RpcServer({ transport: b }).handle(CreateOrder, () => ({ orderId: 'x', total: 1 }));
    const client = new RpcClient({ transport: a });
    const routed = hub.routed;
    const err = await client.call(CreateOrder, 'orders.test', { sku: 'A', qty: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).path).toBe('/qty');
    expect(hub.routed).toBe(routed);
    expect(pending()).toBe(0);
  });

  it('answers an invalid request with modify/bad-request naming the path; the caller gets ValidationError', async () => {
    let called = false;
    new RpcServer({ transport: b }).handle(CreateOrder, () => {
      called = true;
      return { orderId: 'x', total: 1 };
    });
    const reply = await rawIq(
      a,
      xml(
        'iq',
        { type: 'set', to: 'orders.test' },
        xml('create', { xmlns: NS }, xml('sku', {}, 'A'), xml('qty', {}, '0')),
      ),
    );
    expect(called).toBe(false);
    const e = StanzaError.fromElement(reply);
    expect(e.condition).toBe('bad-request');
    expect(e.type).toBe('modify');
    expect(e.text).toContain('/qty');
    const detail = e.application!;
    expect(detail.attrs).toMatchObject({ xmlns: NS_RPC, side: 'request' });
    expect(detail.getChild('issue')!.attrs['path']).toBe('/qty');

    // The same through the client with local validation off: a typed ValidationError with the path.
    const client = new RpcClient({ transport: a, validate: false });
    const err = await client.call(CreateOrder, 'orders.test', { sku: 'A', qty: 0 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).path).toBe('/qty');
    expect((err as ValidationError).message).toContain('orders.test rejected the request');
  });

  it('refuses an invalid response with internal-server-error; the caller gets ValidationError (side response)', async () => {
    const logged: string[] = [];
    const logger = { error: (m: string) => logged.push(m), warn() {}, info() {}, debug() {} };
    new RpcServer({ transport: b, logger }).handle(CreateOrder, () => ({ orderId: 'x', total: 'lots' }) as never);
    const client = new RpcClient({ transport: a });
    const err = await client.call(CreateOrder, 'orders.test', { sku: 'A', qty: 1 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).path).toBe('/total');
    expect(((err as ValidationError).cause as StanzaError).condition).toBe('internal-server-error');
    expect(logged[0]).toContain('invalid response');

    // And a response that the client finds invalid (server validation off) is caught on receipt.
    const c2 = hub.connect('orders2.test');
    new RpcServer({ transport: c2, validateResponses: false }).handle(CreateOrder, () => ({ orderId: 7 }) as never);
    const err2 = await client.call(CreateOrder, 'orders2.test', { sku: 'A', qty: 1 }).catch((x: unknown) => x);
    expect(err2).toBeInstanceOf(ValidationError);
    await c2.close();
  });

  it('unknown method in a served namespace → feature-not-implemented; unknown namespace → service-unavailable', async () => {
    new RpcServer({ transport: b }).handle(CreateOrder, () => ({ orderId: 'x', total: 1 }));
    const client = new RpcClient({ transport: a });
    const err = await client.call(GetOrder, 'orders.test', { orderId: 'o' }, { retry: false }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(StanzaError);
    expect((err as StanzaError).condition).toBe('feature-not-implemented');
    const Other = method({
      ns: 'urn:example:nothing:1',
      name: 'x',
      request: Type.Object({}),
      response: Type.Object({}),
    });
    const err2 = await client.call(Other, 'orders.test', {}).catch((x: unknown) => x);
    expect(err2).toBeInstanceOf(ServiceUnavailableError);
    expect((err2 as StanzaError).condition).toBe('service-unavailable');
    // Nobody connected at all: the "server" bounces at once, not after the timeout.
    const t0 = Date.now();
    const err3 = await client.call(CreateOrder, 'nobody.test', { sku: 'A', qty: 1 }, { timeout: 5000 }).catch((x) => x);
    expect(err3).toBeInstanceOf(ServiceUnavailableError);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(pending()).toBe(0);
  });

  it('times out with TimeoutError and cleans the pending map', async () => {
    new RpcServer({ transport: b }).handle(Slow, () => new Promise(() => {}));
    const client = new RpcClient({ transport: a });
    const err = await client.call(Slow, 'orders.test', { ms: 1 }, { timeout: 50 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toContain('orders.test');
    expect(pending()).toBe(0);
    expect(client.inFlight).toBe(0);
  });

  it('aborts with the signal reason and cleans the pending map', async () => {
    const started = deferred<void>();
    new RpcServer({ transport: b }).handle(Slow, () => {
      started.resolve();
      return new Promise(() => {});
    });
    const client = new RpcClient({ transport: a });
    const ac = new AbortController();
    const p = client.call(Slow, 'orders.test', { ms: 1 }, { signal: ac.signal });
    await started.promise;
    expect(pending()).toBe(1);
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(AbortError);
    expect(pending()).toBe(0);
    // Already aborted: rejected before anything is sent.
    await expect(client.call(Slow, 'orders.test', { ms: 1 }, { signal: ac.signal })).rejects.toBeInstanceOf(AbortError);
  });

  it('answers a throwing handler with internal-server-error, no message or stack on the wire', async () => {
    const errors: unknown[] = [];
    const logger = { error: (_m: string, e: unknown) => errors.push(e), warn() {}, info() {}, debug() {} };
    new RpcServer({ transport: b, logger }).handle(CreateOrder, () => {
      throw new Error('db password is hunter2');
    });
    let wire = '';
    a.onStanza((s) => {
      if (s.attrs['type'] === 'error') wire = s.toString();
    });
    const client = new RpcClient({ transport: a });
    const err = await client.call(CreateOrder, 'orders.test', { sku: 'A', qty: 1 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(StanzaError);
    expect((err as StanzaError).condition).toBe('internal-server-error');
    expect((err as StanzaError).type).toBe('cancel');
    expect(wire).not.toContain('hunter2');
    expect(wire).not.toContain(' at ');
    expect((errors[0] as Error).message).toContain('hunter2');
    // The ref in the text lets an operator find the log line.
    expect((err as StanzaError).text).toMatch(/ref [\w-]{8}/);
  });

  it('round-trips a declared application error as the same typed RpcError', async () => {
    new RpcServer({ transport: b }).handle(CreateOrder, ({ sku }) => {
      if (sku === 'closed') throw new RpcError(CreateOrder, 'closed');
      throw new RpcError(CreateOrder, 'outOfStock', { sku, available: 3 }, { text: 'only 3 left' });
    });
    const client = new RpcClient({ transport: a });
    const err = await client.call(CreateOrder, 'orders.test', { sku: 'A1', qty: 5 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(RpcError);
    if (!RpcError.is(err, CreateOrder, 'outOfStock')) throw new Error('not narrowed');
    expect(err.errorName).toBe('outOfStock');
    expect(err.data).toEqual({ sku: 'A1', available: 3 });
    expect(err.condition).toBe('conflict');
    expect(err.text).toBe('only 3 left');
    const err2 = await client.call(CreateOrder, 'orders.test', { sku: 'closed', qty: 5 }).catch((x: unknown) => x);
    expect(RpcError.is(err2, CreateOrder, 'closed')).toBe(true);
    expect((err2 as StanzaError).condition).toBe('not-allowed');
  });

  it('passes a deliberate StanzaError from a handler through as is', async () => {
    new RpcServer({ transport: b }).handle(GetOrder, () => {
      throw new StanzaError({ condition: 'item-not-found', text: 'no such order' });
    });
    const client = new RpcClient({ transport: a });
    const err = await client.call(GetOrder, 'orders.test', { orderId: 'zz' }).catch((x: unknown) => x);
    expect((err as StanzaError).condition).toBe('item-not-found');
    expect((err as StanzaError).text).toBe('no such order');
  });

  it('fails pending calls fast with ConnectionError when the link drops', async () => {
    new RpcServer({ transport: b }).handle(Slow, () => new Promise(() => {}));
    const client = new RpcClient({ transport: a });
    const p = client.call(Slow, 'orders.test', { ms: 1 }, { timeout: 60_000 });
    await Promise.resolve();
    await new Promise((r) => setTimeout(r, 5));
    expect(pending()).toBe(1);
    hub.disconnect('billing.test');
    await expect(p).rejects.toBeInstanceOf(ConnectionError);
    expect(pending()).toBe(0);
    hub.reconnect('billing.test');
  });

  it('survives a "server restart": idempotent calls made during the outage complete once links are back', async () => {
    new RpcServer({ transport: b }).handle(GetOrder, ({ orderId }) => ({ orderId, qty: 7 }));
    const client = new RpcClient({ transport: a, retry: { attempts: 50, baseDelay: 5, maxDelay: 20 } });
    hub.disconnect('billing.test');
    hub.disconnect('orders.test');
    const during = Promise.all([1, 2, 3].map((i) => client.call(GetOrder, 'orders.test', { orderId: `o${i}` })));
    await new Promise((r) => setTimeout(r, 20));
    hub.reconnect('billing.test'); // caller back first: its calls bounce (callee still away) and are retried
    await new Promise((r) => setTimeout(r, 20));
    hub.reconnect('orders.test');
    await expect(during).resolves.toEqual([1, 2, 3].map((i) => ({ orderId: `o${i}`, qty: 7 })));
    expect(pending()).toBe(0);
  });

  it('retries idempotent methods on retryable errors, never the others', async () => {
    const server = new RpcServer({ transport: b });
    let gets = 0;
    let creates = 0;
    server.handle(GetOrder, ({ orderId }) => {
      if (++gets < 3) throw new StanzaError({ condition: 'resource-constraint', type: 'wait', text: 'busy' });
      return { orderId, qty: 1 };
    });
    server.handle(CreateOrder, () => {
      creates++;
      throw new StanzaError({ condition: 'resource-constraint', type: 'wait', text: 'busy' });
    });
    const client = new RpcClient({ transport: a, retry: { attempts: 3, baseDelay: 1 } });
    await expect(client.call(GetOrder, 'orders.test', { orderId: 'o' })).resolves.toEqual({ orderId: 'o', qty: 1 });
    expect(gets).toBe(3);
    await expect(client.call(CreateOrder, 'orders.test', { sku: 'A', qty: 1 })).rejects.toBeInstanceOf(StanzaError);
    expect(creates).toBe(1);
    // Not retryable (item-not-found, cancel): one attempt only, even when idempotent.
    let nf = 0;
    const NotFound = method({
      ns: NS,
      name: 'nf',
      request: Type.Object({}),
      response: Type.Object({}),
      idempotent: true,
    });
    server.handle(NotFound, () => {
      nf++;
      throw new StanzaError({ condition: 'item-not-found' });
    });
    await expect(client.call(NotFound, 'orders.test', {})).rejects.toMatchObject({ condition: 'item-not-found' });
    expect(nf).toBe(1);
    expect(pending()).toBe(0);
  });

  it('limits concurrency, queues up to maxQueue, then answers wait/resource-constraint', async () => {
    const gate = deferred<void>();
    let running = 0;
    let maxRunning = 0;
    const server = new RpcServer({ transport: b, concurrency: 2, maxQueue: 2 });
    server.handle(Slow, async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await gate.promise;
      running--;
      return { ok: true };
    });
    const client = new RpcClient({ transport: a, retry: false });
    const calls = Array.from({ length: 5 }, () =>
      client.call(Slow, 'orders.test', { ms: 1 }).then(
        () => 'ok',
        (e: unknown) => e,
      ),
    );
    await waitFor(() => server.running === 2 && server.queued === 2 && server.rejected === 1);
    gate.resolve();
    const results = await Promise.all(calls);
    expect(results.filter((r) => r === 'ok')).toHaveLength(4);
    const busy = results.find((r) => r !== 'ok') as StanzaError;
    expect(busy.condition).toBe('resource-constraint');
    expect(busy.type).toBe('wait');
    expect(busy.retryable).toBe(true);
    expect(maxRunning).toBe(2);
  });

  it('drain() finishes in-flight and queued calls, refuses new ones, resolves when idle', async () => {
    const gate = deferred<void>();
    const server = new RpcServer({ transport: b, concurrency: 1 });
    server.handle(Slow, async () => {
      await gate.promise;
      return { ok: true };
    });
    const client = new RpcClient({ transport: a });
    const first = client.call(Slow, 'orders.test', { ms: 1 });
    const second = client.call(Slow, 'orders.test', { ms: 1 });
    await waitFor(() => server.running === 1 && server.queued === 1);
    let drained = false;
    const d = server.drain().then(() => (drained = true));
    expect(server.status).toBe('draining');
    const refused = await client.call(Slow, 'orders.test', { ms: 1 }).catch((x: unknown) => x);
    expect(refused).toBeInstanceOf(ServiceUnavailableError);
    expect((refused as StanzaError).application?.name).toBe('draining');
    expect(drained).toBe(false);
    gate.resolve();
    await expect(first).resolves.toEqual({ ok: true });
    await expect(second).resolves.toEqual({ ok: true });
    await d;
    expect(drained).toBe(true);
    await server.close();
    expect(server.status).toBe('closed');
  });

  it('drain() honours its timeout; close() then aborts the handlers still running', async () => {
    const server = new RpcServer({ transport: b });
    const aborted = deferred<unknown>();
    server.handle(Slow, (_r, { signal }) => {
      return new Promise((_res, rej) => {
        signal.addEventListener('abort', () => {
          aborted.resolve(signal.reason);
          rej(signal.reason as Error);
        });
      });
    });
    const client = new RpcClient({ transport: a });
    const call = client.call(Slow, 'orders.test', { ms: 1 }).catch((x: unknown) => x);
    await waitFor(() => server.running === 1);
    await expect(server.drain({ timeout: 20 })).rejects.toBeInstanceOf(TimeoutError);
    await server.close({ timeout: 10 });
    expect(await aborted.promise).toBeInstanceOf(ClosedError);
    expect(await call).toBeInstanceOf(StanzaError);
  });

  it('aborts the handler signal when the caller deadline passes', async () => {
    const server = new RpcServer({ transport: b, deadlineGrace: 0 });
    const aborted = deferred<unknown>();
    server.handle(Slow, (_r, { signal }) => {
      signal.addEventListener('abort', () => aborted.resolve(signal.reason));
      return new Promise(() => {});
    });
    const client = new RpcClient({ transport: a });
    await expect(client.call(Slow, 'orders.test', { ms: 1 }, { timeout: 30 })).rejects.toBeInstanceOf(TimeoutError);
    expect(await aborted.promise).toBeInstanceOf(TimeoutError);
  });

  it('drops a call whose deadline already passed without running the handler', async () => {
    let ran = false;
    new RpcServer({ transport: b, deadlineGrace: 0 }).handle(CreateOrder, () => {
      ran = true;
      return { orderId: 'x', total: 1 };
    });
    const past = new Date(Date.now() - 10_000).toISOString();
    const reply = await rawIq(
      a,
      xml(
        'iq',
        { type: 'set', to: 'orders.test' },
        xml(
          'create',
          { xmlns: NS },
          xml('sku', {}, 'A'),
          xml('qty', {}, '1'),
          xml('headers', { xmlns: NS_SHIM }, xml('header', { name: 'xmppbus-deadline' }, past)),
        ),
      ),
    );
    expect(ran).toBe(false);
    const e = StanzaError.fromElement(reply);
    expect(e.condition).toBe('resource-constraint');
    expect(e.application?.name).toBe('deadline-exceeded');
  });

  it('advertises namespaces and methods through disco#info/items, answers ping', async () => {
    const server = new RpcServer({ transport: b });
    server.handle(CreateOrder, () => ({ orderId: 'x', total: 1 }));
    const offGet = server.handle(GetOrder, ({ orderId }) => ({ orderId, qty: 1 }));
    const caller = IqCaller.for(a);
    const info = await caller.request(
      xml('iq', { type: 'get', to: 'orders.test' }, xml('query', { xmlns: NS_DISCO_INFO })),
    );
    const features = info
      .getChild('query')!
      .getChildren('feature')
      .map((f) => f.attrs['var']);
    expect(features).toEqual(expect.arrayContaining([NS, NS_RPC, NS_PING, NS_DISCO_ITEMS]));
    const items = await caller.request(
      xml('iq', { type: 'get', to: 'orders.test' }, xml('query', { xmlns: NS_DISCO_ITEMS })),
    );
    const nodes = items
      .getChild('query')!
      .getChildren('item')
      .map((i) => i.attrs['node']);
    expect(nodes.sort()).toEqual([`${NS}#create`, `${NS}#get`]);
    const nodeInfo = await caller.request(
      xml('iq', { type: 'get', to: 'orders.test' }, xml('query', { xmlns: NS_DISCO_INFO, node: `${NS}#get` })),
    );
    expect(nodeInfo.getChild('query')!.getChild('identity')!.attrs).toMatchObject({
      category: 'automation',
      type: 'rpc',
    });
    await expect(
      caller.request(xml('iq', { type: 'get', to: 'orders.test' }, xml('ping', { xmlns: NS_PING }))),
    ).resolves.toBeDefined();
    offGet();
    const items2 = await caller.request(
      xml('iq', { type: 'get', to: 'orders.test' }, xml('query', { xmlns: NS_DISCO_ITEMS })),
    );
    expect(items2.getChild('query')!.getChildren('item')).toHaveLength(1);
    await server.close();
    const info2 = await caller.request(
      xml('iq', { type: 'get', to: 'orders.test' }, xml('query', { xmlns: NS_DISCO_INFO })),
    );
    const features2 = info2
      .getChild('query')!
      .getChildren('feature')
      .map((f) => f.attrs['var']);
    expect(features2).not.toContain(NS);
    expect(features2).not.toContain(NS_RPC);
  });

  it('ignores a reply from the wrong JID (matched by id and responder)', async () => {
    const gate = deferred<void>();
    new RpcServer({ transport: b }).handle(Slow, async () => {
      await gate.promise;
      return { ok: true };
    });
    const spoofer = hub.connect('evil.test');
    let iqId = '';
    b.onStanza((s) => {
      if (s.name === 'iq' && s.attrs['type'] === 'set') iqId = s.attrs['id'] ?? '';
    });
    const client = new RpcClient({ transport: a });
    const p = client.call(Slow, 'orders.test', { ms: 1 });
    await waitFor(() => iqId !== '');
    await spoofer.send(
      xml('iq', { type: 'result', id: iqId, to: 'billing.test' }, xml('slow', { xmlns: NS }, xml('ok', {}, 'false'))),
    );
    await new Promise((r) => setTimeout(r, 10));
    expect(pending()).toBe(1);
    gate.resolve();
    await expect(p).resolves.toEqual({ ok: true });
    await spoofer.close();
  });

  it('cleans the pending map when the send fails, and refuses calls on a closed transport', async () => {
    new RpcServer({ transport: b }).handle(CreateOrder, () => ({ orderId: 'x', total: 1 }));
    const t = hub.connect('gone.test');
    const client = new RpcClient({ transport: t });
    await t.close();
    await expect(client.call(CreateOrder, 'orders.test', { sku: 'A', qty: 1 })).rejects.toBeInstanceOf(ClosedError);
    expect(pending(t)).toBe(0);
    expect(client.inFlight).toBe(0);
  });

  it('derives static types from the contract', () => {
    const client = new RpcClient({ transport: a });
    const server = new RpcServer({ transport: b });
    expectTypeOf<ReturnType<typeof client.call<typeof CreateOrder>>>().toEqualTypeOf<
      Promise<{ orderId: string; total: number }>
    >();
    expectTypeOf<Parameters<typeof client.call<typeof CreateOrder>>[2]>().toEqualTypeOf<{ sku: string; qty: number }>();
    server.handle(GetOrder, (req) => {
      expectTypeOf(req).toEqualTypeOf<{ orderId: string }>();
      return { orderId: req.orderId, qty: 1 };
    });
    const e = new RpcError(CreateOrder, 'outOfStock', { sku: 'a', available: 1 });
    expectTypeOf(e.data).toEqualTypeOf<{ sku: string; available: number }>();
    // @ts-expect-error: 'nope' is not a declared error of CreateOrder
    expect(() => new RpcError(CreateOrder, 'nope', undefined)).toThrow(TypeError);
    // @ts-expect-error: the data must match the declared schema
    void new RpcError(CreateOrder, 'outOfStock', { sku: 1 });
  });

  it('rejects bad options with ConfigError', () => {
    expect(() => new RpcServer({ transport: b, concurrency: 0 })).toThrow(/concurrency/);
    expect(() => new RpcClient({ transport: a, timeout: -1 })).toThrow(/timeout/);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 1));
  }
}
