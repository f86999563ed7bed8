/** Puts a bus and its parts into a tsyringe container. */
import type { Bus } from '@xmppbus/bus';
import { BUS, LOGGER, MESSENGER, PUBSUB, RPC_CLIENT, RPC_SERVER, SESSION } from './tokens.js';
import type { DependencyContainer } from './tsyringe.js';

/**
 * Registers `bus` under `BUS`, and its session, logger and units under their tokens. The units
 * stay lazy: `RPC_SERVER`, `RPC_CLIENT`, `PUBSUB` and `MESSENGER` are factories that build the
 * unit on first resolution (the bus keeps one of each). Returns the container.
 */
export function registerBus(container: DependencyContainer, bus: Bus): DependencyContainer {
  container.register(BUS, { useValue: bus });
  container.register(SESSION, { useValue: bus.session });
  container.register(LOGGER, { useValue: bus.logger });
  container.register(RPC_SERVER, { useFactory: () => bus.rpc });
  container.register(RPC_CLIENT, { useFactory: () => bus.client });
  container.register(PUBSUB, { useFactory: () => bus.pubsub });
  container.register(MESSENGER, { useFactory: () => bus.messenger });
  return container;
}
