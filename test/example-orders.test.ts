// examples/orders runs end to end against the harness's servers: three @Service services booted
// from examples/orders/xmppbus.yaml plus their environment — a call creates orders, the event
// reaches one billing replica of the group, its QoS-2 invoice reaches shipping exactly once.
import { describeServers } from '@xmppbus/testing';
import { expect, it } from 'vitest';
import { ORDERS_EXAMPLE_COMPONENTS, runOrdersExample } from '../examples/orders/main.js';
import { MemoryOrdersRepository } from '../examples/orders/orders.js';

describeServers(
  'examples/orders',
  (server, kind) => {
    it(`creates orders, bills each once in the group and ships one invoice per order [${kind}]`, async () => {
      const lines: string[] = [];
      const inserted: string[] = [];
      const repo = new MemoryOrdersRepository();
      const ordersRepository = {
        insert: async (sku: string, qty: number, unitPrice: number) => {
          inserted.push(sku);
          return repo.insert(sku, qty, unitPrice);
        },
        get: (orderId: string) => repo.get(orderId),
      };
      const result = await runOrdersExample({
        server: server(),
        write: (line) => lines.push(line),
        env: {},
        ordersRepository,
        timeout: 30_000,
      });

      expect(inserted).toEqual(['A1', 'B7', 'C3']); // the injected repository served the calls
      expect(result.created).toEqual([
        { sku: 'A1', qty: 2, orderId: 'o-1001', total: 19 },
        { sku: 'B7', qty: 1, orderId: 'o-1002', total: 9.5 },
        { sku: 'C3', qty: 5, orderId: 'o-1003', total: 47.5 },
      ]);
      // Exactly one invoice per order, each at QoS 2, each from a billing replica; nothing more
      // arrived while everything drained.
      expect(result.invoicesPerOrder).toEqual({ 'o-1001': 1, 'o-1002': 1, 'o-1003': 1 });
      expect(result.shipments).toHaveLength(3);
      for (const s of result.shipments) {
        expect(s.qos).toBe(2);
        expect(s.invoiceId).toBe(`inv-${s.orderId}`);
        expect(['billing-1.localhost', 'billing-2.localhost']).toContain(s.billedBy);
      }
      expect(result.readBack).toEqual({ orderId: 'o-1001', sku: 'A1', qty: 2, total: 19 });
      expect(result.notFoundTyped).toBe(true);

      // The transcript tells the same story, and it is what was written.
      expect(lines).toEqual(result.transcript);
      const text = lines.join('\n');
      expect(text).toContain('storefront           → create(A1 × 2) = o-1001, total 19.00');
      for (const id of ['o-1001', 'o-1002', 'o-1003']) {
        expect(lines.filter((l) => l.includes(`shipping             ← Invoice inv-${id} `))).toHaveLength(1);
        expect(text).toContain(`${id} (`);
      }
      expect(text).toContain("declared error 'notFound'");
      expect(text).toContain('all services closed');
    });
  },
  { components: ORDERS_EXAMPLE_COMPONENTS },
);
