// Admission of inbound calls: byte and count budgets, fair scheduling per sender, far-future
// deadlines, and what the session's access policy lets a requester see and call.
import { Type } from '@sinclair/typebox';
import {
  AccessPolicy,
  NS_DISCO_ITEMS,
  NS_SHIM,
  Session,
  StanzaError,
  TimeoutError,
  deferred,
  parseXml,
  randomId,
  xml,
  type AccessRule,
  type Element,
} from '@xmppbus/core';
import { method } from '@xmppbus/schema';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RPC_LIMIT_DEFAULTS } from './call-admission.js';
import { NODE_COST, stanzaCost } from '@xmppbus/core';
import { formatDeadline } from './deadline.js';
import { RpcClient, RpcServer, type RpcServerOptions } from './index.js';

const NS = 'urn:example:hardening:1';
const Work = method({
  ns: NS,
  name: 'work',
  request: Type.Object({ n: Type.Integer(), blob: Type.Optional(Type.String()) }),
  response: Type.Object({ n: Type.Integer() }),
});
const Peek = method({
  ns: NS,
  name: 'peek',
  request: Type.Object({}),
  response: Type.Object({}),
  readOnly: true,
});

let hub: MemoryHub;
let sessions: Session[];

beforeEach(() => {
  hub = memoryHub();
  sessions = [];
});

afterEach(async () => {
  vi.useRealTimers();
  for (const s of sessions) await s.close();
});

function session(address: string, rules?: AccessRule[]): Session {
  const s = new Session({
    transport: hub.connect(address),
    ...(rules ? { access: new AccessPolicy({ rules }) } : {}),
  });
  sessions.push(s);
  return s;
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

async function client(on: Session): Promise<RpcClient> {
  const c = new RpcClient({ session: on, retry: false, timeout: 10_000 });
  await c.start();
  return c;
}

/** Settles to the value, or to the StanzaError it failed with. */
function outcome<T>(p: Promise<T>): Promise<T | StanzaError> {
  return p.catch((e: unknown) => {
    if (e instanceof StanzaError) return e;
    throw e;
  });
}

/** Sends a raw IQ and resolves with whatever comes back. */
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

/** A `work` call of `<blob>` with `count` empty child elements: a tree far heavier than its text. */
function emptyElements(to: string, count: number): Element {
  return parseXml(
    `<iq type='set' to='${to}'><work xmlns='${NS}'><n>1</n><blob>${'<a/>'.repeat(count)}</blob></work></iq>`,
  );
}

const nextMacrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('RpcServer byte budgets', () => {
  it('charges small calls their bytes and large ones at least NODE_COST per node', () => {
    const small = parseXml(`<iq type='set'><work xmlns='${NS}'><n>1</n></work></iq>`);
    expect(stanzaCost(small)).toBeLessThan(200);
    const text = parseXml(`<iq type='set'><work xmlns='${NS}'><n>1</n><blob>${'x'.repeat(100_000)}</blob></work></iq>`);
    const textCost = stanzaCost(text);
    expect(textCost).toBeGreaterThanOrEqual(100_000);
    expect(textCost).toBeLessThan(101_000);
    // 242 KiB of empty elements: ~62k nodes, ~9 MiB of heap once parsed; charged by its nodes.
    const heavy = emptyElements('x', 62_000);
    expect(stanzaCost(heavy)).toBeGreaterThanOrEqual(62_000 * NODE_COST);
  });

  it('refuses calls over the per-sender byte budget with wait/resource-constraint, and gives it back when answered', async () => {
    const a = session('caller.test');
    const b = session('callee.test');
    const gate = deferred<void>();
    const server = await serve(
      b,
      (s) =>
        s.handle(Work, async ({ n }) => {
          await gate.promise;
          return { n };
        }),
      { concurrency: 1, limits: { perSenderBytes: 50_000 } },
    );
    const c = await client(a);
    const blob = 'x'.repeat(20_000); // ~20 KB each: two fit, the third would not
    const calls = [1, 2, 3].map((n) => outcome(c.call(Work, 'callee.test', { n, blob })));
    const third = await calls[2];
    expect(third).toBeInstanceOf(StanzaError);
    expect(third).toMatchObject({ condition: 'resource-constraint', type: 'wait', retryable: true });
    expect(server.running + server.queued).toBe(2);
    expect(server.usageOf('caller.test').bytes).toBeGreaterThan(40_000);
    expect(server.usageOf('caller.test').bytes).toBeLessThanOrEqual(50_000);
    expect(server.rejected).toBe(1);
    gate.resolve();
    expect(await calls[0]).toEqual({ n: 1 });
    expect(await calls[1]).toEqual({ n: 2 });
    expect(server.usage).toEqual({ bytes: 0, count: 0 });
  });

  it('refuses a call no budget can hold (a tree of empty elements) with modify/policy-violation, before decoding', async () => {
    const a = session('caller.test');
    const b = session('callee.test');
    let ran = 0;
    const server = await serve(b, (s) =>
      s.handle(Work, ({ n }) => {
        ran++;
        return { n };
      }),
    );
    await a.start();
    // 62k nodes × NODE_COST > the default 1 MiB per sender.
    const reply = await rawIq(a, emptyElements('callee.test', 62_000));
    const e = StanzaError.fromElement(reply);
    expect(e).toMatchObject({ condition: 'policy-violation', type: 'modify', retryable: false });
    expect(ran).toBe(0);
    expect(server.usage).toEqual({ bytes: 0, count: 0 });
    expect(RPC_LIMIT_DEFAULTS.perSenderBytes).toBeLessThan(62_000 * NODE_COST);
  });

  it('returns the budget of calls refused after admission (invalid request, passed deadline) and on close()', async () => {
    const a = session('caller.test');
    const b = session('callee.test');
    const gate = deferred<void>();
    const server = await serve(
      b,
      (s) =>
        s.handle(Work, async ({ n }) => {
          await gate.promise;
          return { n };
        }),
      { concurrency: 1 },
    );
    await a.start();
    const bad = await rawIq(a, xml('iq', { type: 'set', to: 'callee.test' }, xml('work', { xmlns: NS })));
    expect(StanzaError.fromElement(bad).condition).toBe('bad-request');
    expect(server.usage).toEqual({ bytes: 0, count: 0 });
    const headers = xml('headers', { xmlns: NS_SHIM }, xml('header', { name: 'xmppbus-deadline' }, formatDeadline(0)));
    const late = await rawIq(
      a,
      xml('iq', { type: 'set', to: 'callee.test' }, xml('work', { xmlns: NS }, xml('n', {}, '1'), headers)),
    );
    expect(StanzaError.fromElement(late).application?.name).toBe('deadline-exceeded');
    expect(server.usage).toEqual({ bytes: 0, count: 0 });
    const c = await client(a);
    const running = outcome(c.call(Work, 'callee.test', { n: 1 }));
    const queued = outcome(c.call(Work, 'callee.test', { n: 2 }));
    await vi.waitFor(() => expect(server.queued).toBe(1));
    expect(server.usage.count).toBe(2);
    await server.close();
    expect(await queued).toMatchObject({ condition: 'service-unavailable' });
    gate.resolve();
    expect(await running).toEqual({ n: 1 });
    expect(server.usage).toEqual({ bytes: 0, count: 0 });
  });

  it('rejects bad limits with ConfigError', () => {
    const b = session('callee.test');
    expect(() => new RpcServer({ session: b, limits: { perSenderBytes: 0 } })).toThrow(/limits.perSenderBytes/);
    expect(() => new RpcServer({ session: b, limits: { totalCount: 1.5 } })).toThrow(/limits.totalCount/);
  });
});

describe('RpcServer fairness', () => {
  it("serves a second sender's calls within concurrency + senders dispatches while another floods", async () => {
    const flooder = session('flood.test');
    const legit = session('legit.test');
    const b = session('callee.test');
    const concurrency = 2;
    const senders = 2;
    let dispatches = 0;
    /** Dispatch count when each of legit's calls reached the server, by its `n`. */
    const arrived = new Map<number, number>();
    const waited: number[] = [];
    b.transport.onStanza((s) => {
      const n = s.getChild('work', NS)?.getChildText('n');
      if (s.attrs['from'] === 'legit.test' && n) arrived.set(Number(n), dispatches);
    });
    const server = await serve(
      b,
      (s) =>
        s.handle(Work, async ({ n }, { from }) => {
          if (from === 'legit.test') waited.push(Math.max(0, dispatches - arrived.get(n)!));
          dispatches++;
          await nextMacrotask();
          return { n };
        }),
      { concurrency, limits: { perSenderCount: 16 } },
    );
    const cf = await client(flooder);
    const cl = await client(legit);
    // 40 loops keep ~40 calls outstanding, far more than the 16 one sender may have in hand.
    let flooding = true;
    let floodRefused = 0;
    let floodServed = 0;
    const flood = async (): Promise<void> => {
      while (flooding) {
        const r = await outcome(cf.call(Work, 'callee.test', { n: -1 }));
        if (r instanceof StanzaError) {
          expect(r.condition).toBe('resource-constraint');
          floodRefused++;
          await nextMacrotask(); // a refusal comes back in microtasks: let the handlers run
        } else floodServed++;
      }
    };
    const loops = Array.from({ length: 40 }, flood);
    await vi.waitFor(() => expect(server.queued).toBe(16 - concurrency));
    const results: unknown[] = [];
    for (let n = 1; n <= 20; n++) results.push(await outcome(cl.call(Work, 'callee.test', { n })));
    flooding = false;
    await Promise.all(loops);
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => ({ n: i + 1 })));
    expect(waited).toHaveLength(20);
    expect(Math.max(...waited)).toBeLessThanOrEqual(concurrency + senders);
    expect(floodRefused).toBeGreaterThan(0);
    expect(floodServed).toBeGreaterThan(0);
    expect(server.usage).toEqual({ bytes: 0, count: 0 });
  });
});

describe('RpcServer deadlines', () => {
  it('a deadline beyond the timer range (30 days) does not abort the handler at once', async () => {
    // Fake timers, like Node, fire a delay above 2^31 − 1 ms after 1 ms.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const a = session('caller.test');
    const b = session('callee.test');
    const started = deferred<AbortSignal>();
    const finish = deferred<void>();
    await serve(
      b,
      (s) =>
        s.handle(Work, async ({ n }, { signal, deadline }) => {
          expect(deadline).toBeGreaterThan(Date.now() + 29 * 86_400_000);
          started.resolve(signal);
          await finish.promise;
          return { n };
        }),
      { deadlineGrace: 0 },
    );
    const c = new RpcClient({ session: a, retry: false });
    await c.start();
    const days30 = 30 * 86_400_000;
    const call = outcome(c.call(Work, 'callee.test', { n: 7 }, { timeout: days30 }));
    const signal = await started.promise;
    vi.advanceTimersByTime(1_000);
    expect(signal.aborted).toBe(false);
    vi.advanceTimersByTime(days30 - 10_000);
    expect(signal.aborted).toBe(false);
    finish.resolve();
    expect(await call).toEqual({ n: 7 });
  });

  it('still aborts the handler once a far-future deadline passes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const a = session('caller.test');
    const b = session('callee.test');
    const started = deferred<AbortSignal>();
    await serve(
      b,
      (s) =>
        s.handle(Work, (_r, { signal }) => {
          started.resolve(signal);
          return new Promise(() => {});
        }),
      { deadlineGrace: 0 },
    );
    const c = new RpcClient({ session: a, retry: false });
    await c.start();
    const days30 = 30 * 86_400_000;
    const call = outcome(c.call(Work, 'callee.test', { n: 7 }, { timeout: days30 })).catch((e: unknown) => e);
    const signal = await started.promise;
    vi.advanceTimersByTime(days30 + 1);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(TimeoutError);
    expect(await call).toBeInstanceOf(TimeoutError);
  });
});

describe('RpcServer access visibility', () => {
  async function ordersFor(rules?: AccessRule[]): Promise<{ alice: Session; server: RpcServer; b: Session }> {
    const alice = session('alice@test/phone');
    const b = session('orders.test', rules);
    const server = await serve(b, (s) => {
      s.handle(Work, ({ n }) => ({ n }));
      s.handle(Peek, () => ({}));
    });
    await alice.start();
    return { alice, server, b };
  }

  /** Sends a presence probe from `from` and resolves with the answer, or undefined if none came. */
  async function probe(from: Session, to: string): Promise<Element | undefined> {
    let answer: Element | undefined;
    const off = from.transport.onStanza((s) => {
      if (s.name === 'presence') answer = s;
    });
    await from.send(xml('presence', { type: 'probe', to }));
    // The server answers synchronously on receipt; a ping round trip after it bounds the wait.
    await from.caller.request(xml('iq', { type: 'get', to }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    off();
    return answer;
  }

  it('refuses a user account by default (forbidden/auth, counted) and tells it nothing by presence', async () => {
    const { alice, b } = await ordersFor();
    const c = await client(alice);
    const e = await outcome(c.call(Work, 'orders.test', { n: 1 }));
    expect(e).toMatchObject({ condition: 'forbidden', type: 'auth', retryable: false });
    expect(b.access.denied).toBe(1);
    expect(await probe(alice, 'orders.test')).toBeUndefined();
    // A same-organisation service is served and answered.
    const svc = session('billing.test');
    await svc.start();
    await expect((await client(svc)).call(Work, 'orders.test', { n: 2 })).resolves.toEqual({ n: 2 });
    const answer = await probe(svc, 'orders.test');
    expect(answer?.getChild('instance')?.attrs['state']).toBe('serving');
  });

  it('serves a user account a rule allows, and answers its presence probe', async () => {
    const { alice } = await ordersFor([{ from: 'alice@test', to: NS }]);
    const c = await client(alice);
    await expect(c.call(Work, 'orders.test', { n: 1 })).resolves.toEqual({ n: 1 });
    const answer = await probe(alice, 'orders.test');
    expect(answer?.getChild('instance')?.attrs).toMatchObject({ state: 'serving', running: '0', queued: '0' });
  });

  it('lists in disco#items only the methods the requester may call', async () => {
    const { alice } = await ordersFor([{ from: 'alice@test', to: `${NS}#peek` }]);
    const nodes = async (): Promise<string[]> => {
      const items = await alice.caller.request(
        xml('iq', { type: 'get', to: 'orders.test' }, xml('query', { xmlns: NS_DISCO_ITEMS })),
      );
      return items
        .getChild('query')!
        .getChildren('item')
        .map((i) => i.attrs['node'] as string);
    };
    // The schema reflection node (docs/protocol.md §6) answers per requester, so it is always listed.
    expect((await nodes()).sort()).toEqual([`${NS}#peek`, 'urn:xmppbus:schema:1']);
    const c = await client(alice);
    await expect(c.call(Peek, 'orders.test', {})).resolves.toEqual({});
    expect(await outcome(c.call(Work, 'orders.test', { n: 1 }))).toMatchObject({ condition: 'forbidden' });
    const denied = session('bob@test/x');
    await denied.start();
    const items = await denied.caller.request(
      xml('iq', { type: 'get', to: 'orders.test' }, xml('query', { xmlns: NS_DISCO_ITEMS })),
    );
    expect(items.getChild('query')!.getChildren('item')).toEqual([]);
  });
});
