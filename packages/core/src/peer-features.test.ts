import { afterEach, describe, expect, it } from 'vitest';
import type { Element } from './index.js';
import {
  ManualClock,
  NS_DISCO_INFO,
  Session,
  StanzaError,
  TimeoutError,
  errorReply,
  resultReply,
  xml,
} from './index.js';
import { RecordingTransport } from './recording-transport.fixture.js';

const NS_A = 'urn:test:a';
const NS_B = 'urn:test:b';

const sessions: Session[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close();
});

async function setup(): Promise<{
  t: RecordingTransport;
  session: Session;
  clock: ManualClock;
  discos: () => Element[];
}> {
  const t = new RecordingTransport();
  const clock = new ManualClock(1_000);
  const session = new Session({ transport: t, clock, probeInterval: 0 });
  sessions.push(session);
  t.set('online');
  await session.start();
  session.peerFeatures.want(NS_A);
  session.peerFeatures.want(NS_B);
  const discos = (): Element[] =>
    t.sent.filter((s) => s.name === 'iq' && s.attrs['type'] === 'get' && s.getChild('query', NS_DISCO_INFO));
  return { t, session, clock, discos };
}

/** The peer's answer to a disco#info query: the given features. */
function answer(query: Element, ...features: string[]): Element {
  const reply = resultReply(
    query,
    xml('query', { xmlns: NS_DISCO_INFO }, ...features.map((v) => xml('feature', { var: v }))),
  );
  reply.attrs['from'] = query.attrs['to'];
  return reply;
}

function unavailable(from: string): Element {
  return xml('presence', { from, type: 'unavailable' });
}

/** Asks `jid` and answers with `features`, so it is known. */
async function learn(session: Session, t: RecordingTransport, jid: string, ...features: string[]): Promise<void> {
  const asked = session.peerFeatures.lookup(jid);
  t.emit(answer(t.sent.at(-1)!, ...features));
  await asked;
}

describe('PeerFeatures (session.peerFeatures)', () => {
  it('one disco#info query serves two units asking at once, and the answer is cached', async () => {
    const { t, session, discos } = await setup();
    const features = session.peerFeatures;
    expect(features.known('svc.test')).toBeUndefined();
    // Two units (rpc, messaging) ask the same peer in the same turn.
    const rpc = features.lookup('svc.test');
    const messaging = features.lookup('svc.test');
    expect(discos()).toHaveLength(1);
    expect(discos()[0]!.attrs['to']).toBe('svc.test');
    t.emit(answer(discos()[0]!, NS_A, NS_B));
    const [a, b] = await Promise.all([rpc, messaging]);
    expect([...a].sort()).toEqual([NS_A, NS_B]);
    expect(b).toBe(a);
    expect(features.known('svc.test')).toBe(a);
    // Later callers get the cached answer: nothing more is sent.
    expect(await features.lookup('svc.test')).toBe(a);
    expect(discos()).toHaveLength(1);
    expect(session.caller.pending).toBe(0);
  });

  it('unavailable presence forgets that JID and its full JIDs at that bare JID, nothing else', async () => {
    const { t, session } = await setup();
    const features = session.peerFeatures;
    for (const jid of ['svc.test', 'a@x.test/r1', 'a@x.test/r2', 'a@x.test', 'b@x.test/r1'])
      await learn(session, t, jid, NS_A);
    t.emit(xml('presence', { from: 'svc.test' })); // available: nothing to forget
    expect(features.known('svc.test')?.has(NS_A)).toBe(true);
    t.emit(unavailable('svc.test'));
    expect(features.known('svc.test')).toBeUndefined();
    // One resource leaves: it and the bare JID (which may have routed to it) are forgotten.
    t.emit(unavailable('a@x.test/r1'));
    expect(features.known('a@x.test/r1')).toBeUndefined();
    expect(features.known('a@x.test')).toBeUndefined();
    expect(features.known('a@x.test/r2')).toBeDefined();
    // The account leaves (bare JID, any case): all its resources are forgotten.
    t.emit(unavailable('A@X.test'));
    expect(features.known('a@x.test/r2')).toBeUndefined();
    expect(features.known('b@x.test/r1')).toBeDefined();
    expect(features.size).toBe(1);
  });

  it('an answer that arrives after the peer was forgotten reaches its caller but is not cached', async () => {
    const { t, session, discos } = await setup();
    const asked = session.peerFeatures.lookup('svc.test');
    t.emit(unavailable('svc.test'));
    t.emit(answer(discos()[0]!, NS_A));
    expect((await asked).has(NS_A)).toBe(true);
    expect(session.peerFeatures.known('svc.test')).toBeUndefined();
    void session.peerFeatures.lookup('svc.test');
    expect(discos()).toHaveLength(2); // asked again
  });

  it('a failed query is not cached, and the JID is asked again only after the retry delay', async () => {
    const { t, session, clock, discos } = await setup();
    const features = session.peerFeatures;
    const first = features.lookup('svc.test');
    const refusal = new StanzaError({ condition: 'service-unavailable' });
    const query = discos()[0]!;
    t.emit(xml('iq', { type: 'error', id: query.attrs['id'], from: 'svc.test' }, refusal.toElement()));
    await expect(first).rejects.toMatchObject({ condition: 'service-unavailable' });
    expect(features.known('svc.test')).toBeUndefined();
    // Within the delay: the same failure at once, no query.
    clock.advance(29_999);
    await expect(features.lookup('svc.test')).rejects.toMatchObject({ condition: 'service-unavailable' });
    expect(discos()).toHaveLength(1);
    // After it: asked again, and this time the answer is cached.
    clock.advance(1);
    const second = features.lookup('svc.test');
    expect(discos()).toHaveLength(2);
    t.emit(answer(discos()[1]!, NS_A));
    expect((await second).has(NS_A)).toBe(true);
    expect(features.known('svc.test')?.has(NS_A)).toBe(true);
  });

  it('a query that times out (5 s) counts as a failure; a caller may bound its own wait', async () => {
    const { session, clock, discos } = await setup();
    const features = session.peerFeatures;
    const patient = features.lookup('svc.test');
    const hasty = features.lookup('svc.test', { timeout: 100 });
    clock.advance(100);
    await expect(hasty).rejects.toBeInstanceOf(TimeoutError);
    clock.advance(4_900);
    await expect(patient).rejects.toBeInstanceOf(TimeoutError);
    expect(discos()).toHaveLength(1);
    await expect(features.lookup('svc.test')).rejects.toBeInstanceOf(TimeoutError);
    expect(discos()).toHaveLength(1);
    clock.advance(30_000);
    void features.lookup('svc.test');
    expect(discos()).toHaveLength(2);
  });

  it('keeps only the features units registered; a new registration forgets every answer', async () => {
    const { t, session, discos } = await setup();
    const features = session.peerFeatures;
    const many = Array.from({ length: 500 }, (_, i) => `urn:test:other:${i}`);
    await learn(session, t, 'svc.test', ...many, NS_A);
    expect([...features.known('svc.test')!]).toEqual([NS_A]);
    features.want(NS_A); // already registered: nothing forgotten
    expect(features.known('svc.test')).toBeDefined();
    features.want('urn:test:other:7');
    expect(features.known('svc.test')).toBeUndefined();
    await learn(session, t, 'svc.test', ...many, NS_A);
    expect(new Set(features.known('svc.test'))).toEqual(new Set([NS_A, 'urn:test:other:7']));
    expect(discos()).toHaveLength(2);
  });

  it('a refused feature counts as not listed for 30 s, for every unit, without asking; then the JID is asked again', async () => {
    const { t, session, clock, discos } = await setup();
    const features = session.peerFeatures;
    await learn(session, t, 'svc.test', NS_A, NS_B);
    features.refused('svc.test', NS_A);
    expect([...features.known('svc.test')!]).toEqual([NS_B]);
    expect([...(await features.lookup('svc.test'))]).toEqual([NS_B]); // from the cache: not asked
    clock.advance(29_999);
    expect(features.known('svc.test')?.has(NS_A)).toBe(false);
    expect(discos()).toHaveLength(1);
    clock.advance(1);
    expect(features.known('svc.test')).toBeUndefined();
    await learn(session, t, 'svc.test', NS_A, NS_B);
    expect(discos()).toHaveLength(2);
    expect(features.known('svc.test')?.has(NS_A)).toBe(true);
    // Its unavailable presence ends a refusal sooner; a refusal of a JID never asked holds too.
    features.refused('svc.test', NS_A);
    t.emit(unavailable('svc.test'));
    expect(features.known('svc.test')).toBeUndefined();
    features.refused('new.test', NS_A);
    expect(features.known('new.test')?.size).toBe(0);
  });

  it('remembers at most 1024 JIDs, forgetting the oldest first', async () => {
    const { t, session, discos } = await setup();
    const features = session.peerFeatures;
    for (let i = 0; i < 1025; i++) await learn(session, t, `svc${i}.test`, NS_A);
    expect(features.size).toBe(1024);
    expect(features.known('svc0.test')).toBeUndefined();
    expect(features.known('svc1.test')).toBeDefined();
    expect(features.known('svc1024.test')).toBeDefined();
    expect(discos()).toHaveLength(1025);
    // The evicted one is asked again when needed.
    void features.lookup('svc0.test');
    expect(discos()).toHaveLength(1026);
    expect(discos()[1025]!.attrs['to']).toBe('svc0.test');
  });

  it('forget() also drops an error reply to a forgotten query: a new lookup asks at once', async () => {
    const { t, session, discos } = await setup();
    const features = session.peerFeatures;
    const first = features.lookup('svc.test');
    features.forget('svc.test');
    const query = discos()[0]!;
    t.emit(errorReply(query, new StanzaError({ condition: 'item-not-found' })));
    // errorReply swaps to/from: the reply comes from the peer.
    await expect(first).rejects.toBeInstanceOf(StanzaError);
    void features.lookup('svc.test');
    expect(discos()).toHaveLength(2); // no retry delay for a peer forgotten before it failed
  });
});
