import { ClosedError, ConnectionError, ServiceUnavailableError, StanzaError, TimeoutError, xml } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import { classify } from './qos-sender.js';
import { NS_MESSAGING, expiredCondition } from './wire.js';

describe('QosSender.classify', () => {
  it('waits for unreachable peers and lost links without counting attempts', () => {
    expect(classify(new ServiceUnavailableError({ condition: 'remote-server-timeout' }))).toBe('offline');
    expect(classify(new StanzaError({ condition: 'service-unavailable' }))).toBe('offline');
    expect(classify(new TimeoutError())).toBe('transient');
    expect(classify(new ConnectionError('lost'))).toBe('transient');
    expect(classify(new ClosedError())).toBe('transient');
    expect(classify(new StanzaError({ condition: 'resource-constraint', type: 'wait' }))).toBe('transient');
  });

  it('retries wait errors, rejects cancel/modify ones, and recognises expiry and missing handlers', () => {
    expect(classify(new StanzaError({ condition: 'internal-server-error', type: 'wait' }))).toBe('retry');
    expect(classify(new StanzaError({ condition: 'internal-server-error', type: 'cancel' }))).toBe('reject');
    expect(classify(new StanzaError({ condition: 'bad-request' }))).toBe('reject');
    expect(classify(new StanzaError({ condition: 'not-acceptable', application: expiredCondition() }))).toBe('expired');
    const noHandler = new StanzaError({
      condition: 'service-unavailable',
      type: 'cancel',
      application: xml('no-handler', { xmlns: NS_MESSAGING }),
    });
    expect(classify(noHandler)).toBe('reject');
  });
});
