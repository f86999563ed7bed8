// Component transport (XEP-0114); the stream engine underneath is @xmppbus/stream.
export { componentTransport, ComponentTransport, NS_COMPONENT } from './component-transport.js';
export type { ComponentTransportOptions, ComponentTlsOptions } from './component-transport.js';

// Core types of the options, re-exported for convenience
export type { Logger, RetryOptions } from '@xmppbus/core';
