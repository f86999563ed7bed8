/**
 * The logger type and silent default now live in @xmppbus/core (shared by every package);
 * re-exported here so existing imports keep working.
 */
export { silentLogger } from '@xmppbus/core';
export type { Logger } from '@xmppbus/core';
