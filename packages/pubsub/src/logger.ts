/** Optional logger (console-compatible); the default is silent: library code never prints. */
export { silentLogger } from '@xmppbus/core';
export type { Logger } from '@xmppbus/core';
