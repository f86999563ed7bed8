/**
 * Per-sender order of inbound work: the handlers of one sender (bare JID) run one at a time in
 * arrival order, different senders in parallel. It also counts the inbound work in hand, so
 * the messenger's `drain` knows when the receiving side is idle.
 */
export class SenderOrder {
  /** Per-sender tail of the chain. */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #onIdle: () => void;
  #active = 0;

  constructor(onIdle: () => void = () => undefined) {
    this.#onIdle = onIdle;
  }

  /** Inbound work in hand (chained or held). */
  get active(): number {
    return this.#active;
  }

  /** Runs `fn` after the sender's previous work (whatever its outcome). */
  run(sender: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.#chains.get(sender);
    this.#active++;
    const next = (prev ? prev.then(fn, fn) : fn()).finally(() => {
      if (this.#chains.get(sender) === next) this.#chains.delete(sender);
      this.#release();
    });
    this.#chains.set(sender, next);
    return next;
  }

  /** Counts work that runs outside a chain (a commit awaited after its handler); returns the release. */
  hold(): () => void {
    this.#active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#release();
    };
  }

  #release(): void {
    this.#active--;
    if (this.#active === 0) this.#onIdle();
  }
}
