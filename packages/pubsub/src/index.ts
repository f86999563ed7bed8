// Client
export { PubSub, EVENT_NODE_DEFAULTS } from './pubsub.js';
export type { PubSubOptions, PubSubStatus } from './pubsub.js';
export type { BatchPublisher, BatchPublisherOptions, BatchOptions, BatchEventOptions } from './batch-publisher.js';
export type {
  PublishOptions,
  ItemsOptions,
  SubscribeOptions,
  UnsubscribeOptions,
  Subscription,
  SubscriptionState,
  Affiliation,
  Item,
  NodeRef,
  ServiceInfo,
  ServerFlavor,
  EventListener,
} from './types.js';

// Node configuration and data forms
export { configToFields, configFromForm } from './node-config.js';
export type { NodeConfig, AccessModel, PublishModel, NotificationType, SendLastPublishedItem } from './node-config.js';
export type { DataForm, FormField, FieldValue } from './forms.js';

// Events
export type {
  PubSubEvent,
  ItemsEvent,
  RetractEvent,
  PurgeEvent,
  DeleteEvent,
  ConfigurationEvent,
  EventItem,
} from './events.js';

// Consumers
export type { Consumer } from './consumer.js';
export type { ConsumeOptions, ConsumerStats, ConsumerStatus, EventHandler, EventMeta, InvalidEvent } from './types.js';
export { groupStateNode } from './group.js';
export { isBatch, unwrapBatch, batchEventId, DEFAULT_MAX_BATCH_EVENTS } from './batch.js';
export type { UnwrappedBatch } from './batch.js';
export { MemoryCheckpointStore, FileCheckpointStore } from './checkpoint-store.js';
export type { Checkpoint, CheckpointStore, FileCheckpointStoreOptions } from './checkpoint-store.js';

// Errors
export { PubSubForbiddenError, PreconditionNotMetError, pubsubCondition } from './errors.js';
export type { PubSubOperation } from './errors.js';

// Namespaces
export {
  NS_PUBSUB,
  NS_PUBSUB_OWNER,
  NS_PUBSUB_EVENT,
  NS_PUBSUB_ERRORS,
  NS_PUBSUB_NODE_CONFIG,
  NS_XMPPBUS_PUBSUB,
  NS_EVENTS_BATCH,
} from './ns.js';
export type { Logger } from './logger.js';
