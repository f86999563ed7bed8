// RPC over IQ through real Prosody and ejabberd (component transports on loopback).
import type { Session, StanzaError } from '@xmppbus/core';
import {
  AbortError,
  ConflictError,
  ConnectionError,
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  ServiceUnavailableError,
  TimeoutError,
  deferred,
  waitForStatus,
  xml,
} from '@xmppbus/core';
import {
  NS_RPC,
  RpcClient,
  RpcError,
  RpcServer,
  ServiceClient,
  discoverInstances,
  type RpcClientOptions,
} from '@xmppbus/rpc';
import { ValidationError } from '@xmppbus/schema';
import { describeServers, waitFor } from '@xmppbus/testing';
import { afterEach, expect, it } from 'vitest';
import { Components, CreateOrder, GetOrder, NS_ORDERS, Wait } from './rpc-fixtures.js';

describeServers('rpc', (server, kind) => {
  const components = new Components(server);
  afterEach(async () => {
    await components.closeAll();
  });

  async function pair(callerName = 'svc-a.localhost', calleeName = 'svc-b.localhost') {
    const a = await components.session(callerName);
    const b = await components.session(calleeName);
    const rpcServer = new RpcServer({ session: b });
    await rpcServer.start();
    const client = new RpcClient({ session: a, timeout: 10_000 });
    await client.start();
    return { a, b, rpcServer, client };
  }

  /** A started client on `session`. */
  async function clientOn(session: Session, options: Omit<RpcClientOptions, 'session'> = {}): Promise<RpcClient> {
    const c = new RpcClient({ session, ...options });
    await c.start();
    return c;
  }

  /** A started server on `session`, serving what `setup` registers. */
  async function serve(session: Session, setup: (s: RpcServer) => void): Promise<RpcServer> {
    const s = new RpcServer({ session });
    setup(s);
    await s.start();
    return s;
  }

  it(`calls a method and gets the typed response [${kind}]`, async () => {
    const { a, rpcServer, client } = await pair();
    rpcServer.handle(CreateOrder, ({ sku, qty }, { from }) => ({ orderId: `${sku}@${from}`, total: qty * 9.5 }));
    const deadlines: (number | undefined)[] = [];
    rpcServer.handle(GetOrder, ({ orderId }, { to, deadline }) => {
      deadlines.push(deadline);
      return { orderId, qty: 2, by: to };
    });
    await expect(client.call(CreateOrder, 'svc-b.localhost', { sku: 'A1', qty: 2 })).resolves.toEqual({
      orderId: 'A1@svc-a.localhost',
      total: 19,
    });
    // Any JID in the component's domain reaches it.
    const before = Date.now();
    await expect(
      client.call(GetOrder, 'orders-1@svc-b.localhost', { orderId: 'o1' }, { timeout: 4000 }),
    ).resolves.toEqual({
      orderId: 'o1',
      qty: 2,
      by: 'orders-1@svc-b.localhost',
    });
    // The deadline header crossed the server intact.
    expect(deadlines[0]).toBeGreaterThanOrEqual(before + 4000);
    expect(deadlines[0]).toBeLessThanOrEqual(Date.now() + 4000);
    const many = await Promise.all(
      Array.from({ length: 200 }, (_, i) => client.call(CreateOrder, 'svc-b.localhost', { sku: `s${i}`, qty: 1 })),
    );
    expect(many[199]!.orderId).toBe('s199@svc-a.localhost');
    expect(a.caller.pending).toBe(0);
  });

  it(`reports validation failures each way as ValidationError with the path [${kind}]`, async () => {
    const { rpcServer, client, a } = await pair();
    let handled = 0;
    rpcServer.handle(CreateOrder, ({ sku }) => {
      handled++;
      return sku === 'bad' ? ({ orderId: 'x', total: 'NaN' } as never) : { orderId: 'x', total: 1 };
    });
    // Request: refused by the callee (the caller skips its own check here) → bad-request.
    const lax = await clientOn(a, { validate: false });
    const e1 = await lax.call(CreateOrder, 'svc-b.localhost', { sku: 'A', qty: 0 }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ValidationError);
    expect((e1 as ValidationError).path).toBe('/qty');
    expect(((e1 as ValidationError).cause as StanzaError).condition).toBe('bad-request');
    expect(handled).toBe(0);
    // Request: refused locally before sending.
    const e2 = await client.call(CreateOrder, 'svc-b.localhost', { sku: 'A', qty: -1 }).catch((e: unknown) => e);
    expect((e2 as ValidationError).path).toBe('/qty');
    // Response: refused by the callee's outbound validation → internal-server-error with details.
    const e3 = await client.call(CreateOrder, 'svc-b.localhost', { sku: 'bad', qty: 1 }).catch((e: unknown) => e);
    expect(e3).toBeInstanceOf(ValidationError);
    expect((e3 as ValidationError).path).toBe('/total');
    expect(((e3 as ValidationError).cause as StanzaError).condition).toBe('internal-server-error');
  });

  it(`answers unknown methods and namespaces with typed errors, at once [${kind}]`, async () => {
    const { rpcServer, client } = await pair();
    rpcServer.handle(CreateOrder, () => ({ orderId: 'x', total: 1 }));
    const e1 = await client.call(GetOrder, 'svc-b.localhost', { orderId: 'o' }, { retry: false }).catch((e) => e);
    expect((e1 as StanzaError).condition).toBe('feature-not-implemented');
    const b2 = await components.session('svc-c.localhost'); // a component serving nothing
    await new RpcServer({ session: b2 }).start();
    const e2 = await client.call(CreateOrder, 'svc-c.localhost', { sku: 'A', qty: 1 }).catch((e) => e);
    expect(e2).toBeInstanceOf(ServiceUnavailableError);
  });

  it(`surfaces a disconnected component as ServiceUnavailableError, not a timeout [${kind}]`, async () => {
    const { client, a } = await pair();
    const t0 = Date.now();
    const err = await client
      .call(CreateOrder, 'svc-p.localhost', { sku: 'A', qty: 1 }, { timeout: 8000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as ServiceUnavailableError).code).toBe('ERR_SERVICE_UNAVAILABLE');
    // Prosody: remote-server-timeout; ejabberd (s2s_access: none): forbidden "Access denied by service policy".
    expect(['remote-server-timeout', 'forbidden', 'remote-server-not-found', 'service-unavailable']).toContain(
      (err as StanzaError).condition,
    );
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(a.caller.pending).toBe(0);
  });

  it(`times out and aborts, leaving no pending entry [${kind}]`, async () => {
    const { rpcServer, client, a } = await pair();
    const started: string[] = [];
    rpcServer.handle(CreateOrder, ({ sku }) => {
      started.push(sku);
      return new Promise(() => {});
    });
    const e1 = await client
      .call(CreateOrder, 'svc-b.localhost', { sku: 't', qty: 1 }, { timeout: 300 })
      .catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(TimeoutError);
    expect(a.caller.pending).toBe(0);
    const ac = new AbortController();
    const p = client.call(CreateOrder, 'svc-b.localhost', { sku: 'ab', qty: 1 }, { signal: ac.signal });
    await waitFor(() => started.includes('ab'));
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(AbortError);
    expect(a.caller.pending).toBe(0);
  });

  it(`turns a handler throw into internal-server-error and declared errors into RpcError [${kind}]`, async () => {
    const { rpcServer, client } = await pair();
    rpcServer.handle(CreateOrder, ({ sku }) => {
      if (sku === 'boom') throw new Error('secret internals');
      throw new RpcError(CreateOrder, 'outOfStock', { sku, available: 2 });
    });
    const e1 = await client.call(CreateOrder, 'svc-b.localhost', { sku: 'boom', qty: 1 }).catch((e: unknown) => e);
    expect((e1 as StanzaError).condition).toBe('internal-server-error');
    expect((e1 as StanzaError).message).not.toContain('secret internals');
    const e2 = await client.call(CreateOrder, 'svc-b.localhost', { sku: 'A9', qty: 5 }).catch((e: unknown) => e);
    expect(RpcError.is(e2, CreateOrder, 'outOfStock')).toBe(true);
    expect((e2 as RpcError<typeof CreateOrder, 'outOfStock'>).data).toEqual({ sku: 'A9', available: 2 });
  });

  it(`advertises methods through disco#info/items and answers ping [${kind}]`, async () => {
    const { rpcServer, a } = await pair();
    rpcServer.handle(CreateOrder, () => ({ orderId: 'x', total: 1 }));
    const caller = a.caller;
    const info = await caller.request(
      xml('iq', { type: 'get', to: 'svc-b.localhost', from: a.address }, xml('query', { xmlns: NS_DISCO_INFO })),
    );
    const features = info
      .getChild('query')!
      .getChildren('feature')
      .map((f) => f.attrs['var']);
    expect(features).toEqual(expect.arrayContaining([NS_ORDERS, NS_RPC, 'urn:xmpp:ping']));
    const items = await caller.request(
      xml('iq', { type: 'get', to: 'svc-b.localhost', from: a.address }, xml('query', { xmlns: NS_DISCO_ITEMS })),
    );
    expect(
      items
        .getChild('query')!
        .getChildren('item')
        .map((i) => i.attrs['node']),
    ).toEqual([`${NS_ORDERS}#create`, 'urn:xmppbus:schema:1']); // the method, and schema reflection (protocol.md §6)
    await caller.request(
      xml('iq', { type: 'get', to: 'svc-b.localhost', from: a.address }, xml('ping', { xmlns: 'urn:xmpp:ping' })),
    );
  });

  it(`discovers live instances through the server's disco#items [${kind}]`, async () => {
    const a = await components.session('svc-a.localhost');
    for (const name of ['svc-c.localhost', 'svc-d.localhost']) {
      await serve(await components.session(name), (s) =>
        s.handle(GetOrder, ({ orderId }) => ({ orderId, qty: 1, by: name })),
      );
    }
    await components.session('svc-e.localhost'); // connected, answers disco, serves no orders
    const found = await discoverInstances(a, { server: 'localhost', match: /^svc-[c-h]\./, feature: NS_ORDERS });
    // svc-f…h are configured (Prosody lists them) but not connected: not live, not returned.
    expect(found).toEqual(['svc-c.localhost', 'svc-d.localhost']);
  });

  it(`fails pending calls fast on a server crash and retries idempotent ones after the restart [${kind}]`, async () => {
    const srv = server();
    const reconnect = { initialDelay: 50, maxDelay: 300 };
    const a = await components.session('svc-a.localhost', reconnect);
    const b = await components.session('svc-b.localhost', reconnect);
    const started: string[] = [];
    await serve(b, (s) => {
      s.handle(CreateOrder, ({ sku }) => {
        started.push(sku);
        return new Promise(() => {});
      });
      s.handle(GetOrder, ({ orderId }) => ({ orderId, qty: 1, by: 'b' }));
    });
    const client = await clientOn(a, { retry: { attempts: 30, initialDelay: 50, maxDelay: 300 } });
    // Handlers attached at once: the rejection may come while kill() is still being awaited.
    const stuck = client
      .call(CreateOrder, 'svc-b.localhost', { sku: 'x', qty: 1 }, { timeout: 60_000 })
      .catch((e: unknown) => e);
    await waitFor(() => started.includes('x'));
    const t0 = Date.now();
    await srv.kill();
    const err = await stuck;
    expect(err).toBeInstanceOf(ConnectionError);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(a.caller.pending).toBe(0);
    // Idempotent calls issued while the server is down complete once it is back.
    const during = Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        client.call(GetOrder, 'svc-b.localhost', { orderId: `r${i}` }, { timeout: 60_000 }),
      ),
    );
    during.catch(() => undefined); // observed below; avoids an early unhandled rejection report
    await srv.restart();
    const results = await during;
    expect(results.map((r) => r.orderId)).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}`));
    await waitForStatus(b.transport, 'online', { timeout: 30_000 });
    expect(a.caller.pending).toBe(0);
  });

  it(`balances over instances and fails over when one stops or dies [${kind}]`, async () => {
    const a = await components.session('svc-a.localhost');
    const byInstance = new Map<string, number>();
    const hang = new Set<string>();
    for (const name of ['svc-c.localhost', 'svc-d.localhost', 'svc-e.localhost']) {
      await serve(await components.session(name), (s) => {
        s.handle(GetOrder, ({ orderId }) => {
          byInstance.set(name, (byInstance.get(name) ?? 0) + 1);
          return { orderId, qty: 1, by: name };
        });
        s.handle(Wait, () => (hang.has(name) ? new Promise(() => {}) : { by: name }));
      });
    }
    const svc = new ServiceClient({
      session: a,
      target: ['svc-c.localhost', 'svc-d.localhost', 'svc-e.localhost'],
      strategy: 'round-robin',
      probeInterval: 200,
    });
    await svc.start();
    for (let i = 0; i < 30; i++) await svc.call(GetOrder, { orderId: `w${i}` });
    expect([...byInstance.values()]).toEqual([10, 10, 10]);

    // svc-c stops (its connection closes) while calls stream: no caller-visible failure.
    const stream = (async () => {
      const out: string[] = [];
      for (let i = 0; i < 60; i++) out.push((await svc.call(GetOrder, { orderId: `s${i}` })).by);
      return out;
    })();
    await waitFor(() => (byInstance.get('svc-c.localhost') ?? 0) >= 15);
    const stopped = components.closeOne('svc-c.localhost');
    await stopped;
    const seen = await stream;
    expect(seen).toHaveLength(60);
    expect(seen.slice(-10)).not.toContain('svc-c.localhost');

    // svc-d "dies" with a call in flight that will never be answered: the call moves to svc-e.
    hang.add('svc-d.localhost');
    const calls = [svc.call(Wait, { ms: 0 }, { timeout: 30_000 }), svc.call(Wait, { ms: 0 }, { timeout: 30_000 })];
    await waitFor(() => svc.instances.find((i) => i.jid === 'svc-d.localhost')!.inFlight > 0);
    await components.closeOne('svc-d.localhost');
    const done = await Promise.all(calls);
    expect(done.map((d) => d.by)).toEqual(['svc-e.localhost', 'svc-e.localhost']);
    expect(svc.instances.filter((i) => i.state === 'up').map((i) => i.jid)).toEqual(['svc-e.localhost']);
    expect(a.caller.pending).toBe(0);
  });

  it(`drains: in-flight calls finish, new ones go to other instances [${kind}]`, async () => {
    const a = await components.session('svc-a.localhost');
    const gate = deferred<void>();
    const servers: RpcServer[] = [];
    const counts = new Map<string, number>();
    for (const name of ['svc-f.localhost', 'svc-g.localhost']) {
      const s = await serve(await components.session(name), (srv) => {
        srv.handle(Wait, async () => {
          await gate.promise;
          return { by: name };
        });
        srv.handle(GetOrder, ({ orderId }) => {
          counts.set(name, (counts.get(name) ?? 0) + 1);
          return { orderId, qty: 1, by: name };
        });
      });
      servers.push(s);
    }
    const svc = new ServiceClient({
      session: a,
      target: ['svc-f.localhost', 'svc-g.localhost'],
      strategy: 'round-robin',
    });
    await svc.start();
    const inflight = svc.call(Wait, { ms: 0 });
    await waitFor(() => servers[0]!.running + servers[1]!.running === 1);
    const busy = servers[0]!.running === 1 ? servers[0]! : servers[1]!;
    const busyName = busy === servers[0] ? 'svc-f.localhost' : 'svc-g.localhost';
    const otherName = busy === servers[0] ? 'svc-g.localhost' : 'svc-f.localhost';
    const drained = busy.drain({ timeout: 30_000 });
    // The client learns it by presence (or by the first refusal, for idempotent calls: invisible).
    await waitFor(() => svc.instances.find((i) => i.jid === busyName)!.state === 'draining');
    counts.clear();
    for (let i = 0; i < 10; i++) await svc.call(GetOrder, { orderId: `d${i}` });
    expect(counts.get(otherName)).toBe(10);
    expect(counts.get(busyName)).toBeUndefined();
    gate.resolve();
    await expect(inflight).resolves.toEqual({ by: busyName });
    await drained;
    expect(busy.status).toBe('draining');
  });

  it(`several connections under one name: ejabberd spreads, Prosody refuses [${kind}]`, async () => {
    const a = await components.session('svc-a.localhost');
    const first = await components.session('svc-h.localhost');
    const hits = [0, 0];
    await serve(first, (s) =>
      s.handle(GetOrder, ({ orderId }) => {
        hits[0]!++;
        return { orderId, qty: 1, by: 'first' };
      }),
    );
    if (kind === 'prosody') {
      await expect(components.connect('svc-h.localhost')).rejects.toBeInstanceOf(ConflictError);
      return;
    }
    const second = await components.session('svc-h.localhost');
    await serve(second, (s) =>
      s.handle(GetOrder, ({ orderId }) => {
        hits[1]!++;
        return { orderId, qty: 1, by: 'second' };
      }),
    );
    const client = await clientOn(a, { retry: { attempts: 5, attemptTimeout: 2000, initialDelay: 20 } });
    for (let i = 0; i < 100; i++) await client.call(GetOrder, 'svc-h.localhost', { orderId: `h${i}` });
    expect(hits[0]).toBeGreaterThan(10);
    expect(hits[1]).toBeGreaterThan(10);
    await components.closeOne('svc-h.localhost', first.transport);
    for (let i = 0; i < 30; i++) {
      await expect(client.call(GetOrder, 'svc-h.localhost', { orderId: `k${i}` })).resolves.toMatchObject({
        by: 'second',
      });
    }
  });
});
