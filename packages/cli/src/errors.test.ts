import {
  AuthError,
  ConfigError,
  ConnectionError,
  ConflictError,
  ServiceUnavailableError,
  StanzaError,
  TimeoutError,
  AbortError,
  StoreError,
} from '@xmppbus/core';
import { ValidationError } from '@xmppbus/schema';
import { describe, expect, it } from 'vitest';
import { EXIT, EXIT_CODE_HELP, UsageError, errorCodeOf, errorJson, exitCodeOf, formatError } from './errors.js';

describe('exit codes', () => {
  it.each([
    [new UsageError('bad flag'), EXIT.usage],
    [new ConfigError('bad config'), EXIT.usage],
    [new ConnectionError('refused'), EXIT.connection],
    [new AuthError('not authorized'), EXIT.connection],
    [new ConflictError('already connected'), EXIT.connection],
    [new TimeoutError(), EXIT.timeout],
    [new ServiceUnavailableError({ text: 'gone' }), EXIT.unavailable],
    [new StanzaError({ condition: 'remote-server-not-found' }), EXIT.unavailable],
    [new StanzaError({ condition: 'item-not-found' }), EXIT.error],
    [new ValidationError({ path: '/qty', message: 'must be >= 1' }), EXIT.error],
    [new StoreError('disk full'), EXIT.error],
    [new AbortError('interrupted'), EXIT.interrupted],
    [new Error('bug'), EXIT.error],
    ['thrown string', EXIT.error],
  ])('%s → %i', (err, code) => {
    expect(exitCodeOf(err)).toBe(code);
  });

  it('documents every code once', () => {
    const documented = EXIT_CODE_HELP.map(([code]) => code).sort((a, b) => a - b);
    expect(documented).toEqual(Object.values(EXIT).sort((a, b) => a - b));
  });
});

describe('formatError', () => {
  it('shows a stanza error as its condition and text, on one line', () => {
    const line = formatError(new StanzaError({ condition: 'item-not-found', text: 'no order\n  o1' }));
    expect(line).toBe('error[item-not-found]: no order o1');
  });

  it('shows other typed errors with their code', () => {
    expect(formatError(new TimeoutError('no reply within 500 ms'))).toBe('error[ERR_TIMEOUT]: no reply within 500 ms');
    expect(formatError(new UsageError('--qos must be 0, 1 or 2'))).toBe('error[usage]: --qos must be 0, 1 or 2');
    expect(errorCodeOf(new Error('x'))).toBe('internal');
  });

  it('adds a hint to an access refusal and a bad secret', () => {
    expect(formatError(new StanzaError({ condition: 'forbidden', text: 'cli.example.org may not call' }))).toMatch(
      /^error\[forbidden\]: cli\.example\.org may not call — hint: .*access rule/,
    );
    expect(formatError(new AuthError('component cli.localhost: not authorized'))).toMatch(/— hint: check the secret/);
  });

  it('gives machine-readable detail', () => {
    expect(errorJson(new ValidationError({ path: '/qty', message: 'must be >= 1' }))).toMatchObject({
      code: 'ERR_VALIDATION',
      exit: 1,
      path: '/qty',
      retryable: false,
    });
    expect(errorJson(new ServiceUnavailableError({ text: 'down' }))).toMatchObject({
      code: 'service-unavailable',
      errorCode: 'ERR_SERVICE_UNAVAILABLE',
      type: 'cancel',
      exit: 5,
    });
  });
});
