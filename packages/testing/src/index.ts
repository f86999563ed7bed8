/**
 * @xmppbus/testing — internal/unsupported: starts real Prosody and ejabberd instances on
 * 127.0.0.1 for integration tests.
 */
export type { ServerKind, ServerOptions, XmppServer } from './types.js';
export { SERVER_KINDS, startServer, startProsody, startEjabberd } from './start.js';
export { describeServers } from './describe-servers.js';
export { freePort } from './ports.js';
export { componentHandshake } from './handshake.js';
export type { HandshakeOptions } from './handshake.js';
export { DEFAULT_COMPONENTS, PROBE_COMPONENT } from './managed-server.js';
export { waitForSettledRoutes } from './route-probe.js';
export { waitFor } from './wait-for.js';
export { startPrometheus } from './prometheus.js';
export type { Prometheus, PrometheusOptions, PrometheusSample } from './prometheus.js';
export { createTestCa } from './test-ca.js';
export type { TestCa } from './test-ca.js';
export type { WaitForOptions } from './wait-for.js';
export { NS_ORDERS, NS_ORDER_EVENTS, CreateOrder, GetOrder, Wait, OrderCreated } from './contracts.js';
export { messageStoreContract, checkpointStoreContract } from './store-contract.js';
export type { StoreFactory } from './store-contract.js';
