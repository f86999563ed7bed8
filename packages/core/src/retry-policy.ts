/**
 * The one retry/backoff policy of xmppbus: reconnects, idempotent RPC retries, pub/sub
 * re-subscription and the messaging outbox all draw their delays from a `RetryPolicy`.
 * Delays grow exponentially and are drawn with proportional jitter from
 * `[base·(1−jitter), base]`, `base = min(maxDelay, initialDelay·factor^attempt)`:
 * jitter 0 = fixed schedule, 0.5 = "equal jitter", 1 = "full jitter" (AWS architecture blog terms).
 */
import { ConfigError } from './errors.js';

export interface RetryOptions {
  /** Attempts in total, the first included (default `Infinity`: retry until stopped). */
  attempts?: number;
  /** Delay before the first retry, ms. */
  initialDelay?: number;
  /** Upper bound of any delay, ms. */
  maxDelay?: number;
  /** Growth factor per failed attempt (default 2). */
  factor?: number;
  /** Proportional jitter in [0, 1] (default 0.5). */
  jitter?: number;
}

export type ResolvedRetryOptions = Readonly<Required<RetryOptions>>;

const BASE_DEFAULTS: ResolvedRetryOptions = {
  attempts: Infinity,
  initialDelay: 200,
  maxDelay: 30_000,
  factor: 2,
  jitter: 0.5,
};

export class RetryPolicy {
  readonly attempts: number;
  readonly initialDelay: number;
  readonly maxDelay: number;
  readonly factor: number;
  readonly jitter: number;
  readonly #random: () => number;

  /**
   * `defaults` are the caller's own defaults (each feature picks its own); `options` the user's.
   * Throws ConfigError on nonsense values, naming the option with `name`.
   */
  constructor(
    options: RetryOptions = {},
    defaults: RetryOptions = {},
    random: () => number = Math.random,
    name = 'retry',
  ) {
    const pick = <K extends keyof RetryOptions>(k: K): number => options[k] ?? defaults[k] ?? BASE_DEFAULTS[k];
    this.attempts = pick('attempts');
    this.initialDelay = pick('initialDelay');
    // A lone large initialDelay raises the default cap instead of failing validation.
    this.maxDelay = options.maxDelay ?? Math.max(defaults.maxDelay ?? BASE_DEFAULTS.maxDelay, this.initialDelay);
    this.factor = pick('factor');
    this.jitter = pick('jitter');
    this.#random = random;
    if (!(this.attempts >= 1) || (Number.isFinite(this.attempts) && !Number.isInteger(this.attempts)))
      throw new ConfigError(`${name}.attempts must be an integer >= 1, got ${this.attempts}`);
    if (!(this.initialDelay >= 0) || !Number.isFinite(this.initialDelay))
      throw new ConfigError(`${name}.initialDelay must be a finite number >= 0, got ${this.initialDelay}`);
    if (!(this.maxDelay >= this.initialDelay))
      throw new ConfigError(`${name}.maxDelay must be >= initialDelay, got ${this.maxDelay}`);
    if (!(this.factor >= 1) || !Number.isFinite(this.factor))
      throw new ConfigError(`${name}.factor must be a finite number >= 1, got ${this.factor}`);
    if (!(this.jitter >= 0 && this.jitter <= 1))
      throw new ConfigError(`${name}.jitter must be in [0, 1], got ${this.jitter}`);
  }

  /** The options with every default filled in. */
  get options(): ResolvedRetryOptions {
    const { attempts, initialDelay, maxDelay, factor, jitter } = this;
    return { attempts, initialDelay, maxDelay, factor, jitter };
  }

  /** Delay (ms) after `failures` consecutive failures (0 → around `initialDelay`). */
  delay(failures: number): number {
    // Cap the exponent so factor^n cannot overflow to Infinity on long outages.
    const base = Math.min(this.maxDelay, this.initialDelay * Math.pow(this.factor, Math.min(failures, 64)));
    return Math.round(base * (1 - this.jitter * this.#random()));
  }

  /** Whether another attempt is allowed after `attemptsMade` attempts. */
  canRetry(attemptsMade: number): boolean {
    return attemptsMade < this.attempts;
  }

  /** A fresh stateful schedule for one outage. */
  backoff(): Backoff {
    return new Backoff(this);
  }
}

/** The delay schedule of one outage: `next()` for each failure, `reset()` once it succeeds. */
export class Backoff {
  readonly policy: RetryPolicy;
  #attempt = 0;

  constructor(policy: RetryPolicy) {
    this.policy = policy;
  }

  /** Delays handed out since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  next(): number {
    return this.policy.delay(this.#attempt++);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
