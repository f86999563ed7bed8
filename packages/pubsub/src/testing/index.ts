// @xmppbus/pubsub/testing — an in-memory XEP-0060 service for unit tests (not for production).
export { MemoryPubSubService } from './memory-pubsub-service.js';
export type { MemoryPubSubServiceOptions } from './memory-pubsub-service.js';
