import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { AbortError, TimeoutError, XmppBusError } from './errors.js';

export interface WaitOptions {
  signal?: AbortSignal | undefined;
  /** Milliseconds; no timer is set when absent. */
  timeout?: number | undefined;
}

/** The error to reject with when `signal` fired: its reason if it is an Error, else an AbortError. */
export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof XmppBusError) return r;
  // AbortSignal.timeout(ms): a DOMException named TimeoutError. Its text names no duration.
  if (r instanceof Error && r.name === 'TimeoutError')
    return new TimeoutError(`aborted by the signal's timeout (${r.message})`, { cause: r });
  if (r instanceof Error && r.name !== 'AbortError') return r;
  return new AbortError('operation aborted', { cause: r });
}

/**
 * Waits for `promise`, rejecting early if `signal` aborts or `timeout` ms pass. The timer and
 * the abort listener are always removed, whichever way it ends.
 */
export function withAbort<T>(
  promise: Promise<T>,
  options: WaitOptions,
  what = 'operation',
  clock: Clock = systemClock,
): Promise<T> {
  const { signal, timeout } = options;
  if (!signal && timeout === undefined) return promise;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    let timer: TimerHandle | undefined;
    const onAbort = (): void => {
      cleanup();
      reject(abortReason(signal!));
    };
    const cleanup = (): void => {
      timer?.cancel();
      signal?.removeEventListener('abort', onAbort);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeout !== undefined) {
      timer = clock.setTimeout(() => {
        cleanup();
        reject(new TimeoutError(`${what} timed out after ${timeout} ms`));
      }, timeout);
    }
    promise.then(
      (v) => {
        cleanup();
        resolve(v);
      },
      (e: unknown) => {
        cleanup();
        reject(e);
      },
    );
  });
}

/** A promise plus its resolvers (Node 20 has no Promise.withResolvers). */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
