/**
 * The handle `pubsub.consume()` returns: typed consumption of one node with a lifecycle of its
 * own (docs/api.md). `start()` resolves once subscribed and caught up (**ready**); `drain()`
 * stops intake and waits for the events in hand, bounded; `close()` stops at once. A plain or
 * durable consumer runs a `Pipeline`; with `group` it is a `GroupMember`.
 */
import {
  ClosedError,
  ConfigError,
  RetryPolicy,
  abortReason,
  bareJid,
  withAbort,
  type WaitOptions,
} from '@xmppbus/core';
import type { PayloadContract, PayloadOf } from '@xmppbus/schema';
import { DEFAULT_MAX_BATCH_EVENTS } from './batch.js';
import { GroupMember } from './group.js';
import { Pipeline } from './pipeline.js';
import type {
  ConsumeOptions,
  ConsumerHost,
  ConsumerStats,
  ConsumerStatus,
  EventHandler,
  EventMeta,
  InvalidEvent,
} from './types.js';

/** Resubscription after a failure: 500 ms doubling to 10 s, retried until closed. */
const RESUBSCRIBE_RETRY = { initialDelay: 500, maxDelay: 10_000 } as const;

export class Consumer<C extends PayloadContract = PayloadContract> implements AsyncDisposable {
  readonly node: string;
  readonly stats: ConsumerStats = { handled: 0, invalid: 0, failed: 0, duplicates: 0, replayed: 0 };
  readonly #host: ConsumerHost;
  readonly #contract: C;
  readonly #handler: EventHandler<PayloadOf<C>>;
  readonly #options: ConsumeOptions;
  readonly #retry: RetryPolicy;
  #status: ConsumerStatus = 'idle';
  #pipeline: Pipeline<C> | undefined;
  #group: GroupMember<C> | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #offSignal: (() => void) | undefined;
  readonly #onClose: () => void;

  /** Built by `pubsub.consume()`; validates the options and does nothing else. */
  constructor(
    host: ConsumerHost,
    spec: { contract: C; node: string; handler: EventHandler<PayloadOf<C>>; onClose: () => void },
    options: ConsumeOptions,
  ) {
    if (typeof spec.node !== 'string' || spec.node === '') throw new ConfigError('consume: `node` must be a node name');
    if (typeof spec.handler !== 'function') throw new ConfigError('consume: `handler` must be a function');
    for (const k of ['concurrency', 'heartbeatMs', 'dedupeWindow', 'maxBatchEvents'] as const) {
      const v = options[k];
      if (v !== undefined && !(Number.isInteger(v) && v >= 1))
        throw new ConfigError(`consume: \`${k}\` must be an integer >= 1, got ${v}`);
    }
    this.node = spec.node;
    this.#host = host;
    this.#contract = spec.contract;
    this.#handler = spec.handler;
    this.#onClose = spec.onClose;
    this.#options = options;
    this.#retry = new RetryPolicy(options.retry, RESUBSCRIBE_RETRY, host.session.random, 'consume retry');
  }

  get status(): ConsumerStatus {
    return this.#status;
  }

  /** For group consumers: whether this instance currently leads the group. */
  get leader(): boolean {
    return this.#group?.isLeader ?? false;
  }

  /**
   * Subscribes and catches up; resolves once events flow live (**ready**). Idempotent. `options`
   * bound this wait only: setup goes on (retrying retryable failures) until `close()`. Rejects
   * with the setup failure when it cannot be retried, ClosedError once closed.
   */
  start(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed' || this.#status === 'draining')
      return Promise.reject(new ClosedError(`consumer of '${this.node}' is ${this.#status}`));
    if (!this.#starting) {
      this.#status = 'starting';
      this.#starting = this.#start();
      this.#starting.then(
        () => {
          if (this.#status === 'starting') this.#status = 'ready';
        },
        () => undefined,
      );
    }
    if (options.signal?.aborted) return Promise.reject(abortReason(options.signal));
    return withAbort(this.#starting, options, 'consumer start', this.#host.session.clock);
  }

  async #start(): Promise<void> {
    const o = this.#options;
    const signal = o.signal;
    if (signal) {
      if (signal.aborted) {
        void this.close();
        throw abortReason(signal);
      }
      const onAbort = (): void => void this.close();
      signal.addEventListener('abort', onAbort, { once: true });
      this.#offSignal = () => signal.removeEventListener('abort', onAbort);
    }
    await this.#host.start({ signal, timeout: o.timeout });
    if (this.#status === 'closed') throw new ClosedError('consumer closed before it was ready');
    const host = this.#host;
    const node = this.node;
    const log = host.session.logger;
    const onInvalid = (e: InvalidEvent): void => {
      log.warn(`pubsub: skipped invalid event '${e.id}' on node '${e.node}': ${e.error.message}`);
      o.onInvalid?.(e);
    };
    const onError = (err: Error, meta: EventMeta | undefined): void => {
      log.error(`pubsub: consumer of '${node}'${meta ? ` failed on '${meta.id}'` : ''}: ${err.message}`, err);
      o.onError?.(err, meta);
    };
    const base = {
      host,
      node,
      contract: this.#contract,
      jid: o.jid ?? bareJid(host.session.address),
      subscribe: o.subscribe !== false,
      startFrom: o.startFrom ?? 'latest',
      dedupeWindow: o.dedupeWindow ?? 1_000,
      maxBatchEvents: o.maxBatchEvents ?? DEFAULT_MAX_BATCH_EVENTS,
      timeout: o.timeout,
      retry: this.#retry,
      stats: this.stats,
      onInvalid,
      onError,
      onEvent: o.onEvent,
    } as const;
    if (o.group !== undefined) {
      this.#group = new GroupMember<C>({
        ...base,
        group: o.group,
        handler: this.#handler,
        concurrency: o.concurrency ?? 32,
        heartbeatMs: o.heartbeatMs ?? 1_000,
      });
      await this.#group.start();
      return;
    }
    const durableKey = o.durable !== undefined ? `${host.service}\u0000${node}\u0000${o.durable}` : undefined;
    this.#pipeline = new Pipeline<C>({
      ...base,
      store: o.store ?? host.checkpoints,
      durableKey,
      concurrency: o.concurrency ?? 1,
      minSaveInterval: 0,
      process: this.#handler,
    });
    await this.#pipeline.start();
    await this.#pipeline.ready;
  }

  /**
   * Stops taking new events and waits for those in hand (handlers running, queued events, the
   * checkpoint write), bounded by `options`: rejects with TimeoutError / the abort reason when
   * they fire first. Call `close()` afterwards (or on failure).
   */
  drain(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed') return Promise.resolve();
    this.#status = 'draining';
    // Returned directly (no extra await) so the bound's timer is set before drain() returns.
    return (this.#pipeline ?? this.#group)?.drain(options) ?? Promise.resolve();
  }

  /**
   * Stops at once: handlers in flight see `meta.signal` abort, the position is saved, a group
   * leader hands over. Idempotent; every network step is bounded.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#status = 'closed';
    this.#offSignal?.();
    this.#onClose();
    const o = this.#options;
    try {
      await this.#group?.close();
      await this.#pipeline?.close();
      if (o.unsubscribeOnClose) {
        await this.#host.unsubscribe(this.node, { jid: o.jid, timeout: o.timeout ?? 5_000 }).catch(() => undefined);
      }
    } finally {
      // The start in progress (if any) ends with ClosedError; nobody may be left waiting on it.
      this.#starting?.catch(() => undefined);
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
