import { describe, expect, it } from 'vitest';
import { bareJid, domainOf, jid, jidEquals } from '@xmppbus/core';

describe('jid', () => {
  it('parses and normalises: local and domain lower-cased, resource kept as is', () => {
    const j = jid('Alice@Example.COM/Phone');
    expect(j.local).toBe('alice');
    expect(j.domain).toBe('example.com');
    expect(j.resource).toBe('Phone');
    expect(j.bare).toBe('alice@example.com');
    expect(String(j)).toBe('alice@example.com/Phone');
  });

  it('handles domain-only and resource with slashes', () => {
    const d = jid('svc.example.com');
    expect(d.local).toBe('');
    expect(d.bare).toBe('svc.example.com');
    expect(String(d)).toBe('svc.example.com');
    expect(jid('a@b/c/d').resource).toBe('c/d');
  });

  it('throws on malformed input', () => {
    expect(() => jid('')).toThrow();
    expect(() => jid('alice@')).toThrow();
  });

  it('bareJid and domainOf are plain string operations', () => {
    expect(bareJid('a@b/c/d')).toBe('a@b');
    expect(bareJid('a@b')).toBe('a@b');
    expect(bareJid('b/c')).toBe('b');
    expect(domainOf('a@b.test/c')).toBe('b.test');
    expect(domainOf('b.test/c@d')).toBe('b.test');
    expect(domainOf('b.test')).toBe('b.test');
  });

  it('jidEquals: bare parts case-insensitive, resources case-sensitive, bare option ignores resources', () => {
    expect(jidEquals('a@b/r', 'a@b/r')).toBe(true);
    expect(jidEquals('Alice@Example.com/r', 'alice@example.com/r')).toBe(true);
    expect(jidEquals('a@b/R', 'a@b/r')).toBe(false);
    expect(jidEquals('a@b/r', 'a@b')).toBe(false);
    expect(jidEquals('a@b/', 'a@b')).toBe(false);
    expect(jidEquals('a@b/r1', 'a@b/r2')).toBe(false);
    expect(jidEquals('a@b/r1', 'A@B/r2', { bare: true })).toBe(true);
    expect(jidEquals('a@b/r1', 'c@b/r1', { bare: true })).toBe(false);
    expect(jidEquals('a@b', 'a@c')).toBe(false);
  });
});
