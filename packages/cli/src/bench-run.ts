/**
 * The benchmark loop of `xmppbus bench`: `concurrency` workers run operations until `count` are
 * done or `duration` has passed, a progress bar on a TTY, then throughput and latency
 * percentiles. Each operation is timed from its start until the workload says it completed.
 */
import cliProgress from 'cli-progress';
import type { Output } from './output.js';

export interface BenchOptions {
  /** Operations at most. */
  count: number;
  /** Wall time at most, ms. */
  duration: number;
  /** Operations in flight at once. */
  concurrency: number;
  signal: AbortSignal;
}

export interface BenchResult {
  name: string;
  ops: number;
  errors: number;
  seconds: number;
  /** Operations per second. */
  throughput: number;
  /** Latency percentiles and maximum, ms. */
  p50: number;
  p99: number;
  max: number;
  /** The first error seen, when there were any. */
  firstError?: string;
}

/** Runs `op` (given its index) under the bounds; `op` resolves when the operation completed. */
export async function runBench(
  name: string,
  out: Output,
  options: BenchOptions,
  op: (i: number) => Promise<void>,
): Promise<BenchResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const bar = out.interactive
    ? new cliProgress.SingleBar(
        {
          stream: out.stderr,
          format: `${name} [{bar}] {percentage}% | {value}/{total} | {duration_formatted}`,
          hideCursor: true,
          clearOnComplete: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(options.count, 0);
  const started = performance.now();
  const deadline = started + options.duration;
  const worker = async (): Promise<void> => {
    while (next < options.count && performance.now() < deadline && !options.signal.aborted) {
      const i = next++;
      const t0 = performance.now();
      try {
        await op(i);
        latencies.push(performance.now() - t0);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
      bar?.increment();
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, options.count)) }, worker));
  } finally {
    bar?.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const result: BenchResult = {
    name,
    ops: latencies.length,
    errors,
    seconds: round(seconds),
    throughput: round(latencies.length / seconds),
    p50: round(percentile(latencies, 0.5)),
    p99: round(percentile(latencies, 0.99)),
    max: round(latencies[latencies.length - 1] ?? 0),
  };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** The results table of a run. */
export function benchTable(out: Output, r: BenchResult): string {
  const table = out.table(
    ['BENCH', 'OPS', 'ERRORS', 'SECONDS', 'OPS/S', 'P50 MS', 'P99 MS', 'MAX MS'],
    [[r.name, r.ops, r.errors, r.seconds, r.throughput, r.p50, r.p99, r.max]],
  );
  return r.firstError === undefined ? table : `${table}\n${out.c.yellow(`first error: ${r.firstError}`)}`;
}
