/**
 * `PubSub`: a XEP-0060 client bound to one pub/sub service over any `Transport`. Owner,
 * publisher and subscriber operations are IQs sent through core's `IqCaller` (replies matched by
 * id and sender, every wait cancellable); notifications are `<message>`s parsed once and fanned
 * out to node listeners. Server differences (unknown config fields, default options, duplicate
 * subscriptions) are absorbed here; see the README's table.
 */
import {
  ConfigError,
  IqCaller,
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  StanzaError,
  bareJid,
  childElements,
  domainOf,
  findChild,
  localName,
  randomId,
  xml,
  type Element,
  type Transport,
  type WaitOptions,
} from '@xmppbus/core';
import { encode, type PayloadContract, type PayloadOf } from '@xmppbus/schema';
import { Consumer, type ConsumeOptions, type EventHandler } from './consumer.js';
import { translateError, type PubSubOperation } from './errors.js';
import { eventElementOf, parseEvents, type PubSubEvent } from './events.js';
import { findForm, parseForm, submitForm, type DataForm, type FieldValue } from './forms.js';
import { silentLogger, type Logger } from './logger.js';
import { configFromForm, configToFields, type NodeConfig } from './node-config.js';
import {
  NS_PUBSUB,
  NS_PUBSUB_NODE_CONFIG,
  NS_PUBSUB_OWNER,
  NS_PUBSUB_PUBLISH_OPTIONS,
  NS_PUBSUB_SUBSCRIBE_OPTIONS,
  NS_RSM,
} from './ns.js';

/** Which server implementation the service is (detected through disco#info). */
export type ServerFlavor = 'prosody' | 'ejabberd' | 'generic';

export interface ServiceInfo {
  flavor: ServerFlavor;
  identities: { category: string; type: string; name: string | undefined }[];
  features: Set<string>;
}

export type Affiliation = 'owner' | 'publisher' | 'publish-only' | 'member' | 'none' | 'outcast';
export type SubscriptionState = 'subscribed' | 'pending' | 'unconfigured' | 'none';

export interface Subscription {
  node: string;
  jid: string;
  subid: string | undefined;
  state: SubscriptionState;
}

/** One retrieved item. */
export interface Item {
  id: string;
  payload: Element | undefined;
  publisher: string | undefined;
}

/** A node found through XEP-0030 disco#items. */
export interface NodeRef {
  node: string;
  name: string | undefined;
}

export interface PubSubOptions {
  transport: Transport;
  /** The pub/sub service JID, e.g. `pubsub.localhost`. */
  service: string;
  /**
   * Options applied under the caller's config whenever this client creates a node
   * (`createNode`/`ensureNode`). Default `EVENT_NODE_DEFAULTS`; `false` = the server's defaults.
   */
  nodeDefaults?: NodeConfig | false;
  /** Default timeout of each request in ms (default 30 000). */
  timeout?: number;
  logger?: Logger;
}

/**
 * What xmppbus creates event nodes with unless told otherwise: items persisted (catch-up needs
 * them) up to the server's maximum, every change notified, and no replay of the last item on
 * subscribe (ejabberd's default `on_sub_and_presence` would redeliver an old event).
 */
export const EVENT_NODE_DEFAULTS: Readonly<NodeConfig> = Object.freeze({
  persistItems: true,
  maxItems: 'max',
  deliverPayloads: true,
  notifyRetract: true,
  notifyDelete: true,
  notifyConfig: true,
  sendLastPublishedItem: 'never',
});

export interface PublishOptions extends WaitOptions {
  /** Item id. Same id = same event: republishing replaces it (idempotent). Default: a random id. */
  id?: string;
  /** XEP-0060 §7.1.5 publish-options: preconditions the node's configuration must meet. */
  preconditions?: NodeConfig;
  /** Validate the payload before sending (default true). */
  validate?: boolean;
}

export interface ItemsOptions extends WaitOptions {
  /** Only the last N items. */
  max?: number;
  /** Only these item ids. */
  ids?: readonly string[];
}

export interface SubscribeOptions extends WaitOptions {
  /** Subscriber JID (default: this transport's bare address; a component may use any JID of its domain). */
  jid?: string;
  /** Subscription options (`pubsub#subscribe_options` fields), where the server supports them. */
  options?: ReadonlyMap<string, FieldValue> | Readonly<Record<string, FieldValue>>;
}

export interface UnsubscribeOptions extends WaitOptions {
  jid?: string;
  subid?: string;
}

export type EventListener = (event: PubSubEvent) => void;

function toFieldMap(
  v: ReadonlyMap<string, FieldValue> | Readonly<Record<string, FieldValue>>,
): Map<string, FieldValue> {
  return v instanceof Map ? new Map(v) : new Map(Object.entries(v as Record<string, FieldValue>));
}

export class PubSub {
  readonly transport: Transport;
  readonly service: string;
  readonly logger: Logger;
  readonly #iq: IqCaller;
  readonly #timeout: number;
  readonly #nodeDefaults: NodeConfig | undefined;
  readonly #listeners = new Set<EventListener>();
  readonly #nodeListeners = new Map<string, Set<EventListener>>();
  /** node → addressee JID → listeners: one lookup per notification instead of one filter per consumer. */
  readonly #addressed = new Map<string, Map<string, Set<EventListener>>>();
  readonly #off: () => void;
  #info: Promise<ServiceInfo> | undefined;
  #supportedFields: Promise<Set<string> | undefined> | undefined;
  #closed = false;

  constructor(options: PubSubOptions) {
    if (!options || typeof options !== 'object') throw new ConfigError('PubSub options are required');
    if (!options.transport) throw new ConfigError('PubSub: `transport` is required');
    if (typeof options.service !== 'string' || options.service === '') {
      throw new ConfigError('PubSub: `service` must be the pub/sub service JID, e.g. pubsub.example.org');
    }
    this.transport = options.transport;
    this.service = options.service;
    this.logger = options.logger ?? silentLogger;
    this.#timeout = options.timeout ?? 30_000;
    this.#nodeDefaults = options.nodeDefaults === false ? undefined : (options.nodeDefaults ?? EVENT_NODE_DEFAULTS);
    this.#iq = IqCaller.for(this.transport);
    this.#off = this.transport.onStanza((s) => this.#onStanza(s));
  }

  /** The JID this client acts as (bare). */
  get jid(): string {
    return bareJid(this.transport.address);
  }

  // ---------------------------------------------------------------------------------------------
  // Events

  /** Listens to every notification from the service. Returns the remover. */
  on(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Listens to the notifications of one node. Returns the remover. With `jid`, only those
   * addressed to that JID (or to a full JID of it); notifications without `to` reach every listener.
   */
  onNode(node: string, listener: EventListener, options: { jid?: string } = {}): () => void {
    const jid = options.jid;
    let set: Set<EventListener> | undefined;
    if (jid === undefined) {
      set = this.#nodeListeners.get(node);
      if (!set) this.#nodeListeners.set(node, (set = new Set()));
    } else {
      let byJid = this.#addressed.get(node);
      if (!byJid) this.#addressed.set(node, (byJid = new Map()));
      set = byJid.get(jid);
      if (!set) byJid.set(jid, (set = new Set()));
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
      if (byJid?.get(jid) !== s) return;
      byJid.delete(jid);
      if (byJid.size === 0) this.#addressed.delete(node);
    };
  }

  #onStanza(stanza: Element): void {
    if (stanza.name !== 'message' || stanza.attrs['type'] === 'error') return;
    const from = stanza.attrs['from'];
    if (from !== this.service && (from === undefined || from.toLowerCase() !== this.service.toLowerCase())) return;
    const ev = eventElementOf(stanza);
    if (!ev) return;
    const to = stanza.attrs['to'];
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
      this.logger.error(`pubsub: event listener threw on node '${e.node}'`, err);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Plumbing

  // Not async: one promise per request (publish is a hot path), errors translated on rejection.
  #request(
    type: 'get' | 'set',
    payload: Element,
    op: PubSubOperation,
    node: string | undefined,
    options: WaitOptions = {},
    as?: string,
  ): Promise<Element> {
    if (this.#closed) return Promise.reject(new ConfigError('PubSub is closed'));
    const iq = xml('iq', { type, to: this.service, from: this.#fromFor(as), id: randomId() }, payload);
    return this.#iq
      .request(iq, { signal: options.signal, timeout: options.timeout ?? this.#timeout })
      .catch((err: unknown) => {
        throw translateError(err, op, node, this.jid);
      });
  }

  /**
   * The `from` to act as `jid`: a component may speak for any JID of its domain, and services
   * require the subscriber's own JID on subscription requests (else `invalid-jid`).
   */
  #fromFor(jid: string | undefined): string {
    const me = this.transport.address;
    if (jid === undefined || jid === me || me.includes('@') || domainOf(jid) !== me) return me;
    return jid;
  }

  /** The `<pubsub>` child of a result (or undefined when the server sent an empty result). */
  static #pubsubOf(result: Element): Element | undefined {
    return findChild(result, 'pubsub');
  }

  // ---------------------------------------------------------------------------------------------
  // Discovery (XEP-0030)

  /** disco#info of the service, cached; tells the server flavour and its pub/sub features. */
  info(options: WaitOptions = {}): Promise<ServiceInfo> {
    if (!this.#info) {
      const p = this.#request('get', xml('query', { xmlns: NS_DISCO_INFO }), 'discover', undefined, options).then(
        (res) => {
          const q = findChild(res, 'query');
          const identities: ServiceInfo['identities'] = [];
          const features = new Set<string>();
          for (const c of q ? childElements(q) : []) {
            if (localName(c) === 'identity') {
              identities.push({
                category: c.attrs['category'] ?? '',
                type: c.attrs['type'] ?? '',
                name: c.attrs['name'],
              });
            } else if (localName(c) === 'feature' && c.attrs['var']) features.add(c.attrs['var']);
          }
          const names = identities.map((i) => i.name ?? '').join(' ');
          const flavor: ServerFlavor = /prosody/i.test(names)
            ? 'prosody'
            : names.includes('Publish-Subscribe') && features.has(`${NS_PUBSUB}#shim`)
              ? 'ejabberd'
              : 'generic';
          return { flavor, identities, features };
        },
      );
      this.#info = p;
      p.catch(() => {
        if (this.#info === p) this.#info = undefined; // retry next time
      });
    }
    return this.#info;
  }

  /** True when the service advertises `http://jabber.org/protocol/pubsub#<feature>`. */
  async supports(feature: string, options: WaitOptions = {}): Promise<boolean> {
    return (await this.info(options)).features.has(`${NS_PUBSUB}#${feature}`);
  }

  /** Nodes of the service (or children of a collection `node`), through disco#items. */
  async discoverNodes(options: WaitOptions & { node?: string } = {}): Promise<NodeRef[]> {
    const res = await this.#request(
      'get',
      xml('query', { xmlns: NS_DISCO_ITEMS, node: options.node }),
      'discover',
      options.node,
      options,
    );
    const q = findChild(res, 'query');
    const out: NodeRef[] = [];
    for (const c of q ? childElements(q) : []) {
      const node = c.attrs['node'];
      if (localName(c) === 'item' && node !== undefined) out.push({ node, name: c.attrs['name'] });
    }
    return out;
  }

  /** disco#info of a node: its type (`leaf`/`collection`) and meta-data form fields. */
  async nodeInfo(node: string, options: WaitOptions = {}): Promise<{ type: string; meta: DataForm | undefined }> {
    const res = await this.#request('get', xml('query', { xmlns: NS_DISCO_INFO, node }), 'discover', node, options);
    const q = findChild(res, 'query');
    const identity = q ? findChild(q, 'identity') : undefined;
    const form = findForm(q);
    return { type: identity?.attrs['type'] ?? 'leaf', meta: form ? parseForm(form) : undefined };
  }

  /** True when the node exists (disco#info answers). */
  async nodeExists(node: string, options: WaitOptions = {}): Promise<boolean> {
    try {
      await this.nodeInfo(node, options);
      return true;
    } catch (err) {
      if (err instanceof StanzaError && err.condition === 'item-not-found') return false;
      throw err;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Owner operations

  /** Config fields the server knows (from its default node config form), or undefined if it will not say. */
  #knownFields(options: WaitOptions): Promise<Set<string> | undefined> {
    if (!this.#supportedFields) {
      const p = this.#request(
        'get',
        xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('default')),
        'configure',
        undefined,
        options,
      )
        .then((res) => {
          const form = findForm(findChild(PubSub.#pubsubOf(res) ?? res, 'default'));
          return form ? new Set(parseForm(form).fields.keys()) : undefined;
        })
        .catch((err: unknown) => {
          if (err instanceof StanzaError && !err.retryable) return undefined; // no <default/>: send everything
          throw err;
        });
      this.#supportedFields = p;
      p.catch(() => {
        if (this.#supportedFields === p) this.#supportedFields = undefined;
      });
    }
    return this.#supportedFields;
  }

  /**
   * Wire fields for `config`, dropping those the server does not know (ejabberd rejects a whole
   * form with an unknown field; Prosody ignores them) with a warning naming them.
   */
  async #configFields(config: NodeConfig, options: WaitOptions): Promise<Map<string, FieldValue>> {
    const fields = configToFields(config);
    const known = await this.#knownFields(options);
    if (!known) return fields;
    const dropped: string[] = [];
    for (const k of fields.keys()) {
      if (!known.has(k)) {
        fields.delete(k);
        dropped.push(k);
      }
    }
    if (dropped.length > 0)
      this.logger.warn(`pubsub: ${this.service} does not support ${dropped.join(', ')}; not sent`);
    return fields;
  }

  #withDefaults(config: NodeConfig | undefined): NodeConfig {
    if (!this.#nodeDefaults) return config ?? {};
    return { ...this.#nodeDefaults, ...config, extra: { ...this.#nodeDefaults.extra, ...config?.extra } };
  }

  /**
   * Creates a node configured in the same request (XEP-0060 create-and-configure), on top of
   * `nodeDefaults`. Rejects with StanzaError `conflict` if it exists, PubSubForbiddenError if
   * this JID may not create nodes.
   */
  async createNode(node: string, config?: NodeConfig, options: WaitOptions = {}): Promise<void> {
    const fields = await this.#configFields(this.#withDefaults(config), options);
    const configure = xml('configure');
    if (fields.size > 0) configure.cnode(submitForm(NS_PUBSUB_NODE_CONFIG, fields));
    const create = xml('pubsub', { xmlns: NS_PUBSUB }, xml('create', { node }), configure);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#request('set', create, 'create', node, options);
        return;
      } catch (err) {
        // ejabberd aborts concurrent node creations (a mnesia lock cycle on its node index) with
        // `internal-server-error` "Database failure"; nothing was created, so trying again is safe.
        const transient =
          err instanceof StanzaError &&
          err.condition === 'internal-server-error' &&
          /database failure/i.test(err.text ?? '');
        if (!transient || attempt >= 4 || options.signal?.aborted) throw err;
        await new Promise((r) => setTimeout(r, 10 * attempt + Math.floor(Math.random() * 40)));
      }
    }
  }

  /**
   * Creates the node, or — when it exists — applies `config` to it (unless `reconfigure: false`).
   * Returns true when it was created. Idempotent: services call it at every start.
   */
  async ensureNode(
    node: string,
    config?: NodeConfig,
    options: WaitOptions & { reconfigure?: boolean } = {},
  ): Promise<boolean> {
    try {
      await this.createNode(node, config, options);
      return true;
    } catch (err) {
      if (!(err instanceof StanzaError) || err.condition !== 'conflict') throw err;
    }
    if (options.reconfigure !== false && config && Object.keys(config).length > 0) {
      await this.configureNode(node, config, options);
    }
    return false;
  }

  /** The node's configuration, typed (unknown fields in `extra`). */
  async getNodeConfig(node: string, options: WaitOptions = {}): Promise<NodeConfig> {
    const res = await this.#request(
      'get',
      xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('configure', { node })),
      'configure',
      node,
      options,
    );
    const form = findForm(findChild(PubSub.#pubsubOf(res) ?? res, 'configure'));
    if (!form) return {};
    return configFromForm(parseForm(form));
  }

  /** Changes the options given in `config`; others keep their value. */
  async configureNode(node: string, config: NodeConfig, options: WaitOptions = {}): Promise<void> {
    const fields = await this.#configFields(config, options);
    await this.#request(
      'set',
      xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('configure', { node }, submitForm(NS_PUBSUB_NODE_CONFIG, fields))),
      'configure',
      node,
      options,
    );
  }

  /** Deletes the node (subscribers get a `delete` event where `notify_delete` is on). */
  async deleteNode(node: string, options: WaitOptions & { redirect?: string } = {}): Promise<void> {
    const del = xml('delete', { node }, options.redirect ? xml('redirect', { uri: options.redirect }) : null);
    await this.#request('set', xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, del), 'delete', node, options);
  }

  /** Removes every item of the node (subscribers get a `purge` event). */
  async purgeNode(node: string, options: WaitOptions = {}): Promise<void> {
    await this.#request(
      'set',
      xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('purge', { node })),
      'purge',
      node,
      options,
    );
  }

  /** Affiliations of the node (owner only). */
  async getAffiliations(node: string, options: WaitOptions = {}): Promise<Map<string, Affiliation>> {
    const res = await this.#request(
      'get',
      xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('affiliations', { node })),
      'affiliations',
      node,
      options,
    );
    const out = new Map<string, Affiliation>();
    const affs = findChild(PubSub.#pubsubOf(res) ?? res, 'affiliations');
    for (const a of affs ? childElements(affs) : []) {
      const jid = a.attrs['jid'];
      if (jid) out.set(jid, (a.attrs['affiliation'] ?? 'none') as Affiliation);
    }
    return out;
  }

  /** Sets affiliations (owner only), e.g. `{ 'svc-b.example': 'publisher' }`; `'none'` removes one. */
  async setAffiliations(
    node: string,
    affiliations: Readonly<Record<string, Affiliation>>,
    options: WaitOptions = {},
  ): Promise<void> {
    const el = xml('affiliations', { node });
    for (const [jid, affiliation] of Object.entries(affiliations)) el.cnode(xml('affiliation', { jid, affiliation }));
    await this.#request('set', xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, el), 'affiliations', node, options);
  }

  /**
   * Makes sure each JID may publish to the node: grants `publisher` to those that are neither
   * owner nor publisher yet. Call it as the node's owner when a service's publishers are known.
   */
  async ensurePublishers(node: string, jids: readonly string[], options: WaitOptions = {}): Promise<void> {
    const current = await this.getAffiliations(node, options);
    const grant: Record<string, Affiliation> = {};
    for (const j of jids) {
      const a = current.get(j) ?? current.get(bareJid(j));
      if (a !== 'owner' && a !== 'publisher') grant[bareJid(j)] = 'publisher';
    }
    if (Object.keys(grant).length > 0) await this.setAffiliations(node, grant, options);
  }

  /** Subscriptions to the node, all subscribers (owner only). */
  async getSubscribers(node: string, options: WaitOptions = {}): Promise<Subscription[]> {
    const res = await this.#request(
      'get',
      xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('subscriptions', { node })),
      'subscriptions',
      node,
      options,
    );
    return PubSub.#parseSubscriptions(res, node);
  }

  // ---------------------------------------------------------------------------------------------
  // Publisher operations

  /**
   * Validates `value` against the contract, encodes it and publishes it as item `id`. Resolves
   * with the item id once the service accepted it. Throws ValidationError before sending
   * anything when the payload is invalid; PubSubForbiddenError without publish rights;
   * PreconditionNotMetError when `preconditions` do not match the node.
   */
  publish<C extends PayloadContract>(
    node: string,
    contract: C,
    value: PayloadOf<C>,
    options: PublishOptions = {},
  ): Promise<string> {
    let el: Element;
    try {
      el = encode(contract, value, { validate: options.validate !== false });
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.publishElement(node, el, options);
  }

  /** Publishes a ready-made payload element (the raw escape hatch). */
  publishElement(node: string, payload: Element, options: PublishOptions = {}): Promise<string> {
    const id = options.id ?? randomId();
    const ps = xml('pubsub', { xmlns: NS_PUBSUB }, xml('publish', { node }, xml('item', { id }, payload)));
    if (options.preconditions) {
      const fields = configToFields(options.preconditions);
      ps.cnode(xml('publish-options', null, submitForm(NS_PUBSUB_PUBLISH_OPTIONS, fields)));
    }
    return this.#request('set', ps, 'publish', node, options).then(() => id);
  }

  /** Retracts (deletes) an item; subscribers are notified unless `notify: false`. */
  async retract(node: string, id: string, options: WaitOptions & { notify?: boolean } = {}): Promise<void> {
    const notify = options.notify === false ? undefined : 'true';
    await this.#request(
      'set',
      xml('pubsub', { xmlns: NS_PUBSUB }, xml('retract', { node, notify }, xml('item', { id }))),
      'retract',
      node,
      options,
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Subscriber operations

  static #parseSubscriptions(res: Element, node?: string): Subscription[] {
    const ps = PubSub.#pubsubOf(res) ?? res;
    const subs = findChild(ps, 'subscriptions');
    const out: Subscription[] = [];
    for (const s of subs ? childElements(subs) : []) {
      if (localName(s) !== 'subscription') continue;
      out.push({
        node: s.attrs['node'] ?? subs?.attrs['node'] ?? node ?? '',
        jid: s.attrs['jid'] ?? '',
        subid: s.attrs['subid'],
        state: (s.attrs['subscription'] ?? 'subscribed') as SubscriptionState,
      });
    }
    return out;
  }

  /**
   * Subscribes `jid` (default: this client). Idempotent: an existing subscription of this JID is
   * returned instead of creating a second one (ejabberd would deliver each event twice).
   */
  async subscribe(node: string, options: SubscribeOptions = {}): Promise<Subscription> {
    const jid = options.jid ?? this.jid;
    if (this.#fromFor(jid) === jid || bareJid(jid) === this.jid) {
      const existing = (await this.#subscriptionsAs(jid, node, options)).find(
        (s) => s.node === node && s.jid === jid && s.state === 'subscribed',
      );
      if (existing && !options.options) return existing;
    }
    const ps = xml('pubsub', { xmlns: NS_PUBSUB }, xml('subscribe', { node, jid }));
    if (options.options) {
      ps.cnode(xml('options', null, submitForm(NS_PUBSUB_SUBSCRIBE_OPTIONS, toFieldMap(options.options))));
    }
    const res = await this.#request('set', ps, 'subscribe', node, options, jid);
    const s = findChild(PubSub.#pubsubOf(res) ?? res, 'subscription');
    return {
      node: s?.attrs['node'] ?? node,
      jid: s?.attrs['jid'] ?? jid,
      subid: s?.attrs['subid'],
      state: (s?.attrs['subscription'] ?? 'subscribed') as SubscriptionState,
    };
  }

  /** Unsubscribes `jid` (default: this client). Not being subscribed is not an error. */
  async unsubscribe(node: string, options: UnsubscribeOptions = {}): Promise<void> {
    const jid = options.jid ?? this.jid;
    try {
      await this.#request(
        'set',
        xml('pubsub', { xmlns: NS_PUBSUB }, xml('unsubscribe', { node, jid, subid: options.subid })),
        'unsubscribe',
        node,
        options,
        jid,
      );
    } catch (err) {
      // `unexpected-request` + `<not-subscribed/>` (XEP-0060 §6.2.3.2): already the wanted state.
      if (err instanceof StanzaError && err.condition === 'unexpected-request') return;
      throw err;
    }
  }

  /** This client's subscriptions (of one node, or all). */
  async subscriptions(options: WaitOptions & { node?: string; jid?: string } = {}): Promise<Subscription[]> {
    return this.#subscriptionsAs(options.jid, options.node, options);
  }

  async #subscriptionsAs(
    jid: string | undefined,
    node: string | undefined,
    options: WaitOptions,
  ): Promise<Subscription[]> {
    const res = await this.#request(
      'get',
      xml('pubsub', { xmlns: NS_PUBSUB }, xml('subscriptions', { node })),
      'subscriptions',
      node,
      options,
      jid,
    );
    const all = PubSub.#parseSubscriptions(res, node);
    return node === undefined ? all : all.filter((s) => s.node === node);
  }

  /**
   * Subscription options form (XEP-0060 §6.3). Prosody offers it; ejabberd answers
   * `feature-not-implemented` (StanzaError).
   */
  async getSubscriptionOptions(node: string, options: UnsubscribeOptions = {}): Promise<DataForm> {
    const jid = options.jid ?? this.jid;
    const res = await this.#request(
      'get',
      xml('pubsub', { xmlns: NS_PUBSUB }, xml('options', { node, jid, subid: options.subid })),
      'options',
      node,
      options,
      jid,
    );
    const form = findForm(findChild(PubSub.#pubsubOf(res) ?? res, 'options'));
    return form ? parseForm(form) : { type: 'form', formType: undefined, fields: new Map() };
  }

  /** Sets subscription options (fields of `pubsub#subscribe_options`). */
  async setSubscriptionOptions(
    node: string,
    fields: ReadonlyMap<string, FieldValue> | Readonly<Record<string, FieldValue>>,
    options: UnsubscribeOptions = {},
  ): Promise<void> {
    const jid = options.jid ?? this.jid;
    await this.#request(
      'set',
      xml(
        'pubsub',
        { xmlns: NS_PUBSUB },
        xml(
          'options',
          { node, jid, subid: options.subid },
          submitForm(NS_PUBSUB_SUBSCRIBE_OPTIONS, toFieldMap(fields)),
        ),
      ),
      'options',
      node,
      options,
      jid,
    );
  }

  /**
   * Retrieves items, oldest first: all persisted, the last `max`, or by `ids`. Both Prosody and
   * ejabberd return oldest first (ejabberd keeps a replaced item at its first position); pages
   * of XEP-0059 result sets are followed.
   */
  async items(node: string, options: ItemsOptions = {}): Promise<Item[]> {
    const out: Item[] = [];
    let after: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const items = xml('items', { node, max_items: options.max });
      for (const id of options.ids ?? []) items.cnode(xml('item', { id }));
      const ps = xml('pubsub', { xmlns: NS_PUBSUB }, items);
      if (after !== undefined) ps.cnode(xml('set', { xmlns: NS_RSM }, xml('after', null, after)));
      const res = await this.#request('get', ps, 'items', node, options);
      const body = PubSub.#pubsubOf(res);
      const got = body ? findChild(body, 'items') : undefined;
      let n = 0;
      for (const i of got ? childElements(got) : []) {
        if (localName(i) !== 'item') continue;
        n++;
        out.push({ id: i.attrs['id'] ?? '', payload: childElements(i)[0], publisher: i.attrs['publisher'] });
      }
      // Follow RSM paging only for "all items" requests that came back incomplete.
      const set = body ? findChild(body, 'set', NS_RSM) : undefined;
      if (!set || options.max !== undefined || options.ids || n === 0) break;
      const count = Number(findChild(set, 'count')?.children[0] ?? NaN);
      const last = findChild(set, 'last');
      if (!last || !Number.isFinite(count) || out.length >= count) break;
      after = String(last.children[0] ?? '');
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // Typed consumption

  /**
   * Consumes a node's events as typed, validated payloads. Invalid payloads are reported
   * (`onInvalid`, logger) and skipped, never thrown into the handler. With `durable` the consumer
   * records its position and catches up after downtime; with `group` one live instance of the
   * group handles each event (competing consumers). See ConsumeOptions.
   */
  consume<C extends PayloadContract>(
    node: string,
    contract: C,
    handler: EventHandler<PayloadOf<C>>,
    options: ConsumeOptions = {},
  ): Consumer<C> {
    return new Consumer(this, node, contract, handler, options);
  }

  /** Stops listening for notifications (subscriptions on the service are left as they are). */
  close(): void {
    this.#closed = true;
    this.#off();
    this.#listeners.clear();
    this.#nodeListeners.clear();
    this.#addressed.clear();
  }
}
