import { describe, expect, it } from 'vitest';
import { AccessPolicy, ConfigError, Session, orgDomain, xml, type Logger } from '@xmppbus/core';
import { RecordingTransport } from './recording-transport.fixture.js';

const SELF = 'orders.example.com';

describe('AccessPolicy', () => {
  it('by default lets services of the same organisation in, and nobody else', () => {
    const p = new AccessPolicy();
    expect(p.allows('billing.example.com', SELF, 'urn:x')).toBe(true);
    expect(p.allows('a.b.example.com', SELF, 'urn:x')).toBe(true);
    expect(p.allows('example.com', SELF, 'urn:x')).toBe(true); // the server itself
    expect(p.allows('alice@example.com/phone', SELF, 'urn:x')).toBe(false); // a user account
    expect(p.allows('anything@billing.example.com', SELF, 'urn:x')).toBe(false);
    expect(p.allows('evil.com', SELF, 'urn:x')).toBe(false);
    expect(p.allows('notexample.com', SELF, 'urn:x')).toBe(false); // suffix, not a subdomain
    expect(p.allows(undefined, SELF, 'urn:x')).toBe(false);
    // Case-insensitive domains, and the cached decision stays right for the next sender.
    expect(p.allows('BILLING.Example.COM', SELF, 'urn:x')).toBe(true);
    expect(p.allows('bob@example.com', SELF, 'urn:x')).toBe(false);
  });

  it('matches rules in order: full JID, bare JID, entity, *@domain, *.domain, * — per namespace or method', () => {
    const p = new AccessPolicy({
      rules: [
        { from: 'mallory@example.com', effect: 'deny' },
        { from: 'alice@example.com/phone', to: 'urn:x#read' },
        { from: 'bob@example.com', to: 'urn:x' },
        { from: '*@iot.example.com', to: ['urn:telemetry:1'] },
        { from: '*.partner.org', to: 'urn:x#read' },
        { from: 'billing.example.com', to: 'urn:secret', effect: 'deny' },
        { from: '*', to: 'urn:public' },
      ],
    });
    expect(p.allows('mallory@example.com/x', SELF, 'urn:public')).toBe(false); // first match wins
    expect(p.allows('alice@example.com/phone', SELF, 'urn:x', 'read')).toBe(true);
    expect(p.allows('alice@example.com/phone', SELF, 'urn:x', 'write')).toBe(false);
    expect(p.allows('alice@example.com/laptop', SELF, 'urn:x', 'read')).toBe(false);
    expect(p.allows('bob@example.com/any', SELF, 'urn:x', 'write')).toBe(true);
    expect(p.allows('dev7@iot.example.com/r', SELF, 'urn:telemetry:1')).toBe(true);
    expect(p.allows('dev7@iot.example.com/r', SELF, 'urn:x')).toBe(false);
    expect(p.allows('svc.partner.org', SELF, 'urn:x', 'read')).toBe(true);
    expect(p.allows('user@svc.partner.org', SELF, 'urn:x', 'read')).toBe(false);
    expect(p.allows('billing.example.com', SELF, 'urn:secret')).toBe(false);
    expect(p.allows('billing.example.com', SELF, 'urn:other')).toBe(true); // fallback: same org
    expect(p.allows('someone@elsewhere.net', SELF, 'urn:public')).toBe(true);
  });

  it('fallback deny refuses even services without a rule; allowAll allows everything and warns', () => {
    expect(new AccessPolicy({ fallback: 'deny' }).allows('billing.example.com', SELF, 'urn:x')).toBe(false);
    const open = AccessPolicy.allowAll();
    expect(open.allows('anyone@evil.com', SELF, 'urn:x')).toBe(true);
    const warnings: string[] = [];
    const logger: Logger = { error: () => {}, warn: (m) => void warnings.push(m), info: () => {}, debug: () => {} };
    open.warnIfOpen(logger, SELF);
    new AccessPolicy().warnIfOpen(logger, SELF);
    expect(warnings).toHaveLength(1);
  });

  it('refuses malformed rules with ConfigError', () => {
    expect(() => new AccessPolicy({ rules: [{ from: [] }] })).toThrow(ConfigError);
    expect(() => new AccessPolicy({ rules: [{ from: ' ' }] })).toThrow(ConfigError);
  });

  it('knows the organisation domain of components and clients', () => {
    expect(orgDomain('orders.example.com')).toBe('example.com');
    expect(orgDomain('agent@example.com/r')).toBe('example.com');
  });
});

describe('access in the session', () => {
  it('answers a denied request forbidden/auth before any handler runs, and counts it', async () => {
    const t = new RecordingTransport(SELF);
    t.set('online');
    const session = new Session({ transport: t });
    await session.start();
    let handled = 0;
    session.router.handle('urn:x', 'op', () => void handled++);
    t.emit(xml('iq', { type: 'set', id: '1', from: 'alice@example.com/r', to: SELF }, xml('op', { xmlns: 'urn:x' })));
    expect(handled).toBe(0);
    const reply = t.sent[0]!;
    expect(reply.attrs['type']).toBe('error');
    const err = reply.getChild('error')!;
    expect(err.attrs['type']).toBe('auth');
    expect(err.getChild('forbidden')).toBeDefined();
    expect(session.access.denied).toBe(1);
    // A service of the same organisation gets through.
    t.emit(xml('iq', { type: 'set', id: '2', from: 'billing.example.com', to: SELF }, xml('op', { xmlns: 'urn:x' })));
    expect(handled).toBe(1);
    await session.close();
  });

  it('lists in disco#items and answers disco#info node queries only for what the requester may reach', async () => {
    const t = new RecordingTransport(SELF);
    t.set('online');
    const session = new Session({
      transport: t,
      access: new AccessPolicy({ rules: [{ from: 'alice@example.com', to: 'urn:x#read' }] }),
    });
    await session.start();
    session.disco.addItem({ node: 'urn:x#read', name: 'read', guard: { ns: 'urn:x', name: 'read' } });
    session.disco.addItem({ node: 'urn:x#write', name: 'write', guard: { ns: 'urn:x', name: 'write' } });
    session.disco.addNodeInfo('urn:x#write', { features: ['urn:x'], guard: { ns: 'urn:x', name: 'write' } });
    const items = (from: string): string[] => {
      const id = `i${t.sent.length}`;
      t.emit(
        xml(
          'iq',
          { type: 'get', id, from, to: SELF },
          xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' }),
        ),
      );
      const reply = t.sent.find((s) => s.attrs['id'] === id)!;
      return reply
        .getChild('query')!
        .getChildren('item')
        .map((i) => i.attrs['node'] ?? '');
    };
    expect(items('alice@example.com/r')).toEqual(['urn:x#read']);
    expect(items('billing.example.com')).toEqual(['urn:x#read', 'urn:x#write']);
    expect(items('eve@evil.com')).toEqual([]);
    t.emit(
      xml(
        'iq',
        { type: 'get', id: 'n1', from: 'alice@example.com/r', to: SELF },
        xml('query', { xmlns: 'http://jabber.org/protocol/disco#info', node: 'urn:x#write' }),
      ),
    );
    const info = t.sent.find((s) => s.attrs['id'] === 'n1')!.getChild('query')!;
    expect(info.getChildren('feature').map((f) => f.attrs['var'])).not.toContain('urn:x');
    await session.close();
  });
});
