// Messenger
export { Messenger } from './messenger.js';
export type { MessengerStatus, DeadLetterEvent, InboundUsage } from './types.js';
export { DeadLetters } from './dead-letters.js';
export type {
  MessageSendOptions,
  EnqueueOptions,
  MessageContext,
  MessageHandler,
  HandlerOptions,
  MessengerCounters,
} from './types.js';
export type { MessengerOptions, ReceiveOptions, BatchOptions, OverflowPolicy, Duration } from './options.js';
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
