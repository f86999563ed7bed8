import { ENV_BINDINGS } from '@xmppbus/bus';
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { envFileText, writeEnvFile } from './env-file.js';
import type { ServerState } from './types.js';

const state: ServerState = {
  version: 1,
  kind: 'prosody',
  pid: 4242,
  endpoints: {
    host: '127.0.0.1',
    domain: 'localhost',
    pubsubService: 'pubsub.localhost',
    c2sPort: 15222,
    componentPort: 15347,
    componentTlsPort: undefined,
    c2sService: 'xmpp://127.0.0.1:15222',
    componentService: 'xmpp://127.0.0.1:15347',
  },
  componentSecret: 'shared',
  components: [
    { name: 'orders.localhost', secret: 'o-secret' },
    { name: 'billing.localhost', secret: 'b secret"x' },
  ],
  accounts: [{ user: 'alice', password: 'a-pw' }],
  dir: '/tmp/x',
  ephemeral: false,
  configFile: '/tmp/x/prosody.cfg.lua',
  logFile: '/tmp/x/prosody.log',
  caFile: undefined,
  startedAt: '2026-01-01T00:00:00.000Z',
};

/** What Node's --env-file / dotenv would read (enough for our output: bare or JSON-quoted values). */
function parse(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.startsWith("'") ? m[2]!.slice(1, -1) : m[2]!;
  }
  return out;
}

describe('envFileText', () => {
  it("describes the first component with the bus's variables by default", () => {
    const text = envFileText(state);
    expect(parse(text)).toEqual({
      XMPPBUS_TRANSPORT_KIND: 'component',
      XMPPBUS_TRANSPORT_SERVICE: 'xmpp://127.0.0.1:15347',
      XMPPBUS_TRANSPORT_DOMAIN: 'orders.localhost',
      XMPPBUS_PASSWORD: 'o-secret',
      XMPPBUS_PUBSUB_SERVICE: 'pubsub.localhost',
    });
    for (const name of Object.keys(parse(text))) expect(ENV_BINDINGS).toHaveProperty(name);
    expect(text).toContain(`#   component billing.localhost  secret 'b secret"x'`);
    expect(text).toContain('#   account alice@localhost  password a-pw');
  });

  it('describes an account as a client transport, and quotes values that need it', () => {
    expect(parse(envFileText(state, { entity: 'alice' }))).toMatchObject({
      XMPPBUS_TRANSPORT_KIND: 'client',
      XMPPBUS_TRANSPORT_SERVICE: 'xmpp://127.0.0.1:15222',
      XMPPBUS_TRANSPORT_DOMAIN: 'localhost',
      XMPPBUS_TRANSPORT_USERNAME: 'alice',
      XMPPBUS_PASSWORD: 'a-pw',
    });
    expect(envFileText(state, { entity: 'billing.localhost' })).toContain(`XMPPBUS_PASSWORD='b secret"x'`);
    expect(() => envFileText(state, { entity: 'nobody' })).toThrow(/no component or account nobody/);
  });

  it('a secret with a line break in a comment cannot start a line of its own', () => {
    const text = envFileText({ ...state, accounts: [{ user: 'bob', password: 'x\nXMPPBUS_TRANSPORT_KIND=client' }] });
    expect(parse(text)['XMPPBUS_TRANSPORT_KIND']).toBe('component');
  });
});

describe('writeEnvFile', () => {
  it('leaves the file mode 0600, also when it existed with a wider mode', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xmppbus-unit-env-'));
    try {
      const file = join(dir, '.env');
      writeFileSync(file, 'OLD=1\n', { mode: 0o644 });
      writeEnvFile(file, state);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8')).toContain('XMPPBUS_PASSWORD=o-secret');
      expect(readFileSync(file, 'utf8')).not.toContain('OLD=1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to write through a symbolic link, and leaves its target alone', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xmppbus-unit-env-'));
    try {
      const target = join(dir, 'authorized_keys');
      writeFileSync(target, 'keep\n', { mode: 0o644 });
      symlinkSync(target, join(dir, '.env'));
      expect(() => writeEnvFile(join(dir, '.env'), state)).toThrow(/symbolic link/);
      expect(readFileSync(target, 'utf8')).toBe('keep\n');
      expect(statSync(target).mode & 0o777).toBe(0o644);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
