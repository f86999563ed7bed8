import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { EjabberdServer, INETRC } from './ejabberd.js';
import type { ManagedServer } from './managed-server.js';
import { resolveOptions } from './options.js';
import { ProsodyServer } from './prosody.js';
import type { StartServerOptions } from './types.js';

/** Writes the config a start would write (no process is launched), returns the server's files. */
async function generate(options: StartServerOptions): Promise<{ srv: ManagedServer; read: (f: string) => string }> {
  const o = resolveOptions(options);
  const srv = o.kind === 'prosody' ? new ProsodyServer(o) : new EjabberdServer(o);
  srv.c2sPort = 15222;
  srv.componentPort = 15347;
  await (srv as unknown as { writeConfig(): Promise<void> }).writeConfig();
  return { srv, read: (f) => readFileSync(join(srv.dir, f), 'utf8') };
}

describe('generated Prosody config', () => {
  it('declares every component with its secret, pubsub admins, limits, accounts; no s2s; loopback only', async () => {
    const { srv, read } = await generate({
      domain: 'dev.test',
      componentSecret: 'shared',
      components: ['orders.dev.test', { name: 'billing.dev.test', secret: 'own' }],
      accounts: [{ user: 'Alice', password: 'pw"1' }],
      limits: { c2sRate: 50_000 },
    });
    try {
      const cfg = read('prosody.cfg.lua');
      expect(cfg).toContain('c2s_ports = { 15222 }');
      expect(cfg).toContain('component_ports = { 15347 }');
      expect(cfg).toContain('interfaces = { "127.0.0.1" }');
      expect(cfg).toContain('modules_disabled = { "s2s"; "s2s_auth_certs" }');
      expect(cfg).toContain('admins = { "orders.dev.test", "billing.dev.test" }');
      expect(cfg).toContain('c2s_stanza_size_limit = 262144');
      expect(cfg).toContain('component_stanza_size_limit = 524288');
      expect(cfg).toContain('limits = { c2s = { rate = "50kb/s" } }');
      expect(cfg).toContain('VirtualHost "dev.test"');
      expect(cfg).toContain('Component "pubsub.dev.test" "pubsub"');
      expect(cfg).toContain('Component "orders.dev.test"\n  component_secret = "shared"');
      expect(cfg).toContain('Component "billing.dev.test"\n  component_secret = "own"');
      expect(cfg).toContain('Component "harness-probe.dev.test"\n  component_secret = "shared"');
      // The account file Prosody's internal_plain storage reads (name lowercased, Lua-escaped password).
      expect(read('data/dev%2etest/accounts/alice.dat')).toBe('return {\n\t["password"] = "pw\\0341";\n};\n');
    } finally {
      await srv.stop();
    }
  });
});

describe('generated ejabberd config', () => {
  it('on the shared secret: any component name may connect (listener password, no hosts)', async () => {
    const { srv, read } = await generate({ kind: 'ejabberd', componentSecret: 'shared', components: ['a.localhost'] });
    try {
      const yml = read('ejabberd.yml');
      expect(yml).toContain('s2s_access: none');
      expect(yml).toContain('    password: "shared"\n    # Each connection routes only its own name');
      expect(yml).not.toContain('hosts:\n      "a.localhost"');
      expect(yml).toContain('global_routes: false');
      expect(yml).toContain('max_stanza_size: 262144');
      expect(yml).toContain('max_stanza_size: 1048576');
      expect(read('inetrc')).toBe(INETRC);
      expect(INETRC).toContain('{resolv_conf, ""}.');
    } finally {
      await srv.stop();
    }
  });

  it('with own secrets: only the declared names (and the probe), each with its secret; a c2s shaper', async () => {
    const { srv, read } = await generate({
      kind: 'ejabberd',
      domain: 'dev.test',
      componentSecret: 'shared',
      components: [{ name: 'orders.dev.test', secret: 'own' }],
      limits: { c2sRate: 20_000, componentStanzaSize: 524_288 },
    });
    try {
      const yml = read('ejabberd.yml');
      expect(yml).toContain(
        '    hosts:\n      "orders.dev.test":\n        password: "own"\n      "harness-probe.dev.test":\n        password: "shared"',
      );
      expect(yml).not.toMatch(/^ {4}password:/m);
      expect(yml).toContain('hosts:\n  - "dev.test"');
      expect(yml).toContain('      - "pubsub.dev.test"');
      expect(yml).toContain('shaper:\n  c2s_rate: 20000\n');
      expect(yml).toContain('  c2s_shaper: c2s_rate\n');
      expect(yml).toContain('    shaper: c2s_shaper');
      expect(yml).toContain('max_stanza_size: 524288');
    } finally {
      await srv.stop();
    }
  });
});
