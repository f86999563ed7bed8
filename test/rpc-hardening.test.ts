// RpcServer admission through real Prosody and ejabberd: user accounts (c2s) are refused until a
// rule allows them, and one account's flood of maximal calls is refused `resource-constraint`
// while another account's calls are all served, the calls in hand staying within the budgets.
import { Type } from '@sinclair/typebox';
import { AccessPolicy, Session, StanzaError, deferred, parseXml, type AccessRule } from '@xmppbus/core';
import { RpcClient, RpcServer } from '@xmppbus/rpc';
import { method } from '@xmppbus/schema';
import { describeServers, waitFor } from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import { componentTransport } from '@xmppbus/transport-component';
import { afterEach, expect, it } from 'vitest';

const NS = 'urn:example:hardening:1';
const Work = method({
  ns: NS,
  name: 'work',
  request: Type.Object({ n: Type.Integer(), blob: Type.Optional(Type.String()) }),
  response: Type.Object({ n: Type.Integer() }),
});

const USERS: [string, string][] = [
  ['alice', 'alice-pw'],
  ['mallory', 'mallory-pw'],
  ['bob', 'bob-pw'],
];
/** Just under the servers' 256 KiB c2s stanza cap (the IQ and its payload add a few hundred bytes). */
const MAXIMAL_BLOB = 250 * 1024;

/** Settles to the value, or to the StanzaError it failed with. */
function outcome<T>(p: Promise<T>): Promise<T | StanzaError> {
  return p.catch((e: unknown) => {
    if (e instanceof StanzaError) return e;
    throw e;
  });
}

describeServers(
  'rpc hardening',
  (server) => {
    const cleanups: (() => Promise<unknown>)[] = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    /** A started session of a component, with the given access rules (default: the secure default). */
    async function service(domain: string, rules?: AccessRule[]): Promise<Session> {
      const srv = server();
      const t = await componentTransport({
        service: srv.componentService(),
        domain,
        password: srv.componentSecret,
        reconnect: false,
      });
      cleanups.push(() => t.close());
      const s = new Session({ transport: t, ...(rules ? { access: new AccessPolicy({ rules }) } : {}) });
      cleanups.push(() => s.close());
      await s.start();
      return s;
    }

    /** A started RpcClient of a c2s user account, and its session. */
    async function user(name: string): Promise<{ client: RpcClient; session: Session }> {
      const srv = server();
      const password = USERS.find(([u]) => u === name)![1];
      const t = await clientTransport({
        service: srv.c2sService(),
        domain: srv.domain,
        username: name,
        password,
        mechanism: 'PLAIN',
        allowPlainWithoutTls: true,
        timeout: 10_000,
      });
      cleanups.push(() => t.close());
      const s = new Session({ transport: t });
      cleanups.push(() => s.close());
      const c = new RpcClient({ session: s, retry: false, timeout: 15_000 });
      await c.start();
      return { client: c, session: s };
    }

    async function serve(on: Session, handler: (n: number) => Promise<void> | void, concurrency = 64) {
      const rpc = new RpcServer({ session: on, concurrency });
      rpc.handle(Work, async ({ n }) => {
        await handler(n);
        return { n };
      });
      await rpc.start();
      cleanups.push(() => rpc.close());
      return rpc;
    }

    it('refuses a user account by default (forbidden/auth) and serves it once a rule allows it', async () => {
      const closed = await service('svc-e.localhost');
      const open = await service('svc-f.localhost', [{ from: 'alice@localhost', to: NS }]);
      await serve(closed, () => undefined);
      await serve(open, () => undefined);
      const { client: alice } = await user('alice');
      const refused = await outcome(alice.call(Work, 'svc-e.localhost', { n: 1 }));
      expect(refused).toBeInstanceOf(StanzaError);
      expect(refused).toMatchObject({ condition: 'forbidden', type: 'auth', retryable: false });
      expect(closed.access.denied).toBe(1);
      await expect(alice.call(Work, 'svc-f.localhost', { n: 2 })).resolves.toEqual({ n: 2 });
      expect(open.access.denied).toBe(0);
    });

    it("refuses one account's flood of maximal calls with resource-constraint while another account is served", async () => {
      const svc = await service('svc-g.localhost', [{ from: '*@localhost', to: NS }]);
      const gate = deferred<void>();
      const rpc = await serve(svc, (n) => (n < 0 ? gate.promise : undefined), 2);
      // The calls in hand, sampled whenever a handler runs: never beyond the default budgets.
      let peakBytes = 0;
      let peakMallory = 0;
      const sample = (): void => {
        peakBytes = Math.max(peakBytes, rpc.usage.bytes);
        peakMallory = Math.max(peakMallory, rpc.usageOf('mallory@localhost').bytes);
      };
      const mallory = await user('mallory');
      const bob = await user('bob');
      const blob = 'x'.repeat(MAXIMAL_BLOB);
      const FLOOD = 16;
      const flood = Array.from({ length: FLOOD }, (_, i) =>
        outcome(mallory.client.call(Work, 'svc-g.localhost', { n: -1 - i, blob })),
      );
      // Every flood call has arrived: admitted (held at the gate) or refused.
      await waitFor(() => rpc.rejected + rpc.usageOf('mallory@localhost').count === FLOOD, {
        timeout: 20_000,
        what: 'the flood to arrive',
      });
      sample();
      // A call of empty elements under the c2s cap costs far more heap than bytes: never admitted.
      const heavy = parseXml(
        `<iq type='set' to='svc-g.localhost' id='heavy'><work xmlns='${NS}'><n>-99</n><blob>${'<a/>'.repeat(60_000)}</blob></work></iq>`,
      );
      const heavyReply = new Promise<StanzaError>((resolve) => {
        const off = mallory.session.transport.onStanza((s) => {
          if (s.attrs['id'] === 'heavy') {
            off();
            resolve(StanzaError.fromElement(s));
          }
        });
      });
      await mallory.session.send(heavy);
      expect(await heavyReply).toMatchObject({ condition: 'policy-violation', type: 'modify' });
      // Bob's calls are admitted on his own budget and served as soon as slots free.
      const legit = Array.from({ length: 10 }, (_, n) => outcome(bob.client.call(Work, 'svc-g.localhost', { n })));
      await waitFor(() => rpc.usageOf('bob@localhost').count === 10, { timeout: 10_000, what: "bob's calls in hand" });
      sample();
      gate.resolve();
      expect(await Promise.all(legit)).toEqual(Array.from({ length: 10 }, (_, n) => ({ n })));
      const results = await Promise.all(flood);
      const refused = results.filter((r): r is StanzaError => r instanceof StanzaError);
      expect(refused.length).toBeGreaterThan(0);
      for (const e of refused) expect(e).toMatchObject({ condition: 'resource-constraint', type: 'wait' });
      // 1 MiB per sender holds 4 calls of 250 KiB.
      expect(FLOOD - refused.length).toBe(4);
      expect(peakMallory).toBeLessThanOrEqual(1 << 20);
      expect(peakBytes).toBeLessThanOrEqual(16 << 20);
      expect(rpc.usage).toEqual({ bytes: 0, count: 0 });
    });
  },
  { users: USERS },
);
