/**
 * `@xmppbus/server/testing`: the low-level pieces the test harness (@xmppbus/testing) builds on —
 * free ports, raw component handshakes, a throwaway CA, process tracking. Not needed to run a server.
 */
export { PROBE_COMPONENT } from './managed-server.js';
export { freePort } from './ports.js';
export { componentHandshake, openComponentStream } from './handshake.js';
export type { HandshakeOptions, RawComponentStream } from './handshake.js';
export { createTestCa } from './test-ca.js';
export type { TestCa } from './test-ca.js';
export { DIR_PREFIX, signal as signalProcess, trackServer, untrackServer, waitGone } from './proc.js';
