/**
 * The bus's state as listeners and as an async iterable. Each iterator first yields the current
 * state, then every change, and ends after `closed`. A slow reader never makes the bus wait:
 * its backlog is bounded and only the newest states are kept (states are snapshots, so skipping
 * an intermediate one loses nothing a reader could act on).
 */
export type BusStatus = 'idle' | 'starting' | 'ready' | 'reconnecting' | 'draining' | 'closed';

export type BusStatusListener = (status: BusStatus, error?: Error) => void;

const BACKLOG = 32;

export class StatusFeed implements AsyncIterable<BusStatus> {
  #current: BusStatus = 'idle';
  #listeners: BusStatusListener[] = [];

  get current(): BusStatus {
    return this.#current;
  }

  /** Moves to `next` (no-op when unchanged or already closed) and tells every listener. */
  set(next: BusStatus, error?: Error): void {
    if (next === this.#current || this.#current === 'closed') return;
    this.#current = next;
    for (const l of [...this.#listeners]) l(next, error);
    if (next === 'closed') this.#listeners = [];
  }

  on(listener: BusStatusListener): () => void {
    if (this.#current === 'closed') return () => undefined;
    this.#listeners.push(listener);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  [Symbol.asyncIterator](): AsyncIterator<BusStatus> {
    const queue: BusStatus[] = [this.#current];
    let wake: (() => void) | undefined;
    let done = false;
    const off = this.on((s) => {
      queue.push(s);
      if (queue.length > BACKLOG) queue.splice(0, queue.length - BACKLOG);
      wake?.();
    });
    const finish = (): IteratorReturnResult<undefined> => {
      done = true;
      off();
      wake?.();
      return { done: true, value: undefined };
    };
    return {
      next: async (): Promise<IteratorResult<BusStatus>> => {
        while (!done) {
          const s = queue.shift();
          if (s !== undefined) {
            if (s === 'closed') done = true;
            return { done: false, value: s };
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
        return finish();
      },
      return: async () => finish(),
    };
  }
}
