import { createBus, createLogger, type Bus } from '@xmppbus/bus';
import { ConfigError, Session, StanzaError, type Logger } from '@xmppbus/core';
import type { MessageContext } from '@xmppbus/messaging';
import { MemoryPubSubService } from '@xmppbus/pubsub/testing';
import type { HandlerContext } from '@xmppbus/rpc';
import { CreateOrder, GetOrder, OrderCreated } from '@xmppbus/testing';
import { memoryHub, type MemoryHub } from '@xmppbus/transport-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BUS,
  Handle,
  LOGGER,
  MESSENGER,
  OnMessage,
  RPC_CLIENT,
  RPC_SERVER,
  SESSION,
  Service,
  Subscribe,
  container,
  createToken,
  inject,
  mountServices,
  registerBus,
  resolve,
  type DependencyContainer,
} from '../index.js';

// ---- an example service with an injected repository -------------------------------------------

interface Order {
  orderId: string;
  qty: number;
}
interface OrdersRepository {
  insert(sku: string, qty: number): Promise<Order>;
  get(orderId: string): Promise<Order | undefined>;
}
const ORDERS_REPO = createToken<OrdersRepository>('OrdersRepository');

class MemoryOrdersRepository implements OrdersRepository {
  readonly #orders = new Map<string, Order>();
  async insert(sku: string, qty: number): Promise<Order> {
    const order = { orderId: `${sku}-${this.#orders.size + 1}`, qty };
    this.#orders.set(order.orderId, order);
    return order;
  }
  async get(orderId: string): Promise<Order | undefined> {
    return this.#orders.get(orderId);
  }
}

@Service()
class OrdersService {
  readonly created: Order[] = [];
  readonly billed: string[] = [];
  #onBilled: (() => void)[] = [];
  constructor(
    @inject(ORDERS_REPO) private readonly repo: OrdersRepository,
    @inject(LOGGER) private readonly log: Logger,
  ) {}

  @Handle(CreateOrder)
  async create({ sku, qty }: { sku: string; qty: number }): Promise<{ orderId: string; total: number }> {
    const order = await this.repo.insert(sku, qty);
    this.log.info(`created ${order.orderId}`);
    return { orderId: order.orderId, total: qty * 9.5 };
  }

  @Handle(GetOrder)
  async get(
    { orderId }: { orderId: string },
    { to }: HandlerContext,
  ): Promise<{ orderId: string; qty: number; by: string }> {
    const order = await this.repo.get(orderId);
    if (!order) throw new StanzaError({ condition: 'item-not-found', type: 'cancel', text: orderId });
    return { ...order, by: to };
  }

  @OnMessage(OrderCreated, { qos: 1 })
  onOrder(order: Order, context: MessageContext): void {
    this.created.push({ ...order, qty: context.qos });
  }

  @Subscribe(OrderCreated, { node: 'orders', durable: 'billing' })
  bill(order: Order): void {
    this.billed.push(order.orderId);
    for (const wake of this.#onBilled.splice(0)) wake();
  }

  /** Resolves at the next billed order (tests). */
  nextBilled(): Promise<void> {
    return new Promise((resolve) => this.#onBilled.push(resolve));
  }
}

// ---- fixtures: a child container per test ------------------------------------------------------

let hub: MemoryHub;
let child: DependencyContainer;
const open: AsyncDisposable[] = [];
const quiet = createLogger({ level: 'silent' });

beforeEach(() => {
  hub = memoryHub();
  child = container.createChildContainer();
  child.register(ORDERS_REPO, { useClass: MemoryOrdersRepository });
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o[Symbol.asyncDispose]();
  child.reset();
});

async function bus(address: string, config: Parameters<typeof createBus>[0] = {}): Promise<Bus> {
  const b = await createBus(config, { transport: hub.connect(address), env: {}, logger: quiet });
  open.push(b);
  return b;
}

/** A pub/sub service with the `orders` node, and two buses using it (checkout started). */
async function setup(): Promise<{ orders: Bus; checkout: Bus }> {
  const service = new MemoryPubSubService(new Session({ transport: hub.connect('pubsub.example.test') }), {
    admins: ['orders.example.test', 'checkout.example.test'],
  });
  open.push(service);
  await service.start();
  const pubsub = { service: 'pubsub.example.test' };
  const orders = await bus('orders.example.test', { pubsub });
  const checkout = await bus('checkout.example.test', { pubsub });
  await checkout.start();
  await checkout.pubsub.createNode('orders');
  return { orders, checkout };
}

describe('registerBus', () => {
  it('registers the bus and its parts under the tokens, units lazily', async () => {
    const b = await bus('orders.example.test');
    registerBus(child, b);
    expect(resolve(child, BUS)).toBe(b);
    expect(resolve(child, SESSION)).toBe(b.session);
    expect(resolve(child, LOGGER)).toBe(b.logger);
    expect(b.health().units.messenger).toBe('absent'); // not built by registering
    expect(resolve(child, MESSENGER)).toBe(b.messenger);
    expect(resolve(child, RPC_SERVER)).toBe(b.rpc);
    expect(resolve(child, RPC_CLIENT)).toBe(b.client);
    expect(container.isRegistered(BUS)).toBe(false); // the root container is untouched
  });
});

describe('mountServices', () => {
  it('binds @Handle, @OnMessage and @Subscribe methods of a resolved service', async () => {
    const { orders, checkout } = await setup();
    registerBus(child, orders);
    const mounted = mountServices(orders, child, [OrdersService]);
    const service = mounted.instances.get(OrdersService) as OrdersService;
    await orders.start(); // starts the rpc server, the messenger and the consumer

    const created = await checkout.client.call(CreateOrder, 'orders.example.test', { sku: 'A1', qty: 2 });
    expect(created).toEqual({ orderId: 'A1-1', total: 19 });
    await expect(checkout.client.call(GetOrder, 'orders-1@orders.example.test', { orderId: 'A1-1' })).resolves.toEqual({
      orderId: 'A1-1',
      qty: 2,
      by: 'orders-1@orders.example.test',
    });

    // Below the handler's minimum QoS (1): refused, the handler not run. Then a QoS 2 message.
    await checkout.messenger.send(OrderCreated, 'orders.example.test', { orderId: 'A1-0', qty: 1 }, { qos: 0 });
    await checkout.messenger.send(OrderCreated, 'orders.example.test', { orderId: 'A1-1', qty: 2 }, { qos: 2 });
    await checkout.messenger.flush({ timeout: 5000 }); // delivered (QoS 2 `deliver` done)
    await orders.messenger.flush({ timeout: 5000 }); // and handled
    expect(service.created).toEqual([{ orderId: 'A1-1', qty: 2 }]);

    const billed = service.nextBilled();
    await checkout.pubsub.publish(OrderCreated, 'orders', { orderId: 'A1-1', qty: 2 }, { id: 'A1-1' });
    await billed;
    expect(service.billed).toEqual(['A1-1']);
    expect(service.created).toHaveLength(1);

    await mounted.unmount();
    expect(orders.rpc.methods).toEqual([]);
  });

  it('swaps the repository for a fake in a child container', async () => {
    const calls: string[] = [];
    const fake: OrdersRepository = {
      insert: async (sku, qty) => {
        calls.push(`insert ${sku} ${qty}`);
        return { orderId: 'fake-1', qty };
      },
      get: async () => undefined,
    };
    child.register(ORDERS_REPO, { useValue: fake });
    const { orders, checkout } = await setup();
    registerBus(child, orders);
    mountServices(orders, child, [OrdersService]);
    await orders.start();
    await expect(checkout.client.call(CreateOrder, 'orders.example.test', { sku: 'B', qty: 1 })).resolves.toEqual({
      orderId: 'fake-1',
      total: 9.5,
    });
    expect(calls).toEqual(['insert B 1']);
    const err = await checkout.client.call(GetOrder, 'orders.example.test', { orderId: 'x' }).catch((e: unknown) => e);
    expect((err as StanzaError).condition).toBe('item-not-found');
  });

  it('refuses classes without @Service() and constructor parameters without @inject', async () => {
    const orders = await bus('orders.example.test');
    class Plain {}
    expect(() => mountServices(orders, child, [Plain])).toThrow(/Plain is not a @Service\(\) class/);
    expect(() => {
      @Service()
      class Untyped {
        constructor(readonly repo: OrdersRepository) {}
      }
      return Untyped;
    }).toThrow(ConfigError);
  });

  it('binds nothing when one binding fails', async () => {
    const orders = await bus('orders.example.test');
    registerBus(child, orders);
    @Service()
    class Clash {
      @Handle(CreateOrder)
      create(): { orderId: string; total: number } {
        return { orderId: 'c', total: 0 };
      }
    }
    orders.rpc.handle(GetOrder, () => ({ orderId: 'x', qty: 1, by: 'x' }));
    mountServices(orders, child, [Clash]);
    expect(() => mountServices(orders, child, [Clash])).toThrow(/CreateOrder|create|handler/i);
    expect(orders.rpc.methods).toHaveLength(2);
  });
});
