/**
 * TLS against real Prosody 0.12 and ejabberd 23.01: the harness gives each server a throwaway
 * certificate signed by a test CA (`tls: true`). c2s STARTTLS must verify the certificate
 * against that CA and refuse it otherwise; components connect over direct TLS. No sleeps.
 */
import { afterEach, beforeAll, expect, it } from 'vitest';

import { ConnectionError, TimeoutError, xml, type Element, type Transport } from '@xmppbus/core';
import { clientTransport, type ClientTransportOptions } from '@xmppbus/transport-client';
import { componentTransport, type ComponentTransportOptions } from '@xmppbus/transport-component';
import { createTestCa, describeServers, type XmppServer } from '@xmppbus/testing';

const DEADLINE = 30_000;
const USER: [string, string] = ['alice', 'alice-pw'];

/** Resolves with the first inbound stanza matching `pred`. */
function nextStanza(t: Transport, pred: (el: Element) => boolean): Promise<Element> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new TimeoutError(`no matching stanza on ${t.address} within ${DEADLINE} ms`));
    }, DEADLINE);
    const off = t.onStanza((el) => {
      if (!pred(el)) return;
      clearTimeout(timer);
      off();
      resolve(el);
    });
  });
}

/** Asserts a refused certificate: ConnectionError, ERR_CONNECTION, not retryable, the reason named. */
async function expectCertificateRefused(attempt: Promise<unknown>, reason: RegExp): Promise<void> {
  const err = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectionError);
  const e = err as ConnectionError;
  expect(e.code).toBe('ERR_CONNECTION');
  expect(e.retryable).toBe(false);
  expect(e.message).toMatch(/certificate/i);
  expect(e.message).toMatch(reason);
}

let foreignCa = '';
beforeAll(async () => {
  foreignCa = (await createTestCa()).certPem;
});

describeServers(
  'TLS',
  (server) => {
    const open: Transport[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((t) => t.close()));
    });

    const c2s = (srv: XmppServer, extra: Partial<ClientTransportOptions> = {}): ClientTransportOptions => ({
      service: srv.c2sService(),
      domain: srv.domain,
      username: USER[0],
      password: USER[1],
      // PLAIN without allowPlainWithoutTls: the login itself proves the stream is encrypted.
      mechanism: 'PLAIN',
      reconnect: false,
      timeout: DEADLINE,
      ...extra,
    });

    const component = (
      srv: XmppServer,
      domain: string,
      extra: Partial<ComponentTransportOptions> = {},
    ): ComponentTransportOptions => ({
      service: `xmpp://${srv.host}:${srv.componentTlsPort ?? 0}`,
      domain,
      password: srv.componentSecret,
      reconnect: false,
      timeout: DEADLINE,
      ...extra,
    });

    it('exposes the test CA and a direct-TLS component port', () => {
      const srv = server();
      expect(srv.tlsCa).toMatch(/^-----BEGIN CERTIFICATE-----/);
      expect(srv.componentTlsPort).toBeGreaterThan(0);
    });

    it('c2s STARTTLS verifies the certificate against the trusted test CA', async () => {
      const srv = server();
      const c = await clientTransport(c2s(srv, { tls: { ca: srv.tlsCa, required: true } }));
      open.push(c);
      expect(c.status).toBe('online');
      expect(c.mechanism).toBe('PLAIN');
      // The stream works after the upgrade: a message to ourselves comes back.
      const echoed = nextStanza(c, (el) => el.name === 'message' && el.getChildText('body') === 'over tls');
      await c.send(xml('message', { to: c.address, type: 'chat' }, xml('body', {}, 'over tls')));
      expect((await echoed).attrs['from']).toBe(c.address);
    });

    it('c2s STARTTLS refuses the certificate with no CA given (system CAs only)', async () => {
      await expectCertificateRefused(clientTransport(c2s(server())), /UNABLE_TO_(?:VERIFY|GET_ISSUER)/);
    });

    it('c2s STARTTLS refuses the certificate when trusting another CA', async () => {
      await expectCertificateRefused(
        clientTransport(c2s(server(), { tls: { ca: foreignCa } })),
        /UNABLE_TO_(?:VERIFY|GET_ISSUER)/,
      );
    });

    it('c2s STARTTLS refuses a certificate that does not name the server', async () => {
      const srv = server();
      await expectCertificateRefused(
        clientTransport(c2s(srv, { tls: { ca: srv.tlsCa, servername: 'xmpp.example.org' } })),
        /ALTNAME/,
      );
    });

    it('a component connects over direct TLS and exchanges stanzas with a plaintext one', async () => {
      const srv = server();
      const secure = await componentTransport(component(srv, 'svc-a.localhost', { tls: { ca: srv.tlsCa } }));
      open.push(secure);
      const plain = await componentTransport({
        service: srv.componentService(),
        domain: 'svc-b.localhost',
        password: srv.componentSecret,
        reconnect: false,
        timeout: DEADLINE,
      });
      open.push(plain);
      expect(secure.status).toBe('online');
      const there = nextStanza(plain, (el) => el.name === 'message' && el.getChildText('body') === 'ping');
      await secure.send(xml('message', { to: 'svc-b.localhost' }, xml('body', {}, 'ping')));
      expect((await there).attrs['from']).toBe('svc-a.localhost');
      const back = nextStanza(secure, (el) => el.name === 'message' && el.getChildText('body') === 'pong');
      await plain.send(xml('message', { to: 'svc-a.localhost' }, xml('body', {}, 'pong')));
      expect((await back).attrs['from']).toBe('svc-b.localhost');
    });

    it('a component over direct TLS refuses a certificate from another CA', async () => {
      await expectCertificateRefused(
        componentTransport(component(server(), 'svc-c.localhost', { tls: { ca: foreignCa } })),
        /UNABLE_TO_(?:VERIFY|GET_ISSUER)/,
      );
    });

    it('restart() keeps the certificate and the TLS ports', async () => {
      const srv = server();
      const ca = srv.tlsCa;
      await srv.restart();
      expect(srv.tlsCa).toBe(ca);
      const c = await clientTransport(c2s(srv, { tls: { ca: srv.tlsCa } }));
      open.push(c);
      const comp = await componentTransport(component(srv, 'svc-d.localhost', { tls: { ca: srv.tlsCa } }));
      open.push(comp);
      expect([c.status, comp.status]).toEqual(['online', 'online']);
    });
  },
  { tls: true, users: [USER] },
);
