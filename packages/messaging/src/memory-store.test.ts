import { messageStoreContract } from '@xmppbus/testing';
import { memoryStore } from './memory-store.js';

// `reopen` defaults to the same instance: memory keeps its state across close/open.
messageStoreContract('MemoryStore', { create: () => memoryStore() });
