// The XMPP stream engine shared by @xmppbus/transport-component and @xmppbus/transport-client.

// Reconnecting transport over one XMPP stream (subclasses negotiate the stream)
export { StreamTransport, resolveSecret, RECONNECT_DEFAULTS } from './stream-transport.js';
export type { StreamTransportOptions, StreamConnectOptions, StreamConnector, Secret } from './stream-transport.js';

// One TCP/TLS connection carrying a stream
export { StreamLink, parseService } from './stream-link.js';
export type { ServiceAddress } from './stream-link.js';

// Parsing and serialising
export { StreamParser, STREAM_PARSER_DEFAULTS, CONTENT_NAMESPACES } from './stream-parser.js';
export type { StreamParserHandlers, StreamParserOptions } from './stream-parser.js';
export { serializeElement } from './serialize.js';
export type { SerializeOptions } from './serialize.js';

// RFC 6120 §4.9 stream errors → typed xmppbus errors
export {
  streamErrorToError,
  streamErrorCondition,
  isStreamError,
  NS_STREAMS,
  ServerStreamError,
  streamErrorOf,
  withConnectionContext,
} from './stream-errors.js';

// What the parser refuses input with; StreamLink answers each with its <stream:error>
export { StreamXmlError, StreamLimitError, streamConditionOf, certificateError } from './stream-errors.js';
export type { StreamErrorCondition, StreamParseError } from './stream-errors.js';
