import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { serverOptionsFromConfig } from './from-config.js';

describe('serverOptionsFromConfig', () => {
  it("declares the config's component with its own secret, on the port of transport.service", () => {
    const r = serverOptionsFromConfig({
      transport: { kind: 'component', service: 'xmpp://127.0.0.1:5347', domain: 'orders.localhost', password: 's3' },
      pubsub: { service: 'pubsub.localhost' },
      server: { components: ['billing.localhost', 'orders.localhost'], accounts: ['alice'] },
    });
    expect(r.entity).toBe('orders.localhost');
    expect(r.warnings).toEqual([]);
    expect(r.options).toMatchObject({
      kind: 'prosody',
      domain: 'localhost',
      ports: { component: 5347 },
      components: [{ name: 'orders.localhost', secret: 's3' }, { name: 'billing.localhost' }],
    });
    expect(r.options.accounts).toEqual([{ user: 'alice', password: expect.stringMatching(/^[\w-]{24}$/) }]);
  });

  it('makes a client transport an account on its domain, its secret read from passwordFile', () => {
    const dir = mkdtempSync(join(tmpdir(), 'server-from-config-'));
    try {
      writeFileSync(join(dir, 'pw'), ' agent-pw\n');
      const r = serverOptionsFromConfig(
        {
          transport: {
            kind: 'client',
            service: 'xmpp://localhost:5222',
            domain: 'iot.test',
            username: 'sensor1',
            passwordFile: join(dir, 'pw'),
          },
          server: { kind: 'ejabberd' },
        },
        { ports: { c2s: 15222 } },
      );
      expect(r.entity).toBe('sensor1');
      expect(r.options).toMatchObject({
        kind: 'ejabberd',
        domain: 'iot.test',
        accounts: [{ user: 'sensor1', password: 'agent-pw' }],
        ports: { c2s: 15222 },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('warns about what a local server cannot be: a remote host, another pub/sub service', () => {
    const r = serverOptionsFromConfig({
      transport: { kind: 'component', service: 'xmpp://xmpp.example.org:5347', domain: 'svc.example.org' },
      pubsub: { service: 'events.example.org' },
    });
    expect(r.options.domain).toBe('example.org');
    expect(r.options.ports).toBeUndefined();
    expect(r.warnings).toEqual([
      'transport.service points at xmpp.example.org; the local server listens on 127.0.0.1',
      'pubsub.service is events.example.org, the local server offers pubsub.example.org',
    ]);
  });

  it('without a transport: the server section, or an empty localhost server', () => {
    expect(serverOptionsFromConfig({}).options).toEqual({
      kind: 'prosody',
      domain: 'localhost',
      components: [],
      accounts: [],
    });
    expect(serverOptionsFromConfig({ pubsub: { service: 'pubsub.dev.test' } }).options.domain).toBe('dev.test');
  });
});
