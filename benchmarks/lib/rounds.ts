// Helpers of the alternating-rounds method (benchmarks/README.md "Method"): the order of the
// contenders in each round (balanced Latin square), the outside CPU load of a round from
// /proc/stat, and medians over the rounds that were not disturbed.
import { readFileSync } from 'node:fs';

/**
 * Row `round` of a balanced Latin square (Williams design) over `n` contenders: over n rounds
 * (2n for odd n) each contender takes each position once and follows every other one once, so
 * none always goes first or always runs right after the same neighbour.
 */
export function williamsOrder(n: number, round: number): number[] {
  if (n <= 0) return [];
  const first: number[] = [0];
  for (let lo = 1, hi = n - 1; first.length < n;) {
    first.push(lo++);
    if (first.length < n) first.push(hi--);
  }
  const row = first.map((k) => (k + round) % n);
  // Odd n: a single square balances positions but not neighbours; every other row is mirrored.
  if (n % 2 === 1 && Math.floor(round / n) % 2 === 1) row.reverse();
  return row;
}

export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface MachineCpu {
  /** Busy time of all cores: user+nice+system+irq+softirq+steal (µs). */
  busy: number;
  /** Hypervisor steal time (µs). */
  steal: number;
}

/** Parses the aggregate `cpu` line of /proc/stat (ticks of 10 ms) into µs. */
export function parseProcStat(text: string): MachineCpu | undefined {
  const line = text.split('\n', 1)[0] ?? '';
  if (!line.startsWith('cpu ')) return undefined;
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is already in user)
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const tick = (i: number): number => f[i] ?? 0;
  const toUs = (ticks: number): number => (ticks * 1e6) / 100;
  return { busy: toUs(tick(0) + tick(1) + tick(2) + tick(5) + tick(6) + tick(7)), steal: toUs(tick(7)) };
}

/** Machine-wide CPU time so far; undefined where /proc/stat is unreadable. */
export function machineCpuUs(): MachineCpu | undefined {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * CPU used by everything but the measured processes, in cores, over `wallMs`: machine busy time
 * minus the CPU of `ours` (this process, brokers, servers). Not clipped at 0: a small negative
 * value shows the tick-accounting error of the counters.
 */
export function outsideLoadCores(
  machine0: MachineCpu | undefined,
  machine1: MachineCpu | undefined,
  oursUs: number | undefined,
  wallMs: number,
): { outside: number; steal: number } | undefined {
  if (!machine0 || !machine1 || oursUs === undefined || wallMs <= 0) return undefined;
  const wallUs = wallMs * 1000;
  return {
    outside: (machine1.busy - machine0.busy - oursUs) / wallUs,
    steal: (machine1.steal - machine0.steal) / wallUs,
  };
}

/** Which rounds feed the medians: the unflagged ones when at least `minClean` remain, else all. */
export function roundsToUse<R extends { flagged: boolean }>(
  rounds: readonly R[],
  minClean: number,
): { used: R[]; rule: string } {
  const clean = rounds.filter((r) => !r.flagged);
  if (clean.length >= minClean || clean.length === rounds.length)
    return { used: clean, rule: `medians of ${clean.length}/${rounds.length} unflagged rounds` };
  return {
    used: [...rounds],
    rule: `medians of all ${rounds.length} rounds (only ${clean.length} unflagged)`,
  };
}

/** The median of `f` over `items`, leaving out undefined and NaN; undefined where none had a number. */
export function medianBy<T>(items: readonly T[], f: (item: T) => number | undefined): number | undefined {
  const xs: number[] = [];
  for (const item of items) {
    const x = f(item);
    if (typeof x === 'number' && !Number.isNaN(x)) xs.push(x);
  }
  return xs.length === 0 ? undefined : median(xs);
}

/** The median of `key` over rounds for each contender, undefined where no round had a number. */
export function medianOf<T extends Record<string, number | undefined>>(
  samples: readonly (T | undefined)[],
  key: keyof T,
): number | undefined {
  return medianBy(samples, (s) => s?.[key]);
}

/**
 * A closed loop: keeps `inFlight` calls outstanding for `ms` (each completion starts the next
 * while time is left), then lets the last ones finish. Resolves with the calls completed; rejects
 * with the first failure.
 */
export function keepInFlight(call: () => Promise<unknown>, inFlight: number, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const until = performance.now() + ms;
    let done = 0;
    let active = 0;
    const launch = (): void => {
      active++;
      call().then(
        () => {
          active--;
          done++;
          if (performance.now() < until) launch();
          else if (active === 0) resolve(done);
        },
        (err: unknown) => reject(err as Error),
      );
    };
    for (let i = 0; i < inFlight; i++) launch();
  });
}
