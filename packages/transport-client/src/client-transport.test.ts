// The c2s negotiation without sockets: a scripted server on an in-memory duplex pair offers
// SASL PLAIN and resource binding; a ManualClock drives reconnects. (SCRAM is checked against
// the RFC vectors in sasl.test.ts, STARTTLS against real servers in test/transports.test.ts.)
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AuthError, ConfigError, ConnectionError, ManualClock, ProtocolError, waitForStatus, xml } from '@xmppbus/core';
import { StreamLink } from '@xmppbus/stream';
import { duplexPair } from '@xmppbus/stream/testing';
import { clientTransport, type ClientTransportOptions } from './client-transport.js';
import { waitFor } from '@xmppbus/testing';

const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
const SERVER_HEADER =
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='c2s' from='d.test' version='1.0'>";

/** A c2s server that knows one account (`alice` / `pw`) and speaks PLAIN only. */
class ScriptedC2s {
  attempts = 0;
  /** Offer resource binding after SASL (false = a broken server). */
  offerBind = true;
  /** Resources the client asked for, one per bind. */
  boundResources: (string | undefined)[] = [];
  /** What arrived after binding, per connection. */
  online: string[] = [];
  #sockets: Duplex[] = [];
  #serverSeq = 0;

  connect = (): Promise<StreamLink> => {
    this.attempts++;
    const [client, server] = duplexPair();
    server.setEncoding('utf8');
    this.#sockets.push(server);
    let buf = '';
    let authed = false;
    let index = -1;
    server.on('data', (chunk: string) => {
      if (index >= 0) {
        this.online[index] += chunk;
        return;
      }
      buf += chunk;
      for (;;) {
        const header = /^(<\?xml[^>]*\?>)?<stream:stream[^>]*>/.exec(buf);
        if (header) {
          buf = buf.slice(header[0].length);
          const features = authed
            ? this.offerBind
              ? `<bind xmlns='${NS_BIND}'/>`
              : ''
            : `<mechanisms xmlns='${NS_SASL}'><mechanism>PLAIN</mechanism></mechanisms>`;
          server.write(`${SERVER_HEADER}<stream:features>${features}</stream:features>`);
          continue;
        }
        const auth = /^<auth [^>]*mechanism='PLAIN'>([^<]*)<\/auth>/.exec(buf);
        if (auth) {
          buf = buf.slice(auth[0].length);
          const ok = Buffer.from(auth[1]!, 'base64').toString('utf8') === '\u0000alice\u0000pw';
          authed = ok;
          server.write(
            ok ? `<success xmlns='${NS_SASL}'/>` : `<failure xmlns='${NS_SASL}'><not-authorized/></failure>`,
          );
          continue;
        }
        const bind = /^<iq type='set' id='([^']+)'><bind [^>]*>(?:<resource>([^<]*)<\/resource>)?<\/bind><\/iq>/.exec(
          buf,
        );
        if (bind) {
          buf = buf.slice(bind[0].length);
          this.boundResources.push(bind[2]);
          const resource = bind[2] ?? `srv-${++this.#serverSeq}`;
          server.write(
            `<iq type='result' id='${bind[1]}'><bind xmlns='${NS_BIND}'><jid>alice@d.test/${resource}</jid></bind></iq>`,
          );
          index = this.online.push(buf) - 1; // anything after the bind request: initial presence
          buf = '';
        }
        return;
      }
    });
    return Promise.resolve(StreamLink.over(client));
  };

  drop(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets = [];
  }
}

/** In-process work only: the shared `waitFor`, bounded by event-loop turns, not time. */
function until(cond: () => boolean, what: string): Promise<void> {
  return waitFor(cond, { turns: 10_000, what });
}

function login(srv: ScriptedC2s, clock: ManualClock, extra: Partial<ClientTransportOptions> = {}) {
  // The test seams (clock, random, connect) are internal options, not part of the public type.
  const options = {
    service: 'xmpp://scripted:5222',
    domain: 'd.test',
    username: 'alice',
    password: 'pw',
    allowPlainWithoutTls: true,
    clock,
    random: () => 0,
    connect: srv.connect,
    closeGraceMs: 0,
    ...extra,
  };
  return clientTransport(options as ClientTransportOptions);
}

describe('ClientTransport negotiation (scripted server)', () => {
  it('logs in with PLAIN, binds the server-assigned resource, sends initial presence', async () => {
    const srv = new ScriptedC2s();
    const clock = new ManualClock();
    const t = await login(srv, clock);
    expect(t.status).toBe('online');
    expect(t.mechanism).toBe('PLAIN');
    expect(t.address).toBe('alice@d.test/srv-1');
    expect(srv.boundResources).toEqual([undefined]);
    await until(() => srv.online[0]!.includes('<presence/>'), 'initial presence');
    await t.send(xml('message', { to: 'bob@d.test' }, xml('body', {}, 'hi')));
    await until(() => srv.online[0]!.includes('hi'), 'message written');
    await t.close();
  });

  it('reuses the bound resource after a reconnect, so the address stays stable', async () => {
    const srv = new ScriptedC2s();
    const clock = new ManualClock();
    const t = await login(srv, clock, { initialPresence: false });
    expect(t.address).toBe('alice@d.test/srv-1');
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    clock.advance(200);
    await waitForStatus(t, 'online', { timeout: 5_000 });
    expect(srv.boundResources).toEqual([undefined, 'srv-1']);
    expect(t.address).toBe('alice@d.test/srv-1');
    expect(srv.online.every((text) => !text.includes('<presence'))).toBe(true);
    await t.close();
  });

  it('a wrong password rejects with AuthError and schedules nothing', async () => {
    const srv = new ScriptedC2s();
    const clock = new ManualClock();
    await expect(login(srv, clock, { password: 'nope' })).rejects.toBeInstanceOf(AuthError);
    expect(clock.pending).toBe(0);
  });

  it('refuses PLAIN on an unencrypted stream unless allowed (ConfigError)', async () => {
    const srv = new ScriptedC2s();
    const clock = new ManualClock();
    await expect(login(srv, clock, { allowPlainWithoutTls: false })).rejects.toThrow(
      /no usable SASL mechanism \(server offers PLAIN\)/,
    );
    await expect(login(srv, clock, { mechanism: 'SCRAM-SHA-256' })).rejects.toBeInstanceOf(ConfigError);
  });

  it('tls.required refuses a server that offers no STARTTLS, before sending credentials', async () => {
    const srv = new ScriptedC2s();
    let asked = 0;
    const password = (): string => {
      asked++;
      return 'pw';
    };
    const err = await login(srv, new ManualClock(), { password, tls: { required: true } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as ConnectionError).retryable).toBe(false);
    expect((err as Error).message).toMatch(/STARTTLS/);
    expect(asked).toBe(0); // the password was never even fetched
  });

  it('a server that offers no binding is a ProtocolError', async () => {
    const srv = new ScriptedC2s();
    srv.offerBind = false;
    await expect(login(srv, new ManualClock())).rejects.toBeInstanceOf(ProtocolError);
  });

  it('a password callback is asked at every connection attempt', async () => {
    const srv = new ScriptedC2s();
    const clock = new ManualClock();
    let asked = 0;
    const t = await login(srv, clock, {
      password: () => {
        asked++;
        return Promise.resolve('pw');
      },
    });
    srv.drop();
    await waitForStatus(t, 'reconnecting', { timeout: 5_000 });
    clock.advance(200);
    await waitForStatus(t, 'online', { timeout: 5_000 });
    expect(asked).toBe(2);
    await t.close();
  });
});
