/**
 * Property-based hardening of the session's IQ router and caller (hardening issue, deliverable 8):
 * a `Session` over a fake transport gets random stanza sequences — IQs of every type (and odd or
 * missing ones), random or missing ids/from/to, payloads in random namespaces (disco, ping, a
 * served, a delegated and a forbidden one), duplicate ids, results and errors for unknown ids,
 * replies spoofed from the wrong JID, messages, presences and deeply nested payloads —
 * interleaved with `caller.request()`s with timeouts on a ManualClock, link drops and clock
 * advances. Properties:
 * - no throw escapes a stanza listener, and no promise rejects unhandled;
 * - every request settles exactly once, and `caller.pending` is 0 once every timeout elapsed;
 * - every inbound get/set IQ gets exactly one reply (result or error) with its id, addressed to
 *   its sender, unless a handler kept it; nothing else is ever answered, so replies never
 *   outnumber inbound get/set IQs (no amplification).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AccessPolicy,
  Element,
  ManualClock,
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_PING,
  resultReply,
  errorReply,
  Session,
  StanzaError,
  xml,
} from './index.js';
import { RecordingTransport } from './recording-transport.fixture.js';

const ME = 'orders.example.com';

const NS_OPEN = 'urn:h:open';
const NS_ENV = 'urn:h:envelope'; // the unit checks access itself (delegated)
const NS_CLOSED = 'urn:h:closed'; // no handler; only services may reach it

const JIDS = [
  undefined,
  '',
  'billing.example.com',
  'example.com',
  'alice@example.com/phone',
  'alice@example.com',
  'evil.org',
  ME,
  'ORDERS.Example.com',
  'x'.repeat(300),
  'bad@@jid//',
];
const PEERS = ['billing.example.com', 'alice@example.com/phone', undefined];
const IDS = [undefined, '', 'a', 'b', 'dup', 'r0', 'r1', 'r2', '\u0000', 'x'.repeat(200)];
const IQ_TYPES = ['get', 'set', 'get', 'set', 'result', 'error', undefined, 'GET', 'chat', ''];
const PAYLOADS: [string | undefined, string][] = [
  [NS_PING, 'ping'],
  [NS_DISCO_INFO, 'query'],
  [NS_DISCO_ITEMS, 'query'],
  [NS_OPEN, 'echo'],
  [NS_OPEN, 'keep'],
  [NS_OPEN, 'late'],
  [NS_OPEN, 'throws'],
  [NS_OPEN, 'unknown'],
  [NS_ENV, 'env'],
  [NS_CLOSED, 'x'],
  [undefined, 'ping'],
  ['', 'query'],
  ['urn:random', 'anything'],
];

type Op =
  | {
      op: 'iq';
      type: string | undefined;
      id: string | undefined;
      from: string | undefined;
      to: string | undefined;
      payload: number | undefined;
      prefixed: boolean;
      extra: number;
      deep: number;
    }
  | { op: 'answer'; which: number; type: 'result' | 'error'; spoof: boolean; keepId: boolean }
  | { op: 'request'; to: number; id: string | undefined; timeout: number | undefined; type: 'get' | 'set' }
  | { op: 'stanza'; name: string; from: string | undefined; deep: number }
  | { op: 'drop' }
  | { op: 'online' }
  | { op: 'advance'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('iq' as const),
      type: fc.constantFrom(...IQ_TYPES),
      id: fc.constantFrom(...IDS),
      from: fc.constantFrom(...JIDS),
      to: fc.constantFrom(undefined, ME, 'other.example.com'),
      payload: fc.option(fc.nat({ max: PAYLOADS.length - 1 }), { nil: undefined, freq: 8 }),
      prefixed: fc.boolean(),
      extra: fc.nat({ max: 3 }),
      deep: fc.oneof(fc.constant(0), fc.constant(0), fc.constantFrom(10, 1_000, 10_000)),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('answer' as const),
      which: fc.nat(),
      type: fc.constantFrom('result' as const, 'error' as const),
      spoof: fc.boolean(),
      keepId: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('request' as const),
      to: fc.nat({ max: PEERS.length - 1 }),
      id: fc.constantFrom(undefined, undefined, 'dup', 'a'),
      timeout: fc.option(fc.integer({ min: 1, max: 20_000 }), { nil: undefined }),
      type: fc.constantFrom('get' as const, 'set' as const),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('stanza' as const),
      name: fc.constantFrom('message', 'presence', 'foo', 'stream:error'),
      from: fc.constantFrom(...JIDS),
      deep: fc.constantFrom(0, 0, 5_000),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'drop' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'online' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 15_000 }) }) },
);

function deepChain(depth: number): Element {
  const root = new Element('n');
  let cur = root;
  for (let i = 1; i < depth; i++) {
    const c = new Element('n');
    c.parent = cur;
    cur.children.push(c);
    cur = c;
  }
  return root;
}

function attach(parent: Element, c: Element | string): void {
  if (typeof c !== 'string') c.parent = parent;
  parent.children.push(c);
}

function inboundIq(o: Extract<Op, { op: 'iq' }>): Element {
  const iq = xml('iq', { type: o.type, id: o.id, from: o.from, to: o.to });
  if (o.payload !== undefined) {
    const [ns, name] = PAYLOADS[o.payload]!;
    const p = o.prefixed && ns ? new Element(`p:${name}`, { 'xmlns:p': ns }) : new Element(name, { xmlns: ns });
    if (o.deep > 0) attach(p, deepChain(o.deep));
    attach(iq, p);
  }
  for (let i = 0; i < o.extra; i++) attach(iq, i % 2 === 0 ? 'text' : new Element('extra', { xmlns: 'urn:x' }));
  return iq;
}

const key = (id: string | undefined, jid: string | undefined): string => `${id ?? '<none>'}|${jid ?? '<none>'}`;

async function runScenario(ops: Op[]): Promise<void> {
  const listenerErrors: Error[] = [];
  const t = new RecordingTransport(ME, { onListenerError: (err) => listenerErrors.push(err) });
  const clock = new ManualClock(0);
  // A served namespace anyone may use; everything else follows the secure default.
  const access = new AccessPolicy({ rules: [{ from: '*', to: NS_OPEN }] });
  // Liveness probes (pings of peers that leave a request waiting) are the session's own IQs:
  // off here, where every outbound IQ must be one the test asked for.
  const session = new Session({ transport: t, clock, access, iqTimeout: 10_000, probeInterval: 0 });
  let kept = 0;
  let messages = 0;
  let presences = 0;
  const router = session.router;
  router.handle(NS_OPEN, 'echo', (iq, p) => void session.send(resultReply(iq, p)).catch(() => undefined));
  router.handle(NS_OPEN, 'keep', () => void kept++); // a handler that chose to keep the IQ (e.g. a queue)
  router.handle(NS_OPEN, 'late', (iq) => {
    clock.setTimeout(() => void session.send(resultReply(iq)).catch(() => undefined), 500);
  });
  router.handle(NS_OPEN, 'throws', (iq) => {
    // A handler that fails answers first, as the callee policy demands.
    void session.send(errorReply(iq, new StanzaError({ condition: 'internal-server-error' }))).catch(() => undefined);
  });
  router.delegateAccess(NS_ENV);
  router.handle(NS_ENV, '*', (iq) => {
    const ok = session.access.check(iq.attrs['from'], ME, NS_ENV, 'env');
    const reply = ok ? resultReply(iq) : errorReply(iq, new StanzaError({ condition: 'forbidden', type: 'auth' }));
    void session.send(reply).catch(() => undefined);
  });
  session.onMessage(() => void messages++);
  session.onPresence(() => void presences++);

  t.set('online');
  await session.start();

  const expected = new Map<string, number>(); // inbound get/set (id|from) still to be answered
  let inboundGetSet = 0;
  const requests: { settled: number; to: string | undefined; id: string }[] = [];
  let requestCount = 0;

  for (const o of ops) {
    switch (o.op) {
      case 'iq': {
        const iq = inboundIq(o);
        if (o.type === 'get' || o.type === 'set') {
          inboundGetSet++;
          const ns = o.payload === undefined ? undefined : PAYLOADS[o.payload]!;
          // Only a sender the policy admits reaches the handler (`*` matches anyone who names
          // itself); the router reads the payload's `xmlns`, so a prefixed payload is not routed.
          const keeps = ns !== undefined && ns[0] === NS_OPEN && ns[1] === 'keep' && !!o.from && !o.prefixed;
          if (!keeps) expected.set(key(o.id, o.from), (expected.get(key(o.id, o.from)) ?? 0) + 1);
        }
        t.emit(iq);
        break;
      }
      case 'answer': {
        if (requests.length === 0) break;
        const r = requests[o.which % requests.length]!;
        const from = o.spoof ? 'evil.org' : (r.to ?? 'example.com');
        const reply = xml('iq', { type: o.type, id: o.keepId ? r.id : 'unknown-id', from, to: ME });
        if (o.type === 'error') attach(reply, new StanzaError({ condition: 'item-not-found' }).toElement());
        t.emit(reply);
        break;
      }
      case 'request': {
        const to = PEERS[o.to];
        const iq = xml('iq', { type: o.type, to, id: o.id }, xml('ping', { xmlns: NS_PING }));
        const entry = { settled: 0, to, id: '' };
        requests.push(entry);
        requestCount++;
        const opts = o.timeout === undefined ? {} : { timeout: o.timeout };
        session.caller.request(iq, opts).then(
          () => void entry.settled++,
          () => void entry.settled++,
        );
        entry.id = iq.attrs['id'] as string;
        break;
      }
      case 'stanza': {
        const s = new Element(o.name, { from: o.from, to: ME, type: 'chat' });
        if (o.deep > 0) attach(s, deepChain(o.deep));
        t.emit(s);
        break;
      }
      case 'drop':
        t.set('reconnecting');
        break;
      case 'online':
        t.set('online');
        break;
      case 'advance':
        clock.advance(o.ms);
        break;
    }
    await Promise.resolve();
  }

  // Let every timeout elapse and the link come back: everything queued is written.
  t.set('online');
  clock.advance(10 * 60_000);
  for (let i = 0; i < 5; i++) await Promise.resolve();
  await t.drain();

  expect(listenerErrors).toEqual([]);
  expect(requests.map((r) => r.settled)).toEqual(requests.map(() => 1));
  expect(session.caller.pending).toBe(0);
  expect(clock.pending).toBe(0);

  // What the session wrote: its own requests, and replies — nothing else.
  const replies = t.sent.filter(
    (s) => s.name === 'iq' && (s.attrs['type'] === 'result' || s.attrs['type'] === 'error'),
  );
  const own = t.sent.filter((s) => s.name === 'iq' && (s.attrs['type'] === 'get' || s.attrs['type'] === 'set'));
  expect(replies.length + own.length).toBe(t.sent.length);
  expect(own.length).toBeLessThanOrEqual(requestCount);
  expect(replies.length).toBeLessThanOrEqual(inboundGetSet);
  // Exactly one reply per inbound get/set (but the kept ones), with its id, to its sender.
  const got = new Map<string, number>();
  for (const r of replies) {
    const k = key(r.attrs['id'] as string | undefined, r.attrs['to'] as string | undefined);
    got.set(k, (got.get(k) ?? 0) + 1);
  }
  expect(Object.fromEntries(got)).toEqual(Object.fromEntries(expected));
  expect(kept).toBeLessThanOrEqual(inboundGetSet);
  void messages;
  void presences;
  await session.close();
}

// A fixed seed keeps the suite deterministic; set FC_SEED to explore other corners.
const SEED = Number(process.env['FC_SEED'] ?? 20261204);

describe('Session IQ routing under random stanza sequences (property-based)', () => {
  it('never throws, settles every request once, answers every get/set once and never amplifies', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 60 }), (ops) => runScenario(ops)),
      { numRuns: 300, seed: SEED },
    );
  }, 120_000);
});
