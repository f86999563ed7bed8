import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configFile, positive, resolveConfig, transportFlags } from './config.js';
import { UsageError } from './errors.js';
import { testIo } from './test/io.js';

describe('transportFlags', () => {
  it('reads a component or client --jid', () => {
    expect(transportFlags({ jid: 'cli.example.org' }, undefined)).toEqual({
      kind: 'component',
      domain: 'cli.example.org',
    });
    expect(transportFlags({ jid: 'ops@example.org/laptop' }, undefined)).toEqual({
      kind: 'client',
      username: 'ops',
      domain: 'example.org',
      resource: 'laptop',
    });
    expect(() => transportFlags({ jid: 'a@b@c' }, undefined)).toThrow(UsageError);
    expect(() => transportFlags({ jid: 'cli.example.org/r' }, undefined)).toThrow(/no resource/);
  });

  it('builds the address from --host/--port over the configured one', () => {
    const base = { kind: 'component' as const, service: 'xmpp://10.0.0.1:5347', domain: 'x' };
    expect(transportFlags({ port: '6000' }, base).service).toBe('xmpp://10.0.0.1:6000');
    expect(transportFlags({ host: 'xmpp.local' }, base).service).toBe('xmpp://xmpp.local:5347');
    expect(transportFlags({ host: '127.0.0.1', jid: 'u@localhost' }, undefined).service).toBe('xmpp://127.0.0.1:5222');
    expect(() => transportFlags({ port: '70000' }, base)).toThrow(/port/);
    expect(() => transportFlags({ secret: '' }, base)).toThrow(/empty/);
  });

  it('checks positive numbers', () => {
    expect(positive('250', '--timeout')).toBe(250);
    expect(positive(undefined, '--timeout')).toBeUndefined();
    expect(() => positive('0', '--timeout')).toThrow(/--timeout must be a positive number/);
  });
});

describe('resolveConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xmppbus-cli-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const yaml = `transport:\n  kind: component\n  service: xmpp://127.0.0.1:5347\n  domain: orders.localhost\npubsub:\n  service: pubsub.localhost\n`;

  it('finds ./xmppbus.yaml, and lets env and flags override it (file < env < flags)', async () => {
    writeFileSync(join(dir, 'xmppbus.yaml'), yaml);
    const io = testIo({
      cwd: dir,
      env: { XMPPBUS_PASSWORD: 's3cret', XMPPBUS_TRANSPORT_SERVICE: 'xmpp://127.0.0.1:6000' },
    });
    expect(configFile({}, io)).toBe('xmppbus.yaml');
    const r = await resolveConfig({ jid: 'cli.localhost' }, io);
    expect(r.identity).toBe('config');
    expect(r.loaded.config.transport).toMatchObject({
      kind: 'component',
      domain: 'cli.localhost',
      service: 'xmpp://127.0.0.1:6000',
      password: 's3cret',
    });
    expect(r.loaded.config.pubsub?.service).toBe('pubsub.localhost');
  });

  it('takes --config over the default file, and --secret over the env', async () => {
    writeFileSync(join(dir, 'other.yaml'), yaml.replace('orders', 'billing'));
    const io = testIo({ cwd: dir, env: { XMPPBUS_PASSWORD: 'from-env' } });
    const r = await resolveConfig({ config: 'other.yaml', secret: 'from-flag' }, io);
    expect(r.loaded.config.transport).toMatchObject({ domain: 'billing.localhost', password: 'from-flag' });
  });

  it('switches a component config to a client account with --jid', async () => {
    writeFileSync(join(dir, 'xmppbus.yaml'), yaml);
    const r = await resolveConfig({ jid: 'ops@localhost', port: '5222' }, testIo({ cwd: dir }));
    expect(r.loaded.config.transport).toMatchObject({ kind: 'client', username: 'ops', domain: 'localhost' });
    expect(r.loaded.config.transport?.service).toBe('xmpp://127.0.0.1:5222');
  });

  it('lets flags complete a transport that file and env leave incomplete', async () => {
    const io = testIo({ cwd: dir, env: { XMPPBUS_PASSWORD: 'pw' } });
    const r = await resolveConfig({ jid: 'ops@localhost', service: 'xmpp://127.0.0.1:5222' }, io);
    expect(r.loaded.config.transport).toMatchObject({ kind: 'client', username: 'ops', password: 'pw' });
    await expect(resolveConfig({ jid: 'ops@localhost' }, io)).rejects.toThrow(/transport\.service is required/);
  });

  it('reports config errors with their source', async () => {
    const io = testIo({
      cwd: dir,
      env: {
        XMPPBUS_TRANSPORT_KIND: 'carrier-pigeon',
        XMPPBUS_TRANSPORT_SERVICE: 'xmpp://h:1',
        XMPPBUS_TRANSPORT_DOMAIN: 'x',
      },
    });
    await expect(resolveConfig({}, io)).rejects.toThrow(/XMPPBUS_TRANSPORT_KIND/);
    await expect(resolveConfig({ config: 'missing.yaml' }, testIo({ cwd: dir }))).rejects.toThrow(/not found/);
  });

  it("connects as the local server's CLI component when one runs, unless the identity is explicit", async () => {
    writeFileSync(join(dir, 'xmppbus.yaml'), yaml.replace('5347', '25347'));
    mkdirSync(join(dir, '.xmppbus', 'server'), { recursive: true });
    const component = (name: string) => ({ name, secret: `secret-of-${name}` });
    const state = {
      version: 1,
      kind: 'prosody',
      pid: process.pid, // alive, and "in" the server's dir below
      endpoints: {
        host: '127.0.0.1',
        domain: 'localhost',
        pubsubService: 'pubsub.localhost',
        c2sPort: 25222,
        componentPort: 25347,
        componentTlsPort: undefined,
        c2sService: 'xmpp://127.0.0.1:25222',
        componentService: 'xmpp://127.0.0.1:25347',
      },
      componentSecret: 'shared',
      components: [component('orders.localhost'), component('cli.localhost'), component('cli-2.localhost')],
      accounts: [],
      dir: process.cwd(), // a server runs in its dir
      ephemeral: false,
      configFile: join(dir, 'prosody.cfg.lua'),
      logFile: join(dir, 'prosody.log'),
      caFile: undefined,
      startedAt: new Date(0).toISOString(),
    };
    writeFileSync(join(dir, '.xmppbus', 'server', 'server.json'), JSON.stringify(state));
    const r = await resolveConfig({}, testIo({ cwd: dir }));
    expect(r.identity).toBe('local-server');
    expect(r.loaded.config.transport).toMatchObject({ domain: 'cli.localhost', password: 'secret-of-cli.localhost' });
    expect(r.alternatives).toEqual([{ domain: 'cli-2.localhost', password: 'secret-of-cli-2.localhost' }]);
    // The service's own identity, e.g. for `dlq replay`:
    const asService = await resolveConfig({}, testIo({ cwd: dir, env: { XMPPBUS_PASSWORD: 'x' } }), {
      asService: true,
    });
    expect(asService.loaded.config.transport?.domain).toBe('orders.localhost');
    // An explicit identity wins:
    const explicit = await resolveConfig({ jid: 'svc.localhost', secret: 'x' }, testIo({ cwd: dir }));
    expect(explicit.identity).toBe('config');
    // A live pid that is not the server (not in its dir: a stale or committed state file): the config's identity.
    writeFileSync(join(dir, '.xmppbus', 'server', 'server.json'), JSON.stringify({ ...state, dir }));
    expect((await resolveConfig({}, testIo({ cwd: dir, env: { XMPPBUS_PASSWORD: 'x' } }))).identity).toBe('config');
    writeFileSync(join(dir, '.xmppbus', 'server', 'server.json'), JSON.stringify(state));
    // Another server than the local one: the config's identity.
    writeFileSync(join(dir, 'xmppbus.yaml'), yaml.replace('5347', '5999'));
    expect((await resolveConfig({}, testIo({ cwd: dir }))).identity).toBe('config');
  });
});
