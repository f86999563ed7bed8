/** Options of the Messenger, their defaults and their checks (resolved once, in the constructor). */
import { ConfigError, RetryPolicy, type BudgetLimits, type RetryOptions, type Session } from '@xmppbus/core';
import type { MessageStore } from './store.js';
import { NS_QOS, type QosLevel } from './wire.js';

/** A duration: milliseconds, or text like `'500ms'`, `'30s'`, `'5m'`, `'1h'`, `'7d'`. */
export type Duration = number | string;

export interface ReceiveOptions {
  /**
   * Bytes (size on the wire) and messages waiting for or in their handler — QoS 0 and 1
   * messages, QoS 2 `deliver`s — per sender bare JID and in total (defaults: 1 MiB and 2 048 per
   * sender, 8 MiB and 16 384 in total: a waiting message keeps its parsed tree). Beyond:
   * `resource-constraint` (`wait`) for QoS 1/2, dropped and counted for QoS 0.
   */
  queue?: BudgetLimits;
  /** Handlers running at once, all senders together (default 64); waiting senders are served in turn. */
  concurrency?: number;
  /** Stored-but-not-delivered assured messages per sender bare JID (default 1 000). */
  maxPendingPerSender?: number;
  /** Stored-but-not-delivered assured messages in total (default 10 000). */
  maxPendingTotal?: number;
  /** Bytes of stored-but-not-delivered assured messages per sender bare JID (default 1 MiB). */
  maxPendingBytesPerSender?: number;
  /** Bytes of stored-but-not-delivered assured messages in total (default 16 MiB). */
  maxPendingBytesTotal?: number;
  /**
   * How long an assured message waits for its `deliver` before it is dropped (default `'1h'`);
   * separate from the dedupe memory of delivered ids (`dedupeRetention`).
   */
  pendingTtl?: Duration;
  /** How long delivered QoS 2 msgIds are remembered for dedupe (default `'7d'`). */
  dedupeRetention?: Duration;
  /** QoS 1 retries recognised by IQ id and answered without re-running the handler (default 10 000 ids; up to 1/8 more are held between bulk evictions). */
  recentAcks?: number;
  /** Accept batches (`urn:xmppbus:qos:batch:1`) and advertise them in disco#info (default true). */
  batch?: boolean;
}

export interface BatchOptions {
  /**
   * Send several QoS 1/2 messages per IQ to peers that advertise `urn:xmppbus:qos:batch:1`
   * (default true). Only what is ready in the same event-loop turn travels together: a batch
   * never waits to fill.
   */
  enabled?: boolean;
  /** Messages per batch at most (default 64; the window still bounds messages in flight). */
  maxMessages?: number;
  /** Inner-message bytes per batch at most (default 64 KiB; always ≤ the link's stanza cap − 4 KiB). */
  maxBytes?: number;
}

export type OverflowPolicy =
  /** `send` rejects with OutboxFullError (default). */
  | 'reject'
  /** The oldest queued, not-in-flight message goes to the dead letters (reason `overflow`). */
  | 'drop-oldest'
  /** `send` waits for room (honours its signal/timeout). */
  | 'block';

export interface MessengerOptions {
  /** The connection's session: IQ router and caller, disco, intake, clock, logger, randomness. */
  session: Session;
  /** Durable state (default: an in-memory store — not durable; `@xmppbus/store-sqlite` is). */
  store?: MessageStore;
  /** Close the store in `close()` (default true). */
  closeStore?: boolean;
  /** QoS level when `send` gives none (default 1). */
  defaultQos?: QosLevel;
  /** TTL when `send` gives none (default: none). */
  defaultTtl?: Duration;
  /**
   * Messages in flight per peer (pipelining window, default 256: four full batches, which halves
   * the server's CPU per message against one or two). 1 = strictly one at a time. Large messages:
   * the receiver queues at most 1 MiB per sender by default, so past ~4 KB a message a smaller
   * window avoids `resource-constraint` back-offs.
   */
  window?: number;
  /** Reply deadline of each QoS IQ attempt, ms (default 10 000). */
  attemptTimeout?: number;
  /**
   * Delays between attempts (core `RetryPolicy`; defaults: `initialDelay` 250 ms, `maxDelay`
   * 30 s, `factor` 2, `jitter` 0.2). An unreachable peer or a lost link is retried without end;
   * `attempts` (default 10) bounds the other retryable failures of one message (e.g. the peer's
   * handler answers `wait`) before it is dead-lettered.
   */
  retry?: RetryOptions;
  /** Largest number of messages in the outbox (default 100 000). */
  maxOutbox?: number;
  overflow?: OverflowPolicy;
  /** QoS namespace to send (default `urn:xmpp:qos`; the deployed `urn:nf:iot:qos:1.0` for that peer family). */
  namespace?: string;
  /** Validate payloads against their contract on send and on receipt (default true). */
  validate?: boolean;
  /** A message that waited at least this long before going out carries XEP-0203 `<delay/>` (ms, default 1 000). */
  delayThreshold?: number;
  receive?: ReceiveOptions;
  /** Amortisation: several messages per stanza with peers that support it. */
  batch?: BatchOptions;
}

/** The options with defaults applied: what the units read. */
export interface Settings {
  readonly closeStore: boolean;
  readonly defaultQos: QosLevel;
  readonly defaultTtl: number | undefined;
  readonly window: number;
  readonly attemptTimeout: number;
  readonly retry: RetryPolicy;
  readonly maxOutbox: number;
  readonly overflow: OverflowPolicy;
  readonly ns: string;
  readonly validate: boolean;
  readonly delayThreshold: number;
  readonly queue: Required<BudgetLimits>;
  readonly concurrency: number;
  readonly pending: Required<BudgetLimits>;
  readonly pendingTtl: number;
  readonly dedupeRetention: number;
  readonly recentAcks: number;
  readonly receiveBatch: boolean;
  /** 1 = batches off. */
  readonly batchMax: number;
  readonly batchBytes: number;
}

/** Messaging's own retry defaults (its original schedule: 250 ms first, ±20 % spread). */
export const RETRY_DEFAULTS: Readonly<RetryOptions> = {
  attempts: 10,
  initialDelay: 250,
  maxDelay: 30_000,
  factor: 2,
  jitter: 0.2,
};

/** Checks `options` and fills in every default. Throws ConfigError naming the bad option. */
export function resolveOptions(options: MessengerOptions): Settings {
  if (!options || !options.session) throw new ConfigError('Messenger needs { session }');
  checkPositive(options.window, 'window');
  checkPositive(options.maxOutbox, 'maxOutbox');
  const receive = options.receive ?? {};
  if ('allow' in receive) {
    // Removed in favour of the session's one access policy (issue 9): fail loudly, never silently open.
    throw new ConfigError(
      'receive.allow was removed: senders are checked per contract by the session access policy ' +
        '(new Session({ access: new AccessPolicy({ rules }) }))',
    );
  }
  checkPositive(receive.maxPendingPerSender, 'receive.maxPendingPerSender');
  checkPositive(receive.maxPendingTotal, 'receive.maxPendingTotal');
  checkPositive(receive.maxPendingBytesPerSender, 'receive.maxPendingBytesPerSender');
  checkPositive(receive.maxPendingBytesTotal, 'receive.maxPendingBytesTotal');
  checkPositive(receive.concurrency, 'receive.concurrency');
  checkPositive(options.receive?.recentAcks, 'receive.recentAcks');
  checkPositive(options.batch?.maxMessages, 'batch.maxMessages');
  checkPositive(options.batch?.maxBytes, 'batch.maxBytes');
  if (options.defaultQos !== undefined && ![0, 1, 2].includes(options.defaultQos)) {
    throw new ConfigError('defaultQos must be 0, 1 or 2');
  }
  if (options.overflow !== undefined && !['reject', 'drop-oldest', 'block'].includes(options.overflow)) {
    throw new ConfigError(`overflow must be 'reject', 'drop-oldest' or 'block'`);
  }
  if (options.attemptTimeout !== undefined && !(options.attemptTimeout > 0)) {
    throw new ConfigError('attemptTimeout must be a positive number of ms');
  }
  if (options.delayThreshold !== undefined && !(options.delayThreshold >= 0)) {
    throw new ConfigError('delayThreshold must be a non-negative number of ms');
  }
  const session = options.session;
  const batch = options.batch;
  return {
    closeStore: options.closeStore ?? true,
    defaultQos: options.defaultQos ?? 1,
    defaultTtl: options.defaultTtl !== undefined ? toMs(options.defaultTtl, 'defaultTtl') : undefined,
    window: options.window ?? 256,
    attemptTimeout: options.attemptTimeout ?? 10_000,
    retry: new RetryPolicy(options.retry, RETRY_DEFAULTS, session.random, 'retry'),
    maxOutbox: options.maxOutbox ?? 100_000,
    overflow: options.overflow ?? 'reject',
    ns: options.namespace ?? NS_QOS,
    validate: options.validate ?? true,
    delayThreshold: options.delayThreshold ?? 1000,
    queue: {
      // Counts leave room for a legitimate QoS 0 burst (a sender's 500 messages can arrive in one
      // read before the first handler runs); the byte budgets bound the memory.
      perSenderBytes: receive.queue?.perSenderBytes ?? 1024 * 1024,
      perSenderCount: receive.queue?.perSenderCount ?? 2048,
      totalBytes: receive.queue?.totalBytes ?? 8 * 1024 * 1024,
      totalCount: receive.queue?.totalCount ?? 16_384,
    },
    concurrency: receive.concurrency ?? 64,
    pending: {
      perSenderBytes: receive.maxPendingBytesPerSender ?? 1024 * 1024,
      perSenderCount: receive.maxPendingPerSender ?? 1000,
      totalBytes: receive.maxPendingBytesTotal ?? 16 * 1024 * 1024,
      totalCount: receive.maxPendingTotal ?? 10_000,
    },
    pendingTtl: positiveMs(receive.pendingTtl ?? '1h', 'receive.pendingTtl'),
    dedupeRetention: toMs(receive.dedupeRetention ?? '7d', 'receive.dedupeRetention'),
    recentAcks: receive.recentAcks ?? 10_000,
    receiveBatch: receive.batch !== false,
    batchMax: batch?.enabled === false ? 1 : (batch?.maxMessages ?? 64),
    // Stay well below the link's stanza cap (envelope, addresses, server stamping).
    batchBytes: Math.min(batch?.maxBytes ?? 64 * 1024, session.transport.maxStanzaBytes - 4096),
  };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a Duration into milliseconds. */
export function toMs(d: Duration, what = 'duration'): number {
  if (typeof d === 'number') {
    if (!Number.isFinite(d) || d < 0) throw new ConfigError(`${what} must be a non-negative number of ms`);
    return d;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(d);
  if (!m) throw new ConfigError(`${what} '${d}' is not a duration like '500ms', '30s', '5m', '1h', '7d'`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

function positiveMs(d: Duration, what: string): number {
  const ms = toMs(d, what);
  if (!(ms > 0)) throw new ConfigError(`${what} must be a positive duration`);
  return ms;
}

function checkPositive(value: number | undefined, what: string): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    throw new ConfigError(`${what} must be a positive integer`);
  }
}
