/**
 * A minimal RFC 6121 roster client: the roster (`jabber:iq:roster` get and pushes), presence
 * subscriptions (subscribe / subscribed / unsubscribe / unsubscribed) and peer presence. It is
 * how an IoT agent decides whom it talks to, as XMPP has always done for people: a peer is
 * trusted when both sides share a presence subscription (`both`).
 *
 * Subscription requests are answered by a policy: approved at once for owners and trusted
 * domains (and for peers we asked first), otherwise queued (bounded, oldest denied first) for
 * an owner's `approve`/`deny`. The roster itself is the server's; we keep a copy, bounded by
 * what the server sends for our own account.
 */
import {
  bareJid,
  domainOf,
  jidEquals,
  resultReply,
  errorReply,
  StanzaError,
  xml,
  findChild,
  type Element,
  type Session,
} from '@xmppbus/core';
import type {
  AgentAvailability,
  PresenceChange,
  RosterItem,
  RosterSubscription,
  SubscriptionRequest,
} from '../types.js';

export const NS_ROSTER = 'jabber:iq:roster';

/** What to do with an inbound subscription request. */
export type SubscriptionPolicy = (jid: string) => 'approve' | 'queue' | 'deny';

export interface RosterOptions {
  session: Session;
  policy: SubscriptionPolicy;
  /** Queued requests kept at most (default 100; the oldest is denied when full). */
  maxPending?: number;
  /** Reciprocate an approved request with our own `subscribe`, so the subscription becomes mutual. Default true. */
  reciprocate?: boolean;
  /** Load the server roster (`jabber:iq:roster` get) at start. False on a component (no roster). Default true. */
  load?: boolean;
  /** Roster items kept at most (default 10 000; items beyond are not tracked, so not trusted). */
  maxItems?: number;
  /** Peers whose presence is tracked at most (default 10 000). */
  maxPresences?: number;
}

type Listener<T> = (value: T) => void;

const SHOWS = new Set(['away', 'xa', 'dnd', 'chat']);

export class Roster {
  readonly #session: Session;
  readonly #policy: SubscriptionPolicy;
  readonly #maxPending: number;
  readonly #reciprocate: boolean;
  readonly #load: boolean;
  readonly #maxItems: number;
  readonly #maxPresences: number;
  readonly #items = new Map<string, RosterItem>();
  readonly #pending = new Map<string, SubscriptionRequest>();
  /** Peers we sent `subscribe` to: their own `subscribe` back is approved. */
  readonly #asked = new Set<string>();
  /** Full JID → latest presence of peers that are online. */
  readonly #online = new Map<string, PresenceChange>();
  readonly #presenceListeners: Listener<PresenceChange>[] = [];
  readonly #pendingListeners: Listener<SubscriptionRequest>[] = [];
  readonly #changeListeners: Listener<RosterItem>[] = [];
  #off: (() => void)[] = [];

  constructor(options: RosterOptions) {
    this.#session = options.session;
    this.#policy = options.policy;
    this.#maxPending = options.maxPending ?? 100;
    this.#reciprocate = options.reciprocate ?? true;
    this.#load = options.load ?? true;
    this.#maxItems = options.maxItems ?? 10_000;
    this.#maxPresences = options.maxPresences ?? 10_000;
  }

  /** Listens for presence and roster pushes, then loads the roster (c2s). */
  async start(options: { signal?: AbortSignal; timeout?: number } = {}): Promise<void> {
    if (this.#off.length === 0) {
      const s = this.#session;
      this.#off.push(
        s.onPresence((p) => this.#onPresence(p)),
        s.router.delegateAccess(NS_ROSTER),
        s.router.handle(NS_ROSTER, 'query', (iq, q) => this.#onPush(iq, q)),
      );
    }
    if (this.#load) await this.reload(options);
  }

  /** Fetches the roster again (after a reconnect the server may have changed it). */
  async reload(options: { signal?: AbortSignal; timeout?: number } = {}): Promise<void> {
    const me = bareJid(this.#session.address);
    const result = await this.#session.caller.request(
      xml('iq', { type: 'get', to: me }, xml('query', { xmlns: NS_ROSTER })),
      options,
    );
    const query = findChild(result, 'query');
    this.#items.clear();
    if (query)
      for (const c of query.children) if (typeof c !== 'string' && c.name === 'item') this.#applyItem(c, false);
  }

  stop(): void {
    for (const off of this.#off) off();
    this.#off = [];
  }

  /** Whether `jid` (any resource) shares a mutual presence subscription with us. */
  isMutual(jid: string): boolean {
    return this.#items.get(bareJid(jid))?.subscription === 'both';
  }

  item(jid: string): RosterItem | undefined {
    return this.#items.get(bareJid(jid));
  }

  get items(): readonly RosterItem[] {
    return [...this.#items.values()];
  }

  /** Requests waiting for an owner's decision, oldest first. */
  get pending(): readonly SubscriptionRequest[] {
    return [...this.#pending.values()];
  }

  /** Online peers (full JIDs) and their latest presence. */
  get online(): readonly PresenceChange[] {
    return [...this.#online.values()];
  }

  /** Asks `jid` for a presence subscription (and approves theirs in return). */
  async subscribe(jid: string): Promise<void> {
    const bare = bareJid(jid);
    this.#ask(bare);
    await this.#session.send(xml('presence', { type: 'subscribe', to: bare }));
  }

  /**
   * Remembers that we asked `bare` (bounded like the roster copy: a peer that never answers,
   * e.g. one of many accounts of a trusted domain, is forgotten oldest first; its own `subscribe`
   * then goes through the policy again).
   */
  #ask(bare: string): void {
    this.#asked.delete(bare);
    if (this.#asked.size >= this.#maxItems) {
      const oldest = this.#asked.values().next().value;
      if (oldest !== undefined) this.#asked.delete(oldest);
    }
    this.#asked.add(bare);
  }

  /** Ends both directions of the subscription with `jid`. */
  async unsubscribe(jid: string): Promise<void> {
    const bare = bareJid(jid);
    this.#asked.delete(bare);
    await this.#session.send(xml('presence', { type: 'unsubscribe', to: bare }));
    await this.#session.send(xml('presence', { type: 'unsubscribed', to: bare }));
  }

  /** Approves a (queued or not) request: `subscribed`, and our own `subscribe` back. */
  async approve(jid: string): Promise<void> {
    const bare = bareJid(jid);
    this.#pending.delete(bare);
    await this.#session.send(xml('presence', { type: 'subscribed', to: bare }));
    const sub = this.#items.get(bare)?.subscription;
    if (this.#reciprocate && sub !== 'to' && sub !== 'both') {
      this.#ask(bare);
      await this.#session.send(xml('presence', { type: 'subscribe', to: bare }));
    }
  }

  /** Denies a request (`unsubscribed`). */
  async deny(jid: string): Promise<void> {
    const bare = bareJid(jid);
    this.#pending.delete(bare);
    await this.#session.send(xml('presence', { type: 'unsubscribed', to: bare }));
  }

  onPresence(listener: Listener<PresenceChange>): () => void {
    return add(this.#presenceListeners, listener);
  }

  /** A request was queued for an owner's decision. */
  onPendingRequest(listener: Listener<SubscriptionRequest>): () => void {
    return add(this.#pendingListeners, listener);
  }

  /** A roster item changed (a push). */
  onChange(listener: Listener<RosterItem>): () => void {
    return add(this.#changeListeners, listener);
  }

  #onPush(iq: Element, query: Element): void {
    const from = iq.attrs['from'];
    const me = this.#session.address;
    // RFC 6121 §2.1.6: only our own account (or no from) may push.
    if (from !== undefined && !jidEquals(from, bareJid(me)) && !jidEquals(from, me) && !jidEquals(from, domainOf(me))) {
      void this.#session
        .send(errorReply(iq, new StanzaError({ condition: 'service-unavailable' })))
        .catch(() => undefined);
      return;
    }
    if (iq.attrs['type'] === 'set')
      for (const c of query.children) if (typeof c !== 'string' && c.name === 'item') this.#applyItem(c, true);
    void this.#session.send(resultReply(iq)).catch(() => undefined);
  }

  #applyItem(el: Element, notify: boolean): void {
    const jid = el.attrs['jid'];
    if (typeof jid !== 'string' || jid.length > 3071) return;
    const bare = bareJid(jid);
    const raw = el.attrs['subscription'] ?? 'none';
    const subscription: RosterSubscription = ['none', 'to', 'from', 'both', 'remove'].includes(raw)
      ? (raw as RosterSubscription)
      : 'none';
    const item: RosterItem = {
      jid: bare,
      subscription,
      pending: el.attrs['ask'] === 'subscribe' || undefined,
      name: el.attrs['name'],
    };
    if (subscription === 'remove') this.#items.delete(bare);
    else if (this.#items.has(bare) || this.#items.size < this.#maxItems) this.#items.set(bare, item);
    if (subscription === 'both' || subscription === 'remove') this.#asked.delete(bare);
    if (notify) for (const l of [...this.#changeListeners]) l(item);
  }

  #onPresence(p: Element): void {
    const from = p.attrs['from'];
    if (typeof from !== 'string') return;
    const type = p.attrs['type'];
    switch (type) {
      case 'subscribe':
        this.#onSubscribe(bareJid(from));
        return;
      case 'subscribed':
      case 'unsubscribe':
      case 'unsubscribed':
        // The server's roster push carries the new state; a component has none, so note it here.
        if (!this.#load)
          this.#applyItem(xml('item', { jid: from, subscription: type === 'subscribed' ? 'to' : 'none' }), true);
        return;
      case undefined:
      case 'unavailable': {
        const change = presenceChange(p, from, this.#session.clock.now());
        if (change.availability === 'unavailable') this.#online.delete(from);
        else if (this.#online.has(from) || this.#online.size < this.#maxPresences) this.#online.set(from, change);
        for (const l of [...this.#presenceListeners]) l(change);
        return;
      }
      default:
        return; // probe, error
    }
  }

  #onSubscribe(bare: string): void {
    const sub = this.#items.get(bare)?.subscription;
    if (sub === 'from' || sub === 'both') {
      // Already approved (a re-send): confirm again, as RFC 6121 §3.1.3 allows.
      void this.#session.send(xml('presence', { type: 'subscribed', to: bare })).catch(() => undefined);
      return;
    }
    // A peer we asked (or already see, `to`) asking back completes a mutual subscription.
    const decision = this.#asked.has(bare) || sub === 'to' ? 'approve' : this.#policy(bare);
    if (decision === 'approve') {
      void this.approve(bare).catch(() => undefined);
      return;
    }
    if (decision === 'deny') {
      void this.deny(bare).catch(() => undefined);
      return;
    }
    if (this.#pending.has(bare)) return;
    if (this.#pending.size >= this.#maxPending) {
      const oldest = this.#pending.keys().next().value;
      if (oldest !== undefined) void this.deny(oldest).catch(() => undefined);
    }
    const request: SubscriptionRequest = { jid: bare, at: this.#session.clock.now() };
    this.#pending.set(bare, request);
    for (const l of [...this.#pendingListeners]) l(request);
  }
}

export function presenceChange(p: Element, from: string, at: number): PresenceChange {
  let availability: AgentAvailability = 'available';
  if (p.attrs['type'] === 'unavailable') availability = 'unavailable';
  else {
    const show = findChild(p, 'show');
    const text = show ? show.getText() : '';
    if (SHOWS.has(text)) availability = text as AgentAvailability;
  }
  const status = findChild(p, 'status')?.getText();
  return status === undefined
    ? { jid: from, availability, at }
    : { jid: from, availability, status: status.slice(0, 1024), at };
}

function add<T>(list: T[], l: T): () => void {
  list.push(l);
  return () => {
    const i = list.indexOf(l);
    if (i >= 0) list.splice(i, 1);
  };
}
