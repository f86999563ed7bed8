// c2s client transport (RFC 6120/6121)
export { clientTransport, ClientTransport, NS_CLIENT } from './client-transport.js';
export type { ClientTransportOptions, ClientTlsOptions } from './client-transport.js';
export type { SaslMechanismName } from './sasl.js';
// Shared with the component transport
export type { ReconnectOptions } from '@xmppbus/transport-component';
// The logger type is core's (re-exported for convenience)
export type { Logger } from '@xmppbus/core';
