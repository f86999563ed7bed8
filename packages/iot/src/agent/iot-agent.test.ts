import { Session, StanzaError, findChild, xml, type Element } from '@xmppbus/core';
import { waitFor } from '@xmppbus/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AGENT, MONITOR, T0, befriend, world, type World } from '../testing.fixture.js';
import { IotAgent } from './iot-agent.js';

/** A raw request from the monitor's session, answered as the agent answers it. */
async function raw(w: World, payload: Element, type: 'get' | 'set' = 'get'): Promise<Element> {
  return w.monitorSession.caller.request(xml('iq', { type, to: AGENT }, payload));
}

let w: World;
afterEach(async () => {
  for (const c of w.closers) await c();
});

describe('IotAgent: roster trust', () => {
  beforeEach(async () => {
    w = await world({ owners: ['monitor@iot.test'] });
  });

  it('refuses a stranger with forbidden, in the dialect of the request', async () => {
    const err = await w.client.read(AGENT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StanzaError);
    expect((err as StanzaError).condition).toBe('forbidden');
    const legacy = await w.client.read(AGENT, { dialect: 'legacy' }).catch((e: unknown) => e);
    expect((legacy as StanzaError).condition).toBe('forbidden');
    const ctl = await w.client.control(AGENT, { Output: true }).catch((e: unknown) => e);
    expect((ctl as StanzaError).condition).toBe('forbidden');
    expect(w.agent.parameter('Output')).toBe(false);
  });

  it('auto-approves an owner and answers once the subscription is mutual', async () => {
    await befriend(w);
    expect(w.agent.roster.item('monitor@iot.test')?.subscription).toBe('both');
    const r = await w.client.read(AGENT);
    expect(r.fields.map((f) => f.name).sort()).toEqual(['Door', 'Mode', 'SetPoint', 'Temperature']);
  });
});

describe('IotAgent: queued subscription requests', () => {
  beforeEach(async () => {
    w = await world({ owners: ['owner@iot.test'] });
  });

  it('queues a stranger, tells the owner, and answers after approval', async () => {
    await w.client.befriend(AGENT);
    await waitFor(() => w.agent.pendingRequests().length === 1, { turns: 200, what: 'queued request' });
    expect(w.agent.pendingRequests()[0]?.jid).toBe('monitor@iot.test');
    expect(w.agent.isTrusted(MONITOR)).toBe(false);
    await w.agent.approve('monitor@iot.test');
    await waitFor(() => w.agent.isTrusted(MONITOR), { turns: 200, what: 'approved' });
    expect((await w.client.read(AGENT, { fields: ['Temperature'] })).fields[0]?.value).toBe(21.5);
  });

  it('bounds the queue: the oldest request is denied when it is full', async () => {
    for (let i = 0; i < 5; i++) {
      await w.server.session.send(xml('presence', { type: 'subscribe', to: AGENT, from: `s${i}@iot.test` }));
    }
    await waitFor(() => w.server.sent('unsubscribed', 's1@iot.test').length === 1, { turns: 200, what: 'denials' });
    expect(w.agent.pendingRequests().map((r) => r.jid)).toEqual(['s2@iot.test', 's3@iot.test', 's4@iot.test']);
    expect(w.server.sent('unsubscribed', 's0@iot.test')).toHaveLength(1);
  });
});

describe('IotAgent: readout', () => {
  beforeEach(async () => {
    w = await world({ owners: ['monitor@iot.test'] });
    await befriend(w);
  });

  it('answers nf inline in the IQ result, typed values with units and flags', async () => {
    const res = await raw(
      w,
      xml('req', { xmlns: 'urn:nf:iot:sd:1.0', id: 'r1', m: 'true' }, xml('f', { n: 'Temperature' })),
    );
    const resp = findChild(res, 'resp')!;
    expect(resp.attrs).toMatchObject({ xmlns: 'urn:nf:iot:sd:1.0', id: 'r1' });
    expect(resp.toString()).toContain(`<q n="Temperature" m="true" ar="true" v="21.5" u="°C"/>`);
    const r = await w.client.read(AGENT, { fields: ['Temperature', 'Door', 'Mode'] });
    const byName = Object.fromEntries(r.fields.map((f) => [f.name, f]));
    expect(byName['Temperature']).toMatchObject({
      kind: 'quantity',
      value: 21.5,
      unit: '°C',
      decimals: 1,
      categories: ['momentary'],
    });
    expect(byName['Door']).toMatchObject({ kind: 'boolean', value: false });
    expect(byName['Mode']).toMatchObject({ kind: 'enum', value: 'auto', enumType: 'Mode' });
  });

  it('marks a field writable when a parameter of the same name exists: nf ctr, legacy writable', async () => {
    const res = await raw(
      w,
      xml(
        'req',
        { xmlns: 'urn:nf:iot:sd:1.0', id: 'w1', m: 'true' },
        xml('f', { n: 'SetPoint' }),
        xml('f', { n: 'Door' }),
      ),
    );
    const nf = findChild(res, 'resp')!.toString();
    expect(nf).toMatch(/<q n="SetPoint" [^>]*ctr="true"/);
    expect(nf).toMatch(/<b n="Door" [^>]*\/>/);
    expect(nf).not.toMatch(/<b n="Door" [^>]*ctr/);
    const messages: Element[] = [];
    const off = w.monitorSession.onMessage((m) => messages.push(m));
    await raw(w, xml('req', { xmlns: 'urn:xmpp:iot:sensordata', seqnr: '8', momentary: 'true' }));
    await waitFor(() => messages.length === 1, { turns: 100 });
    off();
    const legacy = findChild(messages[0]!, 'fields')!.toString();
    expect(legacy).toMatch(/<numeric name="SetPoint" [^>]*writable="true"/);
    expect(legacy).not.toMatch(/<numeric name="Temperature" [^>]*writable/);
    // Read back typed, in both dialects: only the parameters' fields (SetPoint, Mode) are writable.
    for (const dialect of ['nf', 'legacy'] as const) {
      const r = await w.client.read(AGENT, { dialect });
      const writable = r.fields.filter((f) => f.writable).map((f) => f.name);
      expect(writable.sort()).toEqual(['Mode', 'SetPoint']);
    }
  });

  it('answers the urn:nfi and urn:ieee spellings under the same namespace', async () => {
    for (const ns of ['urn:nfi:iot:sd:1.0', 'urn:ieee:iot:sd:1.0']) {
      const res = await raw(w, xml('req', { xmlns: ns, id: 'x', m: 'true' }));
      expect(findChild(res, 'resp')?.attrs['xmlns']).toBe(ns);
    }
  });

  it('answers legacy with accepted, then fields messages and done', async () => {
    const messages: Element[] = [];
    const off = w.monitorSession.onMessage((m) => messages.push(m));
    const res = await raw(w, xml('req', { xmlns: 'urn:xmpp:iot:sensordata', seqnr: '7', momentary: 'true' }));
    expect(findChild(res, 'accepted')?.attrs).toMatchObject({ xmlns: 'urn:xmpp:iot:sensordata', seqnr: '7' });
    await waitFor(() => messages.length === 1, { turns: 100 });
    off();
    const fields = findChild(messages[0]!, 'fields')!;
    expect(fields.attrs).toMatchObject({ seqnr: '7', done: 'true' });
    expect(fields.toString()).toContain(
      `<numeric name="Temperature" momentary="true" automaticReadout="true" value="21.5" unit="°C"/>`,
    );
    const r = await w.client.read(AGENT, { dialect: 'legacy' });
    expect(r.fields).toHaveLength(4);
  });

  it('splits a large readout over several messages, the last one complete', async () => {
    for (let i = 0; i < 40; i++) {
      w.clock.advance(1000);
      w.agent.set('Temperature', 20 + i / 10);
    }
    const messages: Element[] = [];
    const off = w.monitorSession.onMessage((m) => messages.push(m));
    const r = await w.client.read(AGENT, { historical: { from: T0, to: T0 + 100_000 }, fields: ['Temperature'] });
    off();
    expect(r.fields).toHaveLength(33); // historyPerField (32) past values + the current one
    expect(messages.map((m) => findChild(m, 'resp')?.attrs['more'])).toEqual(['true', 'true', 'true', undefined]);
    expect(r.fields.every((f) => f.categories.includes('historical'))).toBe(true);
    const legacy = await w.client.read(AGENT, { historical: {}, dialect: 'legacy' });
    expect(legacy.fields.length).toBeGreaterThan(32);
  });

  it('narrows fields through the provisioning hook, refusing when it says no', async () => {
    for (const c of w.closers) await c();
    const asked: (readonly string[] | undefined)[] = [];
    w = await world({
      owners: ['monitor@iot.test'],
      provisioning: {
        canRead: (_jid, fields) => {
          asked.push(fields);
          return fields?.includes('Door') ? false : { fields: ['Temperature'] };
        },
      },
    });
    await befriend(w);
    const r = await w.client.read(AGENT);
    expect(r.fields.map((f) => f.name)).toEqual(['Temperature']);
    const err = await w.client.read(AGENT, { fields: ['Door'] }).catch((e: unknown) => e);
    expect((err as StanzaError).condition).toBe('forbidden');
    expect(asked).toEqual([undefined, ['Door']]);
  });
});

describe('IotAgent: control', () => {
  beforeEach(async () => {
    w = await world({ owners: ['monitor@iot.test'] });
    await befriend(w);
  });

  it('sets parameters by IQ in both dialects and reports the new field value', async () => {
    const seen: string[] = [];
    w.agent.onControl((c) => seen.push(`${c.name}=${String(c.value)} via ${c.context.via}/${c.context.dialect}`));
    await w.client.control(AGENT, { SetPoint: 22.5, Mode: 'manual' });
    expect(w.agent.parameter('SetPoint')).toBe(22.5);
    expect(w.agent.value('SetPoint')?.value).toBe(22.5);
    const res = await raw(
      w,
      xml('set', { xmlns: 'urn:xmpp:iot:control' }, xml('boolean', { name: 'Output', value: 'true' })),
      'set',
    );
    expect(findChild(res, 'setResponse')?.attrs['xmlns']).toBe('urn:xmpp:iot:control');
    expect(w.agent.parameter('Output')).toBe(true);
    expect(seen).toEqual(['SetPoint=22.5 via iq/nf', 'Mode=manual via iq/nf', 'Output=true via iq/legacy']);
  });

  it('refuses bad values, unknown parameters and wrong types with a paramError, applying nothing', async () => {
    const cases: [Record<string, number | boolean | string>, string, string][] = [
      [{ SetPoint: 99 }, 'bad-request', 'Value not valid.'],
      [{ Nope: 1 }, 'item-not-found', 'Parameter not found.'],
      [{ Output: 'yes' }, 'bad-request', 'Invalid parameter type.'],
      [{ Mode: 'turbo' }, 'bad-request', 'Value not valid.'],
      [{ SetPoint: 21, Output: 7 }, 'bad-request', 'Invalid parameter type.'],
    ];
    for (const [values, condition, text] of cases) {
      const err = (await w.client.control(AGENT, values).catch((e: unknown) => e)) as StanzaError;
      expect(err).toBeInstanceOf(StanzaError);
      expect(err.condition).toBe(condition);
      expect(err.application?.attrs['xmlns']).toBe('urn:nf:iot:ctr:1.0');
      expect(err.application?.getText()).toBe(text);
    }
    expect(w.agent.parameter('SetPoint')).toBe(20); // all or nothing
    const legacy = (await w.client
      .control(AGENT, { Nope: true }, { dialect: 'legacy' })
      .catch((e: unknown) => e)) as StanzaError;
    expect(legacy.application?.attrs).toMatchObject({ xmlns: 'urn:xmpp:iot:control', var: 'Nope' });
  });

  it('applies a control message without answering, and ignores one from a stranger', async () => {
    await w.client.control(AGENT, { Output: true }, { asMessage: true });
    await waitFor(() => w.agent.parameter('Output') === true, { turns: 100 });
    const stranger = new Session({ transport: w.hub.connect('stranger@iot.test/x') });
    await stranger.start();
    await stranger.send(
      xml('message', { to: AGENT }, xml('set', { xmlns: 'urn:nf:iot:ctr:1.0' }, xml('b', { n: 'Output', v: 'false' }))),
    );
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(w.agent.parameter('Output')).toBe(true);
    await stranger.close();
  });
});

describe('IotAgent: hostile input', () => {
  beforeEach(async () => {
    w = await world({ owners: ['monitor@iot.test'], subscriptionsPerPeer: 2 });
    await befriend(w);
  });

  it('answers bad-request for huge field lists and bad values, ignores unknown elements', async () => {
    const many = xml('req', { xmlns: 'urn:nf:iot:sd:1.0', id: 'big', m: 'true' });
    for (let i = 0; i < 10_000; i++) many.cnode(xml('f', { n: `f${i}` }));
    const e1 = (await raw(w, many).catch((e: unknown) => e)) as StanzaError;
    expect(e1.condition).toBe('bad-request');
    const bad = xml('subscribe', { xmlns: 'urn:nf:iot:events:1.0', id: 's', minInt: 'soon' });
    expect(((await raw(w, bad).catch((e: unknown) => e)) as StanzaError).condition).toBe('bad-request');
    const noId = xml('req', { xmlns: 'urn:nf:iot:sd:1.0', m: 'true' });
    expect(((await raw(w, noId).catch((e: unknown) => e)) as StanzaError).condition).toBe('bad-request');
    const weird = xml(
      'req',
      { xmlns: 'urn:nf:iot:sd:1.0', id: 'w', m: 'true' },
      xml('unknown', { a: 'b' }, xml('deeper')),
    );
    expect(findChild(await raw(w, weird), 'resp')).toBeDefined();
    const form = xml('set', { xmlns: 'urn:nf:iot:ctr:1.0' }, xml('x', { xmlns: 'jabber:x:data' }));
    expect(((await raw(w, form, 'set').catch((e: unknown) => e)) as StanzaError).condition).toBe(
      'feature-not-implemented',
    );
    const unknownNode = xml('req', { xmlns: 'urn:nf:iot:sd:1.0', id: 'n', m: 'true' }, xml('nd', { id: 'ghost' }));
    expect(((await raw(w, unknownNode).catch((e: unknown) => e)) as StanzaError).condition).toBe('item-not-found');
  });

  it('caps observe subscriptions per peer with resource-constraint', async () => {
    await w.client.observe(AGENT);
    await w.client.observe(AGENT);
    const err = (await w.client.observe(AGENT).catch((e: unknown) => e)) as StanzaError;
    expect(err.condition).toBe('resource-constraint');
    expect(w.agent.subscriptionCount).toBe(2);
    expect(w.client.observations).toBe(2);
  });
});

describe('IotAgent: lifecycle', () => {
  it('is a session unit: the session starts it and closes it', async () => {
    w = await world({ owners: ['monitor@iot.test'] });
    const session = new Session({ transport: w.hub.connect('unit@iot.test/d') });
    w.server.connected('unit@iot.test/d');
    const agent = new IotAgent({ session, trust: 'open', fields: [{ name: 'T', kind: 'int', initial: 1 }] });
    session.add(agent);
    await session.start();
    expect(agent.status).toBe('ready');
    expect((await w.client.read('unit@iot.test/d')).fields[0]?.value).toBe(1);
    await session.drain();
    expect(agent.status).toBe('draining');
    expect(((await w.client.read('unit@iot.test/d').catch((e: unknown) => e)) as StanzaError).condition).toBe(
      'service-unavailable',
    );
    await session.close();
    expect(agent.status).toBe('closed');
  });

  it('tells owners about the first queued requests only', async () => {
    w = await world({ owners: ['owner@iot.test', 'boss@iot.test'], pendingRequests: 100 });
    for (let i = 0; i < 15; i++)
      await w.server.session.send(xml('presence', { type: 'subscribe', to: AGENT, from: `s${i}@iot.test` }));
    await waitFor(() => w.agent.pendingRequests().length === 15, { turns: 200 });
    await waitFor(() => w.server.messages.length === 20, { turns: 100 });
    const toOwner = w.server.messages.filter((m) => m.attrs['to'] === 'owner@iot.test');
    expect(toOwner).toHaveLength(10);
    expect(findChild(toOwner[0]!, 'body')?.getText()).toContain('s0@iot.test asks to read agent@iot.test');
  });
});
