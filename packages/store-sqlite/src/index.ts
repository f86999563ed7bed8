// Message store (the Messenger's outbox, inbox and dead letters)
export { SqliteMessageStore, sqliteMessageStore } from './sqlite-message-store.js';
export type { SqliteMessageStoreOptions } from './sqlite-message-store.js';

// Checkpoint store (durable pubsub consumers)
export { SqliteCheckpointStore, sqliteCheckpointStore } from './sqlite-checkpoint-store.js';
export type { SqliteCheckpointStoreOptions } from './sqlite-checkpoint-store.js';

export type { SqliteOptions } from './database.js';
