/** Long-running commands (`tail`, `listen`) run until Ctrl-C, a count, or a lost connection. */
import { ConnectionError } from '@xmppbus/core';
import type { Bus } from '@xmppbus/bus';
import { UsageError } from './errors.js';

export interface Live {
  /** Ends the wait (e.g. after `--count` items). */
  stop(): void;
  /** Resolves on stop() or Ctrl-C; rejects with ConnectionError when the bus closes for good. */
  readonly done: Promise<void>;
}

export function live(bus: Bus, signal: AbortSignal): Live {
  let stop!: () => void;
  const done = new Promise<void>((resolve, reject) => {
    const off = bus.onStatus((status, err) => {
      if (status === 'closed') {
        finish();
        reject(new ConnectionError(`connection closed${err ? `: ${err.message}` : ''}`, { cause: err }));
      }
    });
    const onAbort = (): void => {
      finish();
      resolve();
    };
    const finish = (): void => {
      off();
      signal.removeEventListener('abort', onAbort);
    };
    stop = onAbort;
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  // Closing the bus after the command ended rejects too: nobody waits then.
  done.catch(() => undefined);
  return { stop, done };
}

/** A `--count <n>` value: undefined for none, else an integer ≥ 1. */
export function countOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--count must be an integer >= 1, got '${value}'`);
  return n;
}
