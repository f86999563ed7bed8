import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AccessPolicy,
  ConflictError,
  Session,
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
  type Transport,
} from '@xmppbus/core';
import { memoryHub } from '@xmppbus/transport-memory';

const sessions = new WeakMap<Transport, Session>();
/** One started session per transport under test. */
async function sessionOf(transport: Transport, access?: AccessPolicy): Promise<Session> {
  let s = sessions.get(transport);
  if (!s) {
    s = new Session({ transport, ...(access ? { access } : {}) });
    sessions.set(transport, s);
    await s.start();
  }
  return s;
}

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

  it('bounces wait/remote-server-timeout (as Prosody) for an unknown JID, keeping the id', async () => {
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
    (await sessionOf(server)).router.handle('urn:example:1', 'echo', (iq, payload) => {
      void server.send(resultReply(iq, xml('echo', { xmlns: 'urn:example:1' }, payload.getText())));
    });
    const caller = (await sessionOf(client)).caller;
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

    // The callee policy: an unknown namespace is service-unavailable, an unknown element of a
    // served namespace is feature-not-implemented.
    await expect(
      caller.request(xml('iq', { type: 'get', to: 'svc.test' }, xml('x', { xmlns: 'urn:example:unknown' }))),
    ).rejects.toBeInstanceOf(ServiceUnavailableError);
    await expect(
      caller.request(xml('iq', { type: 'get', to: 'svc.test' }, xml('nope', { xmlns: 'urn:example:1' }))),
    ).rejects.toMatchObject({ condition: 'feature-not-implemented', type: 'cancel' });
    expect((await sessionOf(server)).router.unhandled).toBe(2);
    expect(caller.pending).toBe(0);
  });

  it('ignores a reply from the wrong sender (spoof) and times out, leaving no pending entry', async () => {
    const hub = memoryHub();
    const server = hub.connect('svc.test');
    const mallory = hub.connect('mallory.test');
    const client = hub.connect('caller.test');
    (await sessionOf(server)).router.handle('urn:example:1', 'slow', (iq) => {
      // Mallory answers with the right id; the real service never does.
      const forged = xml('iq', { ...iq.attrs, to: 'svc.test' });
      void mallory.send(resultReply(forged));
      void mallory.send(xml('iq', { type: 'result', id: iq.attrs['id'], to: 'caller.test' }));
    });
    const caller = (await sessionOf(client)).caller;
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
    (await sessionOf(server)).router.handle('urn:example:1', 'hang', () => undefined);
    const caller = (await sessionOf(client)).caller;
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

/** mulberry32: a tiny seeded PRNG so drop injection is reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('MemoryHub fault injection', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('delays every delivery by latencyMs (and the latency can be changed at run time)', async () => {
    vi.useFakeTimers();
    const hub = memoryHub({ latencyMs: 50 });
    const a = hub.connect('svc-a.test');
    const b = hub.connect('svc-b.test');
    const got: string[] = [];
    b.onStanza((s) => got.push(s.attrs['id'] ?? ''));
    await a.send(xml('message', { to: 'svc-b.test', id: '1' })); // send resolves at once: the bytes are "on the wire"
    await vi.advanceTimersByTimeAsync(49);
    expect(got).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(got).toEqual(['1']);

    hub.latencyMs = 0;
    await a.send(xml('message', { to: 'svc-b.test', id: '2' }));
    await vi.advanceTimersByTimeAsync(0);
    expect(got).toEqual(['1', '2']);
  });

  it('delays bounces too: an IQ to an unknown JID fails after the latency, not before', async () => {
    vi.useFakeTimers();
    const hub = memoryHub({ latencyMs: 100 });
    const caller = (await sessionOf(hub.connect('caller.test'))).caller;
    let settled = false;
    const call = caller
      .request(xml('iq', { type: 'get', to: 'gone.test' }, xml('ping', { xmlns: 'urn:xmpp:ping' })))
      .finally(() => (settled = true));
    const check = expect(call).rejects.toBeInstanceOf(ServiceUnavailableError);
    await vi.advanceTimersByTimeAsync(99);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await check;
    expect(caller.pending).toBe(0);
  });

  it('drops stanzas at dropRate with a seeded random source, reproducibly', async () => {
    async function run(seed: number): Promise<string[]> {
      const hub = memoryHub({ dropRate: 0.3, random: seeded(seed) });
      const a = hub.connect('svc-a.test');
      const b = hub.connect('svc-b.test');
      const got: string[] = [];
      b.onStanza((s) => got.push(s.attrs['id'] ?? ''));
      for (let i = 0; i < 1_000; i++) await a.send(xml('message', { to: 'svc-b.test', id: String(i) }));
      await new Promise<void>((r) => setImmediate(r));
      expect(hub.routed).toBe(1_000);
      expect(got.length).toBe(1_000 - hub.dropped);
      return got;
    }
    const first = await run(42);
    const again = await run(42);
    const other = await run(7);
    expect(first.length).toBeGreaterThan(620); // ~700 expected
    expect(first.length).toBeLessThan(780);
    expect(again).toEqual(first); // same seed → same losses
    expect(other).not.toEqual(first);
    // What does arrive keeps its order.
    expect(first.map(Number)).toEqual([...first.map(Number)].sort((x, y) => x - y));
  });

  it('a dropped IQ leaves the caller to its own timeout (no bounce), with no pending entry left', async () => {
    const hub = memoryHub({ dropRate: 0.5, random: () => 0 }); // always below: drop everything
    const server = hub.connect('svc.test');
    let handled = 0;
    (await sessionOf(server)).router.handle('urn:example:1', 'x', () => void handled++);
    const caller = (await sessionOf(hub.connect('caller.test'))).caller;
    await expect(
      caller.request(xml('iq', { type: 'get', to: 'svc.test' }, xml('x', { xmlns: 'urn:example:1' })), {
        timeout: 20,
      }),
    ).rejects.toBeInstanceOf(TimeoutError);
    expect(handled).toBe(0);
    expect(hub.dropped).toBe(1);
    expect(caller.pending).toBe(0);
  });

  it('stanzas to a disconnected endpoint bounce remote-server-timeout; after reconnect they arrive', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test');
    const b = hub.connect('svc-b.test');
    const statuses: string[] = [];
    b.onStatus((s, err) => statuses.push(`${s}:${err ? err.name : ''}`));
    hub.disconnect('svc-b.test');
    const bounced = nextStanza(a);
    await a.send(xml('message', { to: 'svc-b.test', id: 'lost' }, xml('body', null, 'x')));
    const err = await bounced;
    expect(err.attrs['type']).toBe('error');
    expect(err.attrs['from']).toBe('svc-b.test');
    expect(err.attrs['id']).toBe('lost');
    expect(StanzaError.fromElement(err).condition).toBe('remote-server-timeout');

    hub.reconnect('svc-b.test');
    const got = nextStanza(b);
    await a.send(xml('message', { to: 'svc-b.test', id: 'back' }));
    expect((await got).attrs['id']).toBe('back');
    expect(statuses).toEqual(['reconnecting:ConnectionError', 'online:']);
  });

  it('bounces a stanza above maxStanzaBytes with policy-violation; never bounces an error or presence', async () => {
    const hub = memoryHub({ maxStanzaBytes: 200 });
    const a = hub.connect('svc-a.test');
    const b = hub.connect('svc-b.test');
    expect(a.maxStanzaBytes).toBe(200);
    const bounced = nextStanza(a);
    await a.send(xml('message', { to: 'svc-b.test' }, xml('body', null, 'x'.repeat(300))));
    expect(StanzaError.fromElement(await bounced).condition).toBe('policy-violation');

    let atA = 0;
    a.onStanza(() => atA++);
    await a.send(xml('presence', { to: 'gone.test' }));
    await a.send(xml('message', { to: 'gone.test', type: 'error' }));
    await b.send(xml('message', { to: 'svc-a.test', id: 'marker' }));
    await new Promise<void>((r) => setImmediate(r));
    expect(atA).toBe(1); // only the marker: no error loops, no presence bounces
  });
});

describe('MemoryHub component ↔ client-like exchange', () => {
  it('a client session and a component exchange messages; from is stamped like a server (no spoofing)', async () => {
    const hub = memoryHub();
    const svc = hub.connect('svc.test');
    const alice = hub.connect('alice@test/agent1');

    const atSvc = nextStanza(svc);
    // A client may not claim another identity: the hub stamps its own full JID.
    await alice.send(xml('message', { to: 'svc.test', from: 'bob@test/x', type: 'chat' }, xml('body', null, 'hi')));
    const m1 = await atSvc;
    expect(m1.attrs['from']).toBe('alice@test/agent1');
    expect(m1.getChildText('body')).toBe('hi');

    // A component may speak for any JID of its own domain, but not for another domain.
    const atAlice = nextStanza(alice);
    await svc.send(xml('message', { to: 'alice@test/agent1', from: 'worker7@svc.test/r' }, xml('body', null, 'yo')));
    expect((await atAlice).attrs['from']).toBe('worker7@svc.test/r');
    const atAlice2 = nextStanza(alice);
    await svc.send(xml('message', { to: 'alice@test', from: 'admin@other.test' }));
    expect((await atAlice2).attrs['from']).toBe('svc.test');

    // A full JID of a session that is not there bounces (as a server does for a gone resource).
    const bounce = nextStanza(svc);
    await svc.send(xml('message', { to: 'alice@test/other', id: 'r2' }));
    const b = await bounce;
    expect(b.attrs['id']).toBe('r2');
    expect(StanzaError.fromElement(b)).toBeInstanceOf(ServiceUnavailableError);
  });

  it('IQs both ways between a client session and a component', async () => {
    const hub = memoryHub();
    const svc = hub.connect('svc.test');
    const alice = hub.connect('alice@test/agent1');
    // User accounts need a rule both ways (the secure default lets only services in).
    await sessionOf(svc, new AccessPolicy({ rules: [{ from: '*@test', to: 'urn:example:1#whoami' }] }));
    await sessionOf(alice, new AccessPolicy({ rules: [{ from: '*@svc.test', to: 'urn:example:1' }] }));
    (await sessionOf(svc)).router.handle('urn:example:1', 'whoami', (iq) => {
      void svc.send(resultReply(iq, xml('whoami', { xmlns: 'urn:example:1' }, iq.attrs['from'])));
    });
    (await sessionOf(alice)).router.handle('urn:example:1', 'status', (iq) => {
      void alice.send(resultReply(iq, xml('status', { xmlns: 'urn:example:1' }, 'ok')));
    });

    const r1 = await (
      await sessionOf(alice)
    ).caller.request(xml('iq', { type: 'get', to: 'svc.test' }, xml('whoami', { xmlns: 'urn:example:1' })));
    expect(r1.getChildText('whoami')).toBe('alice@test/agent1');

    const r2 = await (
      await sessionOf(svc)
    ).caller.request(
      xml(
        'iq',
        { type: 'get', to: 'alice@test/agent1', from: 'monitor@svc.test' },
        xml('status', { xmlns: 'urn:example:1' }),
      ),
    );
    expect(r2.attrs['from']).toBe('alice@test/agent1');
    expect(r2.attrs['to']).toBe('monitor@svc.test');
    expect(r2.getChildText('status')).toBe('ok');
    expect((await sessionOf(svc)).caller.pending).toBe(0);
  });

  it('closing an endpoint frees its address: stanzas bounce and the name can connect again', async () => {
    const hub = memoryHub();
    const a = hub.connect('svc-a.test');
    const b = hub.connect('svc-b.test');
    await b.close();
    const bounce = nextStanza(a);
    await a.send(xml('message', { to: 'svc-b.test' }));
    expect(StanzaError.fromElement(await bounce).condition).toBe('remote-server-timeout');
    const b2 = hub.connect('svc-b.test'); // no ConflictError
    const got = nextStanza(b2);
    await a.send(xml('message', { to: 'svc-b.test', id: 'again' }));
    expect((await got).attrs['id']).toBe('again');
  });
});
