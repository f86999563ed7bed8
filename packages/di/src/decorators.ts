/**
 * `@Service()`, `@Handle(Method)`, `@Subscribe(Event, { node, … })`, `@OnMessage(Contract, { qos })`:
 * legacy (experimentalDecorators) decorators that only record what to bind; `mountServices`
 * binds them. The method decorators check the method's type against the contract's handler type.
 *
 * Constructor injection needs an explicit `@inject(TOKEN)` on every parameter: esbuild (vitest,
 * tsx) emits no decorator metadata, so `@Service()` refuses a class whose parameters lack one
 * rather than failing later with a confusing resolution error.
 */
import { ConfigError } from '@xmppbus/core';
import type { MessageHandler, HandlerOptions, QosLevel } from '@xmppbus/messaging';
import type { ConsumeOptions, EventHandler } from '@xmppbus/pubsub';
import type { Handler } from '@xmppbus/rpc';
import type { MethodContract, PayloadContract, PayloadOf } from '@xmppbus/schema';
import { injectable } from './tsyringe.js';

/** A class `mountServices` can resolve and bind. */
export type ServiceClass<T extends object = object> = abstract new (...args: never[]) => T;

/** `@Subscribe` options: the node, plus the consumer's options (`durable`, `group`, `store`, …). */
export interface SubscribeOptions extends Omit<ConsumeOptions, 'signal' | 'timeout'> {
  node: string;
}

/** `@OnMessage` options. */
export interface OnMessageOptions extends HandlerOptions {
  /**
   * The lowest QoS level this handler accepts: a message sent with a lower one is refused
   * (`modify/policy-violation`; the sender dead-letters it at QoS 1/2) and its handler not run.
   */
  qos?: QosLevel;
}

export type Binding =
  | { readonly kind: 'handle'; readonly key: string | symbol; readonly contract: MethodContract }
  | {
      readonly kind: 'subscribe';
      readonly key: string | symbol;
      readonly contract: PayloadContract;
      readonly options: SubscribeOptions;
    }
  | {
      readonly kind: 'message';
      readonly key: string | symbol;
      readonly contract: PayloadContract;
      readonly options: OnMessageOptions;
    };

const services = new WeakSet<object>();
const bindings = new WeakMap<object, Binding[]>();
/** tsyringe's metadata key for `@inject` tokens (by parameter index). */
const INJECTION_TOKENS = 'injectionTokens';

/** Marks a class as a service: injectable (constructor parameters by `@inject(TOKEN)`) and mountable. */
export function Service(): (target: ServiceClass) => void {
  return (target) => {
    const tokens = (Reflect.getOwnMetadata(INJECTION_TOKENS, target) ?? {}) as Record<string, unknown>;
    const missing: number[] = [];
    for (let i = 0; i < target.length; i++) if (!(String(i) in tokens)) missing.push(i);
    if (missing.length > 0)
      throw new ConfigError(
        `${target.name}: constructor parameter(s) #${missing.join(', #')} need @inject(TOKEN) ` +
          '(decorator metadata is not emitted by esbuild/tsx, so types cannot name the dependency)',
      );
    injectable()(target as unknown as new (...args: unknown[]) => unknown);
    services.add(target);
  };
}

/** The method handles RPC calls of `method` (`bus.rpc.handle`). */
export function Handle<M extends MethodContract>(
  method: M,
): (target: object, key: string | symbol, descriptor: { value?: Handler<M> }) => void {
  return (target, key) => add(target, { kind: 'handle', key, contract: method });
}

/** The method consumes `contract` events of `options.node` (`bus.pubsub.consume`); started with the bus. */
export function Subscribe<C extends PayloadContract>(
  contract: C,
  options: SubscribeOptions,
): (target: object, key: string | symbol, descriptor: { value?: EventHandler<PayloadOf<C>> }) => void {
  if (!options || typeof options.node !== 'string' || options.node === '')
    throw new ConfigError('@Subscribe: `node` is required');
  return (target, key) => add(target, { kind: 'subscribe', key, contract, options });
}

/** The method handles `contract` messages at any QoS, or from `options.qos` up (`bus.messenger.handle`). */
export function OnMessage<C extends PayloadContract>(
  contract: C,
  options: OnMessageOptions = {},
): (target: object, key: string | symbol, descriptor: { value?: MessageHandler<PayloadOf<C>> }) => void {
  return (target, key) => add(target, { kind: 'message', key, contract, options });
}

function add(prototype: object, binding: Binding): void {
  const cls = (prototype as { constructor: object }).constructor;
  const list = bindings.get(cls) ?? [];
  list.push(binding);
  bindings.set(cls, list);
}

/** Whether `cls` carries `@Service()`. */
export function isService(cls: object): boolean {
  return services.has(cls);
}

/** The bindings of `cls` and of the classes it extends (base classes first). */
export function bindingsOf(cls: object): Binding[] {
  const chain: object[] = [];
  for (
    let c: object | null = cls;
    c !== null && c !== Function.prototype;
    c = Object.getPrototypeOf(c) as object | null
  )
    chain.unshift(c);
  return chain.flatMap((c) => bindings.get(c) ?? []);
}
