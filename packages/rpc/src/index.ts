// Calling
export { RpcClient } from './rpc-client.js';
export type { RpcClientOptions } from './rpc-client.js';
export type { RpcBatchOptions } from './call-batcher.js';
export type { CallOptions, CallerOptions, CallerStatus, RpcRetryOptions } from './call.js';

// Serving
export { RpcServer } from './rpc-server.js';
export type { RpcServerOptions, RpcServerStatus, Handler } from './rpc-server.js';
export type { HandlerContext } from './call-context.js';
export type { RpcLimits } from './call-admission.js';

// Several instances of one service
export { ServiceClient, discoverInstances } from './service.js';
export type {
  ServiceClientOptions,
  ServiceTarget,
  Strategy,
  DiscoverOptions,
  InstanceInfo,
  InstanceState,
} from './service.js';

// Errors and wire vocabulary
export { RpcError } from './rpc-error.js';
export type { RpcErrorOptions, ErrorNameOf, ErrorDataOf } from './rpc-error.js';
export { NS_RPC } from './wire.js';
export { NS_RPC_BATCH } from './batch.js';
