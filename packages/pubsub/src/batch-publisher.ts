/**
 * `BatchPublisher`: the opt-in batching mode of one event contract on one node
 * (`pubsub.batchPublisher(contract, node, { batch })`, docs/protocol.md §4). Events given in the
 * same tick travel together as one pub/sub item (`<events xmlns='urn:xmppbus:events:batch:1'>`),
 * so the server handles one publish and one notification per subscriber for many events: its
 * per-stanza cost is what bounds event rates. A batch leaves when it holds `maxEvents` events or
 * `maxBytes`, or on the next microtask (`maxDelay` = 0) or `maxDelay` ms later on the session's
 * clock — and only while fewer than `maxInFlight` items await the service's answer; until one
 * does, events gather into bigger batches (the batches fill up under load, never by waiting).
 */
import {
  ClosedError,
  ConfigError,
  QueueFullError,
  deferred,
  randomId,
  stanzaBytes,
  withAbort,
  xml,
} from '@xmppbus/core';
import type { Deferred, Element, HeadersInit, Session, TimerHandle, WaitOptions } from '@xmppbus/core';
import { encode, type PayloadContract, type PayloadOf } from '@xmppbus/schema';
import { DEFAULT_MAX_BATCH_EVENTS, batchEventId } from './batch.js';
import { NS_EVENTS_BATCH } from './ns.js';
import { appendHeaders } from './payload-headers.js';
import type { PublishOptions } from './types.js';

export interface BatchOptions {
  /** Most events per item (default 100, at most 4 096: what consumers accept by default). */
  maxEvents?: number;
  /** Most bytes of events per item, estimated (default 32 KiB; at most the transport's stanza cap less 4 KiB). */
  maxBytes?: number;
  /** Longest an event waits for more, in ms (default 0: its batch leaves on the next microtask). */
  maxDelay?: number;
  /** Items awaiting the service's answer at once (default 4); meanwhile, events gather into the next batches. */
  maxInFlight?: number;
  /**
   * Sealed items waiting for a free slot at most (default 64): past it `send`/`publish` refuse
   * new events with a retryable QueueFullError, so a slow or unreachable service bounds memory.
   */
  maxQueued?: number;
}

export interface BatchPublisherOptions {
  /** How events are grouped into items. */
  batch?: BatchOptions;
  /** Validate each event before it joins a batch (default true). */
  validate?: boolean;
  /** Timeout of each item's publish request in ms (default: the PubSub's). */
  timeout?: number;
  /**
   * Called when an item is refused or times out, with the error and the ids of the events it
   * held (they were not published). `flush()` rejects with that error too.
   */
  onError?: (error: Error, ids: readonly string[]) => void;
}

/** Per-event options of `publish` and `send`. */
export interface BatchEventOptions {
  /** XEP-0131 SHIM headers of this event: the last child of its element, as for single events. */
  headers?: HeadersInit;
}

/** What the publisher needs of its PubSub. */
export interface BatchPublisherHost {
  readonly session: Session;
  publishElement(node: string, payload: Element, options?: PublishOptions): Promise<string>;
}

interface Batch {
  readonly id: string;
  readonly wrapper: Element;
  count: number;
  bytes: number;
  /** Created by the first `publish()` (not `send()`) of the batch. */
  done: Deferred<void> | undefined;
}

function positiveInteger(v: number | undefined, what: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1)
    throw new ConfigError(`batchPublisher: \`${what}\` must be an integer >= 1, got ${v}`);
  return v;
}

export class BatchPublisher<C extends PayloadContract = PayloadContract> implements AsyncDisposable {
  readonly node: string;
  readonly contract: C;
  readonly #host: BatchPublisherHost;
  readonly #maxEvents: number;
  readonly #maxBytes: number;
  readonly #maxDelay: number;
  readonly #maxInFlight: number;
  readonly #maxQueued: number;
  readonly #validate: boolean;
  readonly #publishOptions: PublishOptions;
  readonly #onError: ((error: Error, ids: readonly string[]) => void) | undefined;
  #open: Batch | undefined;
  /** The batch of the event given last (`publish` waits on it). */
  #last: Batch | undefined;
  #ready: Batch[] = [];
  #inFlight = 0;
  #tick: 'microtask' | TimerHandle | undefined;
  #failure: Error | undefined;
  #idle: Deferred<void> | undefined;
  #closed = false;

  /** Built by `pubsub.batchPublisher()`; validates the options. */
  constructor(host: BatchPublisherHost, contract: C, node: string, options: BatchPublisherOptions = {}) {
    if (typeof node !== 'string' || node === '') throw new ConfigError('batchPublisher: `node` must be a node name');
    const b = options.batch ?? {};
    this.#host = host;
    this.contract = contract;
    this.node = node;
    this.#maxEvents = positiveInteger(b.maxEvents, 'batch.maxEvents', 100);
    if (this.#maxEvents > DEFAULT_MAX_BATCH_EVENTS)
      throw new ConfigError(
        `batchPublisher: \`batch.maxEvents\` above ${DEFAULT_MAX_BATCH_EVENTS} would be refused by consumers`,
      );
    const cap = host.session.transport.maxStanzaBytes - 4096;
    this.#maxBytes = Math.min(positiveInteger(b.maxBytes, 'batch.maxBytes', 32 * 1024), cap);
    this.#maxInFlight = positiveInteger(b.maxInFlight, 'batch.maxInFlight', 4);
    this.#maxQueued = positiveInteger(b.maxQueued, 'batch.maxQueued', 64);
    const delay = b.maxDelay ?? 0;
    if (!(delay >= 0)) throw new ConfigError(`batchPublisher: \`batch.maxDelay\` must be >= 0 ms, got ${delay}`);
    this.#maxDelay = delay;
    this.#validate = options.validate !== false;
    this.#publishOptions = options.timeout === undefined ? {} : { timeout: options.timeout };
    this.#onError = options.onError;
  }

  /**
   * Adds an event to the current batch and returns its id (`<item id>#<index>`) at once; nothing
   * to await. Throws ValidationError (nothing added) when `value` is invalid, ClosedError once
   * closed, QueueFullError (retryable; nothing added) while `maxQueued` items wait for the
   * service — `await flush()` and send again. A refused item is reported to `onError` and by the
   * next `flush()`.
   */
  send(value: PayloadOf<C>, options?: BatchEventOptions): string {
    if (this.#closed) throw new ClosedError(`batch publisher of '${this.node}' is closed`);
    if (this.#ready.length >= this.#maxQueued) {
      const text = `batch publisher of '${this.node}': ${this.#ready.length} items wait for the service (maxQueued)`;
      throw new QueueFullError(this.#maxQueued, text, { retryable: true });
    }
    const el = encode(this.contract, value, { validate: this.#validate });
    if (options?.headers !== undefined) appendHeaders(el, options.headers);
    const bytes = stanzaBytes(el); // an estimate in UTF-16 units: batches stay far below the caps
    let b = this.#open;
    if (b !== undefined && b.bytes + bytes > this.#maxBytes) {
      this.#seal();
      b = undefined;
    }
    if (b === undefined) {
      const wrapper = xml('events', { xmlns: NS_EVENTS_BATCH });
      b = this.#open = { id: randomId(), wrapper, count: 0, bytes: 0, done: undefined };
    }
    this.#last = b;
    el.parent = b.wrapper;
    b.wrapper.children.push(el);
    const id = batchEventId(b.id, b.count++);
    b.bytes += bytes;
    if (b.count >= this.#maxEvents || b.bytes >= this.#maxBytes) this.#seal();
    else if (this.#tick === undefined) this.#schedule();
    return id;
  }

  /** Like `send`, and resolves with the event's id once the service accepted its item. */
  publish(value: PayloadOf<C>, options?: BatchEventOptions): Promise<string> {
    let id: string;
    try {
      id = this.send(value, options);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const b = this.#last!; // its answer comes later: publishElement never settles synchronously
    b.done ??= deferred<void>();
    return b.done.promise.then(() => id);
  }

  /**
   * Sends what has gathered now and resolves once every event given so far was accepted. Rejects
   * with the first failure since the previous `flush()` (events of refused items are lost).
   */
  async flush(options: WaitOptions = {}): Promise<void> {
    if (this.#open) this.#seal();
    if (this.#inFlight > 0 || this.#ready.length > 0) {
      this.#idle ??= deferred<void>();
      await withAbort(this.#idle.promise, options, 'batch flush', this.#host.session.clock);
    }
    const failure = this.#failure;
    this.#failure = undefined;
    if (failure) throw failure;
  }

  /** Flushes (bounded by `options`) and refuses further events. Idempotent. */
  async close(options: WaitOptions = {}): Promise<void> {
    if (this.#closed) return;
    await this.flush(options).finally(() => {
      this.#closed = true;
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #schedule(): void {
    if (this.#maxDelay > 0) {
      this.#tick = this.#host.session.clock.setTimeout(() => this.#onTick(), this.#maxDelay);
    } else {
      this.#tick = 'microtask';
      queueMicrotask(() => this.#onTick());
    }
  }

  #onTick(): void {
    this.#tick = undefined;
    // With every slot busy the batch stays open and keeps filling; a freed slot takes it.
    if (this.#open && (this.#inFlight < this.#maxInFlight || this.#maxDelay > 0)) this.#seal();
  }

  #seal(): void {
    const b = this.#open;
    if (b === undefined) return;
    this.#open = undefined;
    if (this.#tick !== undefined && this.#tick !== 'microtask') this.#tick.cancel();
    if (this.#tick !== 'microtask') this.#tick = undefined;
    b.wrapper.attrs['count'] = String(b.count);
    this.#ready.push(b);
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight) {
      let b = this.#ready.shift();
      if (b === undefined) {
        // A free slot and nothing sealed: the open batch leaves now unless it is still filling
        // within this tick (then the tick seals it).
        if (this.#open === undefined || this.#tick !== undefined) break;
        b = this.#open;
        this.#open = undefined;
        b.wrapper.attrs['count'] = String(b.count);
      }
      this.#send(b);
    }
  }

  #send(b: Batch): void {
    this.#inFlight++;
    const opts: PublishOptions = { ...this.#publishOptions, id: b.id };
    this.#host.publishElement(this.node, b.wrapper, opts).then(
      () => this.#settled(b, undefined),
      (err: unknown) => this.#settled(b, err as Error),
    );
  }

  #settled(b: Batch, err: Error | undefined): void {
    this.#inFlight--;
    if (err === undefined) b.done?.resolve();
    else {
      this.#failure ??= err;
      b.done?.reject(err);
      b.done?.promise.catch(() => undefined); // each publish() promise carries it to its caller
      if (this.#onError) {
        const ids: string[] = [];
        for (let i = 0; i < b.count; i++) ids.push(batchEventId(b.id, i));
        this.#onError(err, ids);
      }
    }
    this.#pump();
    if (this.#inFlight === 0 && this.#ready.length === 0 && this.#idle) {
      const idle = this.#idle;
      this.#idle = undefined;
      idle.resolve();
    }
  }
}
