/**
 * Injection tokens of the bus and its parts. Symbols (registered with `Symbol.for`, so two
 * copies of this package still agree); each token's type is in its name, and
 * `resolve(container, TOKEN)` returns it typed.
 */
import type { Bus } from '@xmppbus/bus';
import type { Logger, Session } from '@xmppbus/core';
import type { Messenger } from '@xmppbus/messaging';
import type { PubSub } from '@xmppbus/pubsub';
import type { RpcClient, RpcServer } from '@xmppbus/rpc';
import type { DependencyContainer } from './tsyringe.js';

/** A symbol that carries the type it resolves to. */
export type Token<T> = symbol & { readonly __type?: T };

const token = <T>(name: string): Token<T> => Symbol.for(`@xmppbus/di:${name}`) as Token<T>;

export const BUS: Token<Bus> = token('Bus');
export const SESSION: Token<Session> = token('Session');
export const LOGGER: Token<Logger> = token('Logger');
export const RPC_SERVER: Token<RpcServer> = token('RpcServer');
export const RPC_CLIENT: Token<RpcClient> = token('RpcClient');
export const PUBSUB: Token<PubSub> = token('PubSub');
export const MESSENGER: Token<Messenger> = token('Messenger');

/** Creates a typed token of your own (`const ORDERS_REPO = createToken<OrdersRepository>('OrdersRepository')`). */
export function createToken<T>(name: string): Token<T> {
  return Symbol(name) as Token<T>;
}

/** `container.resolve(token)`, typed by the token. */
export function resolve<T>(container: DependencyContainer, token: Token<T>): T {
  return container.resolve<T>(token);
}
