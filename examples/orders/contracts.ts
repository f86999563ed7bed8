/**
 * What the three services of the orders example agree on: the wire contracts (defined once; the
 * types and the XML mapping derive from them) and the injection tokens they share.
 */
import { Type } from '@sinclair/typebox';
import { createToken } from '@xmppbus/di';
import { event, method, payload } from '@xmppbus/schema';

export const NS_ORDERS = 'urn:example:shop:orders:1';
export const NS_BILLING = 'urn:example:shop:billing:1';

const Order = Type.Object({
  orderId: Type.String(),
  sku: Type.String(),
  qty: Type.Integer({ minimum: 1 }),
  total: Type.Number(),
});

/** RPC: `<create xmlns='urn:example:shop:orders:1'>`, served by `orders`. */
export const CreateOrder = method({
  ns: NS_ORDERS,
  name: 'create',
  request: Type.Object({ sku: Type.String({ minLength: 1 }), qty: Type.Integer({ minimum: 1 }) }),
  response: Type.Object({ orderId: Type.String(), total: Type.Number() }),
});

/** RPC: reads an order back; a declared error for an unknown id. */
export const GetOrder = method({
  ns: NS_ORDERS,
  name: 'get',
  readOnly: true,
  idempotent: true,
  request: Type.Object({ orderId: Type.String() }),
  response: Order,
  errors: { notFound: { condition: 'item-not-found', schema: Type.Object({ orderId: Type.String() }) } },
});

/** Pub/sub event: published by `orders` on the `orders` node for every new order. */
export const OrderCreated = event({ ns: NS_ORDERS, name: 'created', schema: Order });

/** QoS-2 message: sent by `billing` to `shipping`, handled exactly once. */
export const Invoice = payload({
  ns: NS_BILLING,
  name: 'invoice',
  schema: Type.Object({
    invoiceId: Type.String(),
    orderId: Type.String(),
    amount: Type.Number(),
    billedBy: Type.String(),
  }),
});

/** The pub/sub node `orders` publishes to. */
export const ORDERS_NODE = 'shop.orders';

/** Where the services find each other (deployment settings, injected). */
export interface ShopAddresses {
  readonly orders: string;
  readonly shipping: string;
}
export const SHOP = createToken<ShopAddresses>('ShopAddresses');

/** Where services report what they did, for the example's transcript (a logger would do in production). */
export interface Journal {
  note(service: string, text: string): void;
}
export const JOURNAL = createToken<Journal>('Journal');
