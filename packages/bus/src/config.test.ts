import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@xmppbus/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BusConfigError, loadConfig, REDACTED, secretOf } from './config.js';
import { readEnv } from './env.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bus-config-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const transport = { kind: 'component', service: 'xmpp://127.0.0.1:5347', domain: 'orders.example.test' } as const;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('loadConfig precedence', () => {
  it('merges object > env > file, key by key', async () => {
    const path = file(
      'xmppbus.yaml',
      [
        'transport:',
        '  kind: component',
        '  service: xmpp://file.example:5347',
        '  domain: file.example.test',
        '  timeout: 1000',
        'log:',
        '  level: debug',
        '  format: text',
        'pubsub:',
        '  service: pubsub.file.test',
      ].join('\n'),
    );
    const env = {
      XMPPBUS_TRANSPORT_DOMAIN: 'env.example.test',
      XMPPBUS_TRANSPORT_TIMEOUT: '2000',
      XMPPBUS_LOG_LEVEL: 'info',
    };
    const { config, file: read } = await loadConfig({ file: path, log: { level: 'error' } }, { env });
    expect(read).toBe(path);
    expect(config.transport).toEqual({
      kind: 'component',
      service: 'xmpp://file.example:5347', // file only
      domain: 'env.example.test', // env over file
      timeout: 2000, // env, parsed as a number
    });
    expect(config.log).toEqual({ level: 'error', format: 'text' }); // object over env over file
    expect(config.pubsub).toEqual({ service: 'pubsub.file.test' });
  });

  it('reads the file named by XMPPBUS_CONFIG, JSON by extension, relative to cwd', async () => {
    file('bus.json', JSON.stringify({ transport, name: 'orders' }));
    const { config } = await loadConfig({}, { env: { XMPPBUS_CONFIG: 'bus.json' }, cwd: dir });
    expect(config.name).toBe('orders');
    expect(config.transport?.domain).toBe('orders.example.test');
  });

  it('lets the highest layer that gives a secret decide between password and passwordFile', async () => {
    const path = file(
      'x.yaml',
      'transport: { kind: component, service: "xmpp://h", domain: d.test, passwordFile: /run/s }',
    );
    const { config } = await loadConfig({ file: path }, { env: { XMPPBUS_PASSWORD: 'from-env' } });
    expect(config.transport?.password).toBe('from-env');
    expect(config.transport?.passwordFile).toBeUndefined();
  });

  it('reports unknown XMPPBUS_ variables and a password in a file as warnings', async () => {
    const path = file('x.yaml', 'transport: { kind: component, service: "xmpp://h", domain: d.test, password: p }');
    const { warnings } = await loadConfig(
      { file: path },
      { env: { XMPPBUS_TRANSPORT_DOMIAN: 'x', XMPPBUS_DEBUG: '1' } },
    );
    expect(warnings).toEqual([
      'unknown environment variable XMPPBUS_TRANSPORT_DOMIAN (ignored)',
      expect.stringContaining('transport.password is set in'),
    ]);
  });
});

describe('loadConfig errors', () => {
  async function issuesOf(promise: Promise<unknown>) {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BusConfigError);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('ERR_CONFIG');
    expect((err as ConfigError).retryable).toBe(false);
    return (err as BusConfigError).issues;
  }

  it('names the path of every problem', async () => {
    const issues = await issuesOf(
      loadConfig(
        {
          transport: { ...transport, timeout: -1 },
          log: { level: 'loud' as 'info' },
          access: { rules: [{ from: 42 as unknown as string }] },
          messaging: { store: {} as { path: string } },
        },
        { env: {} },
      ),
    );
    const paths = issues.map((i) => i.path);
    expect(paths).toContain('transport.timeout');
    expect(paths).toContain('log.level');
    expect(paths).toContain('access.rules[0].from');
    expect(paths).toContain('messaging.store.path');
    expect(issues.find((i) => i.path === 'log.level')?.message).toMatch(/must be one of "error"/);
  });

  it('refuses unknown keys (additionalProperties: false) with their path', async () => {
    const issues = await issuesOf(
      loadConfig({ transport: { ...transport, passwrod: 'x' } as typeof transport }, { env: {} }),
    );
    expect(issues).toEqual([{ path: 'transport.passwrod', message: 'is not a known option' }]);
  });

  it('accepts the local server section (read by @xmppbus/server) and checks its shape', async () => {
    const yaml =
      'server:\n  kind: ejabberd\n  components: [orders.localhost, billing.localhost]\n  accounts: [alice]\n';
    const { config } = await loadConfig({ file: file('server.yaml', yaml) }, { env: {} });
    expect(config.server).toEqual({
      kind: 'ejabberd',
      components: ['orders.localhost', 'billing.localhost'],
      accounts: ['alice'],
    });
    const issues = await issuesOf(
      loadConfig({ file: file('bad.yaml', 'server:\n  kind: openfire\n  secret: x\n') }, { env: {} }),
    );
    expect(issues.map((i) => i.path).sort()).toEqual(['server.kind', 'server.secret']);
  });

  it('names the environment variable a bad value came from', async () => {
    const issues = await issuesOf(
      loadConfig({ transport }, { env: { XMPPBUS_TRANSPORT_TIMEOUT: 'soon', XMPPBUS_LOG_FORMAT: 'xml' } }),
    );
    expect(issues).toContainEqual({
      path: 'transport.timeout',
      message: 'must be number (from XMPPBUS_TRANSPORT_TIMEOUT)',
    });
    expect(issues.find((i) => i.path === 'log.format')?.message).toMatch(/\(from XMPPBUS_LOG_FORMAT\)$/);
  });

  it('names the file a bad value came from, and what is wrong with the file itself', async () => {
    const bad = file('bad.yaml', 'transport: { kind: carrier-pigeon, service: "xmpp://h", domain: d.test }');
    const issues = await issuesOf(loadConfig({ file: bad }, { env: {} }));
    expect(issues[0]?.path).toBe('transport.kind');
    expect(issues[0]?.message).toContain(`(in ${bad})`);
    await expect(loadConfig({ file: join(dir, 'missing.yaml') }, { env: {} })).rejects.toThrow(/not found/);
    const broken = file('broken.yaml', 'transport: [unclosed');
    await expect(loadConfig({ file: broken }, { env: {} })).rejects.toBeInstanceOf(ConfigError);
    const list = file('list.yaml', '- a\n- b\n');
    await expect(loadConfig({ file: list }, { env: {} })).rejects.toThrow(/top level must be a mapping/);
  });

  it('refuses password and passwordFile in one layer', async () => {
    const issues = await issuesOf(
      loadConfig({ transport: { ...transport, password: 'a', passwordFile: '/b' } }, { env: {} }),
    );
    expect(issues[0]?.path).toBe('transport');
  });
});

describe('secrets', () => {
  it('redacts the password in the effective config, deeply frozen', async () => {
    const { config, redacted } = await loadConfig({ transport }, { env: { XMPPBUS_PASSWORD: 's3cret' } });
    expect(config.transport?.password).toBe('s3cret');
    expect(redacted.transport?.password).toBe(REDACTED);
    expect(JSON.stringify(redacted)).not.toContain('s3cret');
    expect(Object.isFrozen(redacted.transport)).toBe(true);
  });

  it('keeps a password callback out of validation and out of the redacted copy', async () => {
    const password = (): string => 'from-vault';
    const { config, redacted } = await loadConfig({ transport: { ...transport, password } }, { env: {} });
    expect(config.transport?.password).toBe(password);
    expect(redacted.transport?.password).toBe(REDACTED);
  });

  it('reads passwordFile when the secret is asked for (each connection attempt), trimmed', async () => {
    const path = file('secret', 'first\n');
    const secret = secretOf({ passwordFile: 'secret' }, dir);
    expect(typeof secret).toBe('function');
    const read = secret as () => Promise<string>;
    await expect(read()).resolves.toBe('first');
    writeFileSync(path, 'rotated\n');
    await expect(read()).resolves.toBe('rotated');
    rmSync(path);
    await expect(read()).rejects.toThrow(/transport.passwordFile .* not found/);
    expect(() => secretOf({}, dir)).toThrow(BusConfigError);
  });
});

describe('readEnv', () => {
  it('parses numbers and booleans and leaves bad values as text', () => {
    const { config, sources } = readEnv({
      XMPPBUS_ACCESS_ALLOW_ALL: 'yes',
      XMPPBUS_SESSION_IQ_TIMEOUT: '500',
      XMPPBUS_SESSION_PROBE_INTERVAL: '0',
      XMPPBUS_MESSAGING_DEFAULT_QOS: 'two',
      PATH: '/bin',
    });
    expect(config).toEqual({
      access: { allowAll: true },
      session: { iqTimeout: 500, probeInterval: 0 },
      messaging: { defaultQos: 'two' },
    });
    expect(sources.get('session.iqTimeout')).toBe('XMPPBUS_SESSION_IQ_TIMEOUT');
  });
});
