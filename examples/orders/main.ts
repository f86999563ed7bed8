/**
 * The orders example: three services written as `@Service` classes, booted from one config file
 * (examples/orders/xmppbus.yaml) plus each service's environment, through a real Prosody that
 * this script starts on free loopback ports in a temp dir; everything is torn down at the end.
 *
 *   npm run example:orders
 *
 * which is `tsx --conditions=source --tsconfig examples/orders/tsconfig.json examples/orders/main.ts`:
 * tsx reads a single tsconfig (the working directory's unless told), and the services need this
 * directory's `experimentalDecorators`.
 *
 *   storefront ──rpc create──▶ orders ──OrderCreated (pub/sub)──▶ billing ×2 (one group)
 *                                                                   │ Invoice (QoS 2)
 *                                                                   ▼
 *                                                                shipping
 */
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createBus, type Bus } from '@xmppbus/bus';
import { container, mountServices, registerBus, type ServiceClass } from '@xmppbus/di';
import { RpcError } from '@xmppbus/rpc';
import { startProsody, type XmppServer } from '@xmppbus/testing';
import { BillingService } from './billing.js';
import { CreateOrder, GetOrder, JOURNAL, SHOP, type Journal, type ShopAddresses } from './contracts.js';
import { MemoryOrdersRepository, ORDERS_REPO, OrdersService, type OrdersRepository } from './orders.js';
import { ShippingService, type Shipment } from './shipping.js';

/** The component domains the example connects (a server it is given must accept them). */
export const ORDERS_EXAMPLE_COMPONENTS = [
  'orders.localhost',
  'billing-1.localhost',
  'billing-2.localhost',
  'shipping.localhost',
  'storefront.localhost',
];

export interface OrdersExampleOptions {
  /** A running server that accepts `ORDERS_EXAMPLE_COMPONENTS` (default: a fresh Prosody, stopped at the end). */
  server?: XmppServer;
  /** Where transcript lines go (default: stdout). */
  write?: (line: string) => void;
  /** The environment each service's own variables are added to (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** The orders repository (default: in memory). */
  ordersRepository?: OrdersRepository;
  /** Bound on every wait of the run, ms (default 60 000). */
  timeout?: number;
}

export interface OrdersExampleResult {
  /** What the storefront's `create` calls returned, in order. */
  readonly created: readonly { sku: string; qty: number; orderId: string; total: number }[];
  /** Invoices shipping handled, in order (after everything was drained). */
  readonly shipments: readonly Shipment[];
  /** How many invoices shipping handled per order id. */
  readonly invoicesPerOrder: Readonly<Record<string, number>>;
  /** The order read back with `get`. */
  readonly readBack: { orderId: string; sku: string; qty: number; total: number };
  /** Whether `get` of an unknown order came back as the declared `notFound` error. */
  readonly notFoundTyped: boolean;
  /** The transcript lines, as written. */
  readonly transcript: readonly string[];
}

const CONFIG_FILE = fileURLToPath(new URL('./xmppbus.yaml', import.meta.url));

export async function runOrdersExample(options: OrdersExampleOptions = {}): Promise<OrdersExampleResult> {
  const transcript: string[] = [];
  const write = options.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const timeout = options.timeout ?? 60_000;
  const t0 = performance.now();
  const out = (line: string): void => {
    transcript.push(line);
    write(line);
  };
  const journal: Journal = {
    note: (service, text) =>
      out(`${(performance.now() - t0).toFixed(1).padStart(7)} ms  ${service.padEnd(20)} ${text}`),
  };
  const section = (title: string): void => out(`── ${title} ${'─'.repeat(Math.max(0, 76 - title.length))}`);

  const buses: Bus[] = [];
  let server = options.server;
  const ownServer = server === undefined;
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-orders-'));
  try {
    section('setup');
    if (!server) {
      journal.note('example', 'starting Prosody on 127.0.0.1 (free ports, temp dir)…');
      server = await startProsody({ components: ORDERS_EXAMPLE_COMPONENTS });
    }
    const srv = server;
    journal.note('example', `${srv.kind} ready; components on ${srv.componentService()}`);
    const shop: ShopAddresses = { orders: 'orders.localhost', shipping: 'shipping.localhost' };

    /**
     * One service process: the shared file plus this service's environment (its identity, the
     * server's port and the secret), a child container with the bus in it, and its classes mounted.
     */
    const boot = async (domain: string, classes: ServiceClass[]) => {
      const name = domain.split('.')[0]!;
      const env = {
        ...(options.env ?? process.env),
        XMPPBUS_CONFIG: CONFIG_FILE,
        XMPPBUS_NAME: name,
        XMPPBUS_TRANSPORT_DOMAIN: domain,
        XMPPBUS_TRANSPORT_SERVICE: srv.componentService(),
        XMPPBUS_PASSWORD: srv.componentSecret, // the secret comes from the environment only
        XMPPBUS_MESSAGING_STORE_PATH: join(dir, `${name}.db`),
      };
      const bus = await createBus({}, { env });
      buses.push(bus);
      const scope = container.createChildContainer();
      registerBus(scope, bus);
      scope.register(JOURNAL, { useValue: journal });
      scope.register(SHOP, { useValue: shop });
      scope.register(ORDERS_REPO, { useValue: options.ordersRepository ?? new MemoryOrdersRepository() });
      const { instances } = mountServices(bus, scope, classes);
      await bus.start({ timeout });
      journal.note(name, `started: ${[...instances.keys()].map((c) => c.name).join(', ') || 'client only'}`);
      return { bus, instances };
    };

    const orders = await boot('orders.localhost', [OrdersService]);
    await (orders.instances.get(OrdersService) as OrdersService).openNode();
    const shipping = await boot('shipping.localhost', [ShippingService]);
    const shippingService = shipping.instances.get(ShippingService) as ShippingService;
    // Two replicas of billing: one group, so each event is billed by exactly one of them.
    const billing = [
      await boot('billing-1.localhost', [BillingService]),
      await boot('billing-2.localhost', [BillingService]),
    ];
    const storefront = await boot('storefront.localhost', []);

    section('calls, events and messages');
    const created: { sku: string; qty: number; orderId: string; total: number }[] = [];
    for (const [sku, qty] of [
      ['A1', 2],
      ['B7', 1],
      ['C3', 5],
    ] as const) {
      const r = await storefront.bus.client.call(CreateOrder, shop.orders, { sku, qty }, { timeout });
      journal.note('storefront', `→ create(${sku} × ${qty}) = ${r.orderId}, total ${r.total.toFixed(2)}`);
      created.push({ sku, qty, ...r });
    }
    // The events flow to billing and the invoices to shipping: wait for them, not for a clock.
    await shippingService.until(created.length, AbortSignal.timeout(timeout));

    const readBack = await storefront.bus.client.call(GetOrder, shop.orders, { orderId: created[0]!.orderId });
    journal.note('storefront', `→ get(${readBack.orderId}) = ${JSON.stringify(readBack)}`);
    let notFoundTyped = false;
    try {
      await storefront.bus.client.call(GetOrder, shop.orders, { orderId: 'o-9999' });
    } catch (err) {
      if (!RpcError.is(err, GetOrder, 'notFound')) throw err;
      notFoundTyped = true;
      journal.note('storefront', `✗ get(o-9999): declared error '${err.errorName}' ${JSON.stringify(err.data)}`);
    }

    section('shutdown');
    // Along the flow: the caller first, then each stage after the one that feeds it. Drain
    // (bounded: finish the work in hand), then close. Both billing replicas leave the group together.
    const stages = [[storefront.bus], [orders.bus], billing.map((b) => b.bus), [shipping.bus]];
    for (const stage of stages) {
      await Promise.all(stage.map((bus) => bus.drain({ timeout })));
      for (const bus of stage) journal.note(bus.config.name ?? '?', `drained (outbox ${bus.health().outbox.size})`);
    }
    for (const stage of stages) for (const bus of stage) await bus.close();
    journal.note('example', 'all services closed');

    const invoicesPerOrder: Record<string, number> = {};
    for (const s of shippingService.shipments) invoicesPerOrder[s.orderId] = (invoicesPerOrder[s.orderId] ?? 0) + 1;
    section('outcome');
    for (const o of created)
      journal.note(
        'example',
        `${o.orderId} (${o.sku} × ${o.qty}): ${invoicesPerOrder[o.orderId] ?? 0} invoice(s), billed by ` +
          shippingService.shipments
            .filter((s) => s.orderId === o.orderId)
            .map((s) => s.billedBy)
            .join(', '),
      );
    return {
      created,
      shipments: [...shippingService.shipments],
      invoicesPerOrder,
      readBack,
      notFoundTyped,
      transcript,
    };
  } finally {
    for (const bus of buses.splice(0).reverse()) await bus.close();
    if (ownServer) await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isMain) {
  const result = await runOrdersExample();
  const once = result.created.every((o) => result.invoicesPerOrder[o.orderId] === 1);
  if (!once) throw new Error(`expected exactly one invoice per order, got ${JSON.stringify(result.invoicesPerOrder)}`);
}
