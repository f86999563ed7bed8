// Contracts and helpers shared by the rpc integration tests (test/rpc*.test.ts) and benchmarks/rpc.ts.
import { Type } from '@sinclair/typebox';
import { method } from '@xmppbus/schema';
import type { XmppServer } from '@xmppbus/testing';
import { componentTransport, type ComponentTransport } from '@xmppbus/transport-component';

export const NS_ORDERS = 'urn:example:orders:1';

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

export const Wait = method({
  ns: NS_ORDERS,
  name: 'wait',
  request: Type.Object({ ms: Type.Integer({ minimum: 0 }) }),
  response: Type.Object({ by: Type.String() }),
  idempotent: true,
});

/** Tracks component transports so every test closes what it opened. */
export class Components {
  readonly #open: ComponentTransport[] = [];
  constructor(private readonly server: () => XmppServer) {}

  async connect(
    domain: string,
    reconnect: false | { initialDelay: number; maxDelay: number } = false,
  ): Promise<ComponentTransport> {
    const srv = this.server();
    const t = await componentTransport({
      service: srv.componentService(),
      domain,
      password: srv.componentSecret,
      reconnect,
    });
    this.#open.push(t);
    return t;
  }

  /** Closes the (first, or the given) open connection named `domain`. */
  async closeOne(domain: string, which?: ComponentTransport): Promise<void> {
    const i = this.#open.findIndex((t) => t.address === domain && (which === undefined || t === which));
    if (i < 0) throw new Error(`${domain} is not open`);
    const [t] = this.#open.splice(i, 1);
    await t!.close();
  }

  async closeAll(): Promise<void> {
    for (const t of this.#open.splice(0)) await t.close();
  }
}

export async function waitFor(cond: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
