import { isAbsolute } from 'node:path';

import { ConfigError } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';

import { DEFAULT_STATE_DIR, resolveOptions } from './options.js';

describe('resolveOptions', () => {
  it('defaults to Prosody for localhost with a random shared secret and no components', () => {
    const a = resolveOptions();
    const b = resolveOptions();
    expect(a).toMatchObject({
      kind: 'prosody',
      domain: 'localhost',
      pubsubService: 'pubsub.localhost',
      components: [],
      accounts: [],
      pubsubStorage: 'memory',
      tls: false,
      detach: false,
      limits: { c2sStanzaSize: 262_144, componentStanzaSize: 524_288 },
    });
    expect(a.componentSecret).toMatch(/^[\w-]{24}$/);
    expect(a.componentSecret).not.toBe(b.componentSecret);
    expect(isAbsolute(a.stateDir) && a.stateDir.endsWith(DEFAULT_STATE_DIR)).toBe(true);
  });

  it('gives components the shared secret unless they bring their own; admins default to all components', () => {
    const o = resolveOptions({
      kind: 'ejabberd',
      domain: 'example.test',
      componentSecret: 'shared-1',
      components: ['Orders.example.test', { name: 'billing.example.test', secret: 'own-2' }],
    });
    expect(o.components).toEqual([
      { name: 'orders.example.test', secret: 'shared-1' },
      { name: 'billing.example.test', secret: 'own-2' },
    ]);
    expect(o.pubsubAdmins).toEqual(['orders.example.test', 'billing.example.test']);
    expect(o.pubsubService).toBe('pubsub.example.test');
    expect(o.limits.componentStanzaSize).toBe(1_048_576); // ejabberd's harness default
  });

  it.each([
    [{ kind: 'openfire' as 'prosody' }, /kind must be/],
    [{ domain: 'not a domain' }, /is not a domain name/],
    [{ components: ['a.localhost', 'A.localhost'] }, /listed twice/],
    [{ components: ['pubsub.localhost'] }, /clashes/],
    [{ components: [{ name: 'a.localhost', secret: '' }] }, /is empty/],
    [{ componentSecret: 'has space' }, /whitespace/],
    [{ accounts: [{ user: 'a@b', password: 'x' }] }, /not a valid JID localpart/],
    [{ accounts: [{ user: 'bob', password: '' }] }, /password of bob is empty/],
    [{ ports: { c2s: 70_000 } }, /ports.c2s must be/],
    [{ ports: { c2s: 5222, component: 5222 } }, /two ports are the same/],
    [{ limits: { c2sStanzaSize: 10 } }, /limits.c2sStanzaSize/],
  ])('refuses %j with a ConfigError', (options, message) => {
    expect(() => resolveOptions(options)).toThrow(ConfigError);
    expect(() => resolveOptions(options)).toThrow(message);
  });
});
