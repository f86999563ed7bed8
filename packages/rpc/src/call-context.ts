/**
 * The handler context of a call (docs/api.md): who called, the headers and deadline, and a signal
 * that aborts when the caller stops waiting. Its timer is set only when a handler reads `signal`.
 */
import { TimeoutError, type Clock, type Headers, type TimerHandle } from '@xmppbus/core';

/** What a handler learns about the call besides the request (the handler context of docs/api.md). */
export interface HandlerContext {
  /** Full JID of the caller. */
  readonly from: string;
  /** The address the call was sent to (the component domain or a JID in it). */
  readonly to: string;
  /** SHIM headers of the call (trace context, deadline, correlation id, custom ones); empty when none. */
  readonly headers: Headers;
  /**
   * Aborts when the caller's deadline passes (no one waits for the result any more) or the server
   * closes. Created on first access, so handlers that ignore it cost nothing.
   */
  readonly signal: AbortSignal;
  /** Always undefined: IQs are never stored for later delivery (kept for the common context shape). */
  readonly delayedFrom: Date | undefined;
  /** Absolute deadline (ms since epoch) from the caller's `xmppbus-deadline` header, if any. */
  readonly deadline: number | undefined;
}

/** The context of one running call; also what the server needs to finish it. */
export class CallContext implements HandlerContext {
  readonly from: string;
  readonly to: string;
  readonly deadline: number | undefined;
  readonly headers: Headers;
  /** What the call is charged in the server's budget until it is answered (see core `stanzaCost`). */
  readonly cost: number;
  readonly #grace: number;
  readonly #clock: Clock;
  #controller: AbortController | undefined;
  #timer: TimerHandle | undefined;

  // Positional (internal, once per call): no options object allocated per call.
  constructor(
    from: string,
    to: string,
    deadline: number | undefined,
    headers: Headers,
    cost: number,
    grace: number,
    clock: Clock,
  ) {
    this.from = from;
    this.to = to;
    this.deadline = deadline;
    this.headers = headers;
    this.cost = cost;
    this.#grace = grace;
    this.#clock = clock;
  }

  get delayedFrom(): Date | undefined {
    return undefined;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      const c = (this.#controller = new AbortController());
      if (this.deadline !== undefined) {
        const ms = Math.max(0, this.deadline + this.#grace - this.#clock.now());
        this.#timer = this.#clock.setTimeout(
          () => c.abort(new TimeoutError('the caller no longer waits (deadline passed)')),
          ms,
        );
      }
    }
    return this.#controller.signal;
  }

  abort(reason: Error): void {
    this.#controller ??= new AbortController();
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  dispose(): void {
    this.#timer?.cancel();
  }
}
