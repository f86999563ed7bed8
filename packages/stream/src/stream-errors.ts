/**
 * Maps RFC 6120 §4.9 stream errors to typed xmppbus errors. The mapping decides what the
 * reconnect loop does next (see `isFatalOnReconnect` in stream-transport.ts).
 */
import {
  AuthError,
  ConfigError,
  ConflictError,
  ConnectionError,
  PayloadTooLargeError,
  ProtocolError,
  TimeoutError,
  XmlError,
  XmppBusError as XmppBusErrorClass,
  findChild,
  localName,
  textOf,
  type Element,
  type XmppBusError,
} from '@xmppbus/core';

export const NS_STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';
export const NS_ETHERX = 'http://etherx.jabber.org/streams';

/** The RFC 6120 §4.9.3 conditions our parser refuses input with. */
export type StreamErrorCondition =
  /** Not namespace-well-formed XML, illegal characters, malformed references, invalid UTF-8. */
  | 'not-well-formed'
  /** Comments, processing instructions, DTDs, entity references beyond the five predefined. */
  | 'restricted-xml'
  /** A stream prefix other than `stream`, or a header without `xmlns:stream`. */
  | 'bad-namespace-prefix'
  /** The stream or content namespace is not the one expected. */
  | 'invalid-namespace'
  /** An XML declaration naming an encoding other than UTF-8. */
  | 'unsupported-encoding'
  /** A stanza over a size, depth or attribute limit. */
  | 'policy-violation'
  /** Something other than an element or whitespace at stream level (text, CDATA, a wrong root). */
  | 'bad-format'
  /** A second stream header inside the stream. */
  | 'unsupported-stanza-type';

/** Input the stream parser refused; `condition` is the `<stream:error>` the link answers with. */
export class StreamXmlError extends XmlError {
  readonly condition: StreamErrorCondition;
  constructor(condition: StreamErrorCondition, message: string) {
    super(`${condition}: ${message}`);
    this.condition = condition;
  }
}

/** A stanza over the parser's size, depth or attribute limits (answered `policy-violation`). */
export class StreamLimitError extends PayloadTooLargeError {
  readonly condition: StreamErrorCondition = 'policy-violation';
}

/** What the parser reports: malformed or restricted XML, or a limit exceeded. */
export type StreamParseError = StreamXmlError | StreamLimitError;

/** The stream error condition to send for `err`, if it is a refusal of the peer's input. */
export function streamConditionOf(err: unknown): StreamErrorCondition | undefined {
  return err instanceof StreamXmlError || err instanceof StreamLimitError ? err.condition : undefined;
}

/** The `<stream:error>` element (and the stream's end) sent before closing on refused input. */
export function streamErrorXml(condition: StreamErrorCondition): string {
  return `<stream:error><${condition} xmlns='${NS_STREAMS}'/></stream:error></stream:stream>`;
}

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
 * What the server said in a `<stream:error>` (RFC 6120 §4.9.3): its defined condition and its
 * `<text/>`. It is the `cause` of the typed error the transport rejects with (`streamErrorOf`
 * finds it), so a caller can branch on the server's own words.
 */
export class ServerStreamError extends Error {
  /** The defined condition, e.g. `host-unknown`, `not-authorized`, `conflict`. */
  readonly condition: string;
  /** The server's human-readable text, when it sent one. */
  readonly text: string | undefined;
  constructor(condition: string, text: string | undefined) {
    super(`<${condition}/>${text ? `: ${text}` : ''}`);
    this.name = 'ServerStreamError';
    this.condition = condition;
    this.text = text;
  }
}

/** The server's stream error behind `err` (its cause chain), if a stream error ended the link. */
export function streamErrorOf(err: unknown): ServerStreamError | undefined {
  for (let e: unknown = err, i = 0; e instanceof Error && i < 8; e = e.cause, i++)
    if (e instanceof ServerStreamError) return e;
  return undefined;
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
export function streamErrorToError(el: Element, note?: string): XmppBusError {
  const condition = streamErrorCondition(el);
  const textEl = findChild(el, 'text');
  const text = textEl ? textOf(textEl) : '';
  const message = `stream error <${condition}/>${text ? `: ${text}` : ''}${note ? ` (${note})` : ''}`;
  const options = { cause: new ServerStreamError(condition, text || undefined) };
  switch (condition) {
    case 'not-authorized':
      return new AuthError(message, options);
    case 'conflict':
      return new ConflictError(message, options);
    case 'host-unknown':
    case 'improper-addressing':
      return new ConfigError(message, options);
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
      return new ProtocolError(message, options);
    default:
      return new ConnectionError(message, options);
  }
}

/**
 * The same error with `where` (e.g. `component orders.example.com at 127.0.0.1:5347`) in front
 * of its message, so a log line says which connection failed. Same class, same `retryable`;
 * the original is the `cause`. Errors of other classes (an abort's reason, …) pass unchanged.
 */
export function withConnectionContext(err: unknown, where: string): unknown {
  if (!(err instanceof XmppBusErrorClass) || err.message.startsWith(where)) return err;
  const options = { cause: err, retryable: err.retryable };
  const message = `${where}: ${err.message}`;
  if (err instanceof AuthError) return new AuthError(message, options);
  if (err instanceof ConflictError) return new ConflictError(message, options);
  if (err instanceof ConfigError) return new ConfigError(message, options);
  if (err instanceof ConnectionError) return new ConnectionError(message, options);
  if (err instanceof TimeoutError) return new TimeoutError(message, options);
  if (err instanceof ProtocolError) return new ProtocolError(message, options);
  return err;
}

/**
 * A refused server certificate is not retryable (trying again meets the same certificate):
 * same class as other TLS failures, `retryable: false`, the OpenSSL/Node code in the message.
 */
export function certificateError(err: unknown): unknown {
  const cause = err instanceof ConnectionError ? err.cause : undefined;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (!code || !/CERT|SIGNATURE|ISSUER|ALTNAME|SELF_SIGNED/.test(code)) return err;
  return new ConnectionError(`TLS: the server certificate was refused (${code}): ${(cause as Error).message}`, {
    cause,
    retryable: false,
  });
}
