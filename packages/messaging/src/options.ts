/** Options, defaults, durations and the backoff schedule of the Messenger. */
import { ConfigError, type Clock, type Logger, type Transport } from '@xmppbus/core';
import type { MessageStore } from './store.js';
import type { QosLevel } from './wire.js';

/** Re-exported from `@xmppbus/core` so `import type { Logger } from '@xmppbus/messaging'` keeps working. */
export type { Logger };

/** A duration: milliseconds, or text like `'500ms'`, `'30s'`, `'5m'`, `'1h'`, `'7d'`. */
export type Duration = number | string;

export interface RetryOptions {
  /** First retry/probe delay, ms (default 250). */
  initialDelay?: number;
  /** Longest delay between probes of an unreachable peer, ms (default 30 000). */
  maxDelay?: number;
  /** Growth per consecutive failure (default 2). */
  factor?: number;
  /** Random spread, a fraction of the delay (default 0.2 = ±20 %). */
  jitter?: number;
}

export interface ReceiveOptions {
  /**
   * Which senders may deliver to this messenger (QoS 0, 1 and 2). Refused senders get
   * `not-allowed` (QoS 1/2) or are dropped (QoS 0). Default: everyone.
   */
  allow?: (from: string) => boolean;
  /** Stored-but-not-delivered assured messages per sender bare JID (default 1 000); beyond: `resource-constraint`. */
  maxPendingPerSender?: number;
  /** Stored-but-not-delivered assured messages in total (default 10 000); beyond: `resource-constraint`. */
  maxPendingTotal?: number;
  /** How long delivered QoS 2 msgIds are remembered for dedupe (default `'7d'`). */
  dedupeRetention?: Duration;
  /** QoS 1 retries recognised by IQ id and answered without re-running the handler (default 10 000 ids). */
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
  /** Messages per batch at most (default 32; the window still bounds messages in flight). */
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
  transport: Transport;
  /** Durable state (default: an in-memory store — not durable). */
  store?: MessageStore;
  /** Close the store in `close()` (default true). */
  closeStore?: boolean;
  /** QoS level when `send` gives none (default 1). */
  defaultQos?: QosLevel;
  /** TTL when `send` gives none (default: none). */
  defaultTtl?: Duration;
  /** Messages in flight per peer (pipelining window, default 64). 1 = strictly one at a time. */
  window?: number;
  /** Reply deadline of each QoS IQ attempt, ms (default 10 000). */
  attemptTimeout?: number;
  /** Retryable failures other than "unreachable"/"link lost" (e.g. the peer's handler fails) before dead-lettering (default 10). */
  maxAttempts?: number;
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
  logger?: Logger;
  /** @internal time source for tests */
  clock?: Clock;
  /** @internal randomness for jitter */
  random?: () => number;
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

/** Exponential backoff with jitter: attempt 0 → initialDelay. */
export function backoffDelay(attempt: number, retry: Required<RetryOptions>, random: () => number): number {
  const base = Math.min(retry.maxDelay, retry.initialDelay * Math.pow(retry.factor, Math.min(attempt, 30)));
  const spread = base * retry.jitter * (random() * 2 - 1);
  return Math.max(1, Math.round(base + spread));
}

export function checkPositive(value: number | undefined, what: string): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    throw new ConfigError(`${what} must be a positive integer`);
  }
}
