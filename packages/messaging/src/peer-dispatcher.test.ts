/**
 * How the per-peer dispatcher uses the session's feature cache (`session.peerFeatures`): a peer
 * another unit of the session already asked is not asked again; a peer that refuses a batch gets
 * its messages again one per IQ (none dead-lettered) and, without being asked, single IQs until it
 * goes away.
 */
import { Type } from '@sinclair/typebox';
import { NS_DISCO_INFO, Session, StanzaError, childElements, resultReply, xml, type Element } from '@xmppbus/core';
import { event } from '@xmppbus/schema';
import { waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub, type MemoryTransport } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Messenger } from './messenger.js';
import { NS_BATCH, batchOutcome, batchResultElement } from './wire.js';

const Note = event({ ns: 'urn:test:notes:1', name: 'note', schema: Type.Object({ n: Type.Integer() }) });

let hub: MemoryHub;
const cleanups: (() => Promise<void>)[] = [];
beforeEach(() => {
  hub = memoryHub();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function sender(): Promise<{ session: Session; m: Messenger }> {
  const session = new Session({ transport: hub.connect('svc-a.test') });
  cleanups.push(() => session.close());
  const m = new Messenger({ session, retry: { initialDelay: 1, maxDelay: 5 }, window: 16 });
  await m.start();
  return { session, m };
}

/**
 * A hand-written `svc-b.test`: lists the batch feature, answers every single QoS IQ, and refuses
 * batches when `refuse` (a peer replaced by one without batches, say). Records what it got.
 */
function peer(refuse: boolean): { transport: MemoryTransport; seen: string[] } {
  const transport = hub.connect('svc-b.test');
  const seen: string[] = [];
  transport.onStanza((s) => {
    if (s.name !== 'iq' || s.attrs['type'] === 'result' || s.attrs['type'] === 'error') return;
    const p = childElements(s)[0]!;
    let reply: Element;
    if (p.attrs['xmlns'] === NS_DISCO_INFO) {
      seen.push('disco');
      reply = resultReply(s, xml('query', { xmlns: NS_DISCO_INFO }, xml('feature', { var: NS_BATCH })));
    } else if (p.name === 'batch' && p.attrs['xmlns'] === NS_BATCH) {
      seen.push('batch');
      reply = refuse
        ? xml(
            'iq',
            { type: 'error', id: s.attrs['id'], to: s.attrs['from'], from: s.attrs['to'] },
            new StanzaError({ condition: 'feature-not-implemented', type: 'cancel' }).toElement(),
          )
        : resultReply(s, batchResultElement(childElements(p).map((i) => batchOutcome(i.attrs['msgId']!, undefined))));
    } else {
      seen.push('single');
      reply = resultReply(s);
    }
    void transport.send(reply);
  });
  cleanups.push(() => transport.close());
  return { transport, seen };
}

const burst = (m: Messenger, count: number): Promise<PromiseSettledResult<void>[]> =>
  Promise.allSettled(Array.from({ length: count }, (_, n) => m.send(Note, 'svc-b.test', { n }, { qos: 1 })));

describe('PeerDispatcher and the session feature cache', () => {
  it('a peer another unit of the session already asked is not asked again', async () => {
    const { seen } = peer(false);
    const { session, m } = await sender();
    // Another unit of the session (an RpcClient, say) learned what the peer supports.
    expect((await session.peerFeatures.lookup('svc-b.test')).has(NS_BATCH)).toBe(true);
    seen.length = 0;
    await burst(m, 6);
    expect(seen).not.toContain('disco');
    expect(seen[0]).toBe('batch');
  });

  it('a refused batch: one message per IQ, never asking, until the peer goes away (or 30 s pass); then asked again', async () => {
    const { transport, seen } = peer(true);
    const { session, m } = await sender();
    await burst(m, 3);
    await waitFor(() => session.peerFeatures.known('svc-b.test') !== undefined, { what: 'disco answered' });
    seen.length = 0;
    // The refused batch ran nothing: its messages go again one per IQ and all succeed, none dead-lettered.
    const refused = await burst(m, 4);
    expect(refused.every((o) => o.status === 'fulfilled')).toBe(true);
    expect(seen).toEqual(['batch', 'single', 'single', 'single', 'single']);
    expect(m.counters.retried).toBe(0); // not attempted: no attempt counted
    // The refusal is in the session's cache, for every unit: known, without the feature.
    expect(session.peerFeatures.known('svc-b.test')?.has(NS_BATCH)).toBe(false);
    expect(session.peerFeatures.known('svc-b.test')).toBeDefined();
    seen.length = 0;
    const later = await burst(m, 4);
    expect(later.every((o) => o.status === 'fulfilled')).toBe(true);
    expect(seen).toEqual(['single', 'single', 'single', 'single']);
    // The peer goes away and comes back: it may take batches now, so it is asked again.
    seen.length = 0;
    await transport.send(xml('presence', { type: 'unavailable', to: 'svc-a.test' }));
    await transport.send(xml('presence', { to: 'svc-a.test' }));
    await burst(m, 4);
    await waitFor(() => seen.includes('disco'), { what: 'asked again' });
  });
});
