/**
 * Typed consumption of a node. A `Pipeline` turns notifications (and, after downtime, persisted
 * items) into ordered handler calls: it subscribes *before* fetching items so nothing published
 * meanwhile is missed, buffers live events while catching up, and drops duplicates at the seam by
 * item id (same id = same event). Invalid payloads are reported and skipped, never thrown at the
 * handler. A `Consumer` is the public handle; with `group` it delegates to group.ts.
 */
import {
  ClosedError,
  StanzaError,
  abortReason,
  bareJid,
  deferred,
  withAbort,
  type Deferred,
  type Element,
  type WaitOptions,
} from '@xmppbus/core';
import { decode, type PayloadContract, type PayloadOf } from '@xmppbus/schema';
import { MemoryCheckpointStore, type Checkpoint, type CheckpointStore } from './checkpoint-store.js';
import type { PubSubEvent } from './events.js';
import { GroupMember } from './group.js';
import type { PubSub } from './pubsub.js';

export interface EventMeta {
  /** Item id (stable and meaningful: the event's identity). */
  readonly id: string;
  readonly node: string;
  readonly service: string;
  readonly publisher: string | undefined;
  /** XEP-0203 stamp of a replayed notification. */
  readonly delayed: string | undefined;
  /** True when the event came from catch-up (persisted items), false for a live notification. */
  readonly replay: boolean;
  /** Aborted when the consumer closes. */
  readonly signal: AbortSignal;
}

export type EventHandler<T> = (payload: T, meta: EventMeta) => void | Promise<void>;

/** An event that could not be decoded or failed validation; it is skipped. */
export interface InvalidEvent {
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
  /** Where durable positions live (default: an in-memory store shared by this PubSub). */
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
  /** Called for each invalid event (it is skipped). Default: logged as a warning. */
  onInvalid?: (event: InvalidEvent) => void;
  /** Called when the handler throws/rejects (the event counts as processed) or a background step fails. */
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

/** @internal what a pipeline hands to its processor: a decoded, validated event. */
export type Processor<T> = (value: T, meta: EventMeta, payload: Element) => void | Promise<void>;

interface Pending {
  id: string;
  payload: Element | undefined;
  publisher: string | undefined;
  delayed: string | undefined;
  replay: boolean;
}

/** @internal settings of a Pipeline. */
export interface PipelineOptions<C extends PayloadContract> {
  pubsub: PubSub;
  node: string;
  contract: C;
  process: Processor<PayloadOf<C>>;
  jid: string;
  subscribe: boolean;
  durableKey: string | undefined;
  store: CheckpointStore;
  startFrom: 'latest' | 'earliest';
  dedupeWindow: number;
  concurrency: number;
  timeout: number | undefined;
  stats: ConsumerStats;
  onInvalid: (e: InvalidEvent) => void;
  onError: (e: Error, meta: EventMeta | undefined) => void;
  onEvent: ((e: PubSubEvent) => void) | undefined;
  /** Items seen before a restart of the pipeline in the same process (group leadership changes). */
  seen?: Set<string>;
}

/** @internal ordered, deduplicating, checkpointing delivery of one node to one processor. */
export class Pipeline<C extends PayloadContract> {
  readonly #o: PipelineOptions<C>;
  readonly #ac = new AbortController();
  readonly #seen: Set<string>;
  readonly #inProgress = new Set<string>();
  #queue: Pending[] = [];
  #buffer: Pending[] | undefined = [];
  #order: { id: string; done: boolean }[] = [];
  #inFlight = 0;
  #lastId: string | undefined;
  #hasCheckpoint = false;
  #closed = false;
  #saving: Promise<void> | undefined;
  #dirty = false;
  /** Created by close() while handlers run (not per event); resolved when the last one finishes. */
  #idle: Deferred<void> | undefined;
  #ready = deferred<void>();
  #readyDone = false;
  #syncing = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #wasOnline = true;
  readonly #offs: (() => void)[] = [];

  constructor(options: PipelineOptions<C>) {
    this.#o = options;
    this.#seen = options.seen ?? new Set();
    this.#ready.promise.catch(() => undefined);
  }

  get signal(): AbortSignal {
    return this.#ac.signal;
  }
  get ready(): Promise<void> {
    return this.#ready.promise;
  }
  get seen(): Set<string> {
    return this.#seen;
  }

  async start(): Promise<void> {
    const o = this.#o;
    if (o.durableKey !== undefined) {
      const cp = await o.store.load(o.durableKey);
      if (cp) {
        this.#hasCheckpoint = true;
        this.#lastId = cp.lastId;
        for (const id of cp.recent) this.#remember(id);
      }
    }
    // Several subscriber JIDs can share one link (a component owns its whole domain): take only
    // the notifications addressed to this consumer's subscriber JID.
    this.#offs.push(o.pubsub.onNode(o.node, (e) => this.#onEvent(e), { jid: o.jid }));
    this.#offs.push(
      o.pubsub.transport.onStatus((status) => {
        if (status === 'online') {
          if (!this.#wasOnline) void this.#sync(false);
          this.#wasOnline = true;
        } else this.#wasOnline = false;
      }),
    );
    this.#wasOnline = o.pubsub.transport.status === 'online';
    await this.#sync(true);
  }

  #onEvent(e: PubSubEvent): void {
    if (this.#closed) return;
    if (e.type === 'items') {
      for (const it of e.items) {
        // Hot path: nothing buffered or queued and a free slot → run now, no Pending record.
        if (!this.#buffer && this.#queue.length === 0 && this.#inFlight < this.#o.concurrency) {
          if (this.#isDuplicate(it.id)) this.#o.stats.duplicates++;
          else this.#run(it.id, it.payload, it.publisher, e.delayed, false);
          continue;
        }
        const p: Pending = {
          id: it.id,
          payload: it.payload,
          publisher: it.publisher,
          delayed: e.delayed,
          replay: false,
        };
        if (this.#buffer) this.#buffer.push(p);
        else this.#enqueue(p);
      }
    } else if (this.#o.onEvent) {
      try {
        this.#o.onEvent(e);
      } catch (err) {
        this.#o.onError(err as Error, undefined);
      }
    }
  }

  /** Subscribe, catch up from persisted items, then flush what arrived meanwhile. */
  async #sync(first: boolean): Promise<void> {
    if (this.#closed || this.#syncing) return;
    this.#syncing = true;
    this.#buffer ??= [];
    const o = this.#o;
    const opts = { signal: this.#ac.signal, timeout: o.timeout };
    try {
      if (o.subscribe) await o.pubsub.subscribe(o.node, { ...opts, jid: o.jid });
      const durable = o.durableKey !== undefined;
      if (durable || (!first && this.#lastId !== undefined)) {
        const items = await o.pubsub.items(o.node, opts);
        if (durable && !this.#hasCheckpoint && o.startFrom === 'latest') {
          // First start: what is already there counts as seen.
          for (const it of items) this.#remember(it.id);
          this.#lastId = items.at(-1)?.id;
          this.#hasCheckpoint = true;
          this.#saveSoon();
        } else {
          let start = 0;
          if (this.#lastId !== undefined) {
            const k = items.findIndex((it) => it.id === this.#lastId);
            if (k >= 0) start = k + 1;
          }
          for (let i = start; i < items.length; i++) {
            const it = items[i]!;
            if (this.#seen.has(it.id)) continue;
            this.#enqueue({
              id: it.id,
              payload: it.payload,
              publisher: it.publisher,
              delayed: undefined,
              replay: true,
            });
          }
          this.#hasCheckpoint = true;
        }
      }
      const buffered = this.#buffer ?? [];
      this.#buffer = undefined;
      for (const p of buffered) this.#enqueue(p);
      this.#syncing = false;
      if (!this.#readyDone) {
        this.#readyDone = true;
        this.#ready.resolve();
      }
    } catch (err) {
      this.#syncing = false;
      if (this.#closed) return;
      const retryable =
        (err as { retryable?: boolean }).retryable === true ||
        (!first && err instanceof StanzaError && err.condition === 'item-not-found');
      if (first && !retryable) {
        this.#readyDone = true;
        this.#ready.reject(err);
        return;
      }
      o.onError(err as Error, undefined);
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        if (o.pubsub.transport.status === 'online') void this.#sync(first);
      }, 1_000);
    }
  }

  #remember(id: string): void {
    const seen = this.#seen;
    if (seen.has(id)) seen.delete(id);
    seen.add(id);
    // Evict the oldest in batches (one iterator per batch, not per event): the window may
    // overshoot by 1/16 before it shrinks back to `dedupeWindow`.
    const max = this.#o.dedupeWindow;
    if (seen.size > max + (max >> 4)) {
      let n = seen.size - max;
      for (const old of seen) {
        if (n-- <= 0) break;
        seen.delete(old);
      }
    }
  }

  #enqueue(p: Pending): void {
    this.#queue.push(p);
    if (this.#queue.length === 1) this.#pump();
  }

  #pump(): void {
    const o = this.#o;
    while (this.#queue.length > 0 && this.#inFlight < o.concurrency && !this.#closed) {
      const p = this.#queue.shift()!;
      if (this.#isDuplicate(p.id)) {
        o.stats.duplicates++;
        continue;
      }
      this.#run(p.id, p.payload, p.publisher, p.delayed, p.replay);
    }
  }

  #isDuplicate(id: string): boolean {
    return this.#seen.has(id) || (this.#inFlight > 0 && this.#inProgress.has(id));
  }

  #run(
    id: string,
    payload: Element | undefined,
    publisher: string | undefined,
    delayed: string | undefined,
    replay: boolean,
  ): void {
    const o = this.#o;
    let value: PayloadOf<C>;
    try {
      if (!payload) throw new StanzaError({ condition: 'bad-request', text: 'notification without payload' });
      value = decode(o.contract, payload);
    } catch (err) {
      o.stats.invalid++;
      o.onInvalid({ id, node: o.node, payload, error: err as Error });
      this.#track(id);
      this.#done(id, false);
      return;
    }
    const meta: EventMeta = {
      id,
      node: o.node,
      service: o.pubsub.service,
      publisher,
      delayed,
      replay,
      signal: this.#ac.signal,
    };
    if (replay) o.stats.replayed++;
    this.#track(id);
    let r: void | Promise<void>;
    try {
      r = o.process(value, meta, payload);
    } catch (err) {
      o.stats.failed++;
      o.onError(err as Error, meta);
      this.#done(id, false);
      return;
    }
    if (r && typeof (r as Promise<void>).then === 'function') {
      (r as Promise<void>).then(
        () => {
          o.stats.handled++;
          this.#done(id, true);
        },
        (err: unknown) => {
          o.stats.failed++;
          o.onError(err as Error, meta);
          this.#done(id, true);
        },
      );
    } else {
      o.stats.handled++;
      this.#done(id, false);
    }
  }

  #track(id: string): void {
    this.#inFlight++;
    this.#inProgress.add(id);
    // Completion order only matters when several handlers run at once.
    if (this.#o.concurrency > 1) this.#order.push({ id, done: false });
  }

  #done(id: string, async: boolean): void {
    this.#inFlight--;
    this.#inProgress.delete(id);
    this.#remember(id);
    if (this.#o.concurrency === 1) this.#lastId = id;
    else {
      // The position advances over the longest completed prefix.
      const order = this.#order;
      if (order.length === 1 && order[0]!.id === id) {
        order.length = 0;
        this.#lastId = id;
      } else {
        const e = order.find((x) => x.id === id && !x.done);
        if (e) e.done = true;
        let n = 0;
        while (n < order.length && order[n]!.done) this.#lastId = order[n++]!.id;
        if (n > 0) this.#order = order.slice(n);
      }
    }
    if (this.#o.durableKey !== undefined) this.#saveSoon();
    if (this.#inFlight === 0 && this.#idle) {
      this.#idle.resolve();
      this.#idle = undefined;
    }
    if (async) this.#pump();
  }

  #saveSoon(): void {
    const key = this.#o.durableKey;
    if (key === undefined) return;
    if (this.#saving) {
      this.#dirty = true;
      return;
    }
    const cp: Checkpoint = { lastId: this.#lastId, recent: [...this.#seen] };
    this.#saving = this.#o.store.save(key, cp).then(
      () => {
        this.#saving = undefined;
        if (this.#dirty) {
          this.#dirty = false;
          this.#saveSoon();
        }
      },
      (err: unknown) => {
        this.#saving = undefined;
        this.#o.onError(err as Error, undefined);
      },
    );
  }

  /** Stops taking events, waits for handlers in flight and the last checkpoint write. */
  async close(options: WaitOptions = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    for (const off of this.#offs) off();
    this.#queue = [];
    if (!this.#readyDone) {
      this.#readyDone = true;
      this.#ready.reject(new ClosedError('consumer closed before it was ready'));
    }
    try {
      if (this.#inFlight > 0) this.#idle ??= deferred<void>();
      await withAbort(
        this.#idle?.promise ?? Promise.resolve(),
        { timeout: options.timeout ?? 10_000, signal: options.signal },
        'consumer drain',
      );
    } catch {
      // handlers still running after the deadline: abort them below and move on
    }
    this.#ac.abort(new ClosedError('consumer closed'));
    while (this.#saving) await this.#saving.catch(() => undefined);
    if (this.#o.durableKey !== undefined) {
      await this.#o.store
        .save(this.#o.durableKey, { lastId: this.#lastId, recent: [...this.#seen] })
        .catch((err: unknown) => {
          this.#o.onError(err as Error, undefined);
        });
    }
  }
}

/** The handle `pubsub.consume()` returns. */
export class Consumer<C extends PayloadContract = PayloadContract> implements AsyncDisposable {
  readonly node: string;
  readonly stats: ConsumerStats = { handled: 0, invalid: 0, failed: 0, duplicates: 0, replayed: 0 };
  readonly #pubsub: PubSub;
  readonly #options: ConsumeOptions;
  readonly #pipeline: Pipeline<C> | undefined;
  readonly #group: GroupMember<C> | undefined;
  readonly #started: Promise<void>;
  #closing: Promise<void> | undefined;

  /** @internal use `pubsub.consume()` */
  constructor(pubsub: PubSub, node: string, contract: C, handler: EventHandler<PayloadOf<C>>, options: ConsumeOptions) {
    this.node = node;
    this.#pubsub = pubsub;
    this.#options = options;
    const log = pubsub.logger;
    const onInvalid =
      options.onInvalid ??
      ((e: InvalidEvent) =>
        log.warn(`pubsub: skipped invalid event '${e.id}' on node '${e.node}': ${e.error.message}`));
    const onError =
      options.onError ??
      ((err: Error, meta: EventMeta | undefined) =>
        log.error(`pubsub: consumer of '${node}'${meta ? ` failed on '${meta.id}'` : ''}: ${err.message}`, err));
    const base = {
      pubsub,
      node,
      contract,
      jid: options.jid ?? bareJid(pubsub.transport.address),
      subscribe: options.subscribe !== false,
      startFrom: options.startFrom ?? 'latest',
      dedupeWindow: options.dedupeWindow ?? 1_000,
      timeout: options.timeout,
      stats: this.stats,
      onInvalid,
      onError,
      onEvent: options.onEvent,
    } as const;
    const store = options.store ?? defaultStoreOf(pubsub);
    if (options.group !== undefined) {
      this.#group = new GroupMember<C>({
        ...base,
        group: options.group,
        handler,
        store,
        concurrency: options.concurrency ?? 32,
        heartbeatMs: options.heartbeatMs ?? 1_000,
      });
      this.#started = this.#group.start();
    } else {
      const durableKey =
        options.durable !== undefined ? `${pubsub.service}\u0000${node}\u0000${options.durable}` : undefined;
      this.#pipeline = new Pipeline<C>({
        ...base,
        store,
        durableKey,
        concurrency: options.concurrency ?? 1,
        process: handler,
      });
      this.#started = this.#pipeline.start().then(() => this.#pipeline!.ready);
    }
    this.#started.catch(() => undefined);
    if (options.signal) {
      const s = options.signal;
      if (s.aborted) void this.close();
      else s.addEventListener('abort', () => void this.close(), { once: true });
    }
  }

  /** Resolves once subscribed and caught up (events flow live); rejects if starting failed. */
  ready(options: WaitOptions = {}): Promise<void> {
    if (options.signal?.aborted) return Promise.reject(abortReason(options.signal));
    return withAbort(this.#started, options, 'consumer start');
  }

  /** For group consumers: whether this instance currently leads the group. */
  get leader(): boolean {
    return this.#group?.isLeader ?? false;
  }

  /** Stops consuming: waits for handlers in flight (bounded by `timeout`, default 10 s) and saves the position. */
  close(options: WaitOptions = {}): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#group) await this.#group.close(options);
      if (this.#pipeline) await this.#pipeline.close(options);
      if (this.#options.unsubscribeOnClose) {
        await this.#pubsub
          .unsubscribe(this.node, { jid: this.#options.jid, timeout: options.timeout ?? 5_000 })
          .catch(() => undefined);
      }
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const defaultStores = new WeakMap<PubSub, CheckpointStore>();
function defaultStoreOf(pubsub: PubSub): CheckpointStore {
  let s = defaultStores.get(pubsub);
  if (!s) defaultStores.set(pubsub, (s = new MemoryCheckpointStore()));
  return s;
}
