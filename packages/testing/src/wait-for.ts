/**
 * The one `waitFor` of the test suites: resolves as soon as `condition` holds and fails with a
 * message naming what was awaited. Two bounds:
 * - `timeout` (ms, default 10 000): for state that changes with real I/O (servers, sockets);
 * - `turns`: for in-process work only (memory hub, duplex pairs, a ManualClock), the condition is
 *   checked after each turn of the event loop (`setImmediate`, so pending I/O callbacks run first)
 *   and fails after that many turns — no wall-clock time decides the outcome.
 * Prefer awaiting the event itself where the code exposes one.
 */
export interface WaitForOptions {
  /** Give up after this many ms (default 10 000). Ignored when `turns` is given. */
  timeout?: number;
  /** Give up after this many event-loop turns instead of a time. */
  turns?: number;
  /** What is awaited, for the failure message. */
  what?: string;
}

export async function waitFor(condition: () => boolean, options: WaitForOptions = {}): Promise<void> {
  const what = options.what ?? 'condition';
  if (options.turns !== undefined) {
    for (let i = 0; i < options.turns; i++) {
      if (condition()) return;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (condition()) return;
    throw new Error(`waitFor: ${what} not met within ${options.turns} event-loop turns`);
  }
  const timeout = options.timeout ?? 10_000;
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > timeout) throw new Error(`waitFor: ${what} not met within ${timeout} ms`);
    // A short timer rather than setImmediate: real I/O needs time to arrive, and this avoids a busy loop.
    await new Promise<void>((resolve) => setTimeout(resolve, 2));
  }
}
