/** `orders`: creates and reads orders (RPC) over an injected repository; publishes `OrderCreated`. */
import { Handle, PUBSUB, Service, createToken, inject } from '@xmppbus/di';
import type { PubSub } from '@xmppbus/pubsub';
import { RpcError } from '@xmppbus/rpc';
import type { HandlerContext } from '@xmppbus/rpc';
import { CreateOrder, GetOrder, JOURNAL, ORDERS_NODE, OrderCreated, type Journal } from './contracts.js';

export interface Order {
  orderId: string;
  sku: string;
  qty: number;
  total: number;
}

/** Storage of orders: a database in production, a map here (and a fake in tests). */
export interface OrdersRepository {
  insert(sku: string, qty: number, unitPrice: number): Promise<Order>;
  get(orderId: string): Promise<Order | undefined>;
}
export const ORDERS_REPO = createToken<OrdersRepository>('OrdersRepository');

export class MemoryOrdersRepository implements OrdersRepository {
  readonly #orders = new Map<string, Order>();
  async insert(sku: string, qty: number, unitPrice: number): Promise<Order> {
    const order = { orderId: `o-${1001 + this.#orders.size}`, sku, qty, total: qty * unitPrice };
    this.#orders.set(order.orderId, order);
    return order;
  }
  async get(orderId: string): Promise<Order | undefined> {
    return this.#orders.get(orderId);
  }
}

const UNIT_PRICE = 9.5;

@Service()
export class OrdersService {
  constructor(
    @inject(ORDERS_REPO) private readonly repo: OrdersRepository,
    @inject(PUBSUB) private readonly pubsub: PubSub,
    @inject(JOURNAL) private readonly journal: Journal,
  ) {}

  /** The owner creates (or re-applies the configuration of) its node at every start. */
  async openNode(): Promise<void> {
    await this.pubsub.ensureNode(ORDERS_NODE, { persistItems: true, maxItems: 100, notificationType: 'normal' });
  }

  @Handle(CreateOrder)
  async create({ sku, qty }: { sku: string; qty: number }, { from }: HandlerContext) {
    const order = await this.repo.insert(sku, qty, UNIT_PRICE);
    this.journal.note('orders', `← create(${sku} × ${qty}) from ${from} → ${order.orderId}`);
    // The item id names the event: a retried publish replaces it, consumers see it once.
    await this.pubsub.publish(OrderCreated, ORDERS_NODE, order, { id: order.orderId });
    this.journal.note('orders', `→ published OrderCreated ${order.orderId} on ${ORDERS_NODE}`);
    return { orderId: order.orderId, total: order.total };
  }

  @Handle(GetOrder)
  async get({ orderId }: { orderId: string }) {
    const order = await this.repo.get(orderId);
    if (!order) throw new RpcError(GetOrder, 'notFound', { orderId });
    return order;
  }
}
