export { MemoryHub, MemoryTransport, memoryHub } from './memory-hub.js';
export type { MemoryHubOptions, MemoryConnectOptions } from './memory-hub.js';
