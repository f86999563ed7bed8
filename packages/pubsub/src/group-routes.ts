/**
 * Routing of the competing-consumer IQs (`<join/>`, `<deliver/>` in `urn:xmppbus:pubsub:1`) of
 * one session to its group members by (node, group). One per `PubSub`; the router handlers and
 * the disco feature exist only while a member is registered.
 */
import { ConflictError, StanzaError, errorReply } from '@xmppbus/core';
import type { Element, Session } from '@xmppbus/core';
import { NS_XMPPBUS_PUBSUB } from './ns.js';
import type { GroupIqHandler, GroupRouting } from './types.js';

export class GroupRoutes implements GroupRouting {
  readonly #session: Session;
  readonly #members = new Map<string, GroupIqHandler>();
  #offs: (() => void)[] = [];

  constructor(session: Session) {
    this.#session = session;
  }

  add(node: string, group: string, handler: GroupIqHandler): () => void {
    const key = `${node}\u0000${group}`;
    if (this.#members.has(key))
      throw new ConflictError(`a member of group '${group}' on '${node}' already runs on this PubSub`);
    if (this.#members.size === 0) this.#attach();
    this.#members.set(key, handler);
    return () => {
      if (this.#members.get(key) !== handler) return;
      this.#members.delete(key);
      if (this.#members.size === 0) this.#detach();
    };
  }

  #attach(): void {
    const router = this.#session.router;
    const route = (iq: Element, payload: Element): void => this.#route(iq, payload);
    try {
      this.#offs.push(router.handle(NS_XMPPBUS_PUBSUB, 'join', route));
      this.#offs.push(router.handle(NS_XMPPBUS_PUBSUB, 'deliver', route));
    } catch (err) {
      this.#detach();
      throw new ConflictError('another PubSub on this session already serves consumer groups', { cause: err });
    }
    this.#offs.push(this.#session.disco.addFeature(NS_XMPPBUS_PUBSUB));
  }

  #detach(): void {
    for (const off of this.#offs) off();
    this.#offs = [];
  }

  #route(iq: Element, payload: Element): void {
    const m = this.#members.get(`${payload.attrs['node'] ?? ''}\u0000${payload.attrs['group'] ?? ''}`);
    if (m) return m(iq, payload);
    const err = new StanzaError({ condition: 'item-not-found', text: 'no such group member here' });
    this.#session.send(errorReply(iq, err)).catch(() => undefined);
  }
}
