// The orders service of a first session with the CLI (see packages/cli/README.md, "First call"):
//
//   npx xmppbus server start --detach --component orders.localhost --env .env
//   node --env-file=.env --import tsx service.ts &
//   npx xmppbus call orders.localhost create '{"sku":"A1","qty":2}'
//
// createBus() connects with the XMPPBUS_* variables that `server start --env` wrote (the secret is
// in .env, never in code). The CLI needs no contract: it reads this one's JSON Schema over the wire.
import { Type } from '@sinclair/typebox';
import { createBus, handleSignals } from '@xmppbus/bus';
import { method } from '@xmppbus/schema';

export const CreateOrder = method({
  ns: 'urn:example:orders:1',
  name: 'create',
  request: Type.Object({ sku: Type.String(), qty: Type.Integer({ minimum: 1 }) }),
  response: Type.Object({ orderId: Type.String(), total: Type.Number() }),
});

const bus = await createBus();
bus.rpc.handle(CreateOrder, ({ sku, qty }, { from }) => ({ orderId: `o-${sku}-for-${from}`, total: qty * 9.5 }));
await bus.start();
handleSignals(bus);
process.stdout.write(`orders ready as ${bus.session.address} (Ctrl-C to stop)\n`);
