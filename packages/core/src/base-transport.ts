/**
 * Shared machinery of concrete transports: listener lists, the bounded send queue, status
 * bookkeeping and drain. Subclasses implement `_write` (hand one stanza to the socket) and
 * `_close` (tear the link down), and call `_setStatus` / `_emitStanza`.
 */
import { abortReason, deferred, withAbort, type Deferred, type WaitOptions } from './abort.js';
import { ClosedError, ConnectionError, QueueFullError, toError } from './errors.js';
import type { SendOptions, StanzaListener, StatusListener, Transport, TransportStatus } from './transport.js';
import type { Element } from './xml.js';

interface QueuedSend {
  stanza: Element;
  done: Deferred<void>;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export interface BaseTransportOptions {
  /** Max stanzas queued or in flight before `send` rejects with QueueFullError (default 10 000). */
  maxQueue?: number;
  /** Largest stanza the server accepts (bytes). */
  maxStanzaBytes?: number;
  /** Called when a stanza listener throws (the transport keeps going). */
  onListenerError?: (err: Error) => void;
}

export abstract class BaseTransport implements Transport {
  abstract readonly address: string;
  readonly maxStanzaBytes: number;
  readonly #maxQueue: number;
  #status: TransportStatus = 'idle';
  #stanzaListeners: StanzaListener[] = [];
  #statusListeners: StatusListener[] = [];
  #queue: QueuedSend[] = [];
  #inFlight = 0;
  #drainWaiters: Deferred<void>[] = [];
  readonly #onListenerError: ((err: Error) => void) | undefined;

  protected constructor(options: BaseTransportOptions = {}) {
    this.#maxQueue = options.maxQueue ?? 10_000;
    this.maxStanzaBytes = options.maxStanzaBytes ?? 256 * 1024;
    this.#onListenerError = options.onListenerError;
  }

  get status(): TransportStatus {
    return this.#status;
  }

  /** Stanzas waiting for the link plus writes not yet confirmed. */
  get pendingSends(): number {
    return this.#queue.length + this.#inFlight;
  }

  protected abstract _write(stanza: Element): Promise<void>;
  protected abstract _close(): Promise<void>;

  send(stanza: Element, options?: SendOptions): Promise<void> {
    if (this.#status === 'closed') return Promise.reject(new ClosedError('transport is closed'));
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.#queue.length + this.#inFlight >= this.#maxQueue) {
      return Promise.reject(new QueueFullError(this.#maxQueue, `send queue full (${this.#maxQueue} stanzas)`));
    }
    if (this.#status === 'online' && this.#queue.length === 0) return this.#write(stanza);
    const done = deferred<void>();
    const entry: QueuedSend = { stanza, done, signal, onAbort: undefined };
    if (signal) {
      entry.onAbort = () => {
        const i = this.#queue.indexOf(entry);
        if (i >= 0) {
          this.#queue.splice(i, 1);
          done.reject(abortReason(signal));
          this.#checkDrained();
        }
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
    }
    this.#queue.push(entry);
    return done.promise;
  }

  #write(stanza: Element): Promise<void> {
    this.#inFlight++;
    let p: Promise<void>;
    try {
      p = this._write(stanza);
    } catch (err) {
      p = Promise.reject(err);
    }
    return p.then(
      () => {
        this.#inFlight--;
        this.#checkDrained();
      },
      (err: unknown) => {
        this.#inFlight--;
        this.#checkDrained();
        throw err instanceof ClosedError || err instanceof ConnectionError
          ? err
          : new ConnectionError(`write failed: ${toError(err).message}`, { cause: err });
      },
    );
  }

  #flush(): void {
    while (this.#queue.length > 0 && this.#status === 'online') {
      const entry = this.#queue.shift()!;
      if (entry.onAbort) entry.signal?.removeEventListener('abort', entry.onAbort);
      this.#write(entry.stanza).then(entry.done.resolve, entry.done.reject);
    }
  }

  #checkDrained(): void {
    if (this.#queue.length === 0 && this.#inFlight === 0 && this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const w of waiters) w.resolve();
    }
  }

  onStanza(listener: StanzaListener): () => void {
    this.#stanzaListeners = [...this.#stanzaListeners, listener];
    return () => {
      this.#stanzaListeners = this.#stanzaListeners.filter((l) => l !== listener);
    };
  }

  onStatus(listener: StatusListener): () => void {
    this.#statusListeners = [...this.#statusListeners, listener];
    return () => {
      this.#statusListeners = this.#statusListeners.filter((l) => l !== listener);
    };
  }

  /** Delivers an inbound stanza to every listener; a throwing listener never stops the others. */
  protected _emitStanza(stanza: Element): void {
    const listeners = this.#stanzaListeners;
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i]!(stanza);
      } catch (err) {
        this.#onListenerError?.(toError(err));
      }
    }
  }

  protected _setStatus(status: TransportStatus, error?: Error): void {
    if (this.#status === 'closed' || this.#status === status) return;
    this.#status = status;
    if (status === 'online') this.#flush();
    if (status === 'closed') {
      const queued = this.#queue;
      this.#queue = [];
      for (const q of queued) {
        if (q.onAbort) q.signal?.removeEventListener('abort', q.onAbort);
        q.done.reject(new ClosedError('transport closed before the stanza was sent', { cause: error }));
      }
      this.#checkDrained();
    }
    for (const l of this.#statusListeners) {
      try {
        l(status, error);
      } catch (err) {
        this.#onListenerError?.(toError(err));
      }
    }
  }

  drain(options: WaitOptions = {}): Promise<void> {
    if (this.#queue.length === 0 && this.#inFlight === 0) return Promise.resolve();
    const d = deferred<void>();
    this.#drainWaiters.push(d);
    return withAbort(d.promise, options, 'drain').finally(() => {
      const i = this.#drainWaiters.indexOf(d);
      if (i >= 0) this.#drainWaiters.splice(i, 1);
    });
  }

  async close(): Promise<void> {
    if (this.#status === 'closed') return;
    try {
      await this._close();
    } finally {
      this._setStatus('closed');
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Resolves when the transport reaches `status` (immediately if it already has). */
export function waitForStatus(transport: Transport, status: TransportStatus, options: WaitOptions = {}): Promise<void> {
  if (transport.status === status) return Promise.resolve();
  const d = deferred<void>();
  const off = transport.onStatus((s, err) => {
    if (s === status) d.resolve();
    else if (s === 'closed')
      d.reject(new ClosedError(`transport closed while waiting for '${status}'`, { cause: err }));
  });
  return withAbort(d.promise, options, `waiting for '${status}'`).finally(off);
}
