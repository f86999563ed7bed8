// c2s client transport (RFC 6120/6121)
export { clientTransport, ClientTransport, NS_CLIENT } from './client-transport.js';
export type { ClientTransportOptions, ClientTlsOptions } from './client-transport.js';
export type { SaslMechanismName } from './sasl.js';
// Core types of the options, re-exported for convenience
export type { Logger, RetryOptions } from '@xmppbus/core';
