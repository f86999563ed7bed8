import { findChild, xml, type Element } from '@xmppbus/core';
import { waitFor } from '@xmppbus/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Observation } from '../client/observation.js';
import { AGENT, befriend, turn, world, type World } from '../testing.fixture.js';
import type { ObserveEvent, ObserveOptions } from '../types.js';

let w: World;
let events: ObserveEvent[];

function observe(options: ObserveOptions): Promise<Observation> {
  return w.client.observe(AGENT, { immediate: false, onEvent: (e) => events.push(e), ...options });
}

/** Lets memory-hub deliveries run; the clock does not move. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await turn();
}

async function expectEvents(n: number): Promise<void> {
  await waitFor(() => events.length >= n, { turns: 100, what: `${n} events` });
  await settle();
  expect(events).toHaveLength(n);
}

function value(e: ObserveEvent | undefined, name: string): unknown {
  return e?.fields.find((f) => f.name === name)?.value;
}

beforeEach(async () => {
  w = await world({ owners: ['monitor@iot.test'], subscriptionTtl: 600_000 });
  await befriend(w);
  events = [];
});
afterEach(async () => {
  for (const c of w.closers) await c();
});

describe('observe: change rules (evaluated on every value change)', () => {
  it('changedBy fires on an absolute change from the last reported value', async () => {
    await observe({ rules: [{ field: 'Temperature', changedBy: 1 }] });
    w.agent.set('Temperature', 21.9);
    await settle();
    expect(events).toHaveLength(0);
    w.agent.set('Temperature', 22.6);
    await expectEvents(1);
    expect(value(events[0], 'Temperature')).toBe(22.6);
    w.agent.set('Temperature', 23.0); // 0.4 from the reported 22.6
    w.agent.set('Temperature', 21.5); // 1.1 down
    await expectEvents(2);
    expect(value(events[1], 'Temperature')).toBe(21.5);
  });

  it('changedUp and changedDown are directional', async () => {
    await observe({ rules: [{ field: 'Temperature', changedUp: 2, changedDown: 0.5 }] });
    w.agent.set('Temperature', 23); // +1.5: not enough up
    w.agent.set('Temperature', 23.4); // +1.9
    await settle();
    expect(events).toHaveLength(0);
    w.agent.set('Temperature', 21.0); // −0.5 from 21.5
    await expectEvents(1);
    w.agent.set('Temperature', 22.9); // +1.9 from 21.0
    w.agent.set('Temperature', 23.0); // +2.0
    await expectEvents(2);
  });

  it('a rule without thresholds, or a non-numeric field, fires on any change only', async () => {
    await observe({ rules: [{ field: 'Door' }, { field: 'Mode' }] });
    w.agent.set('Door', false); // unchanged
    await settle();
    expect(events).toHaveLength(0);
    w.agent.set('Door', true);
    await expectEvents(1);
    w.agent.set('Mode', 'manual');
    await expectEvents(2);
    expect(events[1]?.fields.map((f) => f.name).sort()).toEqual(['Door', 'Mode']);
  });
});

describe('observe: intervals and age (ManualClock)', () => {
  it('minInterval coalesces changes into one event with the latest values', async () => {
    await observe({ rules: [{ field: 'Temperature' }], minInterval: 10_000 });
    w.agent.set('Temperature', 22);
    await expectEvents(1); // the first change goes at once
    w.clock.advance(1000);
    w.agent.set('Temperature', 23);
    w.clock.advance(1000);
    w.agent.set('Temperature', 24);
    await settle();
    expect(events).toHaveLength(1);
    w.clock.advance(7999);
    await settle();
    expect(events).toHaveLength(1);
    w.clock.advance(1);
    await expectEvents(2);
    expect(value(events[1], 'Temperature')).toBe(24);
  });

  it('maxInterval sends a heartbeat without change', async () => {
    await observe({ rules: [{ field: 'Temperature' }], maxInterval: 60_000 });
    w.clock.advance(59_999);
    await settle();
    expect(events).toHaveLength(0);
    w.clock.advance(1);
    await expectEvents(1);
    expect(value(events[0], 'Temperature')).toBe(21.5);
    w.clock.advance(30_000);
    w.agent.set('Temperature', 25); // an event restarts the heartbeat interval
    await expectEvents(2);
    w.clock.advance(59_999);
    await settle();
    expect(events).toHaveLength(2);
    w.clock.advance(1);
    await expectEvents(3);
  });

  it('maxAge leaves values older than it out of events', async () => {
    await observe({ rules: [{ field: 'Door' }, { field: 'Temperature' }], maxAge: 30_000 });
    w.clock.advance(40_000);
    w.agent.set('Door', true);
    await expectEvents(1);
    expect(events[0]?.fields.map((f) => f.name)).toEqual(['Door']);
    w.agent.set('Temperature', 30);
    await expectEvents(2);
    expect(events[1]?.fields.map((f) => f.name).sort()).toEqual(['Door', 'Temperature']);
  });

  it('immediate sends the current values at once', async () => {
    await observe({ rules: [{ field: 'Temperature' }], immediate: true });
    await expectEvents(1);
    expect(value(events[0], 'Temperature')).toBe(21.5);
  });
});

describe('observe: lifetime', () => {
  it('expires unless renewed, and renewing restarts the ttl', async () => {
    const o = await observe({ rules: [{ field: 'Temperature' }], renewEvery: 10 * 60 * 60_000 });
    expect(w.agent.subscriptionCount).toBe(1);
    w.clock.advance(500_000);
    await o.renew();
    w.clock.advance(500_000); // 1 000 s after the subscribe, 500 s after the renewal
    expect(w.agent.subscriptionCount).toBe(1);
    w.clock.advance(100_000);
    expect(w.agent.subscriptionCount).toBe(0);
    w.agent.set('Temperature', 30);
    await settle();
    expect(events).toHaveLength(0);
  });

  it('the client renews on its own before the agent forgets', async () => {
    await observe({ rules: [{ field: 'Temperature' }], renewEvery: 300_000 });
    for (let i = 0; i < 5; i++) {
      w.clock.advance(300_000);
      await settle();
    }
    expect(w.agent.subscriptionCount).toBe(1);
  });

  it('cancel unsubscribes and ends the iterator', async () => {
    const o = await observe({ rules: [{ field: 'Temperature' }] });
    const it = o[Symbol.asyncIterator]();
    w.agent.set('Temperature', 40);
    expect(value((await it.next()).value as ObserveEvent, 'Temperature')).toBe(40);
    await o.cancel();
    expect((await it.next()).done).toBe(true);
    expect(w.agent.subscriptionCount).toBe(0);
    expect(w.client.observations).toBe(0);
  });

  it('drops the subscriptions of a subscriber that goes offline', async () => {
    await observe({ rules: [{ field: 'Temperature' }] });
    expect(w.agent.subscriptionCount).toBe(1);
    await w.server.session.send(xml('presence', { type: 'unavailable', to: AGENT, from: 'monitor@iot.test/m' }));
    await waitFor(() => w.agent.subscriptionCount === 0, { turns: 100 });
  });
});

describe('observe: legacy dialect on the wire', () => {
  it('answers accepted (sensordata) and sends fields messages under the same seqnr', async () => {
    const messages: Element[] = [];
    w.monitorSession.onMessage((m) => messages.push(m));
    const sub = xml(
      'subscribe',
      {
        xmlns: 'urn:xmpp:iot:events',
        seqnr: '3',
        momentary: 'true',
        req: 'true',
        minInterval: 'PT5S',
        maxInterval: 'PT15M',
      },
      xml('field', { name: 'Temperature', changedBy: '0.5' }),
    );
    const res = await w.monitorSession.caller.request(xml('iq', { type: 'get', to: AGENT }, sub));
    expect(findChild(res, 'accepted')?.attrs).toMatchObject({ xmlns: 'urn:xmpp:iot:sensordata', seqnr: '3' });
    await waitFor(() => messages.length === 1, { turns: 100 });
    w.agent.set('Temperature', 23);
    w.clock.advance(5000); // minInterval PT5S after the immediate event
    await waitFor(() => messages.length === 2, { turns: 100 });
    const fields = findChild(messages[1]!, 'fields')!;
    expect(fields.attrs).toMatchObject({ xmlns: 'urn:xmpp:iot:sensordata', seqnr: '3', done: 'true' });
    expect(fields.toString()).toContain('name="Temperature"');
    const un = await w.monitorSession.caller.request(
      xml('iq', { type: 'set', to: AGENT }, xml('unsubscribe', { xmlns: 'urn:xmpp:iot:events', seqnr: '3' })),
    );
    expect(un.attrs['type']).toBe('result');
    expect(w.agent.subscriptionCount).toBe(0);
  });
  it('a heartbeat below 1 s is refused (bad-request), never a flood', async () => {
    for (const maxInt of ['PT0S', 'PT0.5S']) {
      const sub = xml('subscribe', { xmlns: 'urn:nf:iot:events:1.0', id: `h${maxInt}`, maxInt });
      const err = await w.monitorSession.caller
        .request(xml('iq', { type: 'get', to: AGENT }, sub))
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ condition: 'bad-request' });
    }
    expect(w.agent.subscriptionCount).toBe(0);
  });
});

describe('observe: nodes and the legacy dialect through the client', () => {
  it('a legacy observation delivers typed events from fields behind a node', async () => {
    for (const c of w.closers) await c();
    w = await world({
      owners: ['monitor@iot.test'],
      fields: [
        { name: 'Power', kind: 'quantity', unit: 'W', node: 'meter-1', initial: 100 },
        { name: 'Power', kind: 'quantity', unit: 'W', node: 'meter-2', initial: 200 },
      ],
    });
    await befriend(w);
    events = [];
    const r = await w.client.read(AGENT, { nodes: ['meter-2'], dialect: 'legacy' });
    expect(r.fields.map((f) => [f.node, f.value])).toEqual([['meter-2', 200]]);
    await observe({ nodes: ['meter-1'], rules: [{ field: 'Power', changedUp: 50 }], dialect: 'legacy' });
    w.agent.set('Power', 400, { node: 'meter-2' }); // another node
    w.agent.set('Power', 120, { node: 'meter-1' }); // +20
    await settle();
    expect(events).toHaveLength(0);
    w.agent.set('Power', 151, { node: 'meter-1' }); // +51
    await expectEvents(1);
    expect(events[0]?.fields).toMatchObject([{ node: 'meter-1', name: 'Power', value: 151, unit: 'W' }]);
  });
});

describe('observe: a large event', () => {
  it('split over several messages by the agent, arrives as one event', async () => {
    for (const c of w.closers) await c();
    const fields = Array.from({ length: 25 }, (_, i) => ({ name: `F${i}`, kind: 'int' as const, initial: i }));
    w = await world({ owners: ['monitor@iot.test'], fields });
    await befriend(w);
    events = [];
    await observe({ maxInterval: 1000 });
    w.clock.advance(1000); // heartbeat: 25 fields, 10 per message
    await expectEvents(1);
    expect(events[0]?.fields.map((f) => f.value)).toEqual(fields.map((f) => f.initial));
  });
});
