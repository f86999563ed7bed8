import { Type } from '@sinclair/typebox';
import {
  AbortError,
  ClosedError,
  ConfigError,
  ConflictError,
  ConnectionError,
  ManualClock,
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_PING,
  NS_SHIM,
  ServiceUnavailableError,
  Session,
  StanzaError,
  TimeoutError,
  XmppBusError,
  deferred,
  parseXml,
  randomId,
  xml,
  type Clock,
  type Element,
  type Logger,
} from '@xmppbus/core';
import { ValidationError, method } from '@xmppbus/schema';
import { CreateOrder, GetOrder, NS_ORDERS, waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { formatDeadline } from './deadline.js';
import { NS_RPC, RpcClient, RpcError, RpcServer, type RpcClientOptions, type RpcServerOptions } from './index.js';

/** Never answers unless the test lets it (not idempotent: no retries blur the timing). */
const Slow = method({
  ns: NS_ORDERS,
  name: 'slow',
  request: Type.Object({ ms: Type.Integer() }),
  response: Type.Object({ ok: Type.Boolean() }),
});

/** A declared error without data. */
const CancelOrder = method({
  ns: NS_ORDERS,
  name: 'cancel',
  request: Type.Object({ orderId: Type.String() }),
  response: Type.Object({}),
  errors: { closed: { condition: 'not-allowed' } },
});

/** A fixed epoch for ManualClocks (deadline headers are absolute instants). */
const T0 = Date.UTC(2030, 0, 1);

let hub: MemoryHub;
let sessions: Session[];
let a: Session;
let b: Session;

beforeEach(() => {
  hub = memoryHub();
  sessions = [];
  a = session('billing.test');
  b = session('orders.test');
});

afterEach(async () => {
  for (const s of sessions) await s.close();
});

function session(address: string, options: { clock?: Clock; logger?: Logger } = {}): Session {
  const s = new Session({ transport: hub.connect(address), ...options });
  sessions.push(s);
  return s;
}

/** Two sessions on one ManualClock. */
function manual(): { clock: ManualClock; a: Session; b: Session } {
  const clock = new ManualClock(T0);
  return { clock, a: session('caller.test', { clock }), b: session('callee.test', { clock }) };
}

async function serve(
  on: Session,
  setup: (server: RpcServer) => void,
  options: Omit<RpcServerOptions, 'session'> = {},
): Promise<RpcServer> {
  const server = new RpcServer({ session: on, ...options });
  setup(server);
  await server.start();
  return server;
}

async function client(on: Session = a, options: Omit<RpcClientOptions, 'session'> = {}): Promise<RpcClient> {
  const c = new RpcClient({ session: on, ...options });
  await c.start();
  return c;
}

/** Sends a raw IQ from `from` and resolves with whatever comes back (result or error). */
function rawIq(from: Session, iq: Element): Promise<Element> {
  const id = (iq.attrs['id'] ??= randomId());
  const d = deferred<Element>();
  const off = from.transport.onStanza((s) => {
    if (s.name === 'iq' && s.attrs['id'] === id) {
      off();
      d.resolve(s);
    }
  });
  void from.send(iq);
  return d.promise;
}

const get = (to: string, payload: Element): Element => xml('iq', { type: 'get', to }, payload);

describe('RpcClient + RpcServer (memory hub)', () => {
  it('calls a method and gets the typed response; set for writes, get for read-only', async () => {
    const seen: string[] = [];
    b.transport.onStanza((s) => {
      if (s.name === 'iq' && s.attrs['type'] !== 'result') seen.push(s.attrs['type'] ?? '');
    });
    await serve(b, (server) => {
      server.handle(CreateOrder, ({ sku, qty }, { from }) => ({ orderId: `${sku}-${from}`, total: qty * 9.5 }));
      server.handle(GetOrder, async ({ orderId }, { to }) => ({ orderId, qty: 2, by: to }));
    });
    const c = await client();
    await expect(c.call(CreateOrder, 'orders.test', { sku: 'A1', qty: 2 })).resolves.toEqual({
      orderId: 'A1-billing.test',
      total: 19,
    });
    await expect(c.call(GetOrder, 'orders.test', { orderId: 'o1' })).resolves.toEqual({
      orderId: 'o1',
      qty: 2,
      by: 'orders.test',
    });
    expect(seen).toEqual(['set', 'get']);
    expect(a.caller.pending).toBe(0);
    expect(c.inFlight).toBe(0);
  });

  it('constructors have no side effects: nothing is served or advertised before start()', async () => {
    const server = new RpcServer({ session: b });
    server.handle(CreateOrder, () => ({ orderId: 'x', total: 1 }));
    expect(server.status).toBe('idle');
    expect(b.disco.features).not.toContain(NS_RPC);
    const c = new RpcClient({ session: a });
    // A client takes calls once started.
    await expect(c.call(CreateOrder, 'orders.test', { sku: 'A', qty: 1 })).rejects.toBeInstanceOf(ClosedError);
    await c.start();
    await b.start();
    const early = await c.call(CreateOrder, 'orders.test', { sku: 'A', qty: 1 }).catch((e: unknown) => e);
    expect(early).toBeInstanceOf(ServiceUnavailableError);
    await server.start();
    expect(server.status).toBe('ready');
    expect(b.disco.features).toEqual(expect.arrayContaining([NS_RPC, NS_ORDERS]));
    await expect(c.call(CreateOrder, 'orders.test', { sku: 'A', qty: 1 })).resolves.toEqual({
      orderId: 'x',
      total: 1,
    });
  });

  it('sends the request as the single IQ child, SHIM headers inside it (deadline, custom)', async () => {
    let iqSeen: Element | undefined;
    let ctxSeen: { deadline: number | undefined; trace: string | undefined; size: number } | undefined;
    const { clock, a: ca, b: cb } = manual();
    await serve(cb, (server) =>
      server.handle(CreateOrder, (_req, ctx) => {
        ctxSeen = { deadline: ctx.deadline, trace: ctx.headers.get('traceparent'), size: ctx.headers.size };
        expect(ctx.delayedFrom).toBeUndefined();
        return { orderId: 'x', total: 1 };
      }),
    );
    cb.transport.onStanza((s) => {
      if (s.name === 'iq' && s.attrs['type'] === 'set') iqSeen = parseXml(s.toString());
    });
    const c = await client(ca);
    await c.call(
      CreateOrder,
      'callee.test',
      { sku: 'A', qty: 1 },
      { timeout: 5000, headers: { traceparent: '00-abc-def-01' } },
    );
    expect(iqSeen!.children.filter((ch) => typeof ch !== 'string')).toHaveLength(1);
    const create = iqSeen!.getChild('create', NS_ORDERS)!;
    expect(create.getChild('headers', NS_SHIM)).toBeDefined();
    expect(ctxSeen).toEqual({ deadline: clock.now() + 5000, trace: '00-abc-def-01', size: 2 });
    // Headers as a Map or entry pairs work the same; no headers → an empty map.
    await c.call(CreateOrder, 'callee.test', { sku: 'A', qty: 1 }, { headers: new Map([['traceparent', 'm']]) });
    expect(ctxSeen).toMatchObject({ trace: 'm', size: 1 });
    await c.call(CreateOrder, 'callee.test', { sku: 'A', qty: 1 }, { headers: [['traceparent', 'p']] });
    expect(ctxSeen).toMatchObject({ trace: 'p', size: 1 });
    await c.call(CreateOrder, 'callee.test', { sku: 'A', qty: 1 });
    expect(ctxSeen).toEqual({ deadline: undefined, trace: undefined, size: 0 });
  });

  it('sends the deadline header for calls with a timeout (or always/never, as configured)', async () => {
    const deadlines: (number | undefined)[] = [];
    await serve(b, (server) =>
      server.handle(CreateOrder, (_req, ctx) => {
        deadlines.push(ctx.deadline);
        return { orderId: 'x', total: 1 };
      }),
    );
    const req = { sku: 'A', qty: 1 };
    const explicit = await client(a, { timeout: 3000 });
    await explicit.call(CreateOrder, 'orders.test', req); // default timeout: local only
    await explicit.call(CreateOrder, 'orders.test', req, { timeout: 2000 });
    const always = await client(a, { timeout: 3000, propagateDeadline: 'always' });
    await always.call(CreateOrder, 'orders.test', req);
    const never = await client(a, { propagateDeadline: 'never' });
    await never.call(CreateOrder, 'orders.test', req, { timeout: 2000 });
    expect(deadlines.map((d) => d !== undefined)).toEqual([false, true, true, false]);
  });

  it('rejects an invalid request locally, before sending', async () => {
    await serve(b, (server) => server.handle(CreateOrder, () => ({ orderId: 'x', total: 1 })));
    const c = await client();
    const routed = hub.routed;
    const err = await c.call(CreateOrder, 'orders.test', { sku: 'A', qty: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).path).toBe('/qty');
    expect(hub.routed).toBe(routed);
    expect(a.caller.pending).toBe(0);
    expect(c.inFlight).toBe(0);
  });

  it('answers an invalid request with modify/bad-request naming the path; the caller gets ValidationError', async () => {
    let called = false;
    await serve(b, (server) =>
      server.handle(CreateOrder, () => {
        called = true;
        return { orderId: 'x', total: 1 };
      }),
    );
    await a.start();
    const reply = await rawIq(
      a,
      xml(
        'iq',
        { type: 'set', to: 'orders.test' },
        xml('create', { xmlns: NS_ORDERS }, xml('sku', {}, 'A'), xml('qty', {}, '0')),
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
    const c = await client(a, { validate: false });
    const err = await c.call(CreateOrder, 'orders.test', { sku: 'A', qty: 0 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).path).toBe('/qty');
    expect((err as ValidationError).message).toContain('orders.test rejected the request');
  });

  it('refuses an invalid response with internal-server-error; the caller gets ValidationError (side response)', async () => {
    const logged: string[] = [];
    const logger: Logger = { error: (m: string) => logged.push(m), warn() {}, info() {}, debug() {} };
    const logging = session('orders1.test', { logger });
    await serve(logging, (server) => server.handle(CreateOrder, () => ({ orderId: 'x', total: 'lots' }) as never));
    const c = await client();
    const err = await c.call(CreateOrder, 'orders1.test', { sku: 'A', qty: 1 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).path).toBe('/total');
    expect(((err as ValidationError).cause as StanzaError).condition).toBe('internal-server-error');
    expect(logged[0]).toContain('invalid response');

    // And a response that the client finds invalid (server validation off) is caught on receipt.
    const c2 = session('orders2.test');
    await serve(c2, (server) => server.handle(CreateOrder, () => ({ orderId: 7 }) as never), {
      validateResponses: false,
    });
    const err2 = await c.call(CreateOrder, 'orders2.test', { sku: 'A', qty: 1 }).catch((x: unknown) => x);
    expect(err2).toBeInstanceOf(ValidationError);
  });

  it('unknown method in a served namespace → feature-not-implemented; unknown namespace → service-unavailable, at once', async () => {
    // A ManualClock that never moves: any outcome here came without waiting for a timeout.
    const { a: ca, b: cb } = manual();
    await serve(cb, (server) => server.handle(CreateOrder, () => ({ orderId: 'x', total: 1 })));
    const c = await client(ca);
    const err = await c.call(GetOrder, 'callee.test', { orderId: 'o' }, { retry: false }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(StanzaError);
    expect((err as StanzaError).condition).toBe('feature-not-implemented');
    const Other = method({
      ns: 'urn:example:nothing:1',
      name: 'x',
      request: Type.Object({}),
      response: Type.Object({}),
    });
    const err2 = await c.call(Other, 'callee.test', {}).catch((x: unknown) => x);
    expect(err2).toBeInstanceOf(ServiceUnavailableError);
    expect((err2 as StanzaError).condition).toBe('service-unavailable');
    // Nobody connected at all: the "server" bounces at once, not after the timeout.
    const err3 = await c.call(CreateOrder, 'nobody.test', { sku: 'A', qty: 1 }, { timeout: 5000 }).catch((x) => x);
    expect(err3).toBeInstanceOf(ServiceUnavailableError);
    expect(ca.caller.pending).toBe(0);
  });

  it('times out with TimeoutError and cleans the pending map', async () => {
    const { clock, a: ca, b: cb } = manual();
    const started = deferred<void>();
    await serve(cb, (server) =>
      server.handle(Slow, () => {
        started.resolve();
        return new Promise(() => {});
      }),
    );
    const c = await client(ca);
    const p = c.call(Slow, 'callee.test', { ms: 1 }, { timeout: 50 }).catch((x: unknown) => x);
    await started.promise;
    clock.advance(49);
    expect(ca.caller.pending).toBe(1);
    clock.advance(1);
    const err = await p;
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toContain('callee.test');
    expect(ca.caller.pending).toBe(0);
    expect(c.inFlight).toBe(0);
  });

  it('aborts with the signal reason and cleans the pending map', async () => {
    const started = deferred<void>();
    await serve(b, (server) =>
      server.handle(Slow, () => {
        started.resolve();
        return new Promise(() => {});
      }),
    );
    const c = await client();
    const ac = new AbortController();
    const p = c.call(Slow, 'orders.test', { ms: 1 }, { signal: ac.signal });
    await started.promise;
    expect(a.caller.pending).toBe(1);
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(AbortError);
    expect(a.caller.pending).toBe(0);
    // Already aborted: rejected before anything is sent.
    await expect(c.call(Slow, 'orders.test', { ms: 1 }, { signal: ac.signal })).rejects.toBeInstanceOf(AbortError);
    expect(c.inFlight).toBe(0);
  });

  it('answers a throwing handler with internal-server-error (cancel; wait when retryable), logged once with the ref', async () => {
    const errors: unknown[] = [];
    const lines: string[] = [];
    const logger: Logger = {
      error: (m: string, e?: unknown) => {
        lines.push(m);
        errors.push(e);
      },
      warn() {},
      info() {},
      debug() {},
    };
    const logging = session('orders1.test', { logger });
    await serve(logging, (server) =>
      server.handle(CreateOrder, ({ sku }) => {
        if (sku === 'busy') throw new XmppBusError('ERR_STORE', 'store busy', { retryable: true });
        throw new Error('db password is hunter2');
      }),
    );
    let wire = '';
    a.transport.onStanza((s) => {
      if (s.attrs['type'] === 'error') wire = s.toString();
    });
    const c = await client();
    const err = await c.call(CreateOrder, 'orders1.test', { sku: 'A', qty: 1 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(StanzaError);
    expect((err as StanzaError).condition).toBe('internal-server-error');
    expect((err as StanzaError).type).toBe('cancel');
    expect(wire).not.toContain('hunter2');
    expect(wire).not.toContain(' at ');
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toContain('hunter2');
    // The ref in the text lets an operator find the log line.
    const ref = /ref ([\w-]{8})/.exec((err as StanzaError).text ?? '')?.[1];
    expect(ref).toBeDefined();
    expect(lines[0]).toContain(ref);
    const err2 = await c.call(CreateOrder, 'orders1.test', { sku: 'busy', qty: 1 }).catch((x: unknown) => x);
    expect((err2 as StanzaError).condition).toBe('internal-server-error');
    expect((err2 as StanzaError).type).toBe('wait');
    expect((err2 as StanzaError).retryable).toBe(true);
  });

  it('round-trips a declared application error as the same typed RpcError', async () => {
    await serve(b, (server) => {
      server.handle(CreateOrder, ({ sku }) => {
        throw new RpcError(CreateOrder, 'outOfStock', { sku, available: 3 }, { text: 'only 3 left' });
      });
      server.handle(CancelOrder, () => {
        throw new RpcError(CancelOrder, 'closed');
      });
    });
    const c = await client();
    const err = await c.call(CreateOrder, 'orders.test', { sku: 'A1', qty: 5 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(RpcError);
    if (!RpcError.is(err, CreateOrder, 'outOfStock')) throw new Error('not narrowed');
    expect(err.errorName).toBe('outOfStock');
    expect(err.data).toEqual({ sku: 'A1', available: 3 });
    expect(err.condition).toBe('conflict');
    expect(err.text).toBe('only 3 left');
    const err2 = await c.call(CancelOrder, 'orders.test', { orderId: 'o' }).catch((x: unknown) => x);
    expect(RpcError.is(err2, CancelOrder, 'closed')).toBe(true);
    expect((err2 as StanzaError).condition).toBe('not-allowed');
  });

  it('passes a deliberate StanzaError from a handler through as is', async () => {
    await serve(b, (server) =>
      server.handle(GetOrder, () => {
        throw new StanzaError({ condition: 'item-not-found', text: 'no such order' });
      }),
    );
    const c = await client();
    const err = await c.call(GetOrder, 'orders.test', { orderId: 'zz' }).catch((x: unknown) => x);
    expect((err as StanzaError).condition).toBe('item-not-found');
    expect((err as StanzaError).text).toBe('no such order');
  });

  it('fails pending calls fast with ConnectionError when the link drops', async () => {
    const started = deferred<void>();
    await serve(b, (server) =>
      server.handle(Slow, () => {
        started.resolve();
        return new Promise(() => {});
      }),
    );
    const c = await client();
    const p = c.call(Slow, 'orders.test', { ms: 1 }, { timeout: 60_000 });
    await started.promise;
    expect(a.caller.pending).toBe(1);
    hub.disconnect('billing.test');
    await expect(p).rejects.toBeInstanceOf(ConnectionError);
    expect(a.caller.pending).toBe(0);
    hub.reconnect('billing.test');
  });

  it('survives a "server restart": idempotent calls made during the outage complete once links are back', async () => {
    const { clock, a: ca, b: cb } = manual();
    await serve(cb, (server) => server.handle(GetOrder, ({ orderId }) => ({ orderId, qty: 7, by: 'b' })));
    const c = await client(ca, { retry: { attempts: 50, initialDelay: 5, maxDelay: 20 } });
    let bounces = 0;
    ca.transport.onStanza((s) => {
      if (s.attrs['type'] === 'error') bounces++;
    });
    hub.disconnect('caller.test');
    hub.disconnect('callee.test');
    const during = Promise.all([1, 2, 3].map((i) => c.call(GetOrder, 'callee.test', { orderId: `o${i}` })));
    // Caller back first: its queued calls bounce (the callee is still away) and back off.
    hub.reconnect('caller.test');
    // Three calls, and the disco#info (batch negotiation) their burst triggered.
    await waitFor(() => bounces === 4, { what: 'four bounces' });
    hub.reconnect('callee.test');
    clock.advance(20); // every backoff (≤ maxDelay) ends: the retries reach the callee
    await expect(during).resolves.toEqual([1, 2, 3].map((i) => ({ orderId: `o${i}`, qty: 7, by: 'b' })));
    expect(ca.caller.pending).toBe(0);
  });

  it('retries idempotent methods on retryable errors, never the others', async () => {
    let gets = 0;
    let creates = 0;
    let nf = 0;
    const NotFound = method({
      ns: NS_ORDERS,
      name: 'nf',
      request: Type.Object({}),
      response: Type.Object({}),
      idempotent: true,
    });
    await serve(b, (server) => {
      server.handle(GetOrder, ({ orderId }) => {
        if (++gets < 3) throw new StanzaError({ condition: 'resource-constraint', type: 'wait', text: 'busy' });
        return { orderId, qty: 1, by: 'b' };
      });
      server.handle(CreateOrder, () => {
        creates++;
        throw new StanzaError({ condition: 'resource-constraint', type: 'wait', text: 'busy' });
      });
      server.handle(NotFound, () => {
        nf++;
        throw new StanzaError({ condition: 'item-not-found' });
      });
    });
    const c = await client(a, { retry: { attempts: 3, initialDelay: 0 } });
    await expect(c.call(GetOrder, 'orders.test', { orderId: 'o' })).resolves.toEqual({
      orderId: 'o',
      qty: 1,
      by: 'b',
    });
    expect(gets).toBe(3);
    await expect(c.call(CreateOrder, 'orders.test', { sku: 'A', qty: 1 })).rejects.toBeInstanceOf(StanzaError);
    expect(creates).toBe(1);
    // Not retryable (item-not-found, cancel): one attempt only, even when idempotent.
    await expect(c.call(NotFound, 'orders.test', {})).rejects.toMatchObject({ condition: 'item-not-found' });
    expect(nf).toBe(1);
    expect(a.caller.pending).toBe(0);
  });

  it('limits concurrency, queues up to maxQueue, then answers wait/resource-constraint', async () => {
    const gate = deferred<void>();
    let running = 0;
    let maxRunning = 0;
    const server = await serve(
      b,
      (s) =>
        s.handle(Slow, async () => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          await gate.promise;
          running--;
          return { ok: true };
        }),
      { concurrency: 2, maxQueue: 2 },
    );
    const c = await client(a, { retry: false });
    const calls = Array.from({ length: 5 }, () =>
      c.call(Slow, 'orders.test', { ms: 1 }).then(
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
    const server = await serve(
      b,
      (s) =>
        s.handle(Slow, async () => {
          await gate.promise;
          return { ok: true };
        }),
      { concurrency: 1 },
    );
    const c = await client();
    const first = c.call(Slow, 'orders.test', { ms: 1 });
    const second = c.call(Slow, 'orders.test', { ms: 1 });
    await waitFor(() => server.running === 1 && server.queued === 1);
    let drained = false;
    const d = server.drain().then(() => (drained = true));
    expect(server.status).toBe('draining');
    const refused = await c.call(Slow, 'orders.test', { ms: 1 }).catch((x: unknown) => x);
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
    const { clock, a: ca, b: cb } = manual();
    const aborted = deferred<unknown>();
    const server = await serve(cb, (s) =>
      s.handle(Slow, (_r, { signal }) => {
        return new Promise((_res, rej) => {
          signal.addEventListener('abort', () => {
            aborted.resolve(signal.reason);
            rej(signal.reason as Error);
          });
        });
      }),
    );
    const c = await client(ca);
    const call = c.call(Slow, 'callee.test', { ms: 1 }).catch((x: unknown) => x);
    await waitFor(() => server.running === 1);
    const drain = server.drain({ timeout: 20 });
    clock.advance(20);
    await expect(drain).rejects.toBeInstanceOf(TimeoutError);
    await server.close();
    expect(await aborted.promise).toBeInstanceOf(ClosedError);
    expect(await call).toBeInstanceOf(StanzaError);
  });

  it('RpcClient.drain() waits for its calls (bounded), then refuses new ones; close() is idempotent', async () => {
    const gate = deferred<void>();
    await serve(b, (s) =>
      s.handle(Slow, async () => {
        await gate.promise;
        return { ok: true };
      }),
    );
    const c = await client();
    const call = c.call(Slow, 'orders.test', { ms: 1 });
    let drained = false;
    const d = c.drain().then(() => (drained = true));
    await expect(c.call(Slow, 'orders.test', { ms: 1 })).rejects.toBeInstanceOf(ClosedError);
    expect(drained).toBe(false);
    gate.resolve();
    await expect(call).resolves.toEqual({ ok: true });
    await d;
    await c.close();
    await c[Symbol.asyncDispose]();
    expect(c.status).toBe('closed');
  });

  it('aborts the handler signal when the caller deadline passes', async () => {
    const { clock, a: ca, b: cb } = manual();
    const aborted = deferred<unknown>();
    const started = deferred<void>();
    await serve(
      cb,
      (s) =>
        s.handle(Slow, (_r, { signal }) => {
          signal.addEventListener('abort', () => aborted.resolve(signal.reason));
          started.resolve();
          return new Promise(() => {});
        }),
      { deadlineGrace: 0 },
    );
    const c = await client(ca);
    const p = c.call(Slow, 'callee.test', { ms: 1 }, { timeout: 30 }).catch((x: unknown) => x);
    await started.promise;
    clock.advance(30);
    expect(await p).toBeInstanceOf(TimeoutError);
    expect(await aborted.promise).toBeInstanceOf(TimeoutError);
  });

  it('drops a call whose deadline already passed without running the handler', async () => {
    const { clock, a: ca, b: cb } = manual();
    let ran = false;
    await serve(
      cb,
      (s) =>
        s.handle(CreateOrder, () => {
          ran = true;
          return { orderId: 'x', total: 1 };
        }),
      { deadlineGrace: 0 },
    );
    await ca.start();
    const past = formatDeadline(clock.now() - 10_000);
    const reply = await rawIq(
      ca,
      xml(
        'iq',
        { type: 'set', to: 'callee.test' },
        xml(
          'create',
          { xmlns: NS_ORDERS },
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
    let offGet: () => void = () => undefined;
    const server = await serve(b, (s) => {
      s.handle(CreateOrder, () => ({ orderId: 'x', total: 1 }));
      offGet = s.handle(GetOrder, ({ orderId }) => ({ orderId, qty: 1, by: 'b' }));
    });
    await a.start();
    const caller = a.caller;
    const info = await caller.request(get('orders.test', xml('query', { xmlns: NS_DISCO_INFO })));
    const features = info
      .getChild('query')!
      .getChildren('feature')
      .map((f) => f.attrs['var']);
    expect(features).toEqual(expect.arrayContaining([NS_ORDERS, NS_RPC, NS_PING, NS_DISCO_ITEMS]));
    const items = await caller.request(get('orders.test', xml('query', { xmlns: NS_DISCO_ITEMS })));
    const nodes = items
      .getChild('query')!
      .getChildren('item')
      .map((i) => i.attrs['node']);
    expect(nodes.sort()).toEqual([`${NS_ORDERS}#create`, `${NS_ORDERS}#get`, 'urn:xmppbus:schema:1']);
    const nodeInfo = await caller.request(
      get('orders.test', xml('query', { xmlns: NS_DISCO_INFO, node: `${NS_ORDERS}#get` })),
    );
    expect(nodeInfo.getChild('query')!.getChild('identity')!.attrs).toMatchObject({
      category: 'automation',
      type: 'rpc',
    });
    await expect(caller.request(get('orders.test', xml('ping', { xmlns: NS_PING })))).resolves.toBeDefined();
    offGet();
    const items2 = await caller.request(get('orders.test', xml('query', { xmlns: NS_DISCO_ITEMS })));
    expect(items2.getChild('query')!.getChildren('item')).toHaveLength(2); // create + the schema node
    await server.close();
    const info2 = await caller.request(get('orders.test', xml('query', { xmlns: NS_DISCO_INFO })));
    const features2 = info2
      .getChild('query')!
      .getChildren('feature')
      .map((f) => f.attrs['var']);
    expect(features2).not.toContain(NS_ORDERS);
    expect(features2).not.toContain(NS_RPC);
  });

  it('ignores a reply from the wrong JID (matched by id and responder)', async () => {
    const gate = deferred<void>();
    await serve(b, (s) =>
      s.handle(Slow, async () => {
        await gate.promise;
        return { ok: true };
      }),
    );
    const spoofer = session('evil.test');
    let iqId = '';
    b.transport.onStanza((s) => {
      if (s.name === 'iq' && s.attrs['type'] === 'set') iqId = s.attrs['id'] ?? '';
    });
    const c = await client();
    const p = c.call(Slow, 'orders.test', { ms: 1 });
    await waitFor(() => iqId !== '');
    // Registered after the session's own listener: runs once the session has seen the spoof.
    const spoofSeen = deferred<void>();
    a.transport.onStanza((s) => {
      if (s.attrs['from'] === 'evil.test') spoofSeen.resolve();
    });
    await spoofer.send(
      xml(
        'iq',
        { type: 'result', id: iqId, to: 'billing.test' },
        xml('slow', { xmlns: NS_ORDERS }, xml('ok', {}, 'false')),
      ),
    );
    await spoofSeen.promise;
    expect(a.caller.pending).toBe(1);
    gate.resolve();
    await expect(p).resolves.toEqual({ ok: true });
  });

  it('cleans the pending map when the send fails, and refuses calls once the session is closed', async () => {
    await serve(b, (s) => s.handle(CreateOrder, () => ({ orderId: 'x', total: 1 })));
    const gone = session('gone.test');
    const c = await client(gone);
    await gone.transport.close();
    await expect(c.call(CreateOrder, 'orders.test', { sku: 'A', qty: 1 })).rejects.toBeInstanceOf(ClosedError);
    expect(gone.caller.pending).toBe(0);
    expect(c.inFlight).toBe(0);
    await gone.close();
    expect(c.status).toBe('closed');
    await expect(c.call(CreateOrder, 'orders.test', { sku: 'A', qty: 1 })).rejects.toBeInstanceOf(ClosedError);
  });

  it('one handler per method: a second one throws ConflictError (in the server and across the session)', async () => {
    const server = await serve(b, (s) => s.handle(CreateOrder, () => ({ orderId: 'x', total: 1 })));
    expect(() => server.handle(CreateOrder, () => ({ orderId: 'y', total: 1 }))).toThrow(ConflictError);
    const other = new RpcServer({ session: b });
    other.handle(CreateOrder, () => ({ orderId: 'z', total: 1 }));
    await expect(other.start()).rejects.toBeInstanceOf(ConflictError);
  });

  it('derives static types from the contract', async () => {
    const c = new RpcClient({ session: a });
    const server = new RpcServer({ session: b });
    expectTypeOf<ReturnType<typeof c.call<typeof CreateOrder>>>().toEqualTypeOf<
      Promise<{ orderId: string; total: number }>
    >();
    expectTypeOf<Parameters<typeof c.call<typeof CreateOrder>>[2]>().toEqualTypeOf<{ sku: string; qty: number }>();
    server.handle(GetOrder, (req) => {
      expectTypeOf(req).toEqualTypeOf<{ orderId: string }>();
      return { orderId: req.orderId, qty: 1, by: 'b' };
    });
    const e = new RpcError(CreateOrder, 'outOfStock', { sku: 'a', available: 1 });
    expectTypeOf(e.data).toEqualTypeOf<{ sku: string; available: number }>();
    // @ts-expect-error: 'nope' is not a declared error of CreateOrder
    expect(() => new RpcError(CreateOrder, 'nope', undefined)).toThrow(ConfigError);
    // @ts-expect-error: the data must match the declared schema
    void new RpcError(CreateOrder, 'outOfStock', { sku: 1 });
    await server.close();
  });

  it('rejects bad options with ConfigError', () => {
    expect(() => new RpcServer({ session: b, concurrency: 0 })).toThrow(ConfigError);
    expect(() => new RpcClient({ session: a, timeout: -1 })).toThrow(/timeout/);
    expect(() => new RpcClient({ session: a, retry: { attempts: 0 } })).toThrow(ConfigError);
    expect(() => new RpcClient({ session: a, retry: { attemptTimeout: 0 } })).toThrow(ConfigError);
    expect(() => new RpcClient({} as RpcClientOptions)).toThrow(ConfigError);
  });
});
