/** The dead letters of a Messenger: messages its outbox gave up on, to list, inspect, replay or remove. */
import type { WaitOptions } from '@xmppbus/core';
import type { Duration } from './options.js';
import type { Outbox } from './outbox.js';
import type { DeadLetter, DeadLetterQuery, MessageStore } from './store.js';

export class DeadLetters {
  readonly #store: MessageStore;
  readonly #outbox: Outbox;
  readonly #ready: (options?: WaitOptions) => Promise<void>;

  /** `ready` resolves once the messenger started (the store is open). */
  constructor(deps: { store: MessageStore; outbox: Outbox; ready: (options?: WaitOptions) => Promise<void> }) {
    this.#store = deps.store;
    this.#outbox = deps.outbox;
    this.#ready = deps.ready;
  }

  /** Dead letters, oldest first. */
  async list(query: DeadLetterQuery = {}): Promise<DeadLetter[]> {
    await this.#ready();
    return this.#store.listDeadLetters(query);
  }

  /** One dead letter (its `stanza` is the message as it would be sent). */
  async get(id: string): Promise<DeadLetter | undefined> {
    await this.#ready();
    return this.#store.getDeadLetter(id);
  }

  /**
   * Puts a dead letter back into the outbox (same id, new place at the end of its peer's
   * order, attempts reset, no expiry unless `ttl` is given). Resolves true once it is queued.
   */
  async replay(id: string, options: { deliverAt?: Date | number; ttl?: Duration } = {}): Promise<boolean> {
    await this.#ready();
    return this.#outbox.replay(id, options);
  }

  /** Deletes a dead letter for good. */
  async remove(id: string): Promise<boolean> {
    await this.#ready();
    return this.#store.removeDeadLetter(id);
  }
}
