import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

import { which } from './install.js';
import { serverConfigSnippet, type SnippetOptions } from './snippet.js';

/** The example docs/servers.md shows; the doc must quote exactly what the code generates for it. */
const DOC_EXAMPLE: SnippetOptions = {
  domain: 'example.org',
  components: [
    { name: 'orders.example.org', secret: 'REPLACE-WITH-ORDERS-SECRET' },
    { name: 'billing.example.org', secret: 'REPLACE-WITH-BILLING-SECRET' },
  ],
};
const DOC = new URL('../../../docs/servers.md', import.meta.url);

/** The fenced block right after `<!-- generated: serverConfigSnippet('<kind>', …) -->` in the doc. */
function quoted(doc: string, kind: string): string | undefined {
  const marker = doc.indexOf(`<!-- generated: serverConfigSnippet('${kind}'`);
  if (marker < 0) return undefined;
  const open = doc.indexOf('```', marker);
  const start = doc.indexOf('\n', open) + 1;
  return doc.slice(start, doc.indexOf('```', start));
}

describe('serverConfigSnippet', () => {
  it.each(['prosody', 'ejabberd'] as const)('docs/servers.md quotes the current %s snippet', (kind) => {
    const doc = readFileSync(DOC, 'utf8');
    // To update: paste the snippet printed by this expectation's diff into docs/servers.md.
    expect(quoted(doc, kind)).toBe(serverConfigSnippet(kind, DOC_EXAMPLE));
  });

  it('generates a random secret for a component without one, and never the same twice', () => {
    const a = serverConfigSnippet('prosody', { domain: 'example.org', components: ['svc.example.org'] });
    const b = serverConfigSnippet('prosody', { domain: 'example.org', components: ['svc.example.org'] });
    const secret = /component_secret = "([\w-]+)"/.exec(a)?.[1];
    expect(secret).toMatch(/^[\w-]{24}$/);
    expect(b).not.toContain(secret!);
  });

  it('ejabberd: valid YAML with per-component secrets, limits, the shaper and who may create nodes', () => {
    const y = parseYaml(serverConfigSnippet('ejabberd', { ...DOC_EXAMPLE, c2sRate: 5000, componentPort: 15347 })) as {
      listen: Record<string, unknown>[];
      shaper: Record<string, unknown>;
      acl: Record<string, { server: string[] }>;
      modules: { mod_pubsub: Record<string, unknown> };
    };
    const service = y.listen.find((l) => l['module'] === 'ejabberd_service');
    expect(service).toMatchObject({
      port: 15347,
      ip: '127.0.0.1',
      max_stanza_size: 524_288,
      global_routes: false,
      hosts: { 'orders.example.org': { password: 'REPLACE-WITH-ORDERS-SECRET' } },
    });
    expect(y.listen.find((l) => l['module'] === 'ejabberd_c2s')).toMatchObject({ max_stanza_size: 262_144 });
    expect(y.shaper).toEqual({ c2s_rate: 5000 });
    expect(y.acl['xmppbus_services']?.server).toEqual(['orders.example.org', 'billing.example.org']);
    expect(y.modules.mod_pubsub).toMatchObject({
      hosts: ['pubsub.example.org'],
      access_createnode: 'xmppbus_createnode',
    });
  });

  it.runIf(which('lua5.4') !== undefined)('prosody: compiles as Lua (what Prosody config files are)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'server-snippet-'));
    try {
      const file = join(dir, 'snippet.cfg.lua');
      writeFileSync(file, serverConfigSnippet('prosody', { ...DOC_EXAMPLE, pubsubAdmins: ['ops@example.org'] }));
      execFileSync('lua5.4', ['-e', `assert(loadfile(${JSON.stringify(file)}))`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a name that is not a host name (it would end a comment line of the snippet)', () => {
    for (const kind of ['prosody', 'ejabberd'] as const) {
      expect(() => serverConfigSnippet(kind, { domain: 'example.org\nadmins = { "x" }' })).toThrow(
        /domain .* is not a domain name/,
      );
      expect(() => serverConfigSnippet(kind, { domain: 'example.org', components: ['a b.example.org'] })).toThrow(
        /component .* is not a domain name/,
      );
    }
  });
});
