// Building blocks for other stream transports in this repository (@xmppbus/transport-client).
// Internal/unsupported: may change without notice.
export { StreamTransport, resolveSecret } from './stream-transport.js';
export type { StreamTransportOptions, StreamConnectOptions, Secret } from './stream-transport.js';
export { StreamLink, parseService } from './stream-link.js';
export type { ServiceAddress } from './stream-link.js';
export { StreamParser } from './stream-parser.js';
export type { StreamParserHandlers, StreamParserOptions } from './stream-parser.js';
export { streamErrorToError, streamErrorCondition, isStreamError, NS_STREAMS } from './stream-errors.js';
export { resolveReconnectOptions } from './backoff.js';
export type { ResolvedReconnectOptions } from './backoff.js';
