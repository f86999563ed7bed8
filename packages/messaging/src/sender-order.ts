/**
 * Scheduling of inbound work: the handlers of one sender (bare JID) run one at a time in
 * arrival order; at most `concurrency` run at once over all senders, and senders with work
 * waiting are served in turn (core's `FairQueue`, holding at most one task per sender: the
 * next of a sender becomes ready only when its previous one settled). So a sender with a
 * thousand waiting messages gets one turn per round, like a sender with one, and cannot starve
 * the others. What waits here is bounded by the receiver's queue budget, taken before `run`.
 * It also counts the inbound work in hand, so the messenger's `drain` knows when it is idle.
 */
import { FairQueue } from '@xmppbus/core';

/** One handler turn: settled through plain callbacks (one promise per task: the one `run` returns). */
class Task {
  resolve: () => void = noop;
  reject: (err: unknown) => void = noop;
  constructor(
    readonly sender: string,
    readonly fn: () => Promise<void>,
  ) {}
}

const noop = (): void => {};

export class SenderOrder {
  readonly #concurrency: number;
  readonly #onIdle: () => void;
  /** The next task of each sender without one ready or running. */
  readonly #ready = new FairQueue<Task>();
  /** Later tasks of senders with one ready or running, in arrival order. */
  readonly #later = new Map<string, Task[]>();
  /** Senders with a task ready or running. */
  readonly #busy = new Set<string>();
  #running = 0;
  #active = 0;
  /** Handler turns started, in order (read by tests to state fairness as a count of dispatches). */
  dispatched = 0;

  constructor(onIdle: () => void = () => undefined, concurrency = Infinity) {
    this.#onIdle = onIdle;
    this.#concurrency = concurrency;
  }

  /** Inbound work in hand (waiting, running or held). */
  get active(): number {
    return this.#active;
  }

  /** Tasks of `sender` waiting or running. */
  sizeOf(sender: string): number {
    return (this.#busy.has(sender) ? 1 : 0) + (this.#later.get(sender)?.length ?? 0);
  }

  /** Runs `fn` after the sender's previous work (whatever its outcome), when its turn comes. */
  run(sender: string, fn: () => Promise<void>): Promise<void> {
    this.#active++;
    const task = new Task(sender, fn);
    const promise = new Promise<void>((resolve, reject) => {
      task.resolve = resolve;
      task.reject = reject;
    });
    if (this.#busy.has(sender)) {
      const later = this.#later.get(sender);
      if (later) later.push(task);
      else this.#later.set(sender, [task]);
    } else {
      this.#busy.add(sender);
      this.#ready.push(sender, task);
      this.#pump();
    }
    return promise;
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

  #pump(): void {
    while (this.#running < this.#concurrency && this.#ready.size > 0) this.#start(this.#ready.shift()!);
  }

  #start(task: Task): void {
    this.#running++;
    this.dispatched++;
    let p: Promise<void>;
    try {
      p = task.fn();
    } catch (err) {
      p = Promise.reject(err as Error);
    }
    p.then(
      () => this.#settled(task, true, undefined),
      (err: unknown) => this.#settled(task, false, err),
    );
  }

  /** The task's work settled: the sender's next turn is queued, then its caller learns the outcome. */
  #settled(task: Task, ok: boolean, err: unknown): void {
    this.#finished(task.sender);
    this.#release();
    if (ok) task.resolve();
    else task.reject(err);
  }

  #finished(sender: string): void {
    this.#running--;
    const later = this.#later.get(sender);
    const next = later?.shift();
    if (next) {
      if (later!.length === 0) this.#later.delete(sender);
      this.#ready.push(sender, next);
    } else this.#busy.delete(sender);
    this.#pump();
  }

  #release(): void {
    this.#active--;
    if (this.#active === 0) this.#onIdle();
  }
}
