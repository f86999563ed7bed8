/**
 * Contracts shared by tests and benchmarks, declared once: the orders service (rpc), its events
 * (pub/sub) and a QoS command (messaging).
 */
import { Type } from '@sinclair/typebox';
import { event, method } from '@xmppbus/schema';

export const NS_ORDERS = 'urn:example:orders:1';
export const NS_ORDER_EVENTS = 'urn:example:orders:events:1';

export const CreateOrder = method({
  ns: NS_ORDERS,
  name: 'create',
  request: Type.Object({ sku: Type.String(), qty: Type.Integer({ minimum: 1 }) }),
  response: Type.Object({ orderId: Type.String(), total: Type.Number() }),
  errors: {
    outOfStock: { condition: 'conflict', schema: Type.Object({ sku: Type.String(), available: Type.Integer() }) },
  },
});

export const GetOrder = method({
  ns: NS_ORDERS,
  name: 'get',
  request: Type.Object({ orderId: Type.String() }),
  response: Type.Object({ orderId: Type.String(), qty: Type.Integer(), by: Type.String() }),
  readOnly: true,
  idempotent: true,
});

/** Waits `ms` on the serving side (slow handlers, drains, timeouts). */
export const Wait = method({
  ns: NS_ORDERS,
  name: 'wait',
  request: Type.Object({ ms: Type.Integer({ minimum: 0 }) }),
  response: Type.Object({ by: Type.String() }),
  idempotent: true,
});

export const OrderCreated = event({
  ns: NS_ORDER_EVENTS,
  name: 'created',
  schema: Type.Object({ orderId: Type.String(), qty: Type.Integer() }),
});
