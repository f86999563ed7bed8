/**
 * Federation (issue 13): services on a.test and b.test, two independent servers linked by s2s
 * (XEP-0220 dialback; STARTTLS in one variant), for Prosody↔Prosody and Prosody↔ejabberd.
 * Covered: RPC across the link both ways with typed results and declared errors; the servers'
 * own errors (unserved name, unrouted domain, the peer server down) as typed errors, fast; a
 * pending call failing fast when the peer server goes away; QoS-2 messages waiting in a durable
 * outbox while the link is cut or the remote server is down, then delivered exactly once; pub/sub
 * events from the other domain's service (and a foreign publisher needing an affiliation); the
 * access policy refusing a foreign domain (`forbidden`) unless a rule allows it.
 * No DNS query leaves the machine: Prosody routes the peer statically, ejabberd asks our responder.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessPolicy, ServiceUnavailableError, Session, StanzaError, deferred, type AccessRule } from '@xmppbus/core';
import { Messenger } from '@xmppbus/messaging';
import { PubSub, PubSubForbiddenError } from '@xmppbus/pubsub';
import { RpcClient, RpcError, RpcServer } from '@xmppbus/rpc';
import { sqliteMessageStore } from '@xmppbus/store-sqlite';
import {
  CreateOrder,
  NS_ORDERS,
  OrderCreated,
  Wait,
  startFederation,
  waitFor,
  type Federation,
  type FederationOptions,
  type FederationSide,
} from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import { componentTransport } from '@xmppbus/transport-component';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Tick } from './fixtures/messaging-contracts.js';

const PAIRINGS: Required<Pick<FederationOptions, 'a' | 'b' | 'tls'>>[] = [
  { a: 'prosody', b: 'prosody', tls: false },
  { a: 'prosody', b: 'ejabberd', tls: false },
  { a: 'prosody', b: 'ejabberd', tls: true },
  { a: 'prosody', b: 'prosody', tls: true },
];
/** A generous bound for things that should take milliseconds; the assertions are on outcomes. */
const DEADLINE = 60_000;
const CROSS_ORG: AccessRule[] = [{ from: ['*.a.test', '*.b.test'] }];

const ms = (t0: number): string => `${(performance.now() - t0).toFixed(1)} ms`;

for (const p of PAIRINGS) {
  const label = `${p.a}(a.test)↔${p.b}(b.test)${p.tls ? ' STARTTLS' : ''}`;
  const log = (...args: unknown[]): void => console.log(`[federation ${label}]`, ...args);

  describe(`federation ${label}`, () => {
    let fed: Federation;
    const sessions: Session[] = [];
    const cleanups: (() => Promise<unknown> | unknown)[] = [];

    beforeAll(async () => {
      const t0 = performance.now();
      fed = await startFederation({
        ...p,
        components: ['svc1', 'svc2', 'svc3', 'svc4', 'svc5', 'svc6'],
        accounts: [{ user: 'agent', password: 'pw-agent' }],
      });
      log(`started in ${ms(t0)}`);
    });
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
      for (const s of sessions.splice(0).reverse()) await s.close().catch(() => undefined);
      // A failed test must not leave a server down (or the link cut) for the next one.
      for (const side of ['a', 'b'] as const) if (!fed.running(side)) await fed.startPeer(side);
      if (!fed.linkUp) await fed.restoreLink();
    });
    afterAll(async () => {
      const questions = fed?.dnsQuestions.map((q) => q.name) ?? [];
      log(`DNS questions to our responder: ${questions.length} (${[...new Set(questions)].join(', ') || 'none'})`);
      if (!fed) return;
      const dirs = [fed.a.dir, fed.b.dir];
      await fed.stop();
      // Nothing left behind: both temp dirs are gone (the servers' processes with them).
      expect(dirs.filter((d) => existsSync(d))).toEqual([]);
    });

    /** A started session of component `label.<side's domain>` that reconnects (servers restart below). */
    async function session(
      side: FederationSide,
      name: string,
      options: { access?: AccessRule[]; probeInterval?: number } = {},
    ): Promise<Session> {
      const srv = fed.server(side);
      const transport = await componentTransport({
        service: srv.componentService(),
        domain: `${name}.${srv.domain}`,
        password: srv.componentSecret,
        reconnect: { initialDelay: 50, maxDelay: 300 },
      });
      const s = new Session({
        transport,
        ...(options.access ? { access: new AccessPolicy({ rules: options.access }) } : {}),
        ...(options.probeInterval !== undefined ? { probeInterval: options.probeInterval } : {}),
      });
      sessions.push(s);
      await s.start();
      return s;
    }

    /**
     * Calls wait up to 120 s: a ServiceUnavailableError therefore came from a server's bounce,
     * never from the timer ("fail fast" is asserted by the error's class; times are printed).
     */
    async function rpcClient(s: Session): Promise<RpcClient> {
      const c = new RpcClient({ session: s, timeout: 120_000 });
      await c.start();
      return c;
    }

    async function orders(s: Session): Promise<RpcServer> {
      const rpc = new RpcServer({ session: s });
      rpc.handle(CreateOrder, ({ sku, qty }, ctx) => {
        if (sku === 'none') throw new RpcError(CreateOrder, 'outOfStock', { sku, available: 0 });
        return { orderId: `${sku}@${ctx.from}`, total: qty * 2 };
      });
      await rpc.start();
      return rpc;
    }

    /** The error a promise rejects with, and how long it took. */
    async function failure(call: Promise<unknown>): Promise<{ err: unknown; ms: number }> {
      const t0 = performance.now();
      const err = await call.then(
        () => new Error('resolved, expected a failure'),
        (e: unknown) => e,
      );
      return { err, ms: performance.now() - t0 };
    }

    const describeErr = (e: unknown): string =>
      e instanceof StanzaError ? `${e.name} ${e.type}/${e.condition} "${e.text ?? ''}"` : String(e);

    it('RPC across s2s both ways: typed results and declared errors', async () => {
      await orders(await session('b', 'svc1', { access: CROSS_ORG }));
      await orders(await session('a', 'svc1', { access: CROSS_ORG }));
      const fromA = await rpcClient(await session('a', 'svc2'));
      const fromB = await rpcClient(await session('b', 'svc2'));
      let t0 = performance.now();
      const first = await fromA.call(CreateOrder, 'svc1.b.test', { sku: 'x', qty: 2 });
      const firstMs = ms(t0);
      expect(first).toEqual({ orderId: 'x@svc2.a.test', total: 4 });
      t0 = performance.now();
      expect(await fromB.call(CreateOrder, 'svc1.a.test', { sku: 'y', qty: 3 })).toEqual({
        orderId: 'y@svc2.b.test',
        total: 6,
      });
      log(`first call a→b (opens s2s + dialback${p.tls ? ' + TLS' : ''}): ${firstMs}; first b→a: ${ms(t0)}`);
      const declared = await fromA.call(CreateOrder, 'svc1.b.test', { sku: 'none', qty: 1 }).catch((e: unknown) => e);
      expect(RpcError.is(declared, CreateOrder, 'outOfStock')).toBe(true);
      expect((declared as RpcError<typeof CreateOrder, 'outOfStock'>).data).toEqual({ sku: 'none', available: 0 });
      // 200 sequential calls over the warm link: all answered.
      t0 = performance.now();
      for (let i = 0; i < 200; i++) await fromA.call(CreateOrder, 'svc1.b.test', { sku: `s${i}`, qty: 1 });
      log(`200 sequential calls a→b: ${ms(t0)} (${((performance.now() - t0) / 200).toFixed(2)} ms each)`);
      if (p.tls) {
        // The s2s streams really are encrypted (dialback inside TLS: the test CA is in no trust store).
        expect(fed.a.logs()).toMatch(/encrypted/i);
      }
    });

    it("the servers' own errors across the link are typed and immediate", async () => {
      const client = await rpcClient(await session('a', 'svc2'));
      const clientB = await rpcClient(await session('b', 'svc2'));
      const w0 = performance.now();
      await client.call(Wait, 'svc1.b.test', { ms: 0 }).catch(() => undefined); // link warm
      log(`warm-up ${ms(w0)}`);
      const cases: [RpcClient, string, string][] = [
        [client, 'svc5.b.test', 'a → a name b.test does not serve now'],
        [client, 'svc1.c.test', 'a → a domain with no route'],
        [clientB, 'svc5.a.test', 'b → a name a.test does not serve now'],
        [clientB, 'svc1.c.test', 'b → a domain with no route'],
      ];
      for (const [c, to, what] of cases) {
        const { err, ms: took } = await failure(c.call(Wait, to, { ms: 0 }));
        log(`${what} (${to}): ${describeErr(err)} after ${took.toFixed(1)} ms`);
        expect(err).toBeInstanceOf(ServiceUnavailableError);
      }
    });

    it('the remote server down: calls fail fast with a typed error, pending ones too; back up: served again', async () => {
      const hang = await session('b', 'svc6', { access: CROSS_ORG });
      const hanging = new RpcServer({ session: hang });
      const arrived = deferred<void>();
      hanging.handle(Wait, () => {
        arrived.resolve();
        return new Promise(() => undefined);
      });
      await hanging.start();
      const svc1 = await session('b', 'svc1', { access: CROSS_ORG });
      await orders(svc1);
      const client = await rpcClient(await session('a', 'svc2', { probeInterval: 500 }));
      expect((await client.call(CreateOrder, 'svc1.b.test', { sku: 'up', qty: 1 })).total).toBe(2);
      const pending = failure(client.call(Wait, 'svc6.b.test', { ms: 0 }));
      await arrived.promise;
      let t0 = performance.now();
      await fed.stopPeer('b');
      log(`b stopped in ${ms(t0)}`);
      const { err: pendingErr, ms: pendingMs } = await pending;
      log(
        `pending call when b went down: ${describeErr(pendingErr)} after ${pendingMs.toFixed(0)} ms (probe every 500 ms)`,
      );
      expect(pendingErr).toBeInstanceOf(ServiceUnavailableError);
      const { err, ms: took } = await failure(client.call(CreateOrder, 'svc1.b.test', { sku: 'down', qty: 1 }));
      log(`new call a→b while b is down: ${describeErr(err)} after ${took.toFixed(1)} ms`);
      expect(err).toBeInstanceOf(ServiceUnavailableError);
      expect((err as ServiceUnavailableError).retryable).toBe(true);
      t0 = performance.now();
      await fed.startPeer('b');
      log(`b restarted in ${ms(t0)}`);
      // svc1.b.test reconnects by itself; the next call opens a new s2s link.
      t0 = performance.now();
      await waitFor(() => hang.transport.status === 'online' && svc1.transport.status === 'online', {
        what: 'svc1.b.test and svc6.b.test reconnected',
        timeout: DEADLINE,
      });
      expect((await client.call(CreateOrder, 'svc1.b.test', { sku: 'again', qty: 1 })).total).toBe(2);
      log(`served again ${ms(t0)} after b was ready`);

      // The other direction: a.test down, b's caller.
      const served = await orders(await session('a', 'svc1', { access: CROSS_ORG }));
      void served;
      const clientB = await rpcClient(await session('b', 'svc2'));
      await clientB.call(CreateOrder, 'svc1.a.test', { sku: 'up', qty: 1 });
      await fed.stopPeer('a');
      const down = await failure(clientB.call(CreateOrder, 'svc1.a.test', { sku: 'down', qty: 1 }));
      log(`new call b→a while a is down: ${describeErr(down.err)} after ${down.ms.toFixed(1)} ms`);
      expect(down.err).toBeInstanceOf(ServiceUnavailableError);
      await fed.startPeer('a');
    });

    /** A SQLite file in a temp dir removed after the test. */
    function tempDb(file: string): string {
      const dir = mkdtempSync(join(tmpdir(), 'xmppbus-fed-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      return join(dir, file);
    }

    /** Receiver on svc3.b.test counting each message's side effects; sender on svc3.a.test. */
    async function qosPair(): Promise<{ sender: Messenger; receiver: Messenger; seen: Map<number, number> }> {
      const seen = new Map<number, number>();
      const receiverSession = await session('b', 'svc3', { access: CROSS_ORG });
      const receiver = new Messenger({ session: receiverSession, store: sqliteMessageStore(tempDb('b.db')) });
      receiver.handle(Tick, ({ i }) => void seen.set(i, (seen.get(i) ?? 0) + 1));
      await receiver.start();
      cleanups.push(() => receiver.close());
      // Durable outbox, quick retries: an unreachable peer is retried without end.
      const sender = new Messenger({
        session: await session('a', 'svc3'),
        store: sqliteMessageStore(tempDb('a.db')),
        attemptTimeout: 3_000,
        retry: { initialDelay: 50, maxDelay: 500 },
      });
      await sender.start();
      cleanups.push(() => sender.close());
      return { sender, receiver, seen };
    }

    /** Distinct messages handled, and handler runs beyond the first per message. */
    function exactlyOnce(seen: Map<number, number>): { distinct: number; duplicates: number } {
      let duplicates = 0;
      for (const c of seen.values()) duplicates += c - 1;
      return { distinct: seen.size, duplicates };
    }

    async function enqueueAll(sender: Messenger, from: number, n: number, qos: 1 | 2 = 2): Promise<void> {
      for (let i = from; i < from + n; i++) await sender.enqueue(Tick, 'svc3.b.test', { i }, { qos });
    }

    // QoS 1 is at least once (a request whose answer died with the link is sent again: its
    // duplicates are counted and printed); QoS 2 is exactly once.
    it.each([1, 2] as const)(
      'QoS %i across a cut s2s link: waits in the outbox, then arrives (QoS 2: exactly once)',
      async (qos) => {
        const N = 400;
        const { sender, receiver, seen } = await qosPair();
        await enqueueAll(sender, 0, N / 2, qos);
        // Cut while messages are in flight: some requests or their answers die with the link.
        await waitFor(() => seen.size >= 50, { what: 'the first deliveries', timeout: DEADLINE });
        await fed.cutLink();
        await enqueueAll(sender, N / 2, N / 2, qos); // these surely wait
        const atCut = seen.size;
        const retried = sender.counters.retried;
        await waitFor(() => sender.counters.retried > retried + 5, {
          what: 'retries while the link is down',
          timeout: DEADLINE,
        });
        const waiting = sender.counters.queued;
        log(
          `QoS ${qos}: link cut after ${atCut}/${N} deliveries; ${waiting} message(s) waiting in the outbox, ${seen.size} delivered`,
        );
        expect(waiting).toBeGreaterThan(0);
        const t0 = performance.now();
        await fed.restoreLink();
        await waitFor(() => seen.size === N, { what: `all ${N} delivered after the link is back`, timeout: DEADLINE });
        await sender.flush({ timeout: DEADLINE });
        const { distinct, duplicates } = exactlyOnce(seen);
        log(
          `QoS ${qos}: link restored: all delivered ${ms(t0)} later; distinct ${distinct}/${N}, duplicate side effects ${duplicates}, ` +
            `receiver dedupes ${receiver.counters.duplicates}, sender retries ${sender.counters.retried}, outbox ${sender.counters.queued}`,
        );
        expect(distinct).toBe(N);
        if (qos === 2) expect(duplicates).toBe(0);
        expect(sender.counters.queued).toBe(0);
        expect(sender.counters.deadLettered).toBe(0);
      },
    );

    it('QoS 2 while the remote server is down: waits in the outbox, then arrives exactly once', async () => {
      const N = 200;
      const { sender, receiver, seen } = await qosPair();
      await enqueueAll(sender, 0, 20);
      await waitFor(() => seen.size === 20, { what: 'the first 20 delivered', timeout: DEADLINE });
      await sender.flush({ timeout: DEADLINE }); // QoS 2's second step (deliver) done too
      await fed.stopPeer('b');
      await enqueueAll(sender, 20, N - 20);
      const retried = sender.counters.retried;
      await waitFor(() => sender.counters.retried > retried + 5, {
        what: 'retries while b is down',
        timeout: DEADLINE,
      });
      log(`b down: ${sender.counters.queued} message(s) waiting in the outbox, ${seen.size} delivered`);
      expect(sender.counters.queued).toBe(N - 20);
      expect(seen.size).toBe(20);
      const t0 = performance.now();
      await fed.startPeer('b');
      const restartMs = ms(t0);
      const t1 = performance.now();
      await waitFor(() => seen.size === N, { what: `all ${N} delivered after b is back`, timeout: DEADLINE });
      await sender.flush({ timeout: DEADLINE });
      const { distinct, duplicates } = exactlyOnce(seen);
      log(
        `b back (restart took ${restartMs}): all delivered ${ms(t1)} after b was ready; distinct ${distinct}/${N}, duplicate side effects ${duplicates}, ` +
          `receiver dedupes ${receiver.counters.duplicates}, sender retries ${sender.counters.retried}`,
      );
      expect(distinct).toBe(N);
      expect(duplicates).toBe(0);
      expect(sender.counters.deadLettered).toBe(0);
    });

    it('pub/sub events from the other domain; a foreign publisher needs an affiliation', async () => {
      const owner = new PubSub({ session: await session('b', 'svc4'), service: 'pubsub.b.test', timeout: 20_000 });
      await owner.start();
      const node = `fed-${Date.now().toString(36)}`;
      await owner.createNode(node);
      const foreign = new PubSub({ session: await session('a', 'svc4'), service: 'pubsub.b.test', timeout: 20_000 });
      await foreign.start();
      const got: number[] = [];
      const consumer = foreign.consume(OrderCreated, node, (v) => void got.push(v.qty));
      await consumer.start({ timeout: 20_000 });
      for (let i = 1; i <= 50; i++) await owner.publish(OrderCreated, node, { orderId: `o${i}`, qty: i });
      await waitFor(() => got.length === 50, { what: '50 events on a.test', timeout: DEADLINE });
      expect(got).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      const refused = await foreign.publish(OrderCreated, node, { orderId: 'f0', qty: 0 }).catch((e: unknown) => e);
      log(`events b→a: ${got.length}/50 in order; foreign publish without affiliation: ${describeErr(refused)}`);
      expect(refused).toBeInstanceOf(PubSubForbiddenError);
      await owner.setAffiliations(node, { 'svc4.a.test': 'publisher' });
      await foreign.publish(OrderCreated, node, { orderId: 'f1', qty: 51 });
      await waitFor(() => got.length === 51, { what: "the foreign publisher's event", timeout: DEADLINE });
      await consumer.close();
    });

    it('the access policy refuses a foreign domain (forbidden) unless a rule allows it', async () => {
      const closed = await session('b', 'svc5'); // the secure default: same-org services only
      await orders(closed);
      const one = await session('b', 'svc6', { access: [{ from: 'svc5.a.test', to: NS_ORDERS }] });
      await orders(one);
      const allowed = await rpcClient(await session('a', 'svc5'));
      const other = await rpcClient(await session('a', 'svc6'));
      const refused = await allowed.call(CreateOrder, 'svc5.b.test', { sku: 'x', qty: 1 }).catch((e: unknown) => e);
      log(`default policy on b.test, caller svc5.a.test: ${describeErr(refused)}`);
      expect(refused).toBeInstanceOf(StanzaError);
      expect(refused).not.toBeInstanceOf(ServiceUnavailableError);
      expect(refused).toMatchObject({ condition: 'forbidden', type: 'auth', retryable: false });
      expect(closed.access.denied).toBe(1);
      expect((await allowed.call(CreateOrder, 'svc6.b.test', { sku: 'y', qty: 1 })).orderId).toBe('y@svc5.a.test');
      const notListed = await other.call(CreateOrder, 'svc6.b.test', { sku: 'z', qty: 1 }).catch((e: unknown) => e);
      expect(notListed).toMatchObject({ condition: 'forbidden', type: 'auth' });
      expect(one.access.denied).toBe(1);
    });

    it('an account of the other domain: refused by default, served once a rule names its domain', async () => {
      const srv = fed.b;
      // With TLS the servers offer STARTTLS on c2s too: trust their throwaway CA.
      const transport = await clientTransport({
        service: srv.c2sService(),
        domain: srv.domain,
        username: 'agent',
        password: 'pw-agent',
        mechanism: 'PLAIN',
        allowPlainWithoutTls: true,
        reconnect: false,
        ...(srv.tlsCa ? { tls: { ca: srv.tlsCa } } : {}),
      });
      const agent = new Session({ transport });
      sessions.push(agent);
      await agent.start();
      await orders(await session('a', 'svc5')); // the secure default
      await orders(await session('a', 'svc6', { access: [{ from: '*@b.test', to: NS_ORDERS }] }));
      const client = await rpcClient(agent);
      const refused = await client.call(CreateOrder, 'svc5.a.test', { sku: 'x', qty: 1 }).catch((e: unknown) => e);
      expect(refused).toMatchObject({ condition: 'forbidden', type: 'auth', retryable: false });
      const ok = await client.call(CreateOrder, 'svc6.a.test', { sku: 'y', qty: 1 });
      log(`agent@b.test → a.test: default ${describeErr(refused)}; with rule *@b.test: ${ok.orderId}`);
      expect(ok.orderId).toBe(`y@${agent.address}`);
    });

    it('no name was looked up but the peers (an unrouted domain is refused before any lookup); s2s went through the relay', () => {
      // Runs after the tests above, which address svc1.c.test (no route) from both sides.
      const peers = /^_xmpps?-server\._tcp\.(?:[^.]+\.)*[ab]\.test$/;
      const strays = fed.dnsQuestions.filter((q) => q.type !== 33 || !peers.test(q.name));
      expect(strays).toEqual([]);
      if (p.b === 'ejabberd') expect(fed.dnsQuestions.length).toBeGreaterThan(0);
      expect(fed.linkConnections).toBeGreaterThan(0);
    });
  });
}
