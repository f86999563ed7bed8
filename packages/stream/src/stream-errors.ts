/**
 * Maps RFC 6120 §4.9 stream errors to typed xmppbus errors. The mapping decides what the
 * reconnect loop does next (see `isFatalOnReconnect` in stream-transport.ts).
 */
import {
  AuthError,
  ConfigError,
  ConflictError,
  ConnectionError,
  ProtocolError,
  findChild,
  localName,
  textOf,
  type Element,
  type XmppBusError,
} from '@xmppbus/core';

export const NS_STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';
const NS_ETHERX = 'http://etherx.jabber.org/streams';

/** True for a top-level `<stream:error>` (matched by local name; the prefix is the peer's choice). */
export function isStreamError(el: Element): boolean {
  return localName(el) === 'error' && (el.name !== 'error' || el.attrs['xmlns'] === NS_ETHERX);
}

/** The defined condition of a stream error (`conflict`, `not-authorized`, …), or 'undefined-condition'. */
export function streamErrorCondition(el: Element): string {
  for (const c of el.children) {
    if (typeof c === 'string') continue;
    const name = localName(c);
    if (name !== 'text') return name;
  }
  return 'undefined-condition';
}

/**
 * - `not-authorized` → AuthError (bad component secret / credentials)
 * - `conflict` → ConflictError (Prosody: component name already connected; c2s: kicked by a
 *   newer session with the same full JID)
 * - `host-unknown`, `improper-addressing` → ConfigError (the server does not serve that name,
 *   e.g. a component name Prosody has no `Component` entry for)
 * - XML/protocol conditions → ProtocolError
 * - anything else (`system-shutdown`, `reset`, `connection-timeout`, …) → ConnectionError (retryable)
 */
export function streamErrorToError(el: Element): XmppBusError {
  const condition = streamErrorCondition(el);
  const textEl = findChild(el, 'text');
  const text = textEl ? textOf(textEl) : '';
  const message = `stream error <${condition}/>${text ? `: ${text}` : ''}`;
  switch (condition) {
    case 'not-authorized':
      return new AuthError(message);
    case 'conflict':
      return new ConflictError(message);
    case 'host-unknown':
    case 'improper-addressing':
      return new ConfigError(message);
    case 'bad-format':
    case 'bad-namespace-prefix':
    case 'invalid-namespace':
    case 'invalid-xml':
    case 'not-well-formed':
    case 'restricted-xml':
    case 'unsupported-encoding':
    case 'unsupported-stanza-type':
    case 'unsupported-version':
    case 'unsupported-feature':
      return new ProtocolError(message);
    default:
      return new ConnectionError(message);
  }
}
