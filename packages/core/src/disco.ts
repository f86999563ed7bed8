/**
 * What this endpoint advertises through XEP-0030 service discovery: features (reference
 * counted, so two units may advertise the same namespace), identities, items and per-node
 * info. One registry per session; the session's IQ router answers disco#info/#items from it.
 */
import type { Element } from './xml.js';
import { xml } from './xml.js';

export const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
export const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
export const NS_PING = 'urn:xmpp:ping';

export interface DiscoIdentity {
  category: string;
  type: string;
  name?: string;
}

/** An XEP-0030 disco#items entry; `jid` defaults to the address the query was sent to. */
export interface DiscoItem {
  jid?: string;
  node?: string;
  name?: string;
  /** Listed only to requesters the session's access policy lets reach this namespace (and element). */
  guard?: { ns: string; name?: string };
  /** Listed only to requesters for which this returns true (an entry whose answer depends on the requester). */
  shownTo?: (from: string | undefined) => boolean;
}

/** Decides whether a requester may see a guarded entry. */
export type DiscoVisibility = (guard: { ns: string; name?: string }) => boolean;

/** What disco#info answers for one node (XEP-0030 §3.2). */
export interface DiscoNodeInfo {
  identities?: DiscoIdentity[];
  features: string[];
}

export class DiscoRegistry {
  readonly #features = new Map<string, number>();
  readonly #identities: DiscoIdentity[] = [];
  readonly #items: DiscoItem[] = [];
  readonly #nodes = new Map<string, DiscoNodeInfo & { guard?: { ns: string; name?: string } }>();

  constructor() {
    this.addFeature(NS_DISCO_INFO);
    this.addFeature(NS_PING);
  }

  /** Advertises a feature namespace (reference counted). Returns the remover. */
  addFeature(ns: string): () => void {
    this.#features.set(ns, (this.#features.get(ns) ?? 0) + 1);
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      const n = (this.#features.get(ns) ?? 1) - 1;
      if (n <= 0) this.#features.delete(ns);
      else this.#features.set(ns, n);
    };
  }

  /** Adds an identity. Returns the remover. */
  addIdentity(identity: DiscoIdentity): () => void {
    this.#identities.push(identity);
    return () => {
      const i = this.#identities.indexOf(identity);
      if (i >= 0) this.#identities.splice(i, 1);
    };
  }

  /** Lists an item in disco#items (query without node). Returns the remover. */
  addItem(item: DiscoItem): () => void {
    this.#items.push(item);
    return () => {
      const i = this.#items.indexOf(item);
      if (i >= 0) this.#items.splice(i, 1);
    };
  }

  /**
   * Answers disco#info for `node` with `info` (other nodes get the entity's info); with `guard`,
   * only to requesters allowed to reach it (others get the entity's info). Returns the remover.
   */
  addNodeInfo(node: string, info: DiscoNodeInfo & { guard?: { ns: string; name?: string } }): () => void {
    this.#nodes.set(node, info);
    return () => {
      if (this.#nodes.get(node) === info) this.#nodes.delete(node);
    };
  }

  get features(): string[] {
    return [...this.#features.keys()].sort();
  }

  /** The disco#info `<query/>` answering `query`. */
  infoQuery(query: Element, visible: DiscoVisibility = () => true): Element {
    const node = query.attrs['node'];
    let nodeInfo: (DiscoNodeInfo & { guard?: { ns: string; name?: string } }) | undefined =
      node === undefined ? undefined : this.#nodes.get(node);
    if (nodeInfo?.guard !== undefined && !visible(nodeInfo.guard)) nodeInfo = undefined;
    const info: DiscoNodeInfo = nodeInfo ?? {
      identities: this.#identities.length > 0 ? this.#identities : [{ category: 'component', type: 'generic' }],
      features: this.features,
    };
    return xml(
      'query',
      { xmlns: NS_DISCO_INFO, node },
      ...(info.identities ?? []).map((i) => xml('identity', { category: i.category, type: i.type, name: i.name })),
      ...info.features.map((f) => xml('feature', { var: f })),
    );
  }

  /** The disco#items `<query/>` answering `query`; `me` is the address queried, `from` the requester. */
  itemsQuery(query: Element, me: string, visible: DiscoVisibility = () => true, from?: string): Element {
    const node = query.attrs['node'];
    const shown = (i: DiscoItem): boolean =>
      (i.guard === undefined || visible(i.guard)) && (i.shownTo === undefined || i.shownTo(from));
    const items = node === undefined ? this.#items.filter(shown) : [];
    return xml(
      'query',
      { xmlns: NS_DISCO_ITEMS, node },
      ...items.map((i) => xml('item', { jid: i.jid ?? me, node: i.node, name: i.name })),
    );
  }
}
