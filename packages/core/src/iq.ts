/**
 * IQ plumbing shared by every feature on one transport: `IqRouter` dispatches inbound get/set
 * IQs by payload (namespace, local name) and answers the rest (`service-unavailable`, plus
 * built-in XEP-0030 disco#info and XEP-0199 ping); `IqCaller` sends IQs and matches replies by
 * id **and** sender, cleaning its pending map on every outcome. Both are per-transport
 * singletons (`IqRouter.for(t)`), so rpc, pubsub and messaging can share a link.
 */
import { abortReason, type WaitOptions } from './abort.js';
import { ClosedError, ConnectionError, TimeoutError } from './errors.js';
import { randomId } from './id.js';
import { bareJid, domainOf, jidEquals } from './jid.js';
import { ServiceUnavailableError, StanzaError } from './stanza-error.js';
import type { Transport } from './transport.js';
import { Element, firstChildElement, localName, xml } from './xml.js';

export const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
export const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
export const NS_PING = 'urn:xmpp:ping';

/** Handles one inbound IQ get/set; must eventually reply (see `replyResult`/`replyError`). */
export type IqHandler = (iq: Element, payload: Element) => void;

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
}

/** What disco#info answers for one node (XEP-0030 §3.2). */
export interface DiscoNodeInfo {
  identities?: DiscoIdentity[];
  features: string[];
}

const routers = new WeakMap<Transport, IqRouter>();
const callers = new WeakMap<Transport, IqCaller>();

export class IqRouter {
  readonly #transport: Transport;
  /** namespace → local name (or '*') → handler: two lookups, no key string built per stanza. */
  readonly #handlers = new Map<string, Map<string, IqHandler>>();
  readonly #features = new Map<string, number>();
  readonly #identities: DiscoIdentity[] = [];
  readonly #items: DiscoItem[] = [];
  readonly #nodes = new Map<string, DiscoNodeInfo>();
  /** Inbound get/set IQs nobody handled (answered `service-unavailable`). */
  unhandled = 0;

  private constructor(transport: Transport) {
    this.#transport = transport;
    transport.onStanza((s) => this.#onStanza(s));
    this.addFeature(NS_DISCO_INFO);
    this.addFeature(NS_PING);
  }

  /** The router of `transport` (created on first use). */
  static for(transport: Transport): IqRouter {
    let r = routers.get(transport);
    if (!r) {
      r = new IqRouter(transport);
      routers.set(transport, r);
    }
    return r;
  }

  /**
   * Routes IQ get/set whose payload is `<name xmlns=ns>` (or any local name in `ns` when `name`
   * is `'*'`) to `handler`. Returns the unregister function. One handler per key.
   */
  handle(ns: string, name: string, handler: IqHandler): () => void {
    let byName = this.#handlers.get(ns);
    if (byName?.has(name)) throw new Error(`an IQ handler for {${ns}}${name} is already registered`);
    if (!byName) this.#handlers.set(ns, (byName = new Map()));
    byName.set(name, handler);
    return () => {
      const m = this.#handlers.get(ns);
      if (m?.get(name) !== handler) return;
      m.delete(name);
      if (m.size === 0) this.#handlers.delete(ns);
    };
  }

  /** Advertises a feature namespace in disco#info (reference counted). Returns the remover. */
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

  addIdentity(identity: DiscoIdentity): void {
    this.#identities.push(identity);
  }

  /** Lists an item in the built-in disco#items (query without node). Returns the remover. */
  addDiscoItem(item: DiscoItem): () => void {
    this.#items.push(item);
    return () => {
      const i = this.#items.indexOf(item);
      if (i >= 0) this.#items.splice(i, 1);
    };
  }

  /** Answers disco#info for `node` with `info` (other nodes get the entity's info). Returns the remover. */
  addNodeInfo(node: string, info: DiscoNodeInfo): () => void {
    this.#nodes.set(node, info);
    return () => {
      if (this.#nodes.get(node) === info) this.#nodes.delete(node);
    };
  }

  get features(): string[] {
    return [...this.#features.keys()].sort();
  }

  #onStanza(stanza: Element): void {
    if (stanza.name !== 'iq') return;
    const type = stanza.attrs['type'];
    if (type !== 'get' && type !== 'set') return;
    const payload = firstChildElement(stanza);
    if (!payload) {
      this.#reply(stanza, new StanzaError({ condition: 'bad-request', text: 'IQ without payload' }));
      return;
    }
    const ns = payload.attrs['xmlns'] ?? '';
    const name = localName(payload);
    const byName = this.#handlers.get(ns);
    const handler = byName === undefined ? undefined : (byName.get(name) ?? byName.get('*'));
    if (handler) {
      handler(stanza, payload);
      return;
    }
    if (ns === NS_PING && name === 'ping') return this.#reply(stanza);
    if (ns === NS_DISCO_INFO && name === 'query' && type === 'get')
      return this.#reply(stanza, this.#discoInfo(payload));
    if (ns === NS_DISCO_ITEMS && name === 'query' && type === 'get')
      return this.#reply(stanza, this.#discoItems(stanza, payload));
    this.unhandled++;
    this.#reply(stanza, new StanzaError({ condition: 'service-unavailable', text: `no handler for {${ns}}${name}` }));
  }

  #discoItems(iq: Element, query: Element): Element {
    const node = query.attrs['node'];
    const me = iq.attrs['to'] ?? this.#transport.address;
    const items = node === undefined ? this.#items : [];
    return xml(
      'query',
      { xmlns: NS_DISCO_ITEMS, node },
      ...items.map((i) => xml('item', { jid: i.jid ?? me, node: i.node, name: i.name })),
    );
  }

  #discoInfo(query: Element): Element {
    const node = query.attrs['node'];
    const info: DiscoNodeInfo = (node === undefined ? undefined : this.#nodes.get(node)) ?? {
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

  #reply(iq: Element, result?: Element | StanzaError): void {
    const reply = result instanceof StanzaError ? errorReply(iq, result) : resultReply(iq, result);
    this.#transport.send(reply).catch(() => undefined); // a reply lost to a dropped link is the caller's timeout
  }
}

/** Builds the `result` IQ answering `iq` (to/from swapped, same id). */
export function resultReply(iq: Element, payload?: Element): Element {
  // Built directly (not through xml()): this runs once per RPC call on the serving side.
  const reply = new Element('iq');
  const a = reply.attrs;
  const req = iq.attrs;
  a['type'] = 'result';
  if (req['id'] !== undefined) a['id'] = req['id'];
  if (req['from'] !== undefined) a['to'] = req['from'];
  if (req['to'] !== undefined) a['from'] = req['to'];
  if (payload) {
    payload.parent = reply;
    reply.children.push(payload);
  }
  return reply;
}

/** Builds the `error` IQ answering `iq`. The request payload is not echoed (keeps errors small). */
export function errorReply(iq: Element, error: StanzaError): Element {
  return xml(
    'iq',
    { type: 'error', id: iq.attrs['id'], to: iq.attrs['from'], from: iq.attrs['to'] },
    error.toElement(),
  );
}

/**
 * Turns an error stanza into a typed error. Besides RFC 6120's unavailable conditions, two
 * server-specific answers mean "that service is not connected": ejabberd with s2s disabled says
 * `forbidden` "Access denied by service policy"; Prosody says `not-allowed` "Communication with
 * remote domains is not enabled" for a domain it does not host.
 */
export function errorFromStanza(stanza: Element): StanzaError {
  const e = StanzaError.fromElement(stanza);
  if (
    (e.condition === 'forbidden' && e.text !== undefined && /access denied by service policy/i.test(e.text)) ||
    (e.condition === 'not-allowed' && e.text !== undefined && /remote domains is not enabled/i.test(e.text))
  ) {
    const init: ConstructorParameters<typeof ServiceUnavailableError>[0] = { condition: e.condition, type: e.type };
    if (e.text !== undefined) init.text = e.text;
    return new ServiceUnavailableError(init);
  }
  return e;
}

export interface IqRequestOptions extends WaitOptions {}

interface Pending {
  to: string | undefined;
  resolve: (iq: Element) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class IqCaller {
  readonly #transport: Transport;
  readonly #pending = new Map<string, Pending>();
  /** Default timeout in ms when a request gives none. */
  defaultTimeout = 30_000;

  private constructor(transport: Transport) {
    this.#transport = transport;
    transport.onStanza((s) => this.#onStanza(s));
    transport.onStatus((status, err) => {
      // Fail fast: a reply cannot arrive over a link that dropped (servers do not store IQs).
      if (status === 'reconnecting' || status === 'closed') {
        this.#rejectAll(
          status === 'closed'
            ? new ClosedError('transport closed while waiting for the reply', { cause: err })
            : new ConnectionError('connection lost while waiting for the reply', { cause: err }),
        );
      }
    });
  }

  static for(transport: Transport): IqCaller {
    let c = callers.get(transport);
    if (!c) {
      c = new IqCaller(transport);
      callers.set(transport, c);
    }
    return c;
  }

  /** Requests awaiting a reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Sends an IQ get/set (an `id` is assigned when absent) and resolves with the `result` IQ.
   * Rejects with StanzaError / ServiceUnavailableError on an `error` reply, TimeoutError,
   * the abort reason, ConnectionError when the link drops, or the send failure.
   */
  request(iq: Element, options: IqRequestOptions = {}): Promise<Element> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const id = (iq.attrs['id'] ??= randomId());
    // ejabberd closes a component stream that sends a stanza without `from` (observed).
    if (iq.attrs['from'] === undefined && this.#transport.address) iq.attrs['from'] = this.#transport.address;
    if (this.#pending.has(id)) return Promise.reject(new Error(`IQ id ${id} is already pending`));
    const timeout = options.timeout ?? this.defaultTimeout;
    return new Promise<Element>((resolve, reject) => {
      const p: Pending = { to: iq.attrs['to'], resolve, reject, timer: undefined, signal, onAbort: undefined };
      this.#pending.set(id, p);
      if (timeout > 0 && Number.isFinite(timeout)) {
        p.timer = setTimeout(
          () => this.#settle(id, new TimeoutError(`no reply to IQ ${id} within ${timeout} ms`)),
          timeout,
        );
      }
      if (signal) {
        p.onAbort = () => this.#settle(id, abortReason(signal));
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.#transport.send(iq, { signal }).catch((err: unknown) => this.#settle(id, err as Error));
    });
  }

  #settle(id: string, outcome: Element | Error): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  }

  #rejectAll(err: Error): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, err);
  }

  #onStanza(stanza: Element): void {
    if (stanza.name !== 'iq') return;
    const type = stanza.attrs['type'];
    if (type !== 'result' && type !== 'error') return;
    const id = stanza.attrs['id'];
    if (id === undefined) return;
    const p = this.#pending.get(id);
    if (!p || !this.#fromMatches(p.to, stanza.attrs['from'])) return; // spoofed or stray reply: ignore
    this.#settle(id, type === 'result' ? stanza : errorFromStanza(stanza));
  }

  #fromMatches(to: string | undefined, from: string | undefined): boolean {
    const me = this.#transport.address;
    if (to === undefined) {
      // Addressed to our own server/account: the reply comes from it, or carries no from.
      return from === undefined || jidEquals(from, bareJid(me)) || jidEquals(from, domainOf(me));
    }
    if (from === undefined) return jidEquals(to, bareJid(me));
    return jidEquals(from, to);
  }
}
