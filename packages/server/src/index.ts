/**
 * @xmppbus/server — a supported local XMPP server (Prosody or ejabberd) for development and CI:
 * install it, generate a config for your components, secrets, pub/sub admins and accounts, start
 * it as the right system user, wait until ready, stop it; detached for the `xmppbus server` CLI;
 * config snippets for your own production server.
 */
export type {
  AccountSpec,
  ComponentSpec,
  ServerEndpoints,
  ServerKind,
  ServerLimits,
  ServerPorts,
  ServerState,
  StartServerOptions,
  XmppServer,
} from './types.js';
export { SERVER_KINDS, startServer } from './start.js';
export { serverStatus, stopServer } from './detached.js';
export type { ServerStatus, StatusOptions, StopOptions, StopResult } from './detached.js';
export { readState } from './state.js';
export { registerAccounts } from './accounts.js';
export { serverOptionsFromConfig } from './from-config.js';
export type { ServerConfigResult, ServerConfigSource } from './from-config.js';
export { envFileText, writeEnvFile } from './env-file.js';
export type { EnvFileOptions } from './env-file.js';
export { serverConfigSnippet } from './snippet.js';
export type { SnippetOptions } from './snippet.js';
export { DEFAULT_STATE_DIR, DEV_PORTS, STATE_FILE, randomSecret } from './options.js';
export { installServer, installCommand, missingBinaries, ServerNotInstalledError } from './install.js';
export type { InstallResult } from './install.js';
export { startEjabberdCluster } from './cluster.js';
export type { ClusterNode, EjabberdCluster, StartClusterOptions } from './cluster.js';
export type { ComponentBalancing } from './cluster-config.js';
export { FEDERATION_DOMAINS, startFederation } from './federation.js';
export type { Federation, FederationOptions, FederationSide } from './federation.js';
export type { DnsQuestion } from './fake-dns.js';
// Low-level helpers of the test harness (@xmppbus/testing) live in '@xmppbus/server/testing'.
