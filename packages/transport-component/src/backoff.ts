/**
 * Reconnect schedule: exponential backoff with proportional jitter. Pure (no timers), so the
 * schedule is unit-tested with a fake random source.
 */
import { ConfigError } from '@xmppbus/core';

export interface ReconnectOptions {
  /** Delay before the first retry, ms (default 200). */
  initialDelayMs?: number;
  /** Upper bound of any delay, ms (default 30 000). */
  maxDelayMs?: number;
  /** Growth factor per failed attempt (default 2). */
  factor?: number;
  /**
   * Proportional jitter in [0, 1] (default 0.5). The delay is drawn uniformly from
   * `[base·(1−jitter), base]` where `base = min(maxDelayMs, initialDelayMs·factor^attempt)`:
   * 0 = no jitter, 0.5 = "equal jitter", 1 = "full jitter" (AWS architecture blog terms).
   * Not decorrelated jitter: the base grows deterministically, only the draw is random.
   */
  jitter?: number;
}

export interface ResolvedReconnectOptions {
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  jitter: number;
}

export const DEFAULT_RECONNECT: Readonly<ResolvedReconnectOptions> = Object.freeze({
  initialDelayMs: 200,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.5,
});

/** Fills defaults and validates; throws ConfigError on nonsense values. */
export function resolveReconnectOptions(options: ReconnectOptions = {}): ResolvedReconnectOptions {
  const r = { ...DEFAULT_RECONNECT, ...stripUndefined(options) };
  // A lone large initialDelayMs raises the default cap instead of failing validation.
  if (options.maxDelayMs === undefined) r.maxDelayMs = Math.max(r.maxDelayMs, r.initialDelayMs);
  if (!(r.initialDelayMs >= 0) || !Number.isFinite(r.initialDelayMs))
    throw new ConfigError(`reconnect.initialDelayMs must be a finite number >= 0, got ${r.initialDelayMs}`);
  if (!(r.maxDelayMs >= r.initialDelayMs))
    throw new ConfigError(`reconnect.maxDelayMs must be >= initialDelayMs, got ${r.maxDelayMs}`);
  if (!(r.factor >= 1) || !Number.isFinite(r.factor))
    throw new ConfigError(`reconnect.factor must be a finite number >= 1, got ${r.factor}`);
  if (!(r.jitter >= 0 && r.jitter <= 1)) throw new ConfigError(`reconnect.jitter must be in [0, 1], got ${r.jitter}`);
  return r;
}

function stripUndefined(o: ReconnectOptions): ReconnectOptions {
  const out: ReconnectOptions = {};
  if (o.initialDelayMs !== undefined) out.initialDelayMs = o.initialDelayMs;
  if (o.maxDelayMs !== undefined) out.maxDelayMs = o.maxDelayMs;
  if (o.factor !== undefined) out.factor = o.factor;
  if (o.jitter !== undefined) out.jitter = o.jitter;
  return out;
}

/** The delay schedule of one outage: `next()` for each failed attempt, `reset()` once online. */
export class Backoff {
  readonly options: ResolvedReconnectOptions;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: ReconnectOptions = {}, random: () => number = Math.random) {
    this.options = resolveReconnectOptions(options);
    this.#random = random;
  }

  /** Number of delays handed out since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** Delay (ms) before the next attempt. */
  next(): number {
    const { initialDelayMs, maxDelayMs, factor, jitter } = this.options;
    // Cap the exponent so factor^attempt cannot overflow to Infinity on long outages.
    const base = Math.min(maxDelayMs, initialDelayMs * Math.pow(factor, Math.min(this.#attempt, 64)));
    this.#attempt++;
    return Math.round(base * (1 - jitter * this.#random()));
  }

  reset(): void {
    this.#attempt = 0;
  }
}
