// Messenger
export { Messenger, DeadLetters } from './messenger.js';
export type { SendOptions, MessageMeta, MessageHandler, HandlerOptions, MessengerCounters } from './messenger.js';
export type {
  MessengerOptions,
  ReceiveOptions,
  BatchOptions,
  RetryOptions,
  OverflowPolicy,
  Duration,
  Logger,
} from './options.js';
export { OutboxFullError } from './errors.js';

// Stores (the durable SQLite store is in @xmppbus/store-sqlite)
export { MemoryStore, memoryStore } from './memory-store.js';
export type {
  MessageStore,
  DeadLetterQuery,
  OutboxRecord,
  NewOutboxRecord,
  DeadLetter,
  DeadLetterReason,
  InboxRecord,
  InboxPutResult,
} from './store.js';

// Wire
export { NS_QOS, NS_QOS_NF, NS_QOS_IEEE, QOS_NAMESPACES, NS_MESSAGING, NS_BATCH } from './wire.js';
export type { QosLevel } from './wire.js';
