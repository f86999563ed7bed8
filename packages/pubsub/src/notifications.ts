/**
 * Fan-out of the service's notifications (`<message><event xmlns='…pubsub#event'>`): each
 * message is parsed once and handed to every listener, node listeners and those of one
 * subscriber JID (node → JID → listeners: one lookup per notification, not one filter per consumer).
 */
import { bareJid, type Element, type Logger } from '@xmppbus/core';
import { eventElementOf, parseEvents, type PubSubEvent } from './events.js';
import type { EventListener } from './types.js';

export class NotificationRouter {
  readonly #service: string;
  readonly #serviceLower: string;
  readonly #logger: Logger;
  readonly #listeners = new Set<EventListener>();
  readonly #nodeListeners = new Map<string, Set<EventListener>>();
  readonly #addressed = new Map<string, Map<string, Set<EventListener>>>();

  constructor(service: string, logger: Logger) {
    this.#service = service;
    this.#serviceLower = service.toLowerCase();
    this.#logger = logger;
  }

  on(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onNode(node: string, listener: EventListener, jid: string | undefined): () => void {
    let set: Set<EventListener> | undefined;
    const key = jid === undefined ? '' : jidKey(jid);
    if (jid === undefined) {
      set = this.#nodeListeners.get(node);
      if (!set) this.#nodeListeners.set(node, (set = new Set()));
    } else {
      let byJid = this.#addressed.get(node);
      if (!byJid) this.#addressed.set(node, (byJid = new Map()));
      set = byJid.get(key);
      if (!set) byJid.set(key, (set = new Set()));
    }
    set.add(listener);
    const s = set;
    return () => {
      s.delete(listener);
      if (s.size > 0) return;
      if (jid === undefined) {
        if (this.#nodeListeners.get(node) === s) this.#nodeListeners.delete(node);
        return;
      }
      const byJid = this.#addressed.get(node);
      if (byJid?.get(key) !== s) return;
      byJid.delete(key);
      if (byJid.size === 0) this.#addressed.delete(node);
    };
  }

  /** The session's message listener. */
  dispatch(stanza: Element): void {
    if (stanza.attrs['type'] === 'error') return;
    const from = stanza.attrs['from'];
    if (from !== this.#service && (from === undefined || from.toLowerCase() !== this.#serviceLower)) return;
    const ev = eventElementOf(stanza);
    if (!ev) return;
    const rawTo = stanza.attrs['to'];
    const to = rawTo === undefined ? undefined : jidKey(rawTo);
    for (const e of parseEvents(stanza, ev)) {
      const byJid = this.#addressed.get(e.node);
      if (byJid) {
        if (to === undefined) {
          for (const set of byJid.values()) for (const l of set) this.#emit(l, e);
        } else {
          const exact = byJid.get(to);
          if (exact) for (const l of exact) this.#emit(l, e);
          const bare = bareJid(to);
          const forBare = bare === to ? undefined : byJid.get(bare);
          if (forBare) for (const l of forBare) this.#emit(l, e);
        }
      }
      const set = this.#nodeListeners.get(e.node);
      if (set) for (const l of set) this.#emit(l, e);
      for (const l of this.#listeners) this.#emit(l, e);
    }
  }

  #emit(l: EventListener, e: PubSubEvent): void {
    try {
      l(e);
    } catch (err) {
      this.#logger.error(`pubsub: event listener threw on node '${e.node}'`, err);
    }
  }

  clear(): void {
    this.#listeners.clear();
    this.#nodeListeners.clear();
    this.#addressed.clear();
  }
}

/**
 * Servers lowercase the local and domain parts of the JIDs they deliver to (RFC 7622 nodeprep):
 * a listener registered as `Orders@Example.test` must still match. The resource stays as is.
 */
function jidKey(jid: string): string {
  const slash = jid.indexOf('/');
  return slash < 0 ? jid.toLowerCase() : jid.slice(0, slash).toLowerCase() + jid.slice(slash);
}
