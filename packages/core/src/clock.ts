/**
 * Time source. Production code asks a `Clock` instead of `Date.now()`/`setTimeout` directly so
 * tests can drive time (`ManualClock`) without sleeping.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
}

const MAX_TIMER_MS = 0x7fffffff;

/**
 * A system timer. A class rather than a `{ cancel: () => … }` literal: one timer is set per IQ
 * request, and a fresh closure per call showed up in the RPC profile.
 */
class SystemTimer implements TimerHandle {
  #t: ReturnType<typeof setTimeout>;
  readonly #fn: () => void;
  readonly #at: number;

  constructor(fn: () => void, ms: number) {
    this.#fn = fn;
    if (!(ms > MAX_TIMER_MS)) {
      this.#at = 0;
      this.#t = setTimeout(fn, ms);
      return;
    }
    // Node fires a delay above 2^31 − 1 ms (24.8 days) after 1 ms, with a TimeoutOverflowWarning:
    // a far-future deadline would expire at once. Such a wait goes in steps the timer can hold.
    this.#at = Date.now() + ms;
    this.#t = setTimeout(() => this.#step(), MAX_TIMER_MS);
  }

  #step(): void {
    const left = this.#at - Date.now();
    if (left > 0) this.#t = setTimeout(() => this.#step(), Math.min(left, MAX_TIMER_MS));
    else this.#fn();
  }

  cancel(): void {
    clearTimeout(this.#t);
  }
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => new SystemTimer(fn, ms),
};

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  #now: number;
  #timers: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  #seq = 0;

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  /** Number of timers still scheduled. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** Advances time, firing due timers in order (timers scheduled while firing also run if due). */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const live = this.#timers.filter((t) => !t.cancelled && t.at <= target);
      if (live.length === 0) break;
      live.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = live[0]!;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = target;
    this.#timers = this.#timers.filter((t) => !t.cancelled);
  }
}
