// Error detail through real Prosody and ejabberd (issue 12): what the server said survives.
import { AuthError, XmppBusError } from '@xmppbus/core';
import { streamErrorOf } from '@xmppbus/stream';
import { describeServers } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { expect, it } from 'vitest';

describeServers('error detail', (server, kind) => {
  it(`[${kind}] a component pointed at the c2s port gets the server's stream error, not "not connected"`, async () => {
    const srv = server();
    const c2s = srv.c2sService();
    const err = await componentTransport({
      service: c2s,
      domain: 'svc-a.localhost',
      password: srv.componentSecret,
      reconnect: false,
      timeout: 20_000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(XmppBusError);
    const message = (err as Error).message;
    expect(message).not.toMatch(/not connected/);
    const port = /:(\d+)$/.exec(c2s)?.[1];
    expect(message).toContain(`component svc-a.localhost at 127.0.0.1:${port}`);
    const said = streamErrorOf(err);
    // Measured: Prosody <host-unknown/> "This server does not serve svc-a.localhost"; ejabberd <invalid-namespace/>, no text.
    expect(said?.condition).toMatch(/^[a-z-]+$/);
    expect(message).toContain(`<${said!.condition}/>`);
    if (said?.text !== undefined) expect(message).toContain(said.text);
    if (kind === 'ejabberd') expect(said?.condition).toBe('invalid-namespace');
    expect(message).toContain("answered in content namespace 'jabber:client'");
    if (kind === 'prosody')
      expect(said).toMatchObject({ condition: 'host-unknown', text: expect.stringContaining('svc-a.localhost') });
  });

  it(`[${kind}] a wrong secret is an AuthError naming the component and host:port, with the server's words`, async () => {
    const srv = server();
    const err = await componentTransport({
      service: srv.componentService(),
      domain: 'svc-a.localhost',
      password: 'not-the-secret',
      reconnect: false,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as Error).message).toMatch(
      /^component svc-a\.localhost at 127\.0\.0\.1:\d+: the server refused the handshake secret/,
    );
    expect(streamErrorOf(err)?.condition).toBe('not-authorized');
  });
});
