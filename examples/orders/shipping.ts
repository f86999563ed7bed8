/** `shipping`: handles the QoS-2 `Invoice` messages (exactly once) and ships the order. */
import { OnMessage, Service, inject } from '@xmppbus/di';
import type { MessageContext } from '@xmppbus/messaging';
import { Invoice, JOURNAL, type Journal } from './contracts.js';

export interface Shipment {
  orderId: string;
  invoiceId: string;
  billedBy: string;
  qos: number;
}

@Service()
export class ShippingService {
  readonly shipments: Shipment[] = [];
  #waiters: { count: number; wake: () => void }[] = [];

  constructor(@inject(JOURNAL) private readonly journal: Journal) {}

  @OnMessage(Invoice, { qos: 2 }) // an invoice sent below QoS 2 is refused, the method not run
  ship(invoice: { invoiceId: string; orderId: string; billedBy: string }, { from, qos }: MessageContext): void {
    this.shipments.push({ orderId: invoice.orderId, invoiceId: invoice.invoiceId, billedBy: invoice.billedBy, qos });
    this.journal.note(
      'shipping',
      `← Invoice ${invoice.invoiceId} from ${from} (QoS ${qos}): shipping ${invoice.orderId}`,
    );
    this.#waiters = this.#waiters.filter((w) => (this.shipments.length >= w.count ? (w.wake(), false) : true));
  }

  /** Resolves once `count` invoices have been handled; rejects when `signal` aborts first. */
  until(count: number, signal: AbortSignal): Promise<void> {
    if (this.shipments.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { count, wake: resolve };
      this.#waiters.push(waiter);
      signal.addEventListener('abort', () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal.reason as Error);
      });
    });
  }
}
