// Runnable without any server: `npx tsx --conditions=source examples/rpc.ts`
// (the same code runs over a real server with @xmppbus/transport-component, see packages/rpc/README.md).
import { Type } from '@sinclair/typebox';
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

const hub = memoryHub();
const orders = hub.connect('orders.example.test');
const billing = hub.connect('billing.example.test');

// 2. Serve it.
const server = new RpcServer({ transport: orders, concurrency: 64 });
server.handle(CreateOrder, async ({ sku, qty }) => {
  if (sku === 'none') throw new RpcError(CreateOrder, 'outOfStock', { sku });
  return { orderId: `o-${sku}`, total: qty * 9.5 };
});

// 3. Call it.
const client = new RpcClient({ transport: billing, timeout: 2000 });
const order = await client.call(CreateOrder, 'orders.example.test', { sku: 'A1', qty: 2 });
console.log('created', order.orderId, order.total);

try {
  await client.call(CreateOrder, 'orders.example.test', { sku: 'none', qty: 1 });
} catch (err) {
  if (RpcError.is(err, CreateOrder, 'outOfStock')) console.log('out of stock:', err.data.sku);
  else throw err;
}

await server.drain();
await billing.close();
await orders.close();
