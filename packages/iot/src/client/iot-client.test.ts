import { Session, StanzaError, resultReply, xml } from '@xmppbus/core';
import { waitFor } from '@xmppbus/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AGENT, MONITOR, befriend, turn, world, type World } from '../testing.fixture.js';

let w: World;
beforeEach(async () => {
  w = await world({ owners: ['monitor@iot.test'] });
  await befriend(w);
});
afterEach(async () => {
  for (const c of w.closers) await c();
});

describe('IotClient: what a peer sends is checked', () => {
  it('ignores reports for its readout or observation from anyone but the agent asked', async () => {
    const events: unknown[] = [];
    const o = await w.client.observe(AGENT, { immediate: false, onEvent: (e) => events.push(e) });
    const spoof = w.hub.connect('mallory@iot.test/x');
    const report = xml(
      'resp',
      { xmlns: 'urn:nf:iot:sd:1.0', id: o.id },
      xml('ts', { v: '2026-12-05T00:00:00Z' }, xml('q', { n: 'Temperature', v: '99', u: '°C' })),
    );
    await spoof.send(xml('message', { to: MONITOR }, report));
    for (let i = 0; i < 20; i++) await turn();
    expect(events).toHaveLength(0);
    w.agent.set('Temperature', 30);
    await waitFor(() => events.length === 1, { turns: 100 });
    await spoof.close();
  });

  it('keeps at most 64 readout errors however many parts a readout or an event is split over', async () => {
    const errs = Array.from({ length: 50 }, (_, i) => xml('err', null, `e${i}`));
    const part = (id: string, more: boolean) =>
      xml(
        'message',
        { to: MONITOR },
        xml(
          'resp',
          { xmlns: 'urn:nf:iot:sd:1.0', id, ...(more ? { more: 'true' } : {}) },
          xml('ts', { v: '2026-12-05T00:00:00Z' }, ...errs),
        ),
      );
    // A readout: a peer that accepts, then sends many parts full of errors.
    const fake = new Session({ transport: w.hub.connect('fake@iot.test/d'), clock: w.clock });
    w.closers.unshift(() => fake.close());
    fake.router.delegateAccess('urn:nf:iot:sd:1.0');
    fake.router.handle('urn:nf:iot:sd:1.0', 'req', (iq, req) => {
      const id = req.attrs['id']!;
      void (async () => {
        await fake.send(resultReply(iq, xml('accepted', { xmlns: 'urn:nf:iot:sd:1.0', id })));
        for (let i = 0; i < 5; i++) await fake.send(part(id, true));
        await fake.send(part(id, false));
      })();
    });
    await fake.start();
    const read = await w.client.read('fake@iot.test/d');
    expect(read.errors).toHaveLength(64);
    // An observe event split the same way.
    const events: { errors: readonly unknown[] }[] = [];
    const o = await w.client.observe(AGENT, { immediate: false, onEvent: (e) => events.push(e) });
    for (let i = 0; i < 5; i++) await w.agent.session.send(part(o.id, true));
    await w.agent.session.send(part(o.id, false));
    await waitFor(() => events.length === 1, { turns: 100 });
    expect(events[0]!.errors).toHaveLength(64);
  });

  it('cleans readouts in progress on every outcome', async () => {
    const reads = [w.client.read(AGENT), w.client.read(AGENT, { dialect: 'legacy' })];
    await Promise.all(reads);
    expect(w.client.pendingReads).toBe(0);
    const err = await w.client.read('nobody@iot.test/x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StanzaError);
    expect(w.client.pendingReads).toBe(0);
    const aborted = new AbortController();
    aborted.abort();
    await expect(w.client.read(AGENT, { signal: aborted.signal })).rejects.toThrow();
    expect(w.client.pendingReads).toBe(0);
  });

  it('a bare JID is resolved to the resource seen online, else refused (IQs to a bare JID reach the server)', async () => {
    const err = (await w.client.read('agent@iot.test').catch((e: unknown) => e)) as StanzaError;
    expect(err.condition).toBe('service-unavailable');
    await w.agent.session.send(xml('presence', { to: MONITOR }));
    await waitFor(() => w.client.presenceOf('agent@iot.test').length === 1, { turns: 100 });
    expect((await w.client.read('agent@iot.test')).fields.length).toBeGreaterThan(0);
  });

  it('close ends observations and unsubscribes at the agent', async () => {
    const o = await w.client.observe(AGENT);
    expect(w.agent.subscriptionCount).toBe(1);
    await w.client.close();
    expect(o.closed).toBe(true);
    await waitFor(() => w.agent.subscriptionCount === 0, { turns: 100 });
  });
});

describe('Roster: pushes and state', () => {
  it('refuses roster pushes from anyone but the own account', async () => {
    const mallory = w.hub.connect('mallory@iot.test/x');
    const push = xml(
      'iq',
      { type: 'set', to: AGENT, id: 'evil' },
      xml('query', { xmlns: 'jabber:iq:roster' }, xml('item', { jid: 'mallory@iot.test', subscription: 'both' })),
    );
    const replies: string[] = [];
    mallory.onStanza((s) => replies.push(s.attrs['type'] ?? ''));
    await mallory.send(push);
    await waitFor(() => replies.length === 1, { turns: 100 });
    expect(replies).toEqual(['error']);
    expect(w.agent.isTrusted('mallory@iot.test/x')).toBe(false);
    await mallory.close();
  });

  it('losing the mutual subscription drops trust and the peer’s subscriptions', async () => {
    await w.client.observe(AGENT);
    expect(w.agent.subscriptionCount).toBe(1);
    await w.client.unfriend('agent@iot.test');
    await waitFor(() => !w.agent.isTrusted(MONITOR), { turns: 200 });
    await waitFor(() => w.agent.subscriptionCount === 0, { turns: 100 });
    const err = (await w.client.read(AGENT).catch((e: unknown) => e)) as StanzaError;
    expect(err.condition).toBe('forbidden');
  });
});
