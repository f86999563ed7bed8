// Shared output of every benchmark: a printed table and benchmarks/results/<name>.json.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

export interface BenchResult {
  name: string;
  /** Server(s) the numbers came from, or 'none' for pure in-process suites. */
  server: string;
  metrics: Record<string, unknown>;
  ratios: Record<string, unknown>;
}

export function writeResult(result: BenchResult): string {
  const dir = new URL('../results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const file = new URL(`${result.name}.json`, dir);
  const body = {
    name: result.name,
    server: result.server,
    node: process.version,
    date: new Date().toISOString(),
    metrics: result.metrics,
    ratios: result.ratios,
  };
  writeFileSync(file, JSON.stringify(body, null, 2) + '\n');
  return file.pathname;
}

/** Prints rows as an aligned table. */
export function printTable(title: string, rows: Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  const fmt = (v: string | number): string =>
    typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : v;
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => fmt(r[c] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\n${title}\n${line(cols)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(line(cols.map((c) => fmt(r[c] ?? ''))) + '\n');
}

/** CPU time (µs) a process has used so far, from /proc/<pid>/stat (utime+stime); undefined if unreadable. */
export function processCpuUs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1e6) / 100;
  } catch {
    return undefined;
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
