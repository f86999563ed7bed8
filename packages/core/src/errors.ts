/**
 * The error model. Every failure xmppbus reports is an `XmppBusError` with a closed `code`
 * (listed in docs/errors.md; a test fails if the two drift) and a `retryable` flag that
 * retry policies (rpc idempotent retries, messaging outbox) consult.
 */

/** Every error code xmppbus can produce. Codes are never reused or renamed. */
export const ERROR_CODES = [
  /** A wait exceeded its timeout. */
  'ERR_TIMEOUT',
  /** The caller's AbortSignal fired. */
  'ERR_ABORTED',
  /** Connecting failed or the connection dropped. */
  'ERR_CONNECTION',
  /** The object was closed/drained and refuses new work. */
  'ERR_CLOSED',
  /** A bounded queue (send queue, outbox, concurrency queue) is full. */
  'ERR_QUEUE_FULL',
  /** The peer answered with an RFC 6120 stanza error. */
  'ERR_STANZA',
  /** The addressed service/entity is not reachable right now. */
  'ERR_SERVICE_UNAVAILABLE',
  /** A payload failed JSON Schema validation. */
  'ERR_VALIDATION',
  /** Input XML is malformed or uses forbidden constructs (DTD, entities). */
  'ERR_XML',
  /** A payload or stanza exceeds the configured size/depth limit. */
  'ERR_PAYLOAD_TOO_LARGE',
  /** The peer broke the protocol (unexpected element, missing attribute). */
  'ERR_PROTOCOL',
  /** The server rejected our credentials / component handshake. */
  'ERR_AUTH',
  /** The server refused the connection because the name is already connected. */
  'ERR_CONFLICT',
  /** Invalid options passed to a constructor or factory. */
  'ERR_CONFIG',
  /** A contract's schema uses a construct the codec cannot map to XML. */
  'ERR_SCHEMA',
  /** A durable store failed to read or write. */
  'ERR_STORE',
  /** A message's time-to-live elapsed before it could be delivered. */
  'ERR_EXPIRED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const RETRYABLE_BY_DEFAULT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_TIMEOUT',
  'ERR_CONNECTION',
  'ERR_QUEUE_FULL',
  'ERR_SERVICE_UNAVAILABLE',
]);

export interface XmppBusErrorOptions extends ErrorOptions {
  retryable?: boolean;
}

export class XmppBusError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options?: XmppBusErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.retryable = options?.retryable ?? RETRYABLE_BY_DEFAULT.has(code);
  }
}

export class TimeoutError extends XmppBusError {
  constructor(message = 'operation timed out', options?: XmppBusErrorOptions) {
    super('ERR_TIMEOUT', message, options);
  }
}

export class AbortError extends XmppBusError {
  constructor(message = 'operation aborted', options?: XmppBusErrorOptions) {
    super('ERR_ABORTED', message, options);
  }
}

export class ConnectionError extends XmppBusError {
  constructor(message: string, options?: XmppBusErrorOptions) {
    super('ERR_CONNECTION', message, options);
  }
}

export class ClosedError extends XmppBusError {
  constructor(message = 'closed', options?: XmppBusErrorOptions) {
    super('ERR_CLOSED', message, options);
  }
}

export class QueueFullError extends XmppBusError {
  readonly limit: number;
  constructor(limit: number, message = `queue full (limit ${limit})`, options?: XmppBusErrorOptions) {
    super('ERR_QUEUE_FULL', message, options);
    this.limit = limit;
  }
}

export class ProtocolError extends XmppBusError {
  constructor(message: string, options?: XmppBusErrorOptions) {
    super('ERR_PROTOCOL', message, options);
  }
}

export class AuthError extends XmppBusError {
  constructor(message: string, options?: XmppBusErrorOptions) {
    super('ERR_AUTH', message, { retryable: false, ...options });
  }
}

export class ConflictError extends XmppBusError {
  constructor(message: string, options?: XmppBusErrorOptions) {
    super('ERR_CONFLICT', message, options);
  }
}

export class ConfigError extends XmppBusError {
  constructor(message: string, options?: XmppBusErrorOptions) {
    super('ERR_CONFIG', message, options);
  }
}

export class XmlError extends XmppBusError {
  constructor(message: string, options?: XmppBusErrorOptions) {
    super('ERR_XML', message, options);
  }
}

export class PayloadTooLargeError extends XmppBusError {
  readonly limit: number;
  readonly size: number;
  constructor(size: number, limit: number, message?: string, options?: XmppBusErrorOptions) {
    super('ERR_PAYLOAD_TOO_LARGE', message ?? `payload of ${size} exceeds the limit of ${limit}`, options);
    this.size = size;
    this.limit = limit;
  }
}

export class StoreError extends XmppBusError {
  constructor(message: string, options?: XmppBusErrorOptions) {
    super('ERR_STORE', message, options);
  }
}

export class ExpiredError extends XmppBusError {
  constructor(message = 'message expired', options?: XmppBusErrorOptions) {
    super('ERR_EXPIRED', message, options);
  }
}

/** Normalises anything thrown into an Error (never loses the original: it becomes `cause`). */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : 'non-error thrown', { cause: thrown });
}
