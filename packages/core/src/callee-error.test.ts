import { describe, expect, it } from 'vitest';
import { ConnectionError, StanzaError, XmppBusError, calleeError, noHandlerError, type Logger } from '@xmppbus/core';

function recordingLogger(): Logger & { errors: string[] } {
  const errors: string[] = [];
  const noop = (): void => undefined;
  return { errors, error: (m: string) => void errors.push(m), warn: noop, info: noop, debug: noop };
}

describe('the callee error policy', () => {
  it('sends a thrown StanzaError as it is and logs nothing', () => {
    const logger = recordingLogger();
    const thrown = new StanzaError({ condition: 'conflict', type: 'cancel', text: 'taken' });
    expect(calleeError(thrown, { logger, what: 'h' })).toBe(thrown);
    expect(logger.errors).toEqual([]);
  });

  it('answers a validation failure modify/bad-request with its message', () => {
    const logger = recordingLogger();
    const e = calleeError(new XmppBusError('ERR_VALIDATION', '/qty must be >= 1'), { logger, what: 'h' });
    expect(e).toMatchObject({ condition: 'bad-request', type: 'modify', text: '/qty must be >= 1' });
  });

  it('hides anything else behind internal-server-error with a reference id that the log carries too', () => {
    const logger = recordingLogger();
    const e = calleeError(new TypeError('secret stack detail'), { logger, what: 'handler of x' });
    expect(e).toMatchObject({ condition: 'internal-server-error', type: 'cancel' });
    expect(e.text).not.toContain('secret');
    const ref = /ref (\w+)/.exec(e.text ?? '')?.[1];
    expect(ref).toBeDefined();
    expect(logger.errors).toHaveLength(1);
    expect(logger.errors[0]).toContain(`ref ${ref}`);
    expect(logger.errors[0]).toContain('handler of x');
  });

  it('says wait when the thrown error is retryable', () => {
    const e = calleeError(new ConnectionError('db down'), { logger: recordingLogger(), what: 'h' });
    expect(e).toMatchObject({ condition: 'internal-server-error', type: 'wait' });
  });

  it('answers a payload nobody handles by whether its namespace is served', () => {
    expect(noHandlerError('urn:x', 'a', false)).toMatchObject({ condition: 'service-unavailable', type: 'cancel' });
    expect(noHandlerError('urn:x', 'a', true)).toMatchObject({ condition: 'feature-not-implemented', type: 'cancel' });
  });
});
