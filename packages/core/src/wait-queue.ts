/**
 * Callers waiting for one condition ("idle", "drained", "ready"): each waits with its own
 * signal and timeout, and the owner wakes them all at once. Waiters that give up remove
 * themselves, so a long-lived object never accumulates dead entries.
 */
import { abortReason, type WaitOptions } from './abort.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { TimeoutError } from './errors.js';

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: TimerHandle | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class WaitQueue {
  readonly #clock: Clock;
  readonly #what: string;
  #waiters = new Set<Waiter>();

  constructor(options: { clock?: Clock; what?: string } = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#what = options.what ?? 'wait';
  }

  /** Callers currently waiting. */
  get size(): number {
    return this.#waiters.size;
  }

  /** Waits until `wake()` (resolves) or `fail()` (rejects), the signal, or the timeout. */
  wait(options: WaitOptions = {}): Promise<void> {
    const { signal, timeout } = options;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: undefined, signal, onAbort: undefined };
      if (timeout !== undefined && Number.isFinite(timeout)) {
        w.timer = this.#clock.setTimeout(
          () => this.#settle(w, new TimeoutError(`${this.#what} timed out after ${timeout} ms`)),
          timeout,
        );
      }
      if (signal) {
        w.onAbort = () => this.#settle(w, abortReason(signal));
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.#waiters.add(w);
    });
  }

  /** Resolves every current waiter. */
  wake(): void {
    if (this.#waiters.size === 0) return;
    for (const w of this.#take()) this.#settle(w);
  }

  /** Rejects every current waiter with `err`. */
  fail(err: Error): void {
    for (const w of this.#take()) this.#settle(w, err);
  }

  #take(): Waiter[] {
    const ws = [...this.#waiters];
    return ws;
  }

  #settle(w: Waiter, err?: Error): void {
    if (!this.#waiters.delete(w)) return;
    w.timer?.cancel();
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
    if (err) w.reject(err);
    else w.resolve();
  }
}

/** Waits `ms` on `clock`, rejecting with the abort reason if `signal` fires first. */
export function sleep(ms: number, options: { signal?: AbortSignal | undefined; clock?: Clock } = {}): Promise<void> {
  const { signal } = options;
  const clock = options.clock ?? systemClock;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      timer.cancel();
      reject(abortReason(signal!));
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
