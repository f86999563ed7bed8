import { readFileSync } from 'node:fs';

import { ConfigError } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { EjabberdServer, INETRC } from './ejabberd.js';
import { answer, parseQuestion } from './fake-dns.js';
import {
  PROSODY_ROUTES_MODULE,
  PROSODY_ROUTES_PLUGIN,
  ejabberdInetrc,
  ejabberdS2sConfig,
  prosodyS2sConfig,
} from './federation-config.js';
import type { S2sSettings } from './federation-config.js';
import type { ManagedServer } from './managed-server.js';
import { resolveOptions } from './options.js';
import { ProsodyServer } from './prosody.js';

/** The config a single-server start would write for `kind` (no process is launched). */
async function baseConfig(kind: 'prosody' | 'ejabberd'): Promise<string> {
  const o = resolveOptions({ kind, domain: 'b.test', components: ['svc1.b.test'] });
  const srv: ManagedServer = kind === 'prosody' ? new ProsodyServer(o) : new EjabberdServer(o);
  srv.c2sPort = 15222;
  srv.componentPort = 15347;
  try {
    await (srv as unknown as { writeConfig(): Promise<void> }).writeConfig();
    return readFileSync(srv.configFile, 'utf8');
  } finally {
    await srv.stop();
  }
}

const s2s = (tls: boolean): S2sSettings => ({ port: 25269, routes: [{ domain: 'a.test', port: 25270 }], tls });

describe('federated Prosody config', () => {
  it('turns s2s on with dialback, the static routes plugin and loopback-only listeners', async () => {
    const cfg = prosodyS2sConfig(await baseConfig('prosody'), s2s(false), '/x/plugins');
    expect(cfg).not.toContain('modules_disabled = { "s2s"');
    expect(cfg).toContain('s2s_interfaces = { "127.0.0.1" }');
    expect(cfg).toContain('s2s_ports = { 25269 }');
    expect(cfg).toContain('plugin_paths = { "/x/plugins" }');
    expect(cfg).toContain('s2s_require_encryption = false');
    expect(cfg).toContain('s2s_secure_auth = false');
    expect(cfg).toContain(`${PROSODY_ROUTES_MODULE} = { ["a.test"] = { "127.0.0.1", 25270 } }`);
    expect(cfg).toMatch(/^modules_enabled = \{ "dialback"; "xmppbus_s2s_routes"; "disco"/m);
    expect(cfg).not.toMatch(/^modules_enabled = \{[^\n]*"tls"/m);
  });

  it('with TLS: STARTTLS required on s2s and mod_tls global (components inherit it)', async () => {
    const cfg = prosodyS2sConfig(await baseConfig('prosody'), s2s(true), '/x/plugins');
    expect(cfg).toContain('s2s_require_encryption = true');
    expect(cfg).toMatch(/^modules_enabled = \{ "dialback"; "xmppbus_s2s_routes"; "tls"; /m);
  });

  it('refuses a config without the s2s switch (the base config changed)', () => {
    expect(() => prosodyS2sConfig('modules_enabled = { }', s2s(false), '/x')).toThrow(ConfigError);
  });

  it('ships a plugin that routes the peer and its subdomains and gives nothing else a target', () => {
    expect(PROSODY_ROUTES_PLUGIN).toContain(`module:get_option("${PROSODY_ROUTES_MODULE}"`);
    expect(PROSODY_ROUTES_PLUGIN).toContain('return manual.new({}, protocol, extra);');
    expect(PROSODY_ROUTES_PLUGIN).toContain('host:match("^[^.]+%.(.+)$")');
  });
});

describe('federated ejabberd config', () => {
  it('is valid YAML with an s2s listener, dialback, and s2s only to the peer', async () => {
    const text = ejabberdS2sConfig(await baseConfig('ejabberd'), s2s(false));
    const y = parse(text) as Record<string, unknown> & {
      listen: { port: number; module: string; ip: string }[];
      acl: Record<string, { server?: string[]; server_glob?: string[] }>;
      access_rules: Record<string, unknown>;
      modules: Record<string, unknown>;
    };
    expect(y.listen).toContainEqual(
      expect.objectContaining({ port: 25269, module: 'ejabberd_s2s_in', ip: '127.0.0.1' }),
    );
    expect(y['s2s_access']).toBe('xmppbus_federation');
    expect(y['s2s_use_starttls']).toBe(false);
    expect(y['s2s_max_retry_delay']).toBe(1); // not 300 s of bouncing after a failed connect
    expect(y.acl['xmppbus_peers']).toEqual({ server: ['a.test'], server_glob: ['*.a.test'] });
    expect(y.access_rules['xmppbus_federation']).toEqual({ allow: 'xmppbus_peers' });
    expect(y.modules).toHaveProperty('mod_s2s_dialback');
    expect(y.modules).toHaveProperty('mod_pubsub'); // the rest is untouched
  });

  it('with TLS: STARTTLS required', async () => {
    const y = parse(ejabberdS2sConfig(await baseConfig('ejabberd'), s2s(true))) as Record<string, unknown>;
    expect(y['s2s_use_starttls']).toBe('required');
  });

  it('refuses a config without the s2s switch', () => {
    expect(() => ejabberdS2sConfig('hosts: []\n', s2s(false))).toThrow(ConfigError);
  });

  it('inetrc: never resolv.conf, SRV questions to our responder only', () => {
    const rc = ejabberdInetrc(25353);
    expect(rc.startsWith(INETRC)).toBe(true);
    expect(rc).toContain('{resolv_conf, ""}.');
    expect(rc).toContain('{nameserver, {127,0,0,1}, 25353}.');
  });
});

/** A DNS query packet for `name`/`type` (what the Erlang resolver sends). */
function query(name: string, type: number): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([header, ...labels, Buffer.from([0]), tail]);
}

describe('fake DNS answers', () => {
  const lookup = (d: string): number | undefined => (d === 'a.test' || d.endsWith('.a.test') ? 25270 : undefined);

  it('SRV for a routed domain or subdomain → 127.0.0.1:port (IP-literal target)', () => {
    const a = answer(query('_xmpp-server._tcp.svc1.a.test', 33), lookup)!;
    expect(a.question).toEqual({ name: '_xmpp-server._tcp.svc1.a.test', type: 33, answered: true });
    const r = a.reply;
    expect(r.readUInt16BE(0)).toBe(0x1234); // same id
    expect(r.readUInt16BE(2) & 0x000f).toBe(0); // NOERROR
    expect(r.readUInt16BE(6)).toBe(1); // one answer
    expect(r.subarray(-16).includes(Buffer.from('127'))).toBe(true);
    // priority 0, weight 0, port, then the target name 3"127"1"0"1"0"1"1"0
    const target = Buffer.from([3, 49, 50, 55, 1, 48, 1, 48, 1, 49, 0]);
    expect(r.subarray(r.length - target.length)).toEqual(target);
    expect(r.readUInt16BE(r.length - target.length - 2)).toBe(25270);
  });

  it('NXDOMAIN for anything else: other domains, direct-TLS SRV, A/AAAA', () => {
    for (const [name, type] of [
      ['_xmpp-server._tcp.c.test', 33],
      ['_xmpps-server._tcp.a.test', 33],
      ['a.test', 1],
      ['a.test', 28],
    ] as const) {
      const a = answer(query(name, type), lookup)!;
      expect(a.question.answered).toBe(false);
      expect(a.reply.readUInt16BE(2) & 0x000f).toBe(3);
      expect(a.reply.readUInt16BE(6)).toBe(0);
    }
  });

  it('ignores packets it cannot read', () => {
    expect(parseQuestion(Buffer.alloc(5))).toBeUndefined();
    expect(answer(Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 33, 0, 1]), lookup)).toBeUndefined();
  });
});
