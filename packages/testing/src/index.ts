/**
 * @xmppbus/testing — internal/unsupported: starts real Prosody and ejabberd instances on
 * 127.0.0.1 for integration tests (through @xmppbus/server) and adds the vitest parts.
 */
export type { ServerKind, ServerOptions, XmppServer } from './types.js';
export { SERVER_KINDS, DEFAULT_COMPONENTS, startServer, startProsody, startEjabberd } from './start.js';
export { describeServers } from './describe-servers.js';
export { freePort, componentHandshake, createTestCa, PROBE_COMPONENT } from '@xmppbus/server/testing';
export type { HandshakeOptions, TestCa } from '@xmppbus/server/testing';
export { startEjabberdCluster } from '@xmppbus/server';
export type { ClusterNode, ComponentBalancing, EjabberdCluster, StartClusterOptions } from '@xmppbus/server';
export { FEDERATION_DOMAINS, startFederation } from '@xmppbus/server';
export type { DnsQuestion, Federation, FederationOptions, FederationSide } from '@xmppbus/server';
export { waitForSettledRoutes } from './route-probe.js';
export { waitFor } from './wait-for.js';
export { startPrometheus } from './prometheus.js';
export type { Prometheus, PrometheusOptions, PrometheusSample } from './prometheus.js';
export type { WaitForOptions } from './wait-for.js';
export { NS_ORDERS, NS_ORDER_EVENTS, CreateOrder, GetOrder, Wait, OrderCreated } from './contracts.js';
export { messageStoreContract, checkpointStoreContract } from './store-contract.js';
export type { StoreFactory } from './store-contract.js';
