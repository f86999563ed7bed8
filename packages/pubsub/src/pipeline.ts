/**
 * Ordered delivery of one node to one processor. A `Pipeline` turns notifications (and, after
 * downtime, persisted items) into ordered handler calls: it subscribes *before* fetching items
 * so nothing published meanwhile is missed, buffers live events while catching up, and drops
 * duplicates at the seam by item id (same id = same event). Invalid payloads are reported and
 * skipped, never thrown at the handler. Consumers (consumer.ts) and group leaders (group.ts) run one.
 */
import type { RetryPolicy } from '@xmppbus/core';
import {
  ClosedError,
  StanzaError,
  WaitQueue,
  deferred,
  withAbort,
  type Backoff,
  type Element,
  type TimerHandle,
  type WaitOptions,
} from '@xmppbus/core';
import { decode, type PayloadContract, type PayloadOf } from '@xmppbus/schema';
import type { Checkpoint, CheckpointStore } from './checkpoint-store.js';
import { batchEventId, isBatch, unwrapBatch, type UnwrappedBatch } from './batch.js';
import type { EventItem, PubSubEvent } from './events.js';
import { headersOf, restoreHeaders, takeHeaders } from './payload-headers.js';
import type { ConsumerHost, ConsumerStats, EventMeta, InvalidEvent } from './types.js';

/** What a pipeline hands to its processor: a decoded, validated event (and its element). */
export type Processor<T> = (value: T, meta: EventMeta, payload: Element) => void | Promise<void>;

interface Pending {
  /** Item id, or `<item id>#<index>` for an event of a batch (batch.ts). */
  id: string;
  payload: Element | undefined;
  publisher: string | undefined;
  delayedFrom: Date | undefined;
  replay: boolean;
  /** The batch wrapper's own `<headers/>`: they apply to its events that carry none. */
  itemHeaders: Element | undefined;
  /** A batch item refused as a whole (too many events, wrong count): reported as invalid. */
  error?: Error;
}

export interface PipelineOptions<C extends PayloadContract> {
  host: ConsumerHost;
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
  retry: RetryPolicy;
  /** Least time between two checkpoint writes, ms (0 = write as soon as the previous one finished). */
  minSaveInterval: number;
  stats: ConsumerStats;
  onInvalid: (e: InvalidEvent) => void;
  onError: (e: Error, meta: EventMeta | undefined) => void;
  onEvent: ((e: PubSubEvent) => void) | undefined;
  /** Items seen before a restart of the pipeline in the same process (group leadership changes). */
  seen?: Set<string>;
  /** Most events accepted in one batch item (docs/protocol.md §4); a bigger one is refused as invalid. */
  maxBatchEvents: number;
}

/** Bounds the last checkpoint write of `close()`, which must never hang. */
const FINAL_SAVE_TIMEOUT = 10_000;
/** Denied publishers remembered for the once-per-publisher warning (beyond it, denials are only counted). */
const MAX_WARNED_PUBLISHERS = 1_024;

export class Pipeline<C extends PayloadContract> {
  readonly #o: PipelineOptions<C>;
  readonly #ac = new AbortController();
  readonly #seen: Set<string>;
  readonly #inProgress = new Set<string>();
  readonly #warned = new Set<string>();
  readonly #idle: WaitQueue;
  readonly #backoff: Backoff;
  #queue: Pending[] = [];
  #buffer: Pending[] | undefined = [];
  #order: { id: string; done: boolean }[] = [];
  #inFlight = 0;
  #lastId: string | undefined;
  #hasCheckpoint = false;
  #closed = false;
  #draining = false;
  #saving: Promise<void> | undefined;
  #saveTimer: TimerHandle | undefined;
  #lastSave = 0;
  #dirty = false;
  #ready = deferred<void>();
  #readyDone = false;
  #syncing = false;
  #retryTimer: TimerHandle | undefined;
  #wasOnline = true;
  readonly #offs: (() => void)[] = [];

  constructor(options: PipelineOptions<C>) {
    this.#o = options;
    this.#seen = options.seen ?? new Set();
    this.#idle = new WaitQueue({
      clock: options.host.session.clock,
      what: `drain of the consumer of '${options.node}'`,
    });
    this.#backoff = options.retry.backoff();
    this.#ready.promise.catch(() => undefined);
  }

  get signal(): AbortSignal {
    return this.#ac.signal;
  }
  /** Resolves once subscribed and caught up; rejects when the first sync fails for good or on close. */
  get ready(): Promise<void> {
    return this.#ready.promise;
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
    if (this.#closed) return;
    const session = o.host.session;
    // Several subscriber JIDs can share one link (a component owns its whole domain): take only
    // the notifications addressed to this consumer's subscriber JID.
    this.#offs.push(o.host.onNode(o.node, (e) => this.#onEvent(e), { jid: o.jid }));
    this.#offs.push(
      session.onTransportStatus((status) => {
        if (status === 'online') {
          if (!this.#wasOnline) void this.#sync(false);
          this.#wasOnline = true;
        } else this.#wasOnline = false;
      }),
    );
    this.#wasOnline = session.transport.status === 'online';
    await this.#sync(true);
  }

  #onEvent(e: PubSubEvent): void {
    if (this.#closed || this.#draining) return;
    if (e.type === 'items') {
      for (const it of e.items) {
        if (!isBatch(it.payload)) {
          this.#offer(it.id, it.payload, it, e.delayedFrom);
          continue;
        }
        // A batch item: its events one by one, in order, as if each had come alone.
        const error = this.#unwrap(it, (id, event, headers) => this.#offer(id, event, it, e.delayedFrom, headers));
        if (error) this.#hold({ ...this.#pending(it, e.delayedFrom, false), error });
      }
    } else if (this.#o.onEvent) {
      try {
        this.#o.onEvent(e);
      } catch (err) {
        this.#o.onError(err as Error, undefined);
      }
    }
  }

  /** A live event: run now when it can (no Pending record), else buffered or queued. */
  #offer(
    id: string,
    payload: Element | undefined,
    it: EventItem,
    delayedFrom: Date | undefined,
    itemHeaders?: Element,
  ): void {
    // Hot path: nothing buffered or queued and a free slot → run now.
    if (!this.#buffer && this.#queue.length === 0 && this.#inFlight < this.#o.concurrency) {
      if (this.#isDuplicate(id)) this.#o.stats.duplicates++;
      else this.#run(id, payload, it.publisher, delayedFrom, false, itemHeaders);
      return;
    }
    this.#hold({ id, payload, publisher: it.publisher, delayedFrom, replay: false, itemHeaders });
  }

  #hold(p: Pending): void {
    if (this.#buffer) this.#buffer.push(p);
    else this.#enqueue(p);
  }

  #pending(it: EventItem, delayedFrom: Date | undefined, replay: boolean): Pending {
    return { id: it.id, payload: it.payload, publisher: it.publisher, delayedFrom, replay, itemHeaders: undefined };
  }

  /**
   * Visits the events of batch item `it` in order, with their ids (`<item id>#<i>`) and the
   * wrapper's headers. Returns the error when the item is refused as a whole (too many events,
   * wrong count: then nothing is visited), to be reported as one invalid event.
   */
  #unwrap(
    it: EventItem,
    visit: (id: string, event: Element | undefined, headers: Element | undefined) => void,
  ): Error | undefined {
    let batch: UnwrappedBatch;
    try {
      batch = unwrapBatch(it.payload!, this.#o.maxBatchEvents);
    } catch (err) {
      return err as Error;
    }
    const { events, headers } = batch;
    for (let i = 0; i < events.length; i++) visit(batchEventId(it.id, i), events[i], headers);
    return undefined;
  }

  /** Persisted items as events, in order: a batch item gives one per event (or one carrying its error). */
  #expand(items: readonly EventItem[]): Pending[] {
    const out: Pending[] = [];
    for (const it of items) {
      if (!isBatch(it.payload)) {
        out.push(this.#pending(it, undefined, true));
        continue;
      }
      const error = this.#unwrap(it, (id, payload, itemHeaders) =>
        out.push({ id, payload, publisher: it.publisher, delayedFrom: undefined, replay: true, itemHeaders }),
      );
      if (error) out.push({ ...this.#pending(it, undefined, true), error });
    }
    return out;
  }

  /** Subscribe, catch up from persisted items, then flush what arrived meanwhile. */
  async #sync(first: boolean): Promise<void> {
    if (this.#closed || this.#syncing) return;
    this.#syncing = true;
    this.#buffer ??= [];
    const o = this.#o;
    const opts = { signal: this.#ac.signal, timeout: o.timeout };
    try {
      if (o.subscribe) await o.host.subscribe(o.node, { ...opts, jid: o.jid });
      const durable = o.durableKey !== undefined;
      if (durable || (!first && this.#lastId !== undefined)) {
        // Positions and dedupe are per event: a batch item counts as its events (`<id>#<i>`).
        const items = this.#expand(await o.host.items(o.node, opts));
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
            this.#enqueue(it);
          }
          this.#hasCheckpoint = true;
        }
      }
      const buffered = this.#buffer ?? [];
      this.#buffer = undefined;
      for (const p of buffered) this.#enqueue(p);
      this.#syncing = false;
      this.#backoff.reset();
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
      const giveUp = (first && !retryable) || !o.retry.canRetry(this.#backoff.attempt + 1);
      if (giveUp && !this.#readyDone) {
        this.#readyDone = true;
        this.#ready.reject(err);
        return;
      }
      o.onError(err as Error, undefined);
      if (giveUp) return;
      this.#retryTimer = o.host.session.clock.setTimeout(() => {
        this.#retryTimer = undefined;
        if (o.host.session.transport.status === 'online') void this.#sync(first);
      }, this.#backoff.next());
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
      if (p.error) this.#invalid(p.id, p.payload, p.error);
      else this.#run(p.id, p.payload, p.publisher, p.delayedFrom, p.replay, p.itemHeaders);
    }
    if (this.#draining) this.#checkIdle();
  }

  #isDuplicate(id: string): boolean {
    return this.#seen.has(id) || (this.#inProgress.size > 0 && this.#inProgress.has(id));
  }

  #run(
    id: string,
    payload: Element | undefined,
    publisher: string | undefined,
    delayedFrom: Date | undefined,
    replay: boolean,
    itemHeaders: Element | undefined,
  ): void {
    const o = this.#o;
    if (publisher !== undefined && !this.#publisherAllowed(publisher)) {
      // Skipped like a processed event (the position moves past it), never handed to the handler.
      this.#track(id);
      this.#done(id, false);
      return;
    }
    let value: PayloadOf<C>;
    // The SHIM headers ride inside the payload: hidden from the (possibly strict) decoder.
    const headersEl = payload ? takeHeaders(payload) : undefined;
    try {
      if (!payload) throw new StanzaError({ condition: 'bad-request', text: 'notification without payload' });
      value = decode(o.contract, payload);
    } catch (err) {
      this.#invalid(id, payload, err as Error);
      return;
    } finally {
      if (headersEl) restoreHeaders(payload!, headersEl);
    }
    const meta: EventMeta = {
      id,
      node: o.node,
      from: o.host.service,
      publisher,
      headers: headersOf(headersEl ?? itemHeaders),
      delayedFrom,
      replay,
      signal: this.#ac.signal,
    };
    if (replay) o.stats.replayed++;
    this.#track(id);
    const instr = o.host.session.instrumentation;
    const scope = instr.enabled ? instr.processEvent(o.host.service, o.node, o.contract.name, meta.headers) : undefined;
    let r: void | Promise<void>;
    try {
      r = scope ? scope.run(() => o.process(value, meta, payload)) : o.process(value, meta, payload);
    } catch (err) {
      o.stats.failed++;
      if (scope) scope.run(() => o.onError(err as Error, meta));
      else o.onError(err as Error, meta);
      scope?.end(err);
      this.#done(id, false);
      return;
    }
    if (r && typeof (r as Promise<void>).then === 'function') {
      (r as Promise<void>).then(
        () => {
          scope?.end();
          o.stats.handled++;
          this.#done(id, true);
        },
        (err: unknown) => {
          // Cut short by close(): not processed, so a restart (or the next group leader) redoes it.
          if (this.#closed) {
            scope?.end(err);
            return this.#abandon(id);
          }
          o.stats.failed++;
          if (scope) scope.run(() => o.onError(err as Error, meta));
          else o.onError(err as Error, meta);
          scope?.end(err);
          this.#done(id, true);
        },
      );
    } else {
      scope?.end();
      o.stats.handled++;
      this.#done(id, false);
    }
  }

  /** Reports an invalid event (or batch item) and moves the position past it, like a processed one. */
  #invalid(id: string, payload: Element | undefined, error: Error): void {
    const o = this.#o;
    o.stats.invalid++;
    const instr = o.host.session.instrumentation;
    if (instr.enabled) instr.invalidEvent(o.host.service, o.node, error);
    o.onInvalid({ id, node: o.node, payload, error });
    this.#track(id);
    this.#done(id, false);
  }

  /**
   * The session's one access policy applied to the publisher the service names (XEP-0060
   * `<item publisher='…'>`), for this consumer's contract. Denials are counted by the policy and
   * logged once per publisher. Items without a publisher are accepted: the node's publish model,
   * which the server enforces, decides who may publish.
   */
  #publisherAllowed(publisher: string): boolean {
    const o = this.#o;
    const session = o.host.session;
    if (session.access.check(publisher, session.address, o.contract.ns, o.contract.name)) return true;
    if (!this.#warned.has(publisher) && this.#warned.size < MAX_WARNED_PUBLISHERS) {
      this.#warned.add(publisher);
      session.logger.warn(
        `pubsub: skipping events on node '${o.node}' published by ${publisher}: the access policy does not allow it {${o.contract.ns}}${o.contract.name}`,
      );
    }
    return false;
  }

  #track(id: string): void {
    this.#inFlight++;
    // With one handler at a time nothing is checked against an event in flight, and completion
    // order is call order: both records only matter when several handlers run at once.
    if (this.#o.concurrency > 1) {
      this.#inProgress.add(id);
      this.#order.push({ id, done: false });
    }
  }

  #abandon(id: string): void {
    this.#inFlight--;
    if (this.#o.concurrency > 1) this.#inProgress.delete(id);
  }

  #done(id: string, async: boolean): void {
    this.#inFlight--;
    if (this.#o.concurrency > 1) this.#inProgress.delete(id);
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
    if (async) this.#pump();
    else if (this.#draining) this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#inFlight === 0 && this.#queue.length === 0) this.#idle.wake();
  }

  #checkpoint(): Checkpoint {
    return { lastId: this.#lastId, recent: [...this.#seen] };
  }

  #saveSoon(): void {
    if (this.#o.durableKey === undefined || this.#closed) return;
    if (this.#saving || this.#saveTimer) {
      this.#dirty = true;
      return;
    }
    const interval = this.#o.minSaveInterval;
    if (interval > 0) {
      const wait = this.#lastSave + interval - this.#o.host.session.clock.now();
      if (wait > 0) {
        this.#saveTimer = this.#o.host.session.clock.setTimeout(() => {
          this.#saveTimer = undefined;
          this.#saveNow();
        }, wait);
        return;
      }
    }
    this.#saveNow();
  }

  #saveNow(): void {
    const o = this.#o;
    this.#dirty = false;
    if (o.minSaveInterval > 0) this.#lastSave = o.host.session.clock.now();
    this.#saving = o.store.save(o.durableKey!, this.#checkpoint()).then(
      () => {
        this.#saving = undefined;
        if (this.#dirty) this.#saveSoon();
      },
      (err: unknown) => {
        this.#saving = undefined;
        if (!this.#closed) o.onError(err as Error, undefined);
      },
    );
  }

  /**
   * Stops taking new events and waits until the handlers in flight, the queued events and the
   * checkpoint write are done; bounded by `options` (rejects with TimeoutError / the abort reason).
   */
  async drain(options: WaitOptions = {}): Promise<void> {
    if (this.#closed) return;
    this.#draining = true;
    if (this.#inFlight > 0 || this.#queue.length > 0) await this.#idle.wait(options);
    if (this.#saveTimer) {
      this.#saveTimer.cancel();
      this.#saveTimer = undefined;
      this.#dirty = true;
    }
    while (this.#saving || this.#dirty) {
      if (!this.#saving) this.#saveNow();
      await withAbort(this.#saving!, options, 'checkpoint write', this.#o.host.session.clock);
    }
  }

  /** Stops at once: handlers in flight see their signal abort; the position is saved (bounded). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#retryTimer?.cancel();
    this.#saveTimer?.cancel();
    for (const off of this.#offs) off();
    this.#queue = [];
    const closed = new ClosedError('consumer closed');
    if (!this.#readyDone) {
      this.#readyDone = true;
      this.#ready.reject(closed);
    }
    this.#idle.fail(closed);
    this.#ac.abort(closed);
    const o = this.#o;
    if (o.durableKey === undefined) return;
    const clock = o.host.session.clock;
    const bound = { timeout: FINAL_SAVE_TIMEOUT };
    try {
      if (this.#saving) await withAbort(this.#saving, bound, 'checkpoint write', clock);
      await withAbort(o.store.save(o.durableKey, this.#checkpoint()), bound, 'checkpoint write', clock);
    } catch (err) {
      o.onError(err as Error, undefined);
    }
  }
}
