/**
 * The data types of the pub/sub client and its consumers, in a module of their own so that the
 * client (pubsub.ts), the consumers (consumer.ts, pipeline.ts, group.ts) and the operation
 * modules share them without importing one another. `ConsumerHost` is the narrow view of a
 * `PubSub` that consumers are built on.
 */
import type { Element, Headers, HeadersInit, RetryOptions, Session, WaitOptions } from '@xmppbus/core';
import type { CheckpointStore } from './checkpoint-store.js';
import type { PubSubEvent } from './events.js';
import type { FieldValue } from './forms.js';
import type { NodeConfig } from './node-config.js';

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

export interface PublishOptions extends WaitOptions {
  /** Item id. Same id = same event: republishing replaces it (idempotent). Default: a random id. */
  id?: string;
  /** XEP-0060 §7.1.5 publish-options: preconditions the node's configuration must meet. */
  preconditions?: NodeConfig;
  /** Validate the payload before sending (default true). */
  validate?: boolean;
  /**
   * XEP-0131 SHIM headers (trace context, correlation id…). They travel as the last child of the
   * payload element, so they are stored with the item and reach every consumer (docs/protocol.md §4).
   */
  headers?: HeadersInit;
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

/** The handler context of an event (the same shape as rpc's and messaging's, docs/api.md). */
export interface EventMeta {
  /**
   * The event's identity (stable and meaningful): its item id, or `<item id>#<index>` (index from
   * 0) for an event of a batch item (docs/protocol.md §4). Positions and dedupe use it.
   */
  readonly id: string;
  readonly node: string;
  /** The pub/sub service that notified the event. */
  readonly from: string;
  /** `publisher` attribute of the item, when the service reports it. */
  readonly publisher: string | undefined;
  /** SHIM headers the publisher attached (`PublishOptions.headers`); empty when none. */
  readonly headers: Headers;
  /** XEP-0203 original time of a replayed notification (offline storage, last published item). */
  readonly delayedFrom: Date | undefined;
  /** True when the event came from catch-up (persisted items), false for a live notification. */
  readonly replay: boolean;
  /** Aborted when the consumer closes. */
  readonly signal: AbortSignal;
}

export type EventHandler<T> = (payload: T, meta: EventMeta) => void | Promise<void>;

/** An event that could not be decoded or failed validation (or a refused batch item); it is skipped. */
export interface InvalidEvent {
  /** The event's id; the item id for a batch item refused as a whole. */
  readonly id: string;
  readonly node: string;
  readonly payload: Element | undefined;
  readonly error: Error;
}

export interface ConsumeOptions extends WaitOptions {
  /**
   * Durable name: the consumer records the last item it processed in `store` under
   * (service, node, durable) and, when started again, first processes the node's persisted items
   * it has not seen, in order, then continues live.
   */
  durable?: string;
  /** Where durable positions live (default: an in-memory store of this PubSub). */
  store?: CheckpointStore;
  /**
   * Competing consumers: of all live consumers with the same `group` on this node, exactly one
   * handles each event. Coordinated through the pub/sub service itself (see the README).
   */
  group?: string;
  /** Group liveness: heartbeat interval in ms (default 1 000); a member silent for 3 beats is dropped. */
  heartbeatMs?: number;
  /** Handler calls in flight at once (default 1 = strictly in order; group leaders default to 32). */
  concurrency?: number;
  /** Subscriber JID (default: this client's bare JID). */
  jid?: string;
  /** Subscribe on start (default true). */
  subscribe?: boolean;
  /** Unsubscribe on close (default false: a durable consumer keeps its subscription). */
  unsubscribeOnClose?: boolean;
  /** First start of a durable consumer: `latest` (default) skips items already there; `earliest` processes them. */
  startFrom?: 'latest' | 'earliest';
  /** How many processed ids are remembered for deduplication, at least (default 1 000: ejabberd's and Prosody's item caps; evicted in batches of 1/16). */
  dedupeWindow?: number;
  /**
   * Most events accepted in one batch item (docs/protocol.md §4, default 4 096). A bigger batch,
   * or one whose `count` does not match its events, is refused as a whole: reported once to
   * `onInvalid` with the item's id and a ProtocolError, and skipped.
   */
  maxBatchEvents?: number;
  /** Delays between attempts to resubscribe and catch up after a failure (default 500 ms doubling to 10 s). */
  retry?: RetryOptions;
  /** Called for each invalid event (it is skipped) after the session's logger warned about it. */
  onInvalid?: (event: InvalidEvent) => void;
  /** Called when the handler throws/rejects (the event counts as processed) or a background step fails, after the session's logger reported it. */
  onError?: (error: Error, meta: EventMeta | undefined) => void;
  /** Other notifications of the node: retract, purge, delete, configuration. */
  onEvent?: (event: PubSubEvent) => void;
}

export interface ConsumerStats {
  handled: number;
  invalid: number;
  failed: number;
  duplicates: number;
  replayed: number;
}

export type ConsumerStatus = 'idle' | 'starting' | 'ready' | 'draining' | 'closed';

/** Handles the group IQs (`<join/>`, `<deliver/>`) addressed to one member. */
export type GroupIqHandler = (iq: Element, payload: Element) => void;

/** Routes group IQs of one session to its members by (node, group). */
export interface GroupRouting {
  /** Registers a member; throws ConflictError when one of (node, group) already runs here. Returns the remover. */
  add(node: string, group: string, handler: GroupIqHandler): () => void;
}

/**
 * What a consumer needs of its `PubSub`: the operations it calls and the per-client state it
 * shares (default checkpoint store, group routing). Built once per `PubSub`.
 */
export interface ConsumerHost {
  readonly session: Session;
  readonly service: string;
  /** The bare JID the client acts as. */
  readonly jid: string;
  /** Default checkpoint store of durable consumers (in memory, per PubSub). */
  readonly checkpoints: CheckpointStore;
  readonly groups: GroupRouting;
  /** Makes the client ready (session online, notifications routed). */
  start(options?: WaitOptions): Promise<void>;
  onNode(node: string, listener: EventListener, options?: { jid?: string }): () => void;
  subscribe(node: string, options?: SubscribeOptions): Promise<Subscription>;
  unsubscribe(node: string, options?: UnsubscribeOptions): Promise<void>;
  items(node: string, options?: ItemsOptions): Promise<Item[]>;
  ensureNode(node: string, config?: NodeConfig, options?: WaitOptions & { reconfigure?: boolean }): Promise<boolean>;
  createNode(node: string, config?: NodeConfig, options?: WaitOptions): Promise<void>;
  deleteNode(node: string, options?: WaitOptions): Promise<void>;
  publishElement(node: string, payload: Element, options?: PublishOptions): Promise<string>;
}
