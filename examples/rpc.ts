// Runnable without any server: `npx tsx --conditions=source examples/rpc.ts`
// (the same code runs over a real server with @xmppbus/transport-component, see packages/rpc/README.md).
import { Type } from '@sinclair/typebox';
import { Session } from '@xmppbus/core';
import { RpcClient, RpcError, RpcServer } from '@xmppbus/rpc';
import { method } from '@xmppbus/schema';
import { memoryHub } from '@xmppbus/transport-memory';

// 1. A contract, defined once: callers and handlers get their types from it.
const CreateOrder = method({
  ns: 'urn:example:orders:1',
  name: 'create', // <create xmlns='urn:example:orders:1'>
  request: Type.Object({ sku: Type.String(), qty: Type.Integer({ minimum: 1 }) }),
  response: Type.Object({ orderId: Type.String(), total: Type.Number() }),
  errors: { outOfStock: { condition: 'conflict', schema: Type.Object({ sku: Type.String() }) } },
});

// One session per connection.
const hub = memoryHub();
await using orders = new Session({ transport: hub.connect('orders.example.test') });
await using billing = new Session({ transport: hub.connect('billing.example.test') });

// 2. Serve it.
const server = new RpcServer({ session: orders, concurrency: 64 });
server.handle(CreateOrder, async ({ sku, qty }) => {
  if (sku === 'none') throw new RpcError(CreateOrder, 'outOfStock', { sku });
  return { orderId: `o-${sku}`, total: qty * 9.5 };
});
await server.start();

// 3. Call it.
const client = new RpcClient({ session: billing, timeout: 2000 });
await client.start();
const order = await client.call(CreateOrder, 'orders.example.test', { sku: 'A1', qty: 2 });
console.log('created', order.orderId, order.total);

try {
  await client.call(CreateOrder, 'orders.example.test', { sku: 'none', qty: 1 });
} catch (err) {
  if (RpcError.is(err, CreateOrder, 'outOfStock')) console.log('out of stock:', err.data.sku);
  else throw err;
}

// Graceful stop: finish the calls in hand, then the sessions close (server and client with them).
await orders.drain({ timeout: 1000 });
