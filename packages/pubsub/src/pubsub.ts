/**
 * `PubSub`: a XEP-0060 client bound to one pub/sub service, built on a core `Session`
 * (`new PubSub({ session, service })`). Requests are IQs through the session's caller
 * (requester.ts); notifications arrive as the session's messages and are fanned out once
 * (notifications.ts). Discovery and owner operations live in owner.ts, subscriber operations in
 * subscriber.ts; consumers (consumer.ts) are built on a narrow `ConsumerHost` view of this
 * client, so none of those modules imports this one. Server differences are absorbed there (see
 * the README's table). The constructor does nothing: `start()` (or the first request) attaches.
 */
import { ClosedError, ConfigError, localName, randomId, xml } from '@xmppbus/core';
import type { Element, Session, SessionUnit, WaitOptions } from '@xmppbus/core';
import { describeEvent, encode, type PayloadContract, type PayloadOf } from '@xmppbus/schema';
import { BatchPublisher, type BatchPublisherOptions } from './batch-publisher.js';
import type { Checkpoint, CheckpointStore } from './checkpoint-store.js';
import { Consumer } from './consumer.js';
import type { DataForm, FieldValue } from './forms.js';
import { submitForm } from './forms.js';
import { GroupRoutes } from './group-routes.js';
import { configToFields, type NodeConfig } from './node-config.js';
import { NotificationRouter } from './notifications.js';
import { NS_EVENTS_BATCH, NS_PUBSUB, NS_PUBSUB_PUBLISH_OPTIONS } from './ns.js';
import { NodeOwner } from './owner.js';
import { appendHeaders } from './payload-headers.js';
import { Requester } from './requester.js';
import { Subscriber } from './subscriber.js';
import type {
  Affiliation,
  ConsumeOptions,
  ConsumerHost,
  EventHandler,
  EventListener,
  Item,
  ItemsOptions,
  NodeRef,
  PublishOptions,
  ServiceInfo,
  SubscribeOptions,
  Subscription,
  UnsubscribeOptions,
} from './types.js';

export interface PubSubOptions {
  /** The session (one per connection) this client speaks through. */
  session: Session;
  /** The pub/sub service JID, e.g. `pubsub.localhost`. */
  service: string;
  /**
   * Options applied under the caller's config whenever this client creates a node
   * (`createNode`/`ensureNode`). Default `EVENT_NODE_DEFAULTS`; `false` = the server's defaults.
   */
  nodeDefaults?: NodeConfig | false;
  /** Default timeout of each request in ms (default 30 000). */
  timeout?: number;
}

export type PubSubStatus = 'idle' | 'starting' | 'ready' | 'draining' | 'closed';

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

export class PubSub implements SessionUnit, AsyncDisposable {
  readonly name = 'pubsub';
  readonly session: Session;
  readonly service: string;
  readonly #req: Requester;
  readonly #owner: NodeOwner;
  readonly #sub: Subscriber;
  readonly #events: NotificationRouter;
  /** (contract, node) pairs this client published, reflected as `publish` events (bounded). */
  readonly #published = new WeakMap<PayloadContract, Set<string>>();
  #publishedCount = 0;
  readonly #consumers = new Set<{ drain(options: WaitOptions): Promise<void>; close(): Promise<void> }>();
  readonly #host: ConsumerHost;
  #status: PubSubStatus = 'idle';
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #offs: (() => void)[] = [];

  constructor(options: PubSubOptions) {
    if (!options || typeof options !== 'object') throw new ConfigError('PubSub options are required');
    if (!options.session) throw new ConfigError('PubSub: `session` is required');
    if (typeof options.service !== 'string' || options.service === '') {
      throw new ConfigError('PubSub: `service` must be the pub/sub service JID, e.g. pubsub.example.org');
    }
    const timeout = options.timeout ?? 30_000;
    if (!(timeout > 0)) throw new ConfigError(`PubSub: \`timeout\` must be a positive number of ms, got ${timeout}`);
    this.session = options.session;
    this.service = options.service;
    this.#req = new Requester(this.session, this.service, timeout);
    this.#req.ensureStarted = (o) => this.start(o);
    const nodeDefaults = options.nodeDefaults === false ? undefined : (options.nodeDefaults ?? EVENT_NODE_DEFAULTS);
    this.#owner = new NodeOwner(this.#req, nodeDefaults);
    this.#sub = new Subscriber(this.#req);
    this.#events = new NotificationRouter(this.service, this.session.logger);
    this.#host = this.#hostView();
  }

  /** The JID this client acts as (bare). */
  get jid(): string {
    return this.#req.jid;
  }

  get status(): PubSubStatus {
    return this.#status;
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  /**
   * Starts the session (transport online) and routes the service's notifications here; joins
   * the session's lifecycle (its drain and close reach this client). Idempotent. The first
   * request of a client not started yet starts it.
   */
  start(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed' || this.#status === 'draining')
      return Promise.reject(new ClosedError(`PubSub is ${this.#status}`));
    if (!this.#starting) {
      this.#status = 'starting';
      const p = this.#start(options);
      this.#starting = p;
      p.catch(() => {
        if (this.#starting === p) this.#starting = undefined; // a later start may succeed
        if (this.#status === 'starting') this.#status = 'idle';
      });
    }
    return this.#starting;
  }

  async #start(options: WaitOptions): Promise<void> {
    await this.session.start(options);
    if (this.#status !== 'starting') throw new ClosedError(`PubSub is ${this.#status}`);
    this.#offs.push(
      this.session.onMessage((s) => this.#events.dispatch(s)),
      this.session.add(this),
    );
    this.#req.started = true;
    this.#status = 'ready';
  }

  /**
   * Consumers stop taking events and finish those in hand, within `options` (rejects with
   * TimeoutError / the abort reason when they fire). New requests are still accepted.
   */
  async drain(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed') return;
    this.#status = 'draining';
    await Promise.all([...this.#consumers].map((c) => c.drain(options)));
  }

  /**
   * Closes every consumer (a group leader hands over, bounded), stops listening and refuses new
   * requests. Subscriptions on the service are left as they are. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#status = 'closed';
    await Promise.all([...this.#consumers].map((c) => c.close()));
    this.#req.closed = true;
    for (const off of this.#offs) off();
    this.#offs = [];
    this.#events.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Events

  /** Listens to every notification from the service. Returns the remover. */
  on(listener: EventListener): () => void {
    return this.#events.on(listener);
  }

  /**
   * Listens to the notifications of one node. Returns the remover. With `jid`, only those
   * addressed to that JID (or to a full JID of it); notifications without `to` reach every listener.
   */
  onNode(node: string, listener: EventListener, options: { jid?: string } = {}): () => void {
    return this.#events.onNode(node, listener, options.jid);
  }

  // ---------------------------------------------------------------------------------------------
  // Discovery (XEP-0030)

  /** disco#info of the service, cached; tells the server flavour and its pub/sub features. */
  info(options: WaitOptions = {}): Promise<ServiceInfo> {
    return this.#owner.info(options);
  }

  /** True when the service advertises `http://jabber.org/protocol/pubsub#<feature>`. */
  async supports(feature: string, options: WaitOptions = {}): Promise<boolean> {
    return (await this.info(options)).features.has(`${NS_PUBSUB}#${feature}`);
  }

  /** Nodes of the service (or children of a collection `node`), through disco#items. */
  discoverNodes(options: WaitOptions & { node?: string } = {}): Promise<NodeRef[]> {
    return this.#owner.discoverNodes(options);
  }

  /** disco#info of a node: its type (`leaf`/`collection`) and meta-data form fields. */
  nodeInfo(node: string, options: WaitOptions = {}): Promise<{ type: string; meta: DataForm | undefined }> {
    return this.#owner.nodeInfo(node, options);
  }

  /** True when the node exists (disco#info answers). */
  nodeExists(node: string, options: WaitOptions = {}): Promise<boolean> {
    return this.#owner.nodeExists(node, options);
  }

  // ---------------------------------------------------------------------------------------------
  // Owner operations

  /**
   * Creates a node configured in the same request (XEP-0060 create-and-configure), on top of
   * `nodeDefaults`. Rejects with StanzaError `conflict` if it exists, PubSubForbiddenError if
   * this JID may not create nodes.
   */
  createNode(node: string, config?: NodeConfig, options: WaitOptions = {}): Promise<void> {
    return this.#owner.createNode(node, config, options);
  }

  /**
   * Creates the node, or — when it exists — applies `config` to it (unless `reconfigure: false`).
   * Returns true when it was created. Idempotent: services call it at every start.
   */
  ensureNode(
    node: string,
    config?: NodeConfig,
    options: WaitOptions & { reconfigure?: boolean } = {},
  ): Promise<boolean> {
    return this.#owner.ensureNode(node, config, options);
  }

  /** The node's configuration, typed (unknown fields in `extra`). */
  getNodeConfig(node: string, options: WaitOptions = {}): Promise<NodeConfig> {
    return this.#owner.getNodeConfig(node, options);
  }

  /** Changes the options given in `config`; others keep their value. */
  configureNode(node: string, config: NodeConfig, options: WaitOptions = {}): Promise<void> {
    return this.#owner.configureNode(node, config, options);
  }

  /** Deletes the node (subscribers get a `delete` event where `notify_delete` is on). */
  deleteNode(node: string, options: WaitOptions & { redirect?: string } = {}): Promise<void> {
    return this.#owner.deleteNode(node, options);
  }

  /** Removes every item of the node (subscribers get a `purge` event). */
  purgeNode(node: string, options: WaitOptions = {}): Promise<void> {
    return this.#owner.purgeNode(node, options);
  }

  /** Affiliations of the node (owner only). */
  getAffiliations(node: string, options: WaitOptions = {}): Promise<Map<string, Affiliation>> {
    return this.#owner.getAffiliations(node, options);
  }

  /** Sets affiliations (owner only), e.g. `{ 'svc-b.example': 'publisher' }`; `'none'` removes one. */
  setAffiliations(
    node: string,
    affiliations: Readonly<Record<string, Affiliation>>,
    options: WaitOptions = {},
  ): Promise<void> {
    return this.#owner.setAffiliations(node, affiliations, options);
  }

  /**
   * Makes sure each JID may publish to the node: grants `publisher` to those that are neither
   * owner nor publisher yet. Call it as the node's owner when a service's publishers are known.
   */
  ensurePublishers(node: string, jids: readonly string[], options: WaitOptions = {}): Promise<void> {
    return this.#owner.ensurePublishers(node, jids, options);
  }

  /** Subscriptions to the node, all subscribers (owner only). */
  getSubscribers(node: string, options: WaitOptions = {}): Promise<Subscription[]> {
    return this.#owner.getSubscribers(node, options);
  }

  // ---------------------------------------------------------------------------------------------
  // Publisher operations

  /**
   * Validates `value` against the contract, encodes it and publishes it as item `id` of `node`.
   * Resolves with the item id once the service accepted it. Throws ValidationError before
   * sending anything when the payload is invalid; PubSubForbiddenError without publish rights;
   * PreconditionNotMetError when `preconditions` do not match the node.
   */
  publish<C extends PayloadContract>(
    contract: C,
    node: string,
    value: PayloadOf<C>,
    options: PublishOptions = {},
  ): Promise<string> {
    let el: Element;
    try {
      el = encode(contract, value, { validate: options.validate !== false });
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (this.#published.get(contract)?.has(node) !== true) this.#reflectPublished(contract, node);
    return this.publishElement(node, el, options);
  }

  /**
   * The opt-in batching mode of `contract` on `node` (docs/protocol.md §4): events given in the
   * same tick travel together in one item, `<events xmlns='urn:xmppbus:events:batch:1'>`, bounded
   * by `options.batch` (count, estimated bytes, delay, items in flight). Consumers of this package
   * see them as single typed events with ids `<item id>#<index>`. Use it for high-rate streams
   * whose consumers are xmppbus ≥ this version (or peers that read §4). Throws ConfigError for
   * bad options.
   */
  batchPublisher<C extends PayloadContract>(
    contract: C,
    node: string,
    options: BatchPublisherOptions = {},
  ): BatchPublisher<C> {
    if (this.#status === 'closed') throw new ClosedError('PubSub is closed');
    const p = new BatchPublisher<C>(
      { session: this.session, publishElement: (n, el, o) => this.publishElement(n, el, o) },
      contract,
      node,
      options,
    );
    if (this.#published.get(contract)?.has(`${node} ${NS_EVENTS_BATCH}`) !== true)
      this.#reflectPublished(contract, node, NS_EVENTS_BATCH);
    return p;
  }

  /** Reflects a published (contract, node) once (docs/protocol.md §6); at most 64 per client. */
  #reflectPublished(contract: PayloadContract, node: string, batch?: string): void {
    if (this.#publishedCount >= 64 || this.#status === 'closed') return;
    let nodes = this.#published.get(contract);
    if (nodes === undefined) this.#published.set(contract, (nodes = new Set()));
    nodes.add(batch === undefined ? node : `${node} ${batch}`);
    this.#publishedCount++;
    const where = { node, service: this.service, ...(batch !== undefined ? { batch } : {}) };
    this.#offs.push(this.session.schemas.add(describeEvent(contract, 'publish', where)));
  }

  /** Publishes a ready-made payload element (the raw escape hatch); `headers` are appended to it. */
  publishElement(node: string, payload: Element, options: PublishOptions = {}): Promise<string> {
    const id = options.id ?? randomId();
    const instr = this.session.instrumentation;
    const scope = instr.enabled ? instr.publish(this.service, node, localName(payload)) : undefined;
    const headers = scope ? scope.headers(options.headers) : options.headers;
    if (headers !== undefined) appendHeaders(payload, headers);
    const ps = xml('pubsub', { xmlns: NS_PUBSUB }, xml('publish', { node }, xml('item', { id }, payload)));
    if (options.preconditions) {
      const fields = configToFields(options.preconditions);
      ps.cnode(xml('publish-options', null, submitForm(NS_PUBSUB_PUBLISH_OPTIONS, fields)));
    }
    const sent = this.#req.request('set', ps, 'publish', node, options);
    if (!scope) return sent.then(() => id);
    return sent.then(
      () => {
        scope.end();
        return id;
      },
      (err: unknown) => {
        scope.end(err);
        throw err;
      },
    );
  }

  /** Retracts (deletes) an item; subscribers are notified unless `notify: false`. */
  async retract(node: string, id: string, options: WaitOptions & { notify?: boolean } = {}): Promise<void> {
    const notify = options.notify === false ? undefined : 'true';
    const ps = xml('pubsub', { xmlns: NS_PUBSUB }, xml('retract', { node, notify }, xml('item', { id })));
    await this.#req.request('set', ps, 'retract', node, options);
  }

  // ---------------------------------------------------------------------------------------------
  // Subscriber operations

  /**
   * Subscribes `jid` (default: this client). Idempotent: an existing subscription of this JID is
   * returned instead of creating a second one (ejabberd would deliver each event twice).
   */
  subscribe(node: string, options: SubscribeOptions = {}): Promise<Subscription> {
    return this.#sub.subscribe(node, options);
  }

  /** Unsubscribes `jid` (default: this client). Not being subscribed is not an error. */
  unsubscribe(node: string, options: UnsubscribeOptions = {}): Promise<void> {
    return this.#sub.unsubscribe(node, options);
  }

  /** This client's subscriptions (of one node, or all). */
  subscriptions(options: WaitOptions & { node?: string; jid?: string } = {}): Promise<Subscription[]> {
    return this.#sub.subscriptions(options.jid, options.node, options);
  }

  /**
   * Subscription options form (XEP-0060 §6.3). Prosody offers it; ejabberd answers
   * `feature-not-implemented` (StanzaError).
   */
  getSubscriptionOptions(node: string, options: UnsubscribeOptions = {}): Promise<DataForm> {
    return this.#sub.getOptions(node, options);
  }

  /** Sets subscription options (fields of `pubsub#subscribe_options`). */
  setSubscriptionOptions(
    node: string,
    fields: ReadonlyMap<string, FieldValue> | Readonly<Record<string, FieldValue>>,
    options: UnsubscribeOptions = {},
  ): Promise<void> {
    return this.#sub.setOptions(node, fields, options);
  }

  /**
   * Retrieves items, oldest first: all persisted, the last `max`, or by `ids`. Both Prosody and
   * ejabberd return oldest first (ejabberd keeps a replaced item at its first position); pages
   * of XEP-0059 result sets are followed.
   */
  items(node: string, options: ItemsOptions = {}): Promise<Item[]> {
    return this.#sub.items(node, options);
  }

  // ---------------------------------------------------------------------------------------------
  // Typed consumption

  /**
   * A consumer of `node`'s events as typed, validated payloads; `await consumer.start()` makes
   * it ready (subscribed and caught up). Invalid payloads are logged, reported (`onInvalid`) and
   * skipped, never thrown into the handler. With `durable` the consumer records its position and
   * catches up after downtime; with `group` one live instance of the group handles each event
   * (competing consumers). See ConsumeOptions. `close()` of this client closes its consumers.
   */
  consume<C extends PayloadContract>(
    contract: C,
    node: string,
    handler: EventHandler<PayloadOf<C>>,
    options: ConsumeOptions = {},
  ): Consumer<C> {
    if (this.#status === 'closed') throw new ClosedError('PubSub is closed');
    let unreflect = (): void => undefined;
    const c: Consumer<C> = new Consumer<C>(
      this.#host,
      {
        contract,
        node,
        handler,
        onClose: () => {
          unreflect();
          this.#consumers.delete(c);
        },
      },
      options,
    );
    // Reflected once the options are valid (docs/protocol.md §6); removed when the consumer closes.
    unreflect = this.session.schemas.add(describeEvent(contract, 'consume', { node, service: this.service }));
    this.#consumers.add(c);
    return c;
  }

  /** The narrow view consumers are built on (see ConsumerHost). */
  #hostView(): ConsumerHost {
    const checkpoints = new Map<string, Checkpoint>();
    const store: CheckpointStore = {
      load: (key) => {
        const c = checkpoints.get(key);
        return Promise.resolve(c ? { lastId: c.lastId, recent: [...c.recent] } : undefined);
      },
      save: (key, c) => {
        checkpoints.set(key, { lastId: c.lastId, recent: [...c.recent] });
        return Promise.resolve();
      },
    };
    return {
      session: this.session,
      service: this.service,
      jid: this.jid,
      checkpoints: store,
      groups: new GroupRoutes(this.session),
      start: (o) => this.start(o),
      onNode: (n, l, o) => this.onNode(n, l, o),
      subscribe: (n, o) => this.subscribe(n, o),
      unsubscribe: (n, o) => this.unsubscribe(n, o),
      items: (n, o) => this.items(n, o),
      ensureNode: (n, c, o) => this.ensureNode(n, c, o),
      createNode: (n, c, o) => this.createNode(n, c, o),
      deleteNode: (n, o) => this.deleteNode(n, o),
      publishElement: (n, p, o) => this.publishElement(n, p, o),
    };
  }
}
