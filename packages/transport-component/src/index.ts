// Component transport (XEP-0114)
export { componentTransport, ComponentTransport, NS_COMPONENT } from './component-transport.js';
export type { ComponentTransportOptions } from './component-transport.js';

// Reconnect policy and logging, shared with @xmppbus/transport-client
export { Backoff, DEFAULT_RECONNECT } from './backoff.js';
export type { ReconnectOptions } from './backoff.js';
// The logger type is core's (re-exported for convenience)
export type { Logger } from '@xmppbus/core';
