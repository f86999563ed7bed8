import { describe, expect, it } from 'vitest';
import {
  ConflictError,
  IqCaller,
  IqRouter,
  ServiceUnavailableError,
  StanzaError,
  TimeoutError,
  ConnectionError,
  QueueFullError,
  ClosedError,
  resultReply,
  waitForStatus,
  xml,
  type Element,
} from '@xmppbus/core';
import { memoryHub } from '@xmppbus/transport-memory';

function nextStanza(t: { onStanza(l: (s: Element) => void): () => void }): Promise<Element> {
  return new Promise((resolve) => {
    const off = t.onStanza((s) => {
      off();
      resolve(s);
    });
  });
}

describe('MemoryHub routing', () => {
  it('routes by exact JID, by component domain and by bare JID to a client session, stamping from', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test');
    const b = hub.connect('svc-b.test');
    const alice = hub.connect('alice@test/phone');

    const got1 = nextStanza(b);
    await a.send(xml('message', { to: 'svc-b.test' }, xml('body', null, 'hi')));
    expect((await got1).attrs['from']).toBe('svc-a.test');

    const got2 = nextStanza(b);
    await a.send(xml('message', { to: 'worker1@svc-b.test/r1' }));
    expect((await got2).attrs['to']).toBe('worker1@svc-b.test/r1');

    const got3 = nextStanza(alice);
    await b.send(xml('message', { to: 'alice@test', from: 'x@svc-b.test' }));
    expect((await got3).attrs['from']).toBe('x@svc-b.test');
  });

  it('bounces service-unavailable for an unknown JID, keeping the id', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test');
    const got = nextStanza(a);
    await a.send(xml('iq', { to: 'nobody.test', type: 'get', id: 'q1' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    const err = await got;
    expect(err.attrs['type']).toBe('error');
    expect(err.attrs['id']).toBe('q1');
    expect(StanzaError.fromElement(err)).toBeInstanceOf(ServiceUnavailableError);
  });

  it('refuses a duplicate address in conflict mode and spreads in spread mode', async () => {
    const strict = memoryHub();
    strict.connect('svc.test');
    expect(() => strict.connect('svc.test')).toThrow(ConflictError);

    const spread = memoryHub({ duplicates: 'spread' });
    const x = spread.connect('svc.test');
    const y = spread.connect('svc.test');
    const c = spread.connect('caller.test');
    let nx = 0;
    let ny = 0;
    x.onStanza(() => nx++);
    y.onStanza(() => ny++);
    for (let i = 0; i < 10; i++) await c.send(xml('message', { to: 'svc.test' }));
    await spread.connect('probe.test').send(xml('message', { to: 'caller.test' }));
    await new Promise<void>((r) => queueMicrotask(r));
    expect(nx + ny).toBe(10);
    expect(nx).toBe(5);
  });

  it('queues sends while disconnected (bounded) and flushes them on reconnect', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test', { maxQueue: 2 });
    const b = hub.connect('svc-b.test');
    hub.disconnect('svc-a.test');
    expect(a.status).toBe('reconnecting');
    const p1 = a.send(xml('message', { to: 'svc-b.test', id: '1' }));
    const p2 = a.send(xml('message', { to: 'svc-b.test', id: '2' }));
    await expect(a.send(xml('message', { to: 'svc-b.test', id: '3' }))).rejects.toBeInstanceOf(QueueFullError);
    const ids: string[] = [];
    const both = new Promise<void>((resolve) =>
      b.onStanza((s) => {
        ids.push(s.attrs['id'] ?? '');
        if (ids.length === 2) resolve();
      }),
    );
    hub.reconnect('svc-a.test');
    await Promise.all([p1, p2, both]);
    expect(ids).toEqual(['1', '2']);
    await a.drain();
  });

  it('rejects queued sends with ClosedError on close, and sends after close', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test');
    hub.disconnect('svc-a.test');
    const queued = a.send(xml('message', { to: 'x.test' }));
    await a.close();
    await expect(queued).rejects.toBeInstanceOf(ClosedError);
    await expect(a.send(xml('message', { to: 'x.test' }))).rejects.toBeInstanceOf(ClosedError);
  });
});

describe('IqRouter and IqCaller over the hub', () => {
  it('dispatches by namespace and local name, answers ping, disco#info and unknown payloads', async () => {
    const hub = memoryHub();
    const server = hub.connect('svc.test');
    const client = hub.connect('caller.test');
    IqRouter.for(server).handle('urn:example:1', 'echo', (iq, payload) => {
      void server.send(resultReply(iq, xml('echo', { xmlns: 'urn:example:1' }, payload.getText())));
    });
    const caller = IqCaller.for(client);
    const res = await caller.request(
      xml('iq', { type: 'get', to: 'svc.test' }, xml('echo', { xmlns: 'urn:example:1' }, 'x')),
    );
    expect(res.getChild('echo')?.getText()).toBe('x');

    const pong = await caller.request(
      xml('iq', { type: 'get', to: 'svc.test' }, xml('ping', { xmlns: 'urn:xmpp:ping' })),
    );
    expect(pong.attrs['type']).toBe('result');

    const info = await caller.request(
      xml('iq', { type: 'get', to: 'svc.test' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })),
    );
    const features = info
      .getChild('query')!
      .getChildren('feature')
      .map((f) => f.attrs['var']);
    expect(features).toContain('urn:xmpp:ping');

    await expect(
      caller.request(xml('iq', { type: 'get', to: 'svc.test' }, xml('nope', { xmlns: 'urn:example:1' }))),
    ).rejects.toBeInstanceOf(ServiceUnavailableError);
    expect(IqRouter.for(server).unhandled).toBe(1);
    expect(caller.pending).toBe(0);
  });

  it('ignores a reply from the wrong sender (spoof) and times out, leaving no pending entry', async () => {
    const hub = memoryHub();
    const server = hub.connect('svc.test');
    const mallory = hub.connect('mallory.test');
    const client = hub.connect('caller.test');
    IqRouter.for(server).handle('urn:example:1', 'slow', (iq) => {
      // Mallory answers with the right id; the real service never does.
      const forged = xml('iq', { ...iq.attrs, to: 'svc.test' });
      void mallory.send(resultReply(forged));
      void mallory.send(xml('iq', { type: 'result', id: iq.attrs['id'], to: 'caller.test' }));
    });
    const caller = IqCaller.for(client);
    await expect(
      caller.request(xml('iq', { type: 'get', to: 'svc.test' }, xml('slow', { xmlns: 'urn:example:1' })), {
        timeout: 50,
      }),
    ).rejects.toBeInstanceOf(TimeoutError);
    expect(caller.pending).toBe(0);
  });

  it('fails pending calls fast when the link drops, and honours abort', async () => {
    const hub = memoryHub();
    const server = hub.connect('svc.test');
    const client = hub.connect('caller.test');
    IqRouter.for(server).handle('urn:example:1', 'hang', () => undefined);
    const caller = IqCaller.for(client);
    const call = caller.request(xml('iq', { type: 'set', to: 'svc.test' }, xml('hang', { xmlns: 'urn:example:1' })));
    await new Promise<void>((r) => setImmediate(r));
    expect(caller.pending).toBe(1);
    hub.disconnect('caller.test');
    await expect(call).rejects.toBeInstanceOf(ConnectionError);
    expect(caller.pending).toBe(0);

    hub.reconnect('caller.test');
    await waitForStatus(client, 'online');
    const ac = new AbortController();
    const aborted = caller.request(
      xml('iq', { type: 'set', to: 'svc.test' }, xml('hang', { xmlns: 'urn:example:1' })),
      {
        signal: ac.signal,
      },
    );
    ac.abort(new TimeoutError('gave up'));
    await expect(aborted).rejects.toBeInstanceOf(TimeoutError);
    expect(caller.pending).toBe(0);
  });
});
