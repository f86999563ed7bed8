/**
 * The connection lifecycle shared by the component and client transports: first connect,
 * direct stanza dispatch, drop detection, reconnect with exponential backoff + jitter, clean
 * close. Subclasses only negotiate the stream (`_negotiate`). Deliberately not built on
 * @xmpp/reconnect (fixed 1 s delay, keeps retrying after a failed start) nor on xmpp.js's
 * iq-callee (it answers unhandled IQs with service-unavailable before our features see them).
 */
import {
  AuthError,
  BaseTransport,
  ClosedError,
  ConfigError,
  ConflictError,
  ConnectionError,
  PayloadTooLargeError,
  RetryPolicy,
  TimeoutError,
  abortReason,
  silentLogger,
  systemClock,
  toError,
  type Backoff,
  type Clock,
  type Element,
  type Logger,
  type RetryOptions,
  type SendOptions,
  type TimerHandle,
  type WaitOptions,
} from '@xmppbus/core';
import { serializeElement } from './serialize.js';
import { StreamLink, type ServiceAddress } from './stream-link.js';
import { STREAM_PARSER_DEFAULTS } from './stream-parser.js';

/** Opens the byte stream of one connection attempt (default: `StreamLink.connect`, TCP). */
export type StreamConnector = (address: ServiceAddress, signal: AbortSignal) => Promise<StreamLink>;

/** Reconnect schedule of both stream transports: 200 ms ×2 up to 30 s, jitter 0.5, no attempt limit. */
export const RECONNECT_DEFAULTS: Readonly<RetryOptions> = Object.freeze({
  initialDelay: 200,
  maxDelay: 30_000,
  factor: 2,
  jitter: 0.5,
});

export interface StreamTransportOptions {
  reconnect?: RetryOptions | false | undefined;
  maxQueue?: number | undefined;
  maxStanzaBytes?: number | undefined;
  /**
   * Element nesting below a stanza, both ways (default 64): deeper inbound stanzas end the link
   * with `policy-violation`; deeper outbound ones are refused with `PayloadTooLargeError`.
   */
  maxDepth?: number | undefined;
  /** Deadline of each connection attempt (TCP connect + negotiation), ms. Default 10 000. */
  timeout?: number | undefined;
  logger?: Logger | undefined;
  /** How long close() waits for the server's `</stream:stream>`, ms. Default 1 000. */
  closeGraceMs?: number | undefined;
  /** Time source of the reconnect delays and attempt deadlines (default `systemClock`). */
  clock?: Clock | undefined;
  /** Test seams: random source of the backoff jitter, and the connector (default TCP). */
  random?: (() => number) | undefined;
  connect?: StreamConnector | undefined;
}

/** The public connect options both stream transports (component, client) share. */
export interface StreamConnectOptions {
  /**
   * Automatic reconnect after a drop (default: on, `RECONNECT_DEFAULTS`); `false` = close on
   * drop. `attempts` bounds the attempts per outage (default: unbounded); when they are used up
   * the transport closes with the last error.
   */
  reconnect?: RetryOptions | false;
  /** Max stanzas queued while not online (default 10 000). */
  maxQueue?: number;
  /** Aborts the initial connect. */
  signal?: AbortSignal;
  /** Deadline of each connection attempt, ms (default 10 000). */
  timeout?: number;
  logger?: Logger;
}

const RESOLVED: Promise<void> = Promise.resolve();

/** A secret or a callback that fetches it (evaluated at every connection attempt). */
export type Secret = string | (() => string | Promise<string>);

export async function resolveSecret(secret: Secret): Promise<string> {
  return typeof secret === 'function' ? await secret() : secret;
}

/**
 * Errors that end the transport for good when they happen while reconnecting. A conflict is
 * not among them: after a drop the server may still hold our previous session for a moment.
 */
function isFatalOnReconnect(err: Error): boolean {
  return err instanceof AuthError || err instanceof ConfigError;
}

/** Errors that end the transport when they take an online link down (kicked, credentials revoked). */
function isFatalWhenOnline(err: Error): boolean {
  return err instanceof AuthError || err instanceof ConfigError || err instanceof ConflictError;
}

export abstract class StreamTransport extends BaseTransport {
  protected readonly _logger: Logger;
  readonly #serviceAddress: ServiceAddress;
  readonly #backoff: Backoff | undefined;
  readonly #clock: Clock;
  readonly #attemptTimeout: number;
  readonly #closeGraceMs: number;
  readonly #connect: StreamConnector;
  readonly #maxDepth: number;
  #link: StreamLink | undefined;
  #retryTimer: TimerHandle | undefined;
  #attemptAbort: AbortController | undefined;
  #attemptTimer: TimerHandle | undefined;
  #closing = false;
  #lastError: Error | undefined;
  /** Text of stanzas size-checked in send() but written later (queued or behind in-flight writes). */
  readonly #serialized = new WeakMap<Element, string>();
  readonly #serializeOptions: { maxDepth: number };

  protected constructor(serviceAddress: ServiceAddress, options: StreamTransportOptions) {
    super({
      maxQueue: options.maxQueue,
      maxStanzaBytes: options.maxStanzaBytes,
      onListenerError: (err) => this._logger.error('stanza listener threw', err),
    });
    this._logger = options.logger ?? silentLogger;
    this.#serviceAddress = serviceAddress;
    this.#backoff =
      options.reconnect === false
        ? undefined
        : new RetryPolicy(options.reconnect ?? {}, RECONNECT_DEFAULTS, options.random, 'reconnect').backoff();
    this.#clock = options.clock ?? systemClock;
    this.#attemptTimeout = options.timeout ?? 10_000;
    this.#closeGraceMs = options.closeGraceMs ?? 1_000;
    this.#connect = options.connect ?? StreamLink.connect;
    this.#maxDepth = options.maxDepth ?? STREAM_PARSER_DEFAULTS.maxDepth;
    this.#serializeOptions = { maxDepth: this.#maxDepth };
  }

  /** Negotiates the stream on a fresh TCP link (handshake, SASL, bind…). */
  protected abstract _negotiate(link: StreamLink, signal: AbortSignal): Promise<void>;

  /** The last error that took the link down (or ended the transport), if any. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /**
   * First connection. Rejects (and leaves nothing running) if it fails, is aborted or times out;
   * there is no retry before the first success.
   */
  protected async _start(options: WaitOptions): Promise<void> {
    this._setStatus('connecting');
    try {
      await this.#attempt(options.signal, options.timeout ?? this.#attemptTimeout);
    } catch (err) {
      const e = toError(err);
      this.#lastError = e;
      this.#closing = true;
      this._setStatus('closed', e);
      throw e;
    }
  }

  async #attempt(userSignal: AbortSignal | undefined, timeout: number): Promise<void> {
    const ac = new AbortController();
    this.#attemptAbort = ac;
    const onUserAbort = (): void => ac.abort(abortReason(userSignal!));
    if (userSignal) {
      if (userSignal.aborted) onUserAbort();
      else userSignal.addEventListener('abort', onUserAbort, { once: true });
    }
    const timer = this.#clock.setTimeout(
      () => ac.abort(new TimeoutError(`connection attempt timed out after ${timeout} ms`)),
      timeout,
    );
    this.#attemptTimer = timer;
    let link: StreamLink | undefined;
    try {
      link = await this.#connect(this.#serviceAddress, ac.signal);
      // Inbound stanzas get the same size bound as outbound ones, checked before a tree exists.
      link.configure({ maxStanzaBytes: this.maxStanzaBytes, maxDepth: this.#maxDepth });
      await this._negotiate(link, ac.signal);
    } catch (err) {
      if (link) void link.close(0);
      throw err;
    } finally {
      timer.cancel();
      userSignal?.removeEventListener('abort', onUserAbort);
      if (this.#attemptAbort === ac) this.#attemptAbort = undefined;
      if (this.#attemptTimer === timer) this.#attemptTimer = undefined;
    }
    if (this.#closing) {
      void link.close(0);
      throw new ClosedError('transport closed while connecting');
    }
    this.#link = link;
    const current = link;
    link.goOnline(
      (el) => this._emitStanza(el),
      (err) => this.#onDown(current, err),
    );
    if (this.#link === link) this._setStatus('online');
  }

  #onDown(link: StreamLink, err: Error): void {
    if (this.#link !== link) return;
    this.#link = undefined;
    this.#lastError = err;
    if (this.#closing) return;
    if (!this.#backoff || isFatalWhenOnline(err)) {
      this._logger.error(`connection lost for good: ${err.message}`);
      this.#closing = true;
      this._setStatus('closed', err);
      return;
    }
    this._logger.warn(`connection lost: ${err.message}; reconnecting`);
    this._setStatus('reconnecting', err);
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    const delay = this.#backoff!.next();
    this._logger.debug(`reconnect attempt ${this.#backoff!.attempt} in ${delay} ms`);
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#retry();
    }, delay);
  }

  async #retry(): Promise<void> {
    if (this.#closing) return;
    try {
      await this.#attempt(undefined, this.#attemptTimeout);
      this.#backoff!.reset();
      this._logger.info('reconnected');
    } catch (err) {
      if (this.#closing) return;
      const e = toError(err);
      this.#lastError = e;
      if (isFatalOnReconnect(e) || !this.#backoff!.policy.canRetry(this.#backoff!.attempt)) {
        this._logger.error(`reconnect failed for good: ${e.message}`);
        this.#closing = true;
        this._setStatus('closed', e);
        return;
      }
      this._logger.warn(`reconnect attempt failed: ${e.message}`);
      this.#scheduleRetry();
    }
  }

  /** Serialises with a size check; oversized stanzas would make the server kill the stream. */
  #serialize(stanza: Element): string {
    // Depth is refused here, never sent: ejabberd 23.01 crashes on stanzas ~5,000 levels deep.
    const s = serializeElement(stanza, this.#serializeOptions);
    // UTF-8 needs at most 3 bytes per UTF-16 unit: skip the exact count for typical stanzas.
    if (s.length * 3 > this.maxStanzaBytes) {
      const bytes = Buffer.byteLength(s, 'utf8');
      if (bytes > this.maxStanzaBytes) {
        throw new PayloadTooLargeError(
          bytes,
          this.maxStanzaBytes,
          `stanza of ${bytes} bytes exceeds the link's limit of ${this.maxStanzaBytes}`,
        );
      }
    }
    return s;
  }

  override send(stanza: Element, options?: SendOptions): Promise<void> {
    // Hot path: online with nothing queued → serialise and hand to the socket synchronously
    // (nothing stays in flight, so drain() semantics hold).
    const link = this.#link;
    if (link !== undefined && this.status === 'online' && this.pendingSends === 0 && !options?.signal?.aborted) {
      try {
        // Backpressure: above the socket's high-water mark the promise waits for 'drain', so
        // a sender that awaits send() cannot grow Node's write buffer without bound.
        if (!link.write(this.#serialize(stanza))) return link.drained();
      } catch (err) {
        return Promise.reject(err);
      }
      return RESOLVED;
    }
    if (this.status !== 'closed') {
      try {
        // Refuse oversized stanzas before they wait in the queue; the text is kept for _write.
        this.#serialized.set(stanza, this.#serialize(stanza));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return super.send(stanza, options);
  }

  protected _write(stanza: Element): Promise<void> {
    const link = this.#link;
    if (!link) return Promise.reject(new ConnectionError('not connected'));
    let text = this.#serialized.get(stanza);
    if (text === undefined) text = this.#serialize(stanza);
    else this.#serialized.delete(stanza);
    return link.write(text) ? RESOLVED : link.drained();
  }

  protected async _close(): Promise<void> {
    this.#closing = true;
    this.#retryTimer?.cancel();
    this.#retryTimer = undefined;
    this.#attemptAbort?.abort(new ClosedError('transport closed'));
    // The aborted attempt unwinds on its own; its deadline must not outlive close().
    this.#attemptTimer?.cancel();
    const link = this.#link;
    this.#link = undefined;
    if (link) await link.close(this.#closeGraceMs);
  }
}
