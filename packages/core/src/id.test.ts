import { describe, expect, it } from 'vitest';
import { randomId } from '@xmppbus/core';

describe('randomId', () => {
  it('returns 16 base64url characters (96 bits)', () => {
    for (let i = 0; i < 100; i++) expect(randomId()).toMatch(/^[A-Za-z0-9_-]{16}$/);
  });

  it('never repeats, across several refills of the pooled buffer', () => {
    // The pool holds 256 ids; 10 000 draws cross ~40 refills.
    const n = 10_000;
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add(randomId());
    expect(seen.size).toBe(n);
  });

  it('spreads over the whole alphabet (not a counter)', () => {
    const chars = new Set<string>();
    for (let i = 0; i < 200; i++) for (const c of randomId()) chars.add(c);
    expect(chars.size).toBeGreaterThan(60); // of 64
  });
});
