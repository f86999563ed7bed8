// Tokens and registration
export { BUS, SESSION, LOGGER, RPC_SERVER, RPC_CLIENT, PUBSUB, MESSENGER, createToken, resolve } from './tokens.js';
export type { Token } from './tokens.js';
export { registerBus } from './register.js';

// Services
export { Service, Handle, Subscribe, OnMessage, isService } from './decorators.js';
export type { ServiceClass, SubscribeOptions, OnMessageOptions } from './decorators.js';
export { mountServices } from './mount.js';
export type { MountedServices } from './mount.js';

// tsyringe, re-exported with its Reflect polyfill loaded first
export { container, inject, injectable, delay } from './tsyringe.js';
export type { DependencyContainer, InjectionToken } from './tsyringe.js';
