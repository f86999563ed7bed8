/**
 * Component (XEP-0114) and c2s transports against real Prosody and ejabberd: stanza exchange,
 * typed handshake errors, server kill -9 + restart with automatic reconnect, queued sends,
 * clean close. No sleeps: every wait is on an event with a generous deadline.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  AuthError,
  ClosedError,
  ConfigError,
  ConflictError,
  ConnectionError,
  PayloadTooLargeError,
  TimeoutError,
  waitForStatus,
  xml,
  type Element,
  type Transport,
  type TransportStatus,
} from '@xmppbus/core';
import { clientTransport, type ClientTransport } from '@xmppbus/transport-client';
import { componentTransport, type ComponentTransport } from '@xmppbus/transport-component';
import { describeServers, type XmppServer } from '@xmppbus/testing';

const DEADLINE = 30_000;
const FAST_RECONNECT = { initialDelay: 50, maxDelay: 1_000 };

/** Resolves with the first inbound stanza matching `pred`. */
function nextStanza(t: Transport, pred: (el: Element) => boolean, timeout = DEADLINE): Promise<Element> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new TimeoutError(`no matching stanza on ${t.address} within ${timeout} ms`));
    }, timeout);
    const off = t.onStanza((el) => {
      if (!pred(el)) return;
      clearTimeout(timer);
      off();
      resolve(el);
    });
  });
}

/** Records every status change, for asserting the sequence afterwards. */
function recordStatus(t: Transport): TransportStatus[] {
  const seen: TransportStatus[] = [];
  t.onStatus((s) => seen.push(s));
  return seen;
}

/** Count of live sockets and timers of this process (what would keep it from exiting). */
function liveHandles(): { sockets: number; timers: number } {
  const r = process.getActiveResourcesInfo();
  return { sockets: r.filter((x) => x === 'TCPSocketWrap').length, timers: r.filter((x) => x === 'Timeout').length };
}

/** Polls (on the event loop, no fixed sleep) until `fn` holds or the deadline passes. */
async function eventually(fn: () => boolean, what: string, timeout = 5_000): Promise<void> {
  const until = Date.now() + timeout;
  while (!fn()) {
    if (Date.now() > until) throw new TimeoutError(`not reached within ${timeout} ms: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

function component(srv: XmppServer, domain: string, extra: Partial<Parameters<typeof componentTransport>[0]> = {}) {
  return componentTransport({
    service: srv.componentService(),
    domain,
    password: srv.componentSecret,
    timeout: DEADLINE,
    ...extra,
  });
}

let userSeq = 0;
async function newUser(srv: XmppServer): Promise<{ username: string; password: string }> {
  const username = `user${++userSeq}x${process.pid}`;
  const password = `pw-${userSeq}`;
  await srv.registerUser(username, password);
  return { username, password };
}

function client(
  srv: XmppServer,
  user: { username: string; password: string },
  extra: Partial<Parameters<typeof clientTransport>[0]> = {},
): Promise<ClientTransport> {
  return clientTransport({
    service: srv.c2sService(),
    domain: srv.domain,
    username: user.username,
    password: user.password,
    mechanism: 'PLAIN',
    allowPlainWithoutTls: true,
    timeout: DEADLINE,
    ...extra,
  });
}

async function closeAll(...ts: Transport[]): Promise<void> {
  await Promise.all(ts.map((t) => t.close()));
}

describeServers('transports', (server, kind) => {
  it(`[${kind}] two components exchange messages and IQs; IQs are not auto-answered`, async () => {
    const srv = server();
    const a = await component(srv, 'svc-a.localhost');
    const b = await component(srv, 'svc-b.localhost');
    try {
      expect(a.status).toBe('online');
      expect(a.address).toBe('svc-a.localhost');

      const msg = nextStanza(b, (el) => el.name === 'message');
      await a.send(
        xml('message', { from: 'svc-a.localhost', to: 'svc-b.localhost', id: 'm1' }, xml('body', {}, 'hi <&> ✓')),
      );
      const m = await msg;
      expect(m.attrs['from']).toBe('svc-a.localhost');
      expect(m.getChildText('body')).toBe('hi <&> ✓');

      // b answers the IQ itself, after a turn of the event loop; a must see that result first
      // (an auto-reply such as xmpp.js's service-unavailable would arrive before it).
      b.onStanza((el) => {
        if (el.name !== 'iq' || el.attrs['type'] !== 'get') return;
        setImmediate(() => {
          void b.send(
            xml(
              'iq',
              { type: 'result', id: el.attrs['id'], from: el.attrs['to'], to: el.attrs['from'] },
              xml('pong', { xmlns: 'urn:test' }),
            ),
          );
        });
      });
      const reply = nextStanza(a, (el) => el.name === 'iq' && el.attrs['id'] === 'q1');
      await a.send(
        xml(
          'iq',
          { type: 'get', id: 'q1', from: 'worker@svc-a.localhost/r1', to: 'svc-b.localhost' },
          xml('ping', { xmlns: 'urn:test' }),
        ),
      );
      const r = await reply;
      expect(r.attrs['type']).toBe('result');
      expect(r.attrs['to']).toBe('worker@svc-a.localhost/r1');
      expect(r.getChild('pong', 'urn:test')).toBeDefined();
    } finally {
      await closeAll(a, b);
    }
  });

  it(`[${kind}] stanzas sent without from are stamped with the component's address`, async () => {
    // ejabberd silently drops component stanzas without `from`; the transport fills it in.
    const srv = server();
    const a = await component(srv, 'svc-a.localhost');
    const b = await component(srv, 'svc-b.localhost');
    try {
      const msg = nextStanza(b, (el) => el.name === 'message' && el.attrs['id'] === 'nofrom');
      await a.send(xml('message', { to: 'svc-b.localhost', id: 'nofrom' }, xml('body', {}, 'x')));
      expect((await msg).attrs['from']).toBe('svc-a.localhost');
    } finally {
      await closeAll(a, b);
    }
  });

  it(`[${kind}] a c2s client and a component exchange messages both ways`, async () => {
    const srv = server();
    const user = await newUser(srv);
    const a = await component(srv, 'svc-c.localhost');
    const c = await client(srv, user, { resource: 'agent1' });
    try {
      expect(c.address).toBe(`${user.username}@${srv.domain}/agent1`);
      expect(c.mechanism).toBe('PLAIN');

      const atComponent = nextStanza(a, (el) => el.name === 'message');
      await c.send(xml('message', { to: 'svc-c.localhost', type: 'chat' }, xml('body', {}, 'from client')));
      const m1 = await atComponent;
      expect(m1.attrs['from']).toBe(c.address);
      expect(m1.getChildText('body')).toBe('from client');

      const atClient = nextStanza(c, (el) => el.name === 'message');
      await a.send(
        xml('message', { from: 'svc-c.localhost', to: c.address, type: 'chat' }, xml('body', {}, 'to client')),
      );
      const m2 = await atClient;
      expect(m2.attrs['from']).toBe('svc-c.localhost');
      expect(m2.getChildText('body')).toBe('to client');
    } finally {
      await closeAll(a, c);
    }
  });

  it(`[${kind}] a client logs in with SCRAM by default and gets a server-assigned resource`, async () => {
    const srv = server();
    const user = await newUser(srv);
    const c = await client(srv, user, { mechanism: undefined, allowPlainWithoutTls: false });
    try {
      expect(c.mechanism).toMatch(/^SCRAM-SHA-/);
      expect(c.address).toMatch(new RegExp(`^${user.username}@${srv.domain}/.+`));
    } finally {
      await c.close();
    }
  });

  it(`[${kind}] bad credentials reject with AuthError and leave nothing running`, async () => {
    const srv = server();
    const user = await newUser(srv);
    const before = liveHandles();
    await expect(component(srv, 'svc-d.localhost', { password: 'wrong-secret' })).rejects.toBeInstanceOf(AuthError);
    await expect(client(srv, { ...user, password: 'wrong' })).rejects.toBeInstanceOf(AuthError);
    await expect(client(srv, { ...user, password: 'wrong' }, { mechanism: undefined })).rejects.toBeInstanceOf(
      AuthError,
    );
    // No retry loop: no socket or timer of ours survives the rejection.
    await eventually(() => {
      const now = liveHandles();
      return now.sockets <= before.sockets && now.timers <= before.timers;
    }, 'sockets and timers back to the baseline');
    // …and the name is still free (a lingering retry would hold it on Prosody).
    const d = await component(srv, 'svc-d.localhost');
    await d.close();
  });

  it(`[${kind}] PLAIN without TLS is refused unless allowed; refused ports give ConnectionError`, async () => {
    const srv = server();
    const user = await newUser(srv);
    await expect(client(srv, user, { allowPlainWithoutTls: false })).rejects.toBeInstanceOf(ConfigError);
    await expect(
      componentTransport({ service: 'xmpp://127.0.0.1:1', domain: 'svc-a.localhost', password: 'x' }),
    ).rejects.toBeInstanceOf(ConnectionError);
  });

  if (kind === 'prosody') {
    it(`[${kind}] a second connection with the same component name is refused with ConflictError`, async () => {
      const srv = server();
      const first = await component(srv, 'svc-e.localhost');
      try {
        await expect(component(srv, 'svc-e.localhost')).rejects.toBeInstanceOf(ConflictError);
        // The first connection is unaffected.
        const got = nextStanza(first, (el) => el.name === 'message');
        await first.send(xml('message', { from: 'svc-e.localhost', to: 'svc-e.localhost' }, xml('body', {}, 'still')));
        expect((await got).getChildText('body')).toBe('still');
        expect(first.status).toBe('online');
      } finally {
        await first.close();
      }
    });

    it(`[${kind}] an undeclared component name is refused with ConfigError (host-unknown)`, async () => {
      await expect(component(server(), 'svc-undeclared.localhost')).rejects.toBeInstanceOf(ConfigError);
    });
  } else {
    it(`[${kind}] duplicate component names are accepted and share the traffic`, async () => {
      const srv = server();
      const sender = await component(srv, 'svc-f.localhost');
      const one = await component(srv, 'svc-g.localhost');
      const two = await component(srv, 'svc-g.localhost');
      try {
        expect(one.status).toBe('online');
        expect(two.status).toBe('online');
        const counts = [0, 0];
        const total = 40;
        let received = 0;
        const all = new Promise<void>((resolve) => {
          [one, two].forEach((t, i) =>
            t.onStanza((el) => {
              if (el.name !== 'message') return;
              counts[i]!++;
              if (++received === total) resolve();
            }),
          );
        });
        for (let i = 0; i < total; i++) {
          await sender.send(
            xml('message', { from: 'svc-f.localhost', to: `w${i}@svc-g.localhost` }, xml('body', {}, `${i}`)),
          );
        }
        await all;
        expect(counts[0]! + counts[1]!).toBe(total);
        // Each message goes to exactly one of the two connections (observed: spread randomly).
        expect(counts[0]! > 0 && counts[1]! > 0).toBe(true);
      } finally {
        await closeAll(sender, one, two);
      }
    });
  }

  it(`[${kind}] oversized stanzas are refused before reaching the server; the link stays up`, async () => {
    const srv = server();
    const a = await component(srv, 'svc-h.localhost', { maxStanzaBytes: 4096 });
    try {
      await expect(
        a.send(xml('message', { to: 'svc-h.localhost', from: 'svc-h.localhost' }, xml('body', {}, 'é'.repeat(3000)))),
      ).rejects.toBeInstanceOf(PayloadTooLargeError);
      const got = nextStanza(a, (el) => el.name === 'message');
      await a.send(xml('message', { to: 'svc-h.localhost', from: 'svc-h.localhost' }, xml('body', {}, 'small')));
      expect((await got).getChildText('body')).toBe('small');
    } finally {
      await a.close();
    }
  });

  it(`[${kind}] survives kill -9 and restart of the server: reconnects, delivers queued sends`, async () => {
    const srv = server();
    const user = await newUser(srv);
    // ejabberd can lose a just-registered account on kill -9 (mnesia's log is not yet on disk),
    // so the client's password callback waits until the test has re-registered it.
    let userBack = Promise.resolve();
    const a = await component(srv, 'svc-i.localhost', { reconnect: FAST_RECONNECT });
    const b = await component(srv, 'svc-j.localhost', { reconnect: FAST_RECONNECT });
    const c = await client(srv, user, {
      reconnect: FAST_RECONNECT,
      resource: 'r',
      password: async () => {
        await userBack;
        return user.password;
      },
    });
    const statusA = recordStatus(a);
    try {
      const aDown = waitForStatus(a, 'reconnecting', { timeout: DEADLINE });
      const bDown = waitForStatus(b, 'reconnecting', { timeout: DEADLINE });
      const cDown = waitForStatus(c, 'reconnecting', { timeout: DEADLINE });
      await srv.kill();
      await Promise.all([aDown, bDown, cDown]);

      // Sends while reconnecting wait in the bounded queue. They go to a itself so their
      // delivery does not depend on which component reconnects first.
      expect(a.status).toBe('reconnecting');
      const bodies: string[] = [];
      const gotAll = new Promise<void>((resolve) =>
        a.onStanza((el) => {
          if (el.name === 'message' && bodies.push(el.getChildText('body') ?? '') === 3) resolve();
        }),
      );
      const queued = [1, 2, 3].map((i) =>
        a.send(xml('message', { from: 'svc-i.localhost', to: 'svc-i.localhost' }, xml('body', {}, `q${i}`))),
      );
      expect(a.pendingSends).toBe(3);

      const ups = [a, b, c].map((t) => waitForStatus(t, 'online', { timeout: DEADLINE }));
      let release!: () => void;
      userBack = new Promise((r) => (release = r));
      await srv.restart();
      await srv.registerUser(user.username, user.password).catch((err: unknown) => {
        if (!(err instanceof ConflictError)) throw err; // still there: fine
      });
      release();
      await Promise.all(ups);
      await Promise.all(queued);
      await gotAll;
      expect(bodies).toEqual(['q1', 'q2', 'q3']); // in order
      expect(statusA[0]).toBe('reconnecting');
      expect(statusA.at(-1)).toBe('online');
      expect(statusA).not.toContain('closed');

      // Features keep working after the restart: component ↔ component and component → client.
      const ping = nextStanza(b, (el) => el.name === 'message' && el.attrs['id'] === 'after');
      await a.send(
        xml('message', { from: 'svc-i.localhost', to: 'svc-j.localhost', id: 'after' }, xml('body', {}, 'x')),
      );
      await ping;
      expect(c.address).toBe(`${user.username}@${srv.domain}/r`); // same resource after reconnect
      const toClient = nextStanza(c, (el) => el.name === 'message');
      await b.send(xml('message', { from: 'svc-j.localhost', to: c.address, type: 'chat' }, xml('body', {}, 'back')));
      expect((await toClient).getChildText('body')).toBe('back');
    } finally {
      await closeAll(a, b, c);
    }
  });

  it(`[${kind}] close() ends everything: status closed, no sockets or timers, later sends reject`, async () => {
    const srv = server();
    const before = liveHandles();
    const a = await component(srv, 'svc-k.localhost');
    const user = await newUser(srv);
    const c = await client(srv, user);
    const seen = recordStatus(a);
    await closeAll(a, c);
    expect(a.status).toBe('closed');
    expect(c.status).toBe('closed');
    expect(seen).toEqual(['closed']);
    await expect(a.send(xml('message', { to: 'svc-k.localhost' }))).rejects.toBeInstanceOf(ClosedError);
    await a.close(); // idempotent
    await eventually(() => {
      const now = liveHandles();
      return now.sockets <= before.sockets && now.timers <= before.timers;
    }, 'sockets and timers back to the baseline');
  });

  it(`[${kind}] close() during reconnect stops the retry loop`, async () => {
    const srv = server();
    const before = liveHandles();
    const a = await component(srv, 'svc-l.localhost', { reconnect: { initialDelay: 60_000 } });
    const down = waitForStatus(a, 'reconnecting', { timeout: DEADLINE });
    const queued = a.send(xml('message', { to: 'svc-l.localhost' }));
    await queued;
    await srv.kill();
    try {
      await down;
      const pending = a.send(xml('message', { to: 'svc-l.localhost' }));
      await a.close();
      await expect(pending).rejects.toBeInstanceOf(ClosedError);
      await eventually(() => {
        const now = liveHandles();
        return now.sockets <= before.sockets && now.timers <= before.timers;
      }, 'the 60 s retry timer is cancelled');
    } finally {
      await srv.restart();
    }
  });
});

describe('transport options', () => {
  it('rejects invalid options with ConfigError before connecting', async () => {
    await expect(componentTransport({ service: 'not a url', domain: 'a', password: 'x' })).rejects.toBeInstanceOf(
      ConfigError,
    );
    await expect(
      componentTransport({ service: 'xmpp://127.0.0.1:5347', domain: 'a b', password: 'x' }),
    ).rejects.toBeInstanceOf(ConfigError);
    await expect(
      clientTransport({ service: 'xmpp://127.0.0.1:5222', domain: 'localhost', username: '', password: 'x' }),
    ).rejects.toBeInstanceOf(ConfigError);
  });

  it('the initial connect honours abort signals', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(
      componentTransport({ service: 'xmpp://127.0.0.1:1', domain: 'a', password: 'x', signal: ac.signal }),
    ).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });
});

export type { ComponentTransport };

/**
 * A scripted c2s server on 127.0.0.1 that offers only STARTTLS first (the test servers run
 * plaintext), then SASL PLAIN, bind, and pushes one message after the initial presence.
 */
function scriptedTlsServer(
  key: string,
  cert: string,
): Promise<{ port: number; secured: () => number; server: Server }> {
  let secured = 0;
  const server = createServer((raw: Socket) => {
    raw.on('error', () => {});
    let sock: Socket | TLSSocket = raw;
    let buf = '';
    let stage: 'plain' | 'sasl' | 'bind' | 'online' = 'plain';
    const header =
      "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>";
    const onData = (chunk: Buffer | string): void => {
      buf += chunk.toString();
      if (buf.includes('<stream:stream') && buf.includes('>', buf.indexOf('<stream:stream'))) {
        buf = '';
        const features = {
          plain: "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>",
          sasl: "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>",
          bind: "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>",
          online: '',
        }[stage];
        sock.write(`${header}<stream:features>${features}</stream:features>`);
      } else if (stage === 'plain' && buf.includes('<starttls')) {
        buf = '';
        sock.write("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        sock.removeAllListeners('data');
        const tlsSock = new TLSSocket(raw, { isServer: true, key, cert });
        tlsSock.on('error', () => {});
        tlsSock.on('secure', () => secured++);
        tlsSock.on('data', onData);
        sock = tlsSock;
        stage = 'sasl';
      } else if (stage === 'sasl' && buf.includes('</auth>')) {
        const token = /<auth[^>]*>([^<]*)<\/auth>/.exec(buf)![1]!;
        buf = '';
        const ok = Buffer.from(token, 'base64').toString() === '\u0000alice\u0000pw';
        sock.write(
          ok
            ? "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
            : "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>",
        );
        if (ok) stage = 'bind';
      } else if (stage === 'bind' && buf.includes('</iq>')) {
        const id = /id='([^']+)'/.exec(buf)![1]!;
        buf = '';
        sock.write(
          `<iq type='result' id='${id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/tls</jid></bind></iq>`,
        );
        stage = 'online';
      } else if (stage === 'online' && buf.includes('<presence/>')) {
        buf = '';
        sock.write("<message from='localhost' to='alice@localhost/tls'><body>secure</body></message>");
      }
    };
    raw.on('data', onData);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      resolve({ port: typeof addr === 'object' && addr ? addr.port : 0, secured: () => secured, server });
    }),
  );
}

describe('client STARTTLS (scripted server, self-signed certificate)', () => {
  let dir = '';
  let key = '';
  let cert = '';
  let srv: Awaited<ReturnType<typeof scriptedTlsServer>>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xmppbus-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    key = readFileSync(join(dir, 'key.pem'), 'utf8');
    cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    srv = await scriptedTlsServer(key, cert);
  });
  afterAll(async () => {
    await new Promise<void>((r) => srv.server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const opts = () => ({
    service: `xmpp://127.0.0.1:${srv.port}`,
    domain: 'localhost',
    username: 'alice',
    password: 'pw',
    timeout: DEADLINE,
    reconnect: false as const,
  });

  it('upgrades with STARTTLS, trusts the given CA, then uses PLAIN over TLS', async () => {
    const c = await clientTransport({ ...opts(), tls: { ca: cert } });
    try {
      expect(srv.secured()).toBeGreaterThanOrEqual(1);
      expect(c.mechanism).toBe('PLAIN'); // allowed without allowPlainWithoutTls: the stream is encrypted
      expect(c.address).toBe('alice@localhost/tls');
      const msg = await nextStanza(c, (el) => el.name === 'message');
      expect(msg.getChildText('body')).toBe('secure');
    } finally {
      await c.close();
    }
  });

  it('refuses an untrusted certificate by default (ConnectionError)', async () => {
    const err = await clientTransport(opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toMatch(/certificate/i);
  });
});
