/**
 * `billing`: consumes `OrderCreated` as a competing-consumer group (every replica joins the group
 * `billing`; exactly one handles each event, and the group's position is kept in the pub/sub
 * service, so it survives restarts), then sends a QoS-2 `Invoice` to `shipping`.
 */
import type { Bus } from '@xmppbus/bus';
import { BUS, MESSENGER, Service, Subscribe, inject } from '@xmppbus/di';
import type { Messenger } from '@xmppbus/messaging';
import type { EventMeta } from '@xmppbus/pubsub';
import { Invoice, JOURNAL, ORDERS_NODE, OrderCreated, SHOP, type Journal, type ShopAddresses } from './contracts.js';

@Service()
export class BillingService {
  constructor(
    @inject(MESSENGER) private readonly messenger: Messenger,
    @inject(BUS) private readonly bus: Bus,
    @inject(SHOP) private readonly shop: ShopAddresses,
    @inject(JOURNAL) private readonly journal: Journal,
  ) {}

  @Subscribe(OrderCreated, { node: ORDERS_NODE, group: 'billing' })
  async bill(order: { orderId: string; total: number }, meta: EventMeta): Promise<void> {
    const me = this.bus.session.address;
    const name = this.bus.config.name ?? me;
    this.journal.note(name, `← OrderCreated ${order.orderId} (item ${meta.id}), billing ${order.total.toFixed(2)}`);
    // The message id is derived from the order: if this event were ever handled again (a crash
    // before the group saved its position), shipping would drop the repeated invoice.
    const invoice = { invoiceId: `inv-${order.orderId}`, orderId: order.orderId, amount: order.total, billedBy: me };
    await this.messenger.send(Invoice, this.shop.shipping, invoice, { qos: 2, id: invoice.invoiceId, ttl: '1h' });
    this.journal.note(name, `→ Invoice ${invoice.invoiceId} to ${this.shop.shipping} (QoS 2): received`);
  }
}
