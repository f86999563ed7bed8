/**
 * Interop of @xmppbus/messaging through real Prosody and ejabberd: the other side is played with
 * hand-written stanzas from docs/protocol.md (section 5), including the deployed
 * `urn:nf:iot:qos:1.0` namespace and a `received` element without a namespace; plus a c2s
 * recipient whose server offline storage (XEP-0160) holds a message and stamps it.
 */
import {
  NS_DISCO_INFO,
  Session,
  TimeoutError,
  parseXml,
  xml,
  type Element,
  type IqCaller,
  type Transport,
} from '@xmppbus/core';
import { Messenger, type MessageContext } from '@xmppbus/messaging';
import { describeServers, type XmppServer } from '@xmppbus/testing';
import { clientTransport } from '@xmppbus/transport-client';
import { componentTransport } from '@xmppbus/transport-component';
import { afterEach, expect, it } from 'vitest';
import { Tick } from './fixtures/messaging-contracts.js';

const DEADLINE = 30_000;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function component(srv: XmppServer, domain: string): Promise<Transport> {
  const t = await componentTransport({
    service: srv.componentService(),
    domain,
    password: srv.componentSecret,
    timeout: DEADLINE,
  });
  cleanups.push(() => t.close());
  return t;
}

function messenger(transport: Transport): Messenger {
  const session = new Session({ transport });
  const m = new Messenger({ session, attemptTimeout: 5_000, retry: { initialDelay: 50, maxDelay: 500 } });
  m.start().catch(() => undefined); // tests that need it ready await start() again
  cleanups.push(() => m.close());
  return m;
}

/** A raw IQ caller on `t` (a session with no units). */
async function callerOn(t: Transport): Promise<IqCaller> {
  const session = new Session({ transport: t });
  await session.start();
  return session.caller;
}

function nextStanza(t: Transport, pred: (el: Element) => boolean): Promise<Element> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new TimeoutError('no matching stanza'));
    }, DEADLINE);
    const off = t.onStanza((el) => {
      if (!pred(el)) return;
      clearTimeout(timer);
      off();
      resolve(el);
    });
  });
}

describeServers('messaging interop', (server, kind) => {
  it(`[${kind}] a hand-written urn:nf:iot:qos:1.0 peer delivers exactly once (assured → received → deliver)`, async () => {
    const srv = server();
    const [raw, tg] = await Promise.all([component(srv, 'svc-h.localhost'), component(srv, 'svc-g.localhost')]);
    const m = messenger(tg);
    const seen: { i: number; meta: MessageContext }[] = [];
    m.handle(Tick, (v, meta) => void seen.push({ i: v.i, meta }));
    await m.start();
    const caller = await callerOn(raw);
    // Exactly as in docs/protocol.md: deployed namespace, inner message in jabber:client with a spoofed from.
    const received = await caller.request(
      parseXml(
        `<iq type='set' id='nf-1' from='svc-h.localhost' to='svc-g.localhost'>
           <assured xmlns='urn:nf:iot:qos:1.0' msgId='A7'>
             <message xmlns='jabber:client' from='mallory@evil.example' to='someone@else.example'>
               <tick xmlns='urn:test:messaging:faults:1'><i>42</i></tick>
             </message>
           </assured>
         </iq>`,
      ),
      { timeout: DEADLINE },
    );
    const r = received.getChild('received');
    expect(r?.attrs).toMatchObject({ xmlns: 'urn:nf:iot:qos:1.0', msgId: 'A7' });
    expect(seen).toHaveLength(0); // stored, not yet processed
    const deliver = `<iq type='set' id='nf-2' from='svc-h.localhost' to='svc-g.localhost'><deliver xmlns='urn:nf:iot:qos:1.0' msgId='A7'/></iq>`;
    await caller.request(parseXml(deliver), { timeout: DEADLINE });
    // A repeated deliver (lost result) is answered without a second processing.
    await caller.request(parseXml(deliver.replace("id='nf-2'", "id='nf-3'")), { timeout: DEADLINE });
    expect(seen.map((s) => [s.i, s.meta.from, s.meta.to, s.meta.qos, s.meta.id])).toEqual([
      [42, 'svc-h.localhost', 'svc-g.localhost', 2, 'A7'],
    ]);
    // Acknowledged (QoS 1) with an inner message in no namespace.
    await caller.request(
      parseXml(
        `<iq type='set' id='nf-4' from='svc-h.localhost' to='svc-g.localhost'><acknowledged xmlns='urn:ieee:iot:qos:1.0'>` +
          `<message><tick xmlns='urn:test:messaging:faults:1'><i>43</i></tick></message></acknowledged></iq>`,
      ),
      { timeout: DEADLINE },
    );
    expect(seen.map((s) => s.i)).toEqual([42, 43]);
  });

  it(`[${kind}] our sender talks to a hand-written peer that answers <received/> without a namespace`, async () => {
    const srv = server();
    const [ti, raw] = await Promise.all([component(srv, 'svc-i.localhost'), component(srv, 'svc-j.localhost')]);
    const got: Element[] = [];
    raw.onStanza((s) => {
      if (s.name !== 'iq' || s.attrs['type'] !== 'set') return;
      got.push(s);
      const env = s.children.find((c): c is Element => typeof c !== 'string')!;
      const reply = xml('iq', { type: 'result', id: s.attrs['id'], from: s.attrs['to'], to: s.attrs['from'] });
      if (env.name === 'assured') reply.children.push(xml('received', { msgId: env.attrs['msgId'] }));
      void raw.send(reply);
    });
    const m = messenger(ti);
    await m.send(Tick, 'svc-j.localhost', { i: 1 }, { qos: 1, id: 'ack-1' });
    await m.send(Tick, 'svc-j.localhost', { i: 2 }, { qos: 2, id: 'as-1' });
    await m.flush({ timeout: DEADLINE });
    expect(got.map((s) => [s.attrs['id'], s.children.find((c): c is Element => typeof c !== 'string')!.name])).toEqual([
      ['ack-1', 'acknowledged'],
      ['as-1', 'assured'],
      ['as-1.d', 'deliver'],
    ]);
    const ack = got[0]!.getChild('acknowledged')!;
    expect(ack.attrs['xmlns']).toBe('urn:xmpp:qos');
    expect(ack.getChild('message')?.getChild('tick', 'urn:test:messaging:faults:1')?.getChildText('i')).toBe('1');
    expect(got[1]!.getChild('assured')?.attrs['msgId']).toBe('as-1');
    expect(m.counters).toMatchObject({ completed: 2, queued: 0, deadLettered: 0 });
  });

  it(`[${kind}] a hand-written peer without the batch feature gets one envelope per IQ while many are in flight`, async () => {
    const srv = server();
    const [ti, raw] = await Promise.all([component(srv, 'svc-m.localhost'), component(srv, 'svc-n.localhost')]);
    const sets: Element[] = [];
    let discos = 0;
    raw.onStanza((s) => {
      if (s.name !== 'iq') return;
      const env = s.children.find((c): c is Element => typeof c !== 'string');
      if (!env) return;
      const reply = xml('iq', { type: 'result', id: s.attrs['id'], from: s.attrs['to'], to: s.attrs['from'] });
      if (s.attrs['type'] === 'get' && env.name === 'query' && env.attrs['xmlns'] === NS_DISCO_INFO) {
        // A third-party QoS implementation: it knows urn:xmpp:qos, not our batch extension.
        discos++;
        reply.children.push(
          xml(
            'query',
            { xmlns: NS_DISCO_INFO },
            xml('identity', { category: 'component', type: 'generic' }),
            xml('feature', { var: NS_DISCO_INFO }),
            xml('feature', { var: 'urn:xmpp:qos' }),
          ),
        );
        void raw.send(reply);
        return;
      }
      if (s.attrs['type'] !== 'set') return;
      sets.push(s);
      if (env.name === 'assured') reply.children.push(xml('received', { msgId: env.attrs['msgId'] }));
      void raw.send(reply);
    });
    const m = messenger(ti);
    await Promise.all([
      ...Array.from({ length: 40 }, (_, i) => m.send(Tick, 'svc-n.localhost', { i }, { qos: 1, id: `ack-${i}` })),
      ...Array.from({ length: 40 }, (_, i) => m.send(Tick, 'svc-n.localhost', { i }, { qos: 2, id: `as-${i}` })),
    ]);
    await m.flush({ timeout: DEADLINE });
    expect(discos).toBe(1); // asked once, the answer is cached
    const names = sets.map((s) => s.children.find((c): c is Element => typeof c !== 'string')!.name);
    expect(names).not.toContain('batch');
    expect(names.filter((n) => n === 'acknowledged')).toHaveLength(40);
    expect(names.filter((n) => n === 'assured')).toHaveLength(40);
    expect(names.filter((n) => n === 'deliver')).toHaveLength(40);
    // One message per IQ, the single form's ids, each once, in send order per level.
    expect(sets.filter((s) => s.getChild('acknowledged')).map((s) => s.attrs['id'])).toEqual(
      Array.from({ length: 40 }, (_, i) => `ack-${i}`),
    );
    expect(m.counters).toMatchObject({ completed: 80, queued: 0, deadLettered: 0, retried: 0 });
  });

  it(`[${kind}] two messengers batch through the server: several messages per IQ, in order, exactly once`, async () => {
    const srv = server();
    const [ta, tb] = await Promise.all([component(srv, 'svc-o.localhost'), component(srv, 'svc-p.localhost')]);
    let batches = 0;
    let items = 0;
    tb.onStanza((s) => {
      const b = s.name === 'iq' ? s.getChild('batch', 'urn:xmppbus:qos:batch:1') : undefined;
      if (!b) return;
      batches++;
      items += b.children.filter((c) => typeof c !== 'string').length;
    });
    const sender = messenger(ta);
    const receiver = messenger(tb);
    const seen: number[] = [];
    receiver.handle(Tick, (v) => void seen.push(v.i));
    await receiver.start();
    for (const qos of [1, 2] as const) {
      seen.length = 0;
      await Promise.all(Array.from({ length: 500 }, (_, i) => sender.send(Tick, 'svc-p.localhost', { i }, { qos })));
      await sender.flush({ timeout: DEADLINE });
      expect(seen).toEqual(Array.from({ length: 500 }, (_, i) => i));
    }
    expect(batches).toBeGreaterThan(0);
    expect(items / batches).toBeGreaterThan(2);
    expect(receiver.pendingInbound.size).toBe(0);
    expect(sender.counters).toMatchObject({ queued: 0, deadLettered: 0 });
  });

  it(`[${kind}] a c2s recipient gets a message from the server's offline storage with its <delay/> stamp`, async () => {
    const srv = server();
    const user = `off${process.pid}x${Date.now() % 100000}`;
    await srv.registerUser(user, 'pw');
    const tk = await component(srv, 'svc-k.localhost');
    const sender = messenger(tk);
    const sentAt = Date.now();
    // QoS 0 with the XEP-0334 `store` hint: the user is offline, the server stores it.
    await sender.send(Tick, `${user}@localhost`, { i: 7 }, { qos: 0, store: true });
    // Another component message as a barrier: once it is routed, the first one is stored too.
    const probe = await component(srv, 'svc-l.localhost');
    const echo = nextStanza(probe, (s) => s.name === 'message');
    await tk.send(xml('message', { from: 'svc-k.localhost', to: 'svc-l.localhost' }, xml('body', {}, 'barrier')));
    await echo;

    const agent = await clientTransport({
      service: srv.c2sService(),
      domain: srv.domain,
      username: user,
      password: 'pw',
      mechanism: 'PLAIN',
      allowPlainWithoutTls: true,
      initialPresence: false, // register the handler before the offline messages flush
      timeout: DEADLINE,
    });
    cleanups.push(() => agent.close());
    const m = messenger(agent);
    const seen: MessageContext[] = [];
    const arrived = new Promise<void>((resolve) => {
      m.handle(Tick, (_v, meta) => {
        seen.push(meta);
        resolve();
      });
    });
    await agent.send(xml('presence'));
    await arrived;
    const meta = seen[0]!;
    expect(meta.qos).toBe(0);
    expect(meta.from).toBe('svc-k.localhost');
    expect(meta.delayedFrom).toBeInstanceOf(Date);
    expect(Math.abs(meta.delayedFrom!.getTime() - sentAt)).toBeLessThan(5_000);
    if (kind === 'ejabberd') expect(meta.delayReason).toBe('Offline storage');
  });
});
