// The callee's connection dies mid-call (its socket is destroyed, as a crash would): the caller's
// pending call fails fast with a typed error instead of waiting out its timeout (issue 12).
// Measured: after the drop, nothing reaches the caller on its own (an IQ already delivered is not
// bounced); a later stanza to the peer bounces — a component: Prosody `remote-server-timeout`
// "Component unavailable", ejabberd (s2s off) `forbidden` "Access denied by service policy";
// a c2s resource: `service-unavailable` (ejabberd: "User session not found"). A c2s peer that
// sent the caller directed presence is announced `unavailable` by the server at once.
import { connect as netConnect, type Socket } from 'node:net';
import { ServiceUnavailableError, Session, deferred, xml, type Transport } from '@xmppbus/core';
import { RpcClient, RpcServer } from '@xmppbus/rpc';
import { StreamLink, type StreamConnector } from '@xmppbus/stream';
import { describeServers, type XmppServer } from '@xmppbus/testing';
import { clientTransport, type ClientTransportOptions } from '@xmppbus/transport-client';
import { componentTransport, type ComponentTransportOptions } from '@xmppbus/transport-component';
import { afterEach, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { method } from '@xmppbus/schema';

/** Never answered, and not idempotent: one attempt, so the error seen is the first one learned. */
const Hang = method({
  ns: 'urn:example:hang:1',
  name: 'hang',
  request: Type.Object({}),
  response: Type.Object({}),
});

/** A TCP connector that keeps the socket, so the test can kill the link like a crash would. */
function killable(): { connect: StreamConnector; kill: () => void } {
  let socket: Socket | undefined;
  const connect: StreamConnector = (address, signal) =>
    new Promise<StreamLink>((resolve, reject) => {
      const s = netConnect({ host: address.host, port: address.port, noDelay: true });
      const onAbort = (): void => {
        s.destroy();
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      s.once('connect', () => {
        signal.removeEventListener('abort', onAbort);
        socket = s;
        resolve(StreamLink.over(s));
      });
      s.once('error', reject);
    });
  return { connect, kill: () => socket?.destroy() };
}

let userSeq = 0;

describeServers('fail fast when the callee dies mid-call', (server, kind) => {
  const open: (Session | Transport)[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  async function started(transport: Transport, probeInterval: number): Promise<Session> {
    const s = new Session({ transport, probeInterval });
    open.push(s);
    await s.start();
    return s;
  }

  async function caller(srv: XmppServer, probeInterval: number): Promise<RpcClient> {
    const t = await componentTransport({
      service: srv.componentService(),
      domain: 'svc-a.localhost',
      password: srv.componentSecret,
      reconnect: false,
    });
    const client = new RpcClient({ session: await started(t, probeInterval), timeout: 60_000 });
    await client.start();
    return client;
  }

  /** Serves Hang without ever answering; resolves `arrived` once a call is in its hands. */
  async function hang(session: Session): Promise<{ arrived: Promise<void> }> {
    const rpc = new RpcServer({ session });
    const arrived = deferred<void>();
    rpc.handle(Hang, () => {
      arrived.resolve();
      return new Promise(() => undefined);
    });
    await rpc.start();
    return { arrived: arrived.promise };
  }

  it(`[${kind}] a component callee: the liveness probe bounces, the call fails with ServiceUnavailableError`, async () => {
    const srv = server();
    const { connect, kill } = killable();
    const t = await componentTransport({
      service: srv.componentService(),
      domain: 'svc-b.localhost',
      password: srv.componentSecret,
      reconnect: false,
      connect,
    } as ComponentTransportOptions);
    const { arrived } = await hang(await started(t, 0));
    const client = await caller(srv, 300);
    const call = client.call(Hang, 'svc-b.localhost', {}).catch((e: unknown) => e);
    // The request is in the callee's hands before the crash (else the server bounces it at once).
    await arrived;
    kill();
    const err = await call;
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toMatch(/svc-b\.localhost became unavailable while this request waited/);
    // ejabberd here runs without s2s: "Access denied by service policy" (forbidden) for a component that is gone.
    const expected = kind === 'prosody' ? 'remote-server-timeout' : 'forbidden';
    expect((err as ServiceUnavailableError).condition).toBe(expected);
    expect((err as ServiceUnavailableError).retryable).toBe(true);
  });

  async function c2sCallee(srv: XmppServer): Promise<{ session: Session; kill: () => void; arrived: Promise<void> }> {
    const username = `ff${++userSeq}x${process.pid}`;
    await srv.registerUser(username, 'pw-ff');
    const { connect, kill } = killable();
    const t = await clientTransport({
      service: srv.c2sService(),
      domain: srv.domain,
      username,
      password: 'pw-ff',
      mechanism: 'PLAIN',
      allowPlainWithoutTls: true,
      reconnect: false,
      connect,
    } as ClientTransportOptions);
    const session = await started(t, 0);
    const { arrived } = await hang(session);
    return { session, kill, arrived };
  }

  it(`[${kind}] a c2s callee: the probe to its full JID bounces service-unavailable; the call fails fast`, async () => {
    const srv = server();
    const client = await caller(srv, 300);
    const callee = await c2sCallee(srv);
    const call = client.call(Hang, callee.session.address, {}).catch((e: unknown) => e);
    await callee.arrived;
    callee.kill();
    const err = await call;
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as ServiceUnavailableError).condition).toBe('service-unavailable');
    expect((err as Error).message).toContain(`${callee.session.address} became unavailable`);
  });

  it(`[${kind}] a c2s callee that sent the caller presence: its unavailable presence fails the call, no probe`, async () => {
    const srv = server();
    const client = await caller(srv, 0);
    const callee = await c2sCallee(srv);
    await callee.session.send(xml('presence', { to: 'svc-a.localhost' }));
    const call = client.call(Hang, callee.session.address, {}).catch((e: unknown) => e);
    await callee.arrived;
    callee.kill();
    const err = await call;
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as ServiceUnavailableError).condition).toBe('recipient-unavailable');
  });
});
