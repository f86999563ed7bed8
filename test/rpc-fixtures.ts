// Helpers shared by the rpc integration tests (test/rpc*.test.ts); the contracts come from
// @xmppbus/testing (re-exported here for benchmarks/rpc.ts).
import { ConfigError, Session, type Transport } from '@xmppbus/core';
import type { XmppServer } from '@xmppbus/testing';
import { componentTransport, type ComponentTransport } from '@xmppbus/transport-component';

export { CreateOrder, GetOrder, NS_ORDERS, Wait } from '@xmppbus/testing';

/** Tracks component connections and their sessions so every test closes what it opened. */
export class Components {
  readonly #open: ComponentTransport[] = [];
  readonly #sessions: Session[] = [];
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

  /** A started session on a new component connection named `domain`. */
  async session(
    domain: string,
    reconnect: false | { initialDelay: number; maxDelay: number } = false,
  ): Promise<Session> {
    const session = new Session({ transport: await this.connect(domain, reconnect) });
    this.#sessions.push(session);
    await session.start();
    return session;
  }

  /** Closes the (first, or the given) open connection named `domain`. */
  async closeOne(domain: string, which?: Transport): Promise<void> {
    const i = this.#open.findIndex((t) => t.address === domain && (which === undefined || t === which));
    if (i < 0) throw new ConfigError(`${domain} is not open`);
    const [t] = this.#open.splice(i, 1);
    await t!.close();
  }

  async closeAll(): Promise<void> {
    for (const s of this.#sessions.splice(0)) await s.close();
    for (const t of this.#open.splice(0)) await t.close();
  }
}
