/** Retry policy of idempotent calls: attempts, exponential backoff with full jitter, per-attempt timeout. */
import { ConfigError, XmppBusError, abortReason } from '@xmppbus/core';

export interface RetryOptions {
  /** Attempts in total, the first included (default 3). Only idempotent methods are retried. */
  attempts?: number;
  /** Backoff before the 2nd attempt, ms (default 50); doubles each time, full jitter. */
  baseDelay?: number;
  /** Largest backoff, ms (default 1 000). */
  maxDelay?: number;
  /**
   * Per-attempt timeout, ms (default: none — one attempt may use the whole call timeout). Set it
   * to retry an idempotent call elsewhere when a responder goes silent.
   */
  attemptTimeout?: number;
}

/** A retry policy with every default filled in. */
export interface ResolvedRetry {
  readonly attempts: number;
  readonly baseDelay: number;
  readonly maxDelay: number;
  readonly attemptTimeout: number | undefined;
}

export const DEFAULT_RETRY: ResolvedRetry = { attempts: 3, baseDelay: 50, maxDelay: 1000, attemptTimeout: undefined };

export function resolveRetry(r: RetryOptions | undefined): ResolvedRetry {
  const out = { ...DEFAULT_RETRY, ...r };
  if (!Number.isInteger(out.attempts) || out.attempts < 1)
    throw new ConfigError('retry.attempts must be an integer >= 1');
  if (!(out.baseDelay >= 0) || !(out.maxDelay >= 0)) throw new ConfigError('retry delays must be >= 0');
  if (out.attemptTimeout !== undefined && !(out.attemptTimeout > 0))
    throw new ConfigError('retry.attemptTimeout must be > 0');
  return out;
}

/** Retryable: the error says so (timeouts, lost links, `wait` errors, unavailable services). */
export function isRetryable(err: unknown): boolean {
  return err instanceof XmppBusError && err.retryable;
}

/** Timeout of the next attempt: what is left of the call's deadline, capped by `attemptTimeout`. */
export function attemptBudget(retry: ResolvedRetry, deadline: number): number {
  const remaining = deadline - Date.now();
  return retry.attemptTimeout !== undefined ? Math.min(remaining, retry.attemptTimeout) : remaining;
}

/** Exponential backoff with full jitter: uniform in [0, min(maxDelay, baseDelay·2^(n-1))]. */
export function backoff(attempt: number, retry: ResolvedRetry): number {
  return Math.random() * Math.min(retry.maxDelay, retry.baseDelay * 2 ** (attempt - 1));
}

/** Sleeps `ms`, rejecting with the abort reason if `signal` fires first. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(t);
      reject(abortReason(signal!));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
