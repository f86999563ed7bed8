/**
 * Server-side last activity (XEP-0012) of agents the monitor finds offline: asked once per agent
 * per discovery, a few at a time, so a monitor starting on a roster of thousands does not send
 * thousands of IQs at once. An agent whose presence arrives while its question waits is skipped.
 */
export interface LastSeenQueueOptions {
  /** Questions in flight at most. */
  readonly concurrency: number;
  /** Whether the agent is still worth asking about (e.g. still offline) when its turn comes. */
  readonly wanted: (jid: string) => boolean;
  /** Asks the server and records the answer; never rejects. */
  readonly ask: (jid: string) => Promise<void>;
}

export class LastSeenQueue {
  readonly #options: LastSeenQueueOptions;
  /** Agents asked about (or waiting to be), bounded by the monitor's tracked agents. */
  readonly #asked = new Set<string>();
  readonly #waiting: string[] = [];
  #head = 0;
  #running = 0;
  #closed = false;
  readonly #idle: (() => void)[] = [];
  /** Questions sent so far (for tests and summaries). */
  asked = 0;

  constructor(options: LastSeenQueueOptions) {
    this.#options = options;
  }

  /** Queues a question about `jid` unless one was already queued since its last `forget`. */
  request(jid: string): void {
    if (this.#closed || this.#asked.has(jid)) return;
    this.#asked.add(jid);
    this.#waiting.push(jid);
    this.#pump();
  }

  /** The agent was discovered anew (e.g. removed and tracked again): it may be asked again. */
  forget(jid: string): void {
    this.#asked.delete(jid);
  }

  /** Resolves when nothing is waiting or in flight. */
  idle(): Promise<void> {
    if (this.#running === 0 && this.#head === this.#waiting.length) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  close(): void {
    this.#closed = true;
    this.#waiting.length = 0;
    this.#head = 0;
    this.#settle();
  }

  #pump(): void {
    while (!this.#closed && this.#running < this.#options.concurrency && this.#head < this.#waiting.length) {
      const jid = this.#waiting[this.#head++]!;
      if (this.#head === this.#waiting.length) {
        this.#waiting.length = 0;
        this.#head = 0;
      }
      if (!this.#options.wanted(jid)) continue;
      this.#running++;
      this.asked++;
      void this.#options
        .ask(jid)
        .catch(() => undefined)
        .then(() => {
          this.#running--;
          this.#pump();
          this.#settle();
        });
    }
    this.#settle();
  }

  #settle(): void {
    if (this.#running > 0 || this.#head < this.#waiting.length) return;
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}
