import { describe, expect, it } from 'vitest';
import { AuthError } from '@xmppbus/core';
import { plain, scram } from './sasl.js';

describe('SASL', () => {
  it('PLAIN initial response is authzid NUL user NUL password', () => {
    expect(plain('alice', 'pw').initial()).toBe('\u0000alice\u0000pw');
  });

  it('SCRAM-SHA-1 matches the RFC 5802 example', async () => {
    const s = scram('SCRAM-SHA-1', 'user', 'pencil', { nonce: 'fyko+d2lbbFgONRv9qkxdawL' });
    expect(s.initial()).toBe('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL');
    const final = await s.challenge('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
    expect(final).toBe('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=');
    expect(() => s.success('v=rmF9pqV8S7suAoZWja4dJRkFsKQ=')).not.toThrow();
  });

  it('SCRAM-SHA-256 matches the RFC 7677 example', async () => {
    const s = scram('SCRAM-SHA-256', 'user', 'pencil', { nonce: 'rOprNGfwEbeRWgbNEkqO' });
    const final = await s.challenge(
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    );
    expect(final).toBe(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    );
    expect(() => s.success('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).not.toThrow();
  });

  it('SCRAM rejects a wrong server signature, a foreign nonce and excessive iterations', async () => {
    const s = scram('SCRAM-SHA-1', 'user', 'pencil', { nonce: 'abc' });
    await s.challenge('r=abcdef,s=QSXCR+Q6sek8bf92,i=16');
    expect(() => s.success('v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=')).toThrow(AuthError);
    await expect(scram('SCRAM-SHA-1', 'u', 'p', { nonce: 'abc' }).challenge('r=xyz,s=AAAA,i=16')).rejects.toThrow(
      AuthError,
    );
    await expect(
      scram('SCRAM-SHA-1', 'u', 'p', { nonce: 'abc', maxIterations: 10 }).challenge('r=abcd,s=AAAA,i=4096'),
    ).rejects.toThrow(AuthError);
  });

  it('escapes = and , in the username', () => {
    expect(scram('SCRAM-SHA-1', 'a=b,c', 'p', { nonce: 'n' }).initial()).toBe('n,,n=a=3Db=2Cc,r=n');
  });
});
