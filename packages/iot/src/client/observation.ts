/**
 * One observe subscription seen from the monitor: a callback list and a bounded async iterator
 * of events, plus `renew()` and `cancel()`. The client keeps it alive (renews it before the
 * agent's ttl, restores it after a reconnect) until `cancel()`.
 */
import type { ObserveEvent } from '../types.js';

export interface ObservationControl {
  renew(observation: Observation): Promise<void>;
  cancel(observation: Observation): Promise<void>;
}

type Waiter = (result: IteratorResult<ObserveEvent>) => void;

export class Observation implements AsyncIterable<ObserveEvent> {
  /** Subscription id on the wire (nf `id`, legacy `seqnr`). */
  readonly id: string;
  /** The agent's JID as subscribed to. */
  readonly agent: string;
  readonly #control: ObservationControl;
  readonly #listeners: ((event: ObserveEvent) => void)[] = [];
  readonly #buffer: ObserveEvent[] = [];
  readonly #bufferSize: number;
  #waiter: Waiter | undefined;
  #closed = false;
  /** Events dropped because the iterator's buffer was full (oldest first). */
  dropped = 0;
  /** Events received. */
  received = 0;

  constructor(id: string, agent: string, control: ObservationControl, bufferSize: number) {
    this.id = id;
    this.agent = agent;
    this.#control = control;
    this.#bufferSize = Math.max(1, bufferSize);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Calls `listener` for every event. Returns the remover. */
  on(listener: (event: ObserveEvent) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /** Subscribes again with the same id: the agent restarts its ttl. */
  renew(): Promise<void> {
    return this.#control.renew(this);
  }

  /** Unsubscribes and ends the iterator. Idempotent. */
  async cancel(): Promise<void> {
    if (this.#closed) return;
    this.end();
    await this.#control.cancel(this);
  }

  /** @internal delivers one event. */
  push(event: ObserveEvent): void {
    if (this.#closed) return;
    this.received++;
    for (const l of [...this.#listeners]) l(event);
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w({ value: event, done: false });
      return;
    }
    if (this.#buffer.length >= this.#bufferSize) {
      this.#buffer.shift();
      this.dropped++;
    }
    this.#buffer.push(event);
  }

  /** @internal ends the iterator without unsubscribing (the client closed). */
  end(): void {
    if (this.#closed) return;
    this.#closed = true;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<ObserveEvent> {
    return {
      next: () => {
        const e = this.#buffer.shift();
        if (e) return Promise.resolve({ value: e, done: false });
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise<IteratorResult<ObserveEvent>>((resolve) => (this.#waiter = resolve));
      },
      return: async () => {
        await this.cancel();
        return { value: undefined, done: true };
      },
    };
  }
}
