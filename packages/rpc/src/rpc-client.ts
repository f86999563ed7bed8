/**
 * The calling side of RPC over IQ. `call()` encodes and validates the request, sends it as an IQ
 * (`get` for read-only methods, `set` otherwise) through the session's `IqCaller`, then decodes
 * and validates the response. Errors come back typed: `ValidationError` (either side),
 * `RpcError` (declared), `ServiceUnavailableError`, `StanzaError`, `TimeoutError`, the abort
 * reason, `ConnectionError` when the link drops, `ClosedError` when the client does not take calls.
 */
import type { Element, OperationScope, WaitOptions } from '@xmppbus/core';
import type { MethodContract, RequestOf, ResponseOf } from '@xmppbus/schema';
import {
  CallEngine,
  checkSignal,
  type CallOptions,
  type CallRetry,
  type CallerOptions,
  type CallerStatus,
} from './call.js';

/** Options of `RpcClient`: those of every calling unit (timeout, retry, validation, batching). */
export type RpcClientOptions = CallerOptions;

const NO_OPTIONS: CallOptions = Object.freeze({});

export class RpcClient implements AsyncDisposable {
  readonly name = 'RpcClient';
  readonly #engine: CallEngine;
  #status: CallerStatus = 'idle';
  #starting: Promise<void> | undefined;
  #leave: (() => void) | undefined;
  readonly #isClosed = (): boolean => this.#status === 'closed';

  /** Validates the options; sends nothing until `start()`. */
  constructor(options: RpcClientOptions) {
    this.#engine = new CallEngine(options, 'RpcClient');
  }

  /** Batch IQs sent and the calls they carried (0 when batching is off or no peer takes batches). */
  get batchStats(): { readonly batches: number; readonly batchedCalls: number } {
    return this.#engine.batchStats;
  }

  get status(): CallerStatus {
    return this.#status;
  }

  /** Calls of this client awaiting their outcome (retries and backoff included). */
  get inFlight(): number {
    return this.#engine.inFlight;
  }

  /** Becomes ready once the session is (replies reach the client through it). Idempotent. */
  start(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed' || this.#status === 'draining')
      return Promise.reject(this.#engine.refusal(this.#status));
    this.#starting ??= this.#start(options);
    return this.#starting;
  }

  async #start(options: WaitOptions): Promise<void> {
    this.#status = 'starting';
    try {
      await this.#engine.session.start(options);
    } catch (err) {
      this.#starting = undefined;
      if (this.#status === 'starting') this.#status = 'idle';
      throw err;
    }
    if (this.#status !== 'starting') return;
    const session = this.#engine.session;
    const leave = session.add(this);
    const unobserve = session.instrumentation.observe('rpc-client', () => ({ inFlight: this.#engine.inFlight }));
    this.#leave = () => {
      leave();
      unobserve();
    };
    this.#status = 'ready';
  }

  /**
   * Calls `method` on `to` (a component domain or any JID) and resolves with the typed response.
   * Idempotent methods are retried with backoff on retryable errors, within `timeout`.
   */
  call<M extends MethodContract>(
    method: M,
    to: string,
    request: RequestOf<M>,
    options: CallOptions = NO_OPTIONS,
  ): Promise<ResponseOf<M>> {
    if (this.#status !== 'ready') return Promise.reject(this.#engine.refusal(this.#status));
    const instr = this.#engine.session.instrumentation;
    if (!instr.enabled) return this.#call(method, to, request, options, undefined);
    // Inside a client span: the trace context travels in the headers; retries are its events.
    const scope = instr.rpcClientCall(method.ns, method.name, to);
    return this.#call(method, to, request, options, scope).then(
      (value) => {
        scope.end();
        return value;
      },
      (err: unknown) => {
        scope.end(err);
        throw err;
      },
    );
  }

  #call<M extends MethodContract>(
    method: M,
    to: string,
    request: RequestOf<M>,
    options: CallOptions,
    scope: OperationScope | undefined,
  ): Promise<ResponseOf<M>> {
    const engine = this.#engine;
    let deadline: number;
    let payload: Element;
    let retry: CallRetry | false;
    try {
      const timeout = engine.timeoutOf(options);
      checkSignal(options.signal);
      deadline = engine.clock.now() + timeout;
      const headers = scope?.headers(options.headers);
      payload = engine.encode(method, request, headers === undefined ? options : { ...options, headers }, deadline);
      retry = engine.retriesOf(method, options);
    } catch (err) {
      return Promise.reject(err);
    }
    engine.started();
    const signal = options.signal;
    if (retry === false) {
      // Hot path: one attempt, no retry loop, no extra promise.
      return engine.attempt(method, to, payload, deadline - engine.clock.now(), signal, true);
    }
    return engine
      .withRetries<ResponseOf<M>>(retry, deadline, signal, this.#isClosed, (budget, n) => {
        if (n > 1) scope?.retry(n, undefined);
        return engine.attempt(method, to, payload, budget, signal, false);
      })
      .finally(() => engine.settled());
  }

  /**
   * Stops taking calls (new ones reject with `ClosedError`) and waits for the calls in flight,
   * bounded by `options` (rejects with `TimeoutError` / the abort reason).
   */
  drain(options: WaitOptions = {}): Promise<void> {
    if (this.#status === 'closed') return Promise.resolve();
    this.#status = 'draining';
    return this.#engine.idle(options);
  }

  /**
   * Refuses new calls at once. Calls in flight end with their reply, timeout or abort (or when
   * the session closes); their retries stop. Idempotent.
   */
  close(): Promise<void> {
    this.#status = 'closed';
    this.#leave?.();
    this.#leave = undefined;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
