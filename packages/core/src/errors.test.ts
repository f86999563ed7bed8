import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ERROR_CODES,
  StanzaError,
  ServiceUnavailableError,
  TimeoutError,
  XmppBusError,
  parseXml,
  XmlError,
} from '@xmppbus/core';

describe('error model', () => {
  it('docs/errors.md lists exactly the codes in ERROR_CODES', () => {
    const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
    const documented = [...doc.matchAll(/^\|\s*`(ERR_[A-Z_]+)`/gm)].map((m) => m[1]);
    expect([...documented].sort()).toEqual([...ERROR_CODES].sort());
  });

  it('carries code, retryable and cause', () => {
    const cause = new Error('x');
    const e = new TimeoutError('slow', { cause });
    expect(e).toBeInstanceOf(XmppBusError);
    expect(e.code).toBe('ERR_TIMEOUT');
    expect(e.retryable).toBe(true);
    expect(e.cause).toBe(cause);
    expect(e.name).toBe('TimeoutError');
  });

  it('round-trips a stanza error with text and application element', () => {
    const app = parseXml("<invalid xmlns='urn:xmppbus:error:1' path='/qty'/>");
    const err = new StanzaError({ condition: 'bad-request', text: 'qty must be >= 1', application: app });
    const back = StanzaError.fromElement(parseXml(err.toElement().toString()));
    expect(back.condition).toBe('bad-request');
    expect(back.type).toBe('modify');
    expect(back.text).toBe('qty must be >= 1');
    expect(back.application?.attrs['path']).toBe('/qty');
    expect(back.retryable).toBe(false);
  });

  it('reads errors by local name in any namespace and maps unavailable conditions', () => {
    const stanza = parseXml(
      "<iq type='error' xmlns='jabber:component:accept'><error xmlns='jabber:client' type='wait'>" +
        "<remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
        "<not-connected xmlns='xmpp:prosody.im/protocol/component'/></error></iq>",
    );
    const e = StanzaError.fromElement(stanza);
    expect(e).toBeInstanceOf(ServiceUnavailableError);
    expect(e.code).toBe('ERR_SERVICE_UNAVAILABLE');
    expect(e.condition).toBe('remote-server-timeout');
    expect(e.type).toBe('wait');
    expect(e.retryable).toBe(true);
  });

  it('refuses DTDs and malformed XML with XmlError', () => {
    expect(() => parseXml('<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')).toThrow(XmlError);
    expect(() => parseXml('<a><b></a>')).toThrow(XmlError);
  });
});
