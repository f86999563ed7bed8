/** Resolves `@Service()` classes from a container and binds their decorated methods to a bus. */
import type { Bus } from '@xmppbus/bus';
import { ConfigError, StanzaError } from '@xmppbus/core';
import type { MessageContext } from '@xmppbus/messaging';
import type { EventMeta } from '@xmppbus/pubsub';
import type { HandlerContext } from '@xmppbus/rpc';
import { bindingsOf, isService, type ServiceClass } from './decorators.js';
import type { DependencyContainer } from './tsyringe.js';

export interface MountedServices {
  /** The resolved instance of each class. */
  readonly instances: ReadonlyMap<ServiceClass, object>;
  /** Removes the handlers and closes the consumers these services added. */
  unmount(): Promise<void>;
}

type Method = (value: unknown, context: never) => unknown;

/**
 * Resolves each class from `container` (so its `@inject` dependencies come from there) and binds
 * its methods: `@Handle` → `bus.rpc.handle`, `@Subscribe` → `bus.pubsub.consume` (the consumer
 * starts with the bus, or at once if it has started), `@OnMessage` → `bus.messenger.handle`.
 * Units are built only when a service needs them. All or nothing: on a failure nothing stays bound.
 */
export function mountServices(
  bus: Bus,
  container: DependencyContainer,
  classes: readonly ServiceClass[],
): MountedServices {
  const instances = new Map<ServiceClass, object>();
  const removers: (() => void)[] = [];
  const closers: (() => Promise<void>)[] = [];
  const unmount = async (): Promise<void> => {
    for (const off of removers.splice(0).reverse()) off();
    await Promise.all(closers.splice(0).map((close) => close()));
  };
  try {
    for (const cls of classes) {
      if (!isService(cls)) throw new ConfigError(`${cls.name} is not a @Service() class`);
      const instance = container.resolve(cls as unknown as new () => object);
      instances.set(cls, instance);
      for (const b of bindingsOf(cls)) {
        const method = (instance as Record<string | symbol, unknown>)[b.key];
        if (typeof method !== 'function') throw new ConfigError(`${cls.name}.${String(b.key)} is not a method`);
        const fn = (method as Method).bind(instance);
        if (b.kind === 'handle') {
          removers.push(
            bus.rpc.handle(b.contract, (req: unknown, ctx: HandlerContext) => fn(req, ctx as never) as never),
          );
        } else if (b.kind === 'subscribe') {
          const { node, ...options } = b.options;
          const consumer = bus.pubsub.consume(
            b.contract,
            node,
            (v: unknown, m: EventMeta) => fn(v, m as never) as never,
            options,
          );
          closers.push(() => consumer.close());
          removers.push(bus.add(consumer, `consumer of ${node} (${cls.name}.${String(b.key)})`));
        } else {
          const min = b.options.qos;
          const { qos: _qos, ...handlerOptions } = b.options;
          const handler = (v: unknown, ctx: MessageContext): void | Promise<void> => {
            if (min !== undefined && ctx.qos < min)
              throw new StanzaError({
                condition: 'policy-violation',
                type: 'modify',
                text: `requires QoS ${min} or higher`,
              });
            return fn(v, ctx as never) as void | Promise<void>;
          };
          removers.push(bus.messenger.handle(b.contract, handler, handlerOptions));
        }
      }
    }
  } catch (err) {
    void unmount();
    throw err;
  }
  return { instances, unmount };
}
