/**
 * Opt-in process signal handling: on the first signal the bus drains (bounded) and then
 * closes. Off by default — a library never installs process-wide handlers on its own.
 */
import type { Bus } from './bus.js';

export interface HandleSignalsOptions {
  /** Signals to handle (default `['SIGTERM', 'SIGINT']`). */
  signals?: readonly NodeJS.Signals[];
  /** Bound of the drain, ms (default 10 000); the bus is closed after it either way. */
  drainTimeout?: number;
  /** Called once the bus is closed (e.g. `() => process.exit(0)`); default: nothing. */
  onClosed?: (signal: NodeJS.Signals) => void;
}

/**
 * Drains then closes `bus` on the first of `signals`. Installing a listener replaces Node's
 * default of exiting at once: without `onClosed`, the process exits when nothing else keeps it
 * alive. Returns the remover (also called when the signal arrives).
 */
export function handleSignals(bus: Bus, options: HandleSignalsOptions = {}): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const drainTimeout = options.drainTimeout ?? 10_000;
  let removed = false;
  const remove = (): void => {
    if (removed) return;
    removed = true;
    for (const s of signals) process.off(s, onSignal);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    remove();
    bus.logger.info(`bus: ${signal} received: draining (up to ${drainTimeout} ms), then closing`);
    void (async () => {
      try {
        await bus.drain({ timeout: drainTimeout });
      } catch (err) {
        bus.logger.warn(`bus: drain after ${signal} did not finish; closing anyway`, err);
      }
      await bus.close();
      options.onClosed?.(signal);
    })();
  };
  for (const s of signals) process.on(s, onSignal);
  return remove;
}
