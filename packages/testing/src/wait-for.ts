/**
 * The one `waitFor` of the test suites: resolves as soon as `condition` holds, checking after
 * every turn of the event loop's I/O phase (no fixed sleep decides the outcome), and fails with
 * a message naming what was awaited once `timeout` ms pass. Prefer awaiting the event itself
 * where the code exposes one; use this for state observed from outside.
 */
export interface WaitForOptions {
  /** Give up after this many ms (default 10 000). */
  timeout?: number;
  /** What is awaited, for the failure message. */
  what?: string;
}

export async function waitFor(condition: () => boolean, options: WaitForOptions = {}): Promise<void> {
  const timeout = options.timeout ?? 10_000;
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > timeout)
      throw new Error(`waitFor: ${options.what ?? 'condition'} not met within ${timeout} ms`);
    // setImmediate lets pending I/O callbacks run first; a short timer avoids a busy loop.
    await new Promise<void>((resolve) => setTimeout(resolve, 2));
  }
}
