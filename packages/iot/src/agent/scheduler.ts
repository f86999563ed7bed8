/**
 * One timer for many deadlines. Observe subscriptions need deadlines (coalesced events, heartbeats,
 * expiry); a thousand agents in one process must not hold thousands of timers. The scheduler
 * keeps a binary heap and sets one clock timer, for the earliest deadline. Share one instance
 * between agents (`new IotAgent({ scheduler })`); an idle scheduler holds no timer.
 */
import type { Clock, TimerHandle } from '@xmppbus/core';

/** A scheduled call; `cancel()` is O(1) (the entry is skipped when it surfaces). */
export interface ScheduledTask {
  cancel(): void;
}

class Entry implements ScheduledTask {
  cancelled = false;
  constructor(
    readonly at: number,
    readonly seq: number,
    readonly fn: () => void,
    readonly owner: IotScheduler,
  ) {}
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.owner._cancelled();
  }
}

export class IotScheduler {
  readonly clock: Clock;
  #heap: Entry[] = [];
  #seq = 0;
  #live = 0;
  #timer: TimerHandle | undefined;
  #timerAt = Number.POSITIVE_INFINITY;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  /** Deadlines waiting (not cancelled). */
  get size(): number {
    return this.#live;
  }

  /** Runs `fn` at `at` (clock ms). */
  at(at: number, fn: () => void): ScheduledTask {
    const e = new Entry(at, this.#seq++, fn, this);
    this.#push(e);
    this.#live++;
    if (at < this.#timerAt) this.#arm(at);
    return e;
  }

  /** @internal Entries held, cancelled ones included (tests: memory stays bounded). */
  get _held(): number {
    return this.#heap.length;
  }

  /** @internal */
  _cancelled(): void {
    this.#live--;
    if (this.#live === 0) this.#reset();
    // A cancelled entry stays until it surfaces: a heartbeat re-armed on every event would pile
    // up one per event for a whole maxInterval. Rebuild once most of the heap is dead.
    else if (this.#heap.length > 64 && this.#live * 2 < this.#heap.length)
      this.#heap = this.#heap.filter((e) => !e.cancelled).sort((a, b) => (less(a, b) ? -1 : 1));
  }

  /** Cancels everything (the owner closes). */
  clear(): void {
    for (const e of this.#heap) e.cancelled = true;
    this.#live = 0;
    this.#reset();
  }

  #reset(): void {
    this.#heap = [];
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  #arm(at: number): void {
    this.#timer?.cancel();
    this.#timerAt = at;
    this.#timer = this.clock.setTimeout(() => this.#fire(), Math.max(0, at - this.clock.now()));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    // Only what was due when the timer fired: a task scheduled meanwhile (e.g. a zero-interval
    // re-arm) waits for the next timer, so a run can never spin synchronously forever.
    const scheduledBefore = this.#seq;
    for (;;) {
      const top = this.#heap[0];
      if (!top) break;
      if (top.cancelled) {
        this.#pop();
        continue;
      }
      if (top.at > now || top.seq >= scheduledBefore) {
        this.#arm(top.at);
        return;
      }
      this.#pop();
      top.cancelled = true;
      this.#live--;
      top.fn();
    }
  }

  #push(e: Entry): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop();
    if (h.length === 0 || !last) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && less(h[l]!, h[m]!)) m = l;
      if (r < h.length && less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
