/**
 * The calling side of RPC over IQ. `call()` encodes and validates the request, sends it as an IQ
 * (`get` for read-only methods, `set` otherwise) through the transport's shared `IqCaller` (replies
 * matched by id and responder JID, crypto-random ids, pending entry removed on every outcome),
 * then decodes and validates the response. Errors come back typed: `ValidationError` (either
 * side), `RpcError` (declared), `ServiceUnavailableError`, `StanzaError`, `TimeoutError`, the
 * abort reason, `ConnectionError` when the link drops.
 */
import {
  ConfigError,
  Element,
  HEADER,
  IqCaller,
  NS_SHIM,
  ProtocolError,
  StanzaError,
  TimeoutError,
  abortReason,
  firstChildElement,
  localName,
  randomId,
  type Transport,
} from '@xmppbus/core';
import {
  ValidationError,
  decode,
  encode,
  type MethodContract,
  type PayloadContract,
  type RequestOf,
  type ResponseOf,
} from '@xmppbus/schema';
import { formatDeadline } from './deadline.js';
import { RpcError } from './rpc-error.js';
import type { RpcLogger } from './rpc-server.js';
import { ServiceClient, type ServiceOptions, type ServiceTarget } from './service.js';
import {
  DEFAULT_RETRY,
  attemptBudget,
  backoff,
  isRetryable,
  resolveRetry,
  sleep,
  type ResolvedRetry,
  type RetryOptions,
} from './retry.js';
import { NS_RPC, readInvalid } from './wire.js';

export interface CallOptions {
  /** Total time for the call, retries included, ms (default: the client's `timeout`). Sent as the deadline header. */
  timeout?: number;
  signal?: AbortSignal;
  /** Extra SHIM headers (e.g. `traceparent`). */
  headers?: Readonly<Record<string, string>>;
  /** Overrides the client's retry policy for this call (`false` = no retry). */
  retry?: RetryOptions | false;
}

export interface RpcClientOptions {
  transport: Transport;
  /** Default call timeout, ms (default 10 000). */
  timeout?: number;
  /** Retry policy for idempotent methods (default `{ attempts: 3 }`; `false` = never retry). */
  retry?: RetryOptions | false;
  /** Validate requests before sending and responses on receipt (default true). */
  validate?: boolean;
  /**
   * When to send the `xmppbus-deadline` header (so the server can drop or abort work nobody waits
   * for): `explicit` (default) — for calls given a `timeout` (as gRPC sends grpc-timeout only for
   * calls with a deadline); `always` — every call, the client's default timeout included; `never`.
   */
  propagateDeadline?: 'explicit' | 'always' | 'never';
  logger?: RpcLogger;
}

/** @internal A request encoded once and re-sent as is by every attempt. */
export interface Prepared {
  readonly payload: Element;
  readonly deadline: number;
  readonly signal: AbortSignal | undefined;
  readonly retry: ResolvedRetry;
  /** false when the method is not idempotent or retries are off. */
  readonly retries: boolean;
}

const NO_OPTIONS: CallOptions = Object.freeze({});
const VALIDATE = Object.freeze({ validate: true });
const NO_VALIDATE = Object.freeze({ validate: false });

export class RpcClient {
  readonly #transport: Transport;
  readonly #caller: IqCaller;
  readonly #timeout: number;
  readonly #retry: ResolvedRetry | false;
  readonly #validate: boolean;
  /** `{ validate }` for encode/decode, allocated once rather than per call. */
  readonly #codecOptions: { readonly validate: boolean };
  readonly #propagate: 'explicit' | 'always' | 'never';
  readonly #errorContracts = new WeakMap<object, Map<string, PayloadContract>>();
  #inFlight = 0;

  constructor(options: RpcClientOptions) {
    if (!options || typeof options !== 'object' || !options.transport) {
      throw new ConfigError('RpcClient: options.transport is required');
    }
    const timeout = options.timeout ?? 10_000;
    if (!(timeout > 0)) throw new ConfigError(`RpcClient: timeout must be > 0 ms (got ${String(timeout)})`);
    this.#transport = options.transport;
    this.#caller = IqCaller.for(options.transport);
    this.#timeout = timeout;
    this.#retry = options.retry === false ? false : resolveRetry(options.retry);
    this.#validate = options.validate ?? true;
    this.#codecOptions = this.#validate ? VALIDATE : NO_VALIDATE;
    this.#propagate = options.propagateDeadline ?? 'explicit';
    if (!['explicit', 'always', 'never'].includes(this.#propagate)) {
      throw new ConfigError(`RpcClient: propagateDeadline must be 'explicit', 'always' or 'never'`);
    }
  }

  /** The transport this client calls through. */
  get transport(): Transport {
    return this.#transport;
  }

  /** Calls of this client awaiting their outcome (retries and backoff included). */
  get inFlight(): number {
    return this.#inFlight;
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
    let prepared: Prepared;
    try {
      prepared = this._prepare(method, request, options);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#inFlight++;
    if (!prepared.retries) {
      // Hot path: one attempt, no retry loop, no extra promise.
      return this.#send(method, to, prepared, prepared.deadline - Date.now(), prepared.signal, true);
    }
    return this.#withRetries(method, to, prepared).finally(() => {
      this.#inFlight--;
    });
  }

  /**
   * A handle balancing calls over the live instances of a service: explicit instance JIDs, or
   * discovered through the server's disco#items. See `ServiceOptions`.
   */
  service(target: ServiceTarget, options: ServiceOptions = {}): ServiceClient {
    return new ServiceClient(this, target, options);
  }

  async #withRetries<M extends MethodContract>(method: M, to: string, prepared: Prepared): Promise<ResponseOf<M>> {
    const { retry, signal, deadline } = prepared;
    for (let attempt = 1; ; attempt++) {
      const budget = attemptBudget(retry, deadline);
      try {
        return await this._attempt(method, to, prepared, budget, signal);
      } catch (err) {
        if (attempt >= retry.attempts || !isRetryable(err) || signal?.aborted) throw err;
        const wait = backoff(attempt, retry);
        if (Date.now() + wait >= deadline) throw err;
        await sleep(wait, signal);
      }
    }
  }

  /** @internal Encodes the request once (validating it) and stamps the deadline header. */
  _prepare(method: MethodContract, request: unknown, options: CallOptions): Prepared {
    const timeout = options.timeout ?? this.#timeout;
    if (!(timeout > 0)) throw new ConfigError(`timeout must be > 0 ms (got ${String(timeout)})`);
    const signal = options.signal;
    if (signal?.aborted) throw abortReason(signal);
    const payload = encode(method.request, request as RequestOf<MethodContract>, this.#codecOptions);
    const deadline = Date.now() + timeout;
    // SHIM headers ride as the request element's last child so the IQ keeps exactly one child.
    // Like gRPC's grpc-timeout, the deadline travels when the call sets one: the headers cost the
    // server a parse per call (measured: +18 µs p50 on ejabberd, +32 µs on Prosody).
    const mode = this.#propagate;
    const withDeadline = mode === 'always' || (mode === 'explicit' && options.timeout !== undefined);
    if (withDeadline || options.headers) {
      const headers = new Element('headers', { xmlns: NS_SHIM });
      if (withDeadline) headers.c('header', { name: HEADER.deadline }).t(formatDeadline(deadline));
      if (options.headers) {
        for (const name in options.headers) headers.c('header', { name }).t(options.headers[name]!);
      }
      headers.parent = payload;
      payload.children.push(headers);
    }
    const retryOpt =
      options.retry === undefined ? this.#retry : options.retry === false ? false : resolveRetry(options.retry);
    return {
      payload,
      deadline,
      signal,
      retry: retryOpt || DEFAULT_RETRY,
      retries: method.idempotent && retryOpt !== false && retryOpt.attempts > 1,
    };
  }

  /** @internal One attempt: sends the IQ and maps the outcome. `budget` is this attempt's timeout. */
  _attempt<M extends MethodContract>(
    method: M,
    to: string,
    prepared: Prepared,
    budget: number,
    signal: AbortSignal | undefined,
  ): Promise<ResponseOf<M>> {
    return this.#send(method, to, prepared, budget, signal, false);
  }

  #send<M extends MethodContract>(
    method: M,
    to: string,
    prepared: Prepared,
    budget: number,
    signal: AbortSignal | undefined,
    counted: boolean,
  ): Promise<ResponseOf<M>> {
    if (budget <= 0) {
      if (counted) this.#inFlight--;
      return Promise.reject(new TimeoutError(`${describe(method)} to ${to}: no time left for another attempt`));
    }
    // Built directly: `new Element(name, attrs)` would copy a temporary attrs object.
    const iq = new Element('iq');
    const attrs = iq.attrs;
    attrs['type'] = method.readOnly ? 'get' : 'set';
    attrs['to'] = to;
    attrs['from'] = this.#transport.address;
    attrs['id'] = randomId();
    iq.children.push(prepared.payload);
    return this.#caller.request(iq, { timeout: budget, signal }).then(
      (reply) => {
        if (counted) this.#inFlight--;
        return this.#decodeResult(method, to, reply);
      },
      (err: unknown) => {
        if (counted) this.#inFlight--;
        throw this.#mapError(method, to, err, budget);
      },
    );
  }

  #decodeResult<M extends MethodContract>(method: M, to: string, reply: Element): ResponseOf<M> {
    const el = firstChildElement(reply);
    if (!el) throw new ProtocolError(`${describe(method)} to ${to}: the result carries no response element`);
    return decode(method.response, el, this.#codecOptions) as ResponseOf<M>;
  }

  #mapError(method: MethodContract, to: string, err: unknown, budget: number): unknown {
    if (err instanceof StanzaError) {
      const app = err.application;
      if (!app) return err;
      const ns = app.attrs['xmlns'];
      const name = localName(app);
      if (ns === NS_RPC && name === 'invalid') {
        const { side, issues } = readInvalid(app);
        const context =
          side === 'request' ? `${to} rejected the request ${describe(method)}` : `${to} produced an invalid response`;
        return new ValidationError(issues, { context, cause: err });
      }
      if (ns === method.ns && Object.hasOwn(method.errors, name)) return this.#declared(method, name, app, err);
      return err;
    }
    if (err instanceof TimeoutError) {
      return new TimeoutError(`${describe(method)} to ${to}: no reply within ${budget} ms`, { cause: err });
    }
    return err;
  }

  #declared(method: MethodContract, name: string, app: Element, wire: StanzaError): Error {
    const declared = method.errors[name]!;
    let data: unknown;
    if (declared.schema) {
      let contracts = this.#errorContracts.get(method);
      if (!contracts) this.#errorContracts.set(method, (contracts = new Map()));
      let c = contracts.get(name);
      if (!c) contracts.set(name, (c = { kind: 'payload', ns: method.ns, name, schema: declared.schema }));
      try {
        data = decode(c, app, { validate: this.#validate });
      } catch (err) {
        return err as Error;
      }
    }
    const options = wire.text !== undefined ? { text: wire.text, cause: wire } : { cause: wire };
    return new (RpcError as new (m: MethodContract, n: string, d: unknown, o: object) => RpcError)(
      method,
      name,
      data,
      options,
    );
  }
}

/** `<create xmlns='urn:…'>` for messages. */
function describe(method: MethodContract): string {
  return `<${method.name} xmlns='${method.ns}'>`;
}
