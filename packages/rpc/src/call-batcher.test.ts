/**
 * How the call batcher uses the session's feature cache (`session.peerFeatures`): one disco#info
 * per peer for every client of a session, asked again after the peer's unavailable presence, and
 * a refused batch pauses batches for 30 s before the peer is asked again.
 */
import {
  ManualClock,
  NS_DISCO_INFO,
  Session,
  StanzaError,
  childElements,
  resultReply,
  xml,
  type Clock,
  type Element,
} from '@xmppbus/core';
import { GetOrder, NS_ORDERS, waitFor } from '@xmppbus/testing';
import { memoryHub, type MemoryHub, type MemoryTransport } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NS_RPC_BATCH } from './batch.js';
import { RpcClient } from './index.js';

let hub: MemoryHub;
let sessions: Session[];

beforeEach(() => {
  hub = memoryHub();
  sessions = [];
});

afterEach(async () => {
  for (const s of sessions) await s.close();
});

/**
 * A hand-written `orders.test`: lists the batch feature in disco#info, answers single calls, and
 * answers batches by `onBatch` (a refusal, or one result per call). Records what it got, in order.
 */
function peer(onBatch: 'refuse' | 'serve'): { transport: MemoryTransport; seen: string[] } {
  const transport = hub.connect('orders.test');
  const seen: string[] = [];
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
      reply =
        onBatch === 'refuse'
          ? xml(
              'iq',
              { type: 'error', id: s.attrs['id'], to: s.attrs['from'], from: s.attrs['to'] },
              new StanzaError({ condition: 'feature-not-implemented', type: 'cancel' }).toElement(),
            )
          : resultReply(s, xml('batch', { xmlns: NS_RPC_BATCH }, ...calls.map((c) => result(c))));
    } else {
      seen.push(p.name);
      reply = resultReply(s, order(p));
    }
    void transport.send(reply);
  });
  return { transport, seen };
}

function order(request: Element): Element {
  const orderId = request.getChildText('orderId') ?? '';
  return xml('get', { xmlns: NS_ORDERS }, xml('orderId', {}, orderId), xml('qty', {}, '1'), xml('by', {}, 'h'));
}

/** A batch item's result: the response element, carrying the call's id. */
function result(call: Element): Element {
  const response = order(childElements(call)[0]!);
  return xml('result', { id: call.attrs['id'] }, response);
}

async function client(options: { clock?: Clock } = {}): Promise<{ a: Session; c: RpcClient }> {
  const a = new Session({ transport: hub.connect('billing.test'), ...options });
  sessions.push(a);
  const c = new RpcClient({ session: a });
  await c.start();
  return { a, c };
}

const burst = (c: RpcClient, ...ids: string[]): Promise<unknown[]> =>
  Promise.all(ids.map((orderId) => c.call(GetOrder, 'orders.test', { orderId })));

describe('CallBatcher and the session feature cache', () => {
  it('two clients of one session ask a peer once, and both then batch', async () => {
    const { seen } = peer('serve');
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
    const { transport, seen } = peer('serve');
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
    const { seen } = peer('refuse');
    const { a, c } = await client({ clock });
    await burst(c, 'w1', 'w2');
    await waitFor(() => a.peerFeatures.known('orders.test') !== undefined, { what: 'disco answered' });
    seen.length = 0;
    await burst(c, 'o1', 'o2');
    expect(seen).toEqual(['batch(2)', 'get', 'get']); // refused as a whole, then sent one by one
    expect(a.peerFeatures.known('orders.test')).toBeUndefined(); // the cache's answer was stale
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
