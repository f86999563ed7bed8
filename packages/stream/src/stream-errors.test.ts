import { AbortError, AuthError, ConfigError, ConnectionError, parseXml } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import { ServerStreamError, streamErrorOf, streamErrorToError, withConnectionContext } from './stream-errors.js';

const error = (condition: string, text?: string) =>
  parseXml(
    `<stream:error xmlns:stream='http://etherx.jabber.org/streams'><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>` +
      (text ? `<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>${text}</text>` : '') +
      '</stream:error>',
  );

describe('stream errors keep what the server said', () => {
  it('maps the condition to a typed error whose cause is the server stream error', () => {
    const e = streamErrorToError(error('not-authorized', 'Given token does not match'));
    expect(e).toBeInstanceOf(AuthError);
    expect(e.message).toBe('stream error <not-authorized/>: Given token does not match');
    expect(streamErrorOf(e)).toBeInstanceOf(ServerStreamError);
    expect(streamErrorOf(e)).toMatchObject({ condition: 'not-authorized', text: 'Given token does not match' });
    expect(streamErrorOf(streamErrorToError(error('system-shutdown')))).toMatchObject({
      condition: 'system-shutdown',
      text: undefined,
    });
  });

  it('names the connection in front of the message, keeping class, retryable and the cause chain', () => {
    const where = 'component svc-a.localhost at 127.0.0.1:5347';
    const auth = withConnectionContext(streamErrorToError(error('not-authorized', 'bad')), where);
    expect(auth).toBeInstanceOf(AuthError);
    expect((auth as Error).message).toBe(`${where}: stream error <not-authorized/>: bad`);
    expect(streamErrorOf(auth)?.condition).toBe('not-authorized');
    const conf = withConnectionContext(streamErrorToError(error('host-unknown', 'no')), where);
    expect(conf).toBeInstanceOf(ConfigError);
    const refused = withConnectionContext(new ConnectionError('refused', { retryable: false }), where);
    expect(refused).toMatchObject({ retryable: false, message: `${where}: refused` });
    const abort = new AbortError('stop');
    expect(withConnectionContext(abort, where)).toBe(abort);
  });
});
