// Every condition of docs/errors.md's retryable table, checked against the code (issue 12).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  STANZA_ERROR_CONDITIONS,
  StanzaError,
  defaultErrorType,
  errorFromStanza,
  parseXml,
  type StanzaErrorCondition,
  type StanzaErrorType,
} from './index.js';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
const section = doc.slice(doc.indexOf('## Stanza error conditions'));
const rows = [...section.matchAll(/^\|\s*`([a-z-]+)`\s*\|\s*([a-z]+)\s*\|\s*([^|]+?)\s*\|/gm)].map((m) => ({
  condition: m[1] as StanzaErrorCondition,
  type: m[2] as StanzaErrorType,
  retryable: m[3]!,
}));

function wire(condition: string, type: string, text?: string): StanzaError {
  return errorFromStanza(
    parseXml(
      `<iq type='error' id='1'><error type='${type}'><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
        (text ? `<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>${text}</text>` : '') +
        '</error></iq>',
    ),
  );
}

describe('retryable by condition (docs/errors.md)', () => {
  it('the table lists every RFC 6120 condition once', () => {
    expect(rows.map((r) => r.condition).sort()).toEqual([...STANZA_ERROR_CONDITIONS].sort());
  });

  it.each(rows)('$condition: default type $type, retryable "$retryable"', ({ condition, type, retryable }) => {
    expect(defaultErrorType(condition)).toBe(type);
    const made = new StanzaError({ condition });
    const sentCancel = wire(condition, 'cancel');
    const sentWait = wire(condition, 'wait');
    expect(sentCancel.condition).toBe(condition);
    if (retryable === 'yes') {
      expect([made.retryable, sentCancel.retryable, sentWait.retryable]).toEqual([true, true, true]);
    } else if (retryable === 'no') {
      // A peer's `type='wait'` does not make a final condition retryable.
      expect([made.retryable, sentCancel.retryable, sentWait.retryable]).toEqual([false, false, false]);
    } else {
      expect(retryable).toBe("if `type='wait'`");
      expect([made.retryable, sentCancel.retryable, sentWait.retryable]).toEqual([false, false, true]);
    }
  });

  it('the server-specific "not connected" answers: ejabberd retryable, Prosody final', () => {
    expect(wire('forbidden', 'auth', 'Access denied by service policy')).toMatchObject({
      code: 'ERR_SERVICE_UNAVAILABLE',
      retryable: true,
    });
    expect(wire('not-allowed', 'cancel', 'Communication with remote domains is not enabled')).toMatchObject({
      code: 'ERR_SERVICE_UNAVAILABLE',
      retryable: false,
    });
  });
});
