import { describe, expect, it } from 'vitest';
import {
  keepInFlight,
  median,
  medianBy,
  medianOf,
  outsideLoadCores,
  parseProcStat,
  roundsToUse,
  williamsOrder,
} from '../../benchmarks/lib/rounds.js';

/** Over `rows` rounds: how often each contender stands at each position, and follows each other one. */
function balance(n: number, rows: number): { positions: number[][]; follows: number[][] } {
  const positions = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const follows = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let r = 0; r < rows; r++) {
    const row = williamsOrder(n, r);
    expect([...row].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    row.forEach((k, pos) => positions[k]![pos]!++);
    for (let i = 1; i < n; i++) follows[row[i - 1]!]![row[i]!]!++;
  }
  return { positions, follows };
}

describe('williamsOrder', () => {
  it('even n: over n rounds every contender takes every position once and follows every other one once', () => {
    for (const n of [2, 4, 6]) {
      const { positions, follows } = balance(n, n);
      for (const row of positions) expect(row).toEqual(new Array(n).fill(1));
      for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) expect(follows[a]![b]).toBe(a === b ? 0 : 1);
    }
  });

  it('odd n: over 2n rounds each position twice and each ordered pair twice', () => {
    for (const n of [3, 5]) {
      const { positions, follows } = balance(n, 2 * n);
      for (const row of positions) expect(row).toEqual(new Array(n).fill(2));
      for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) expect(follows[a]![b]).toBe(a === b ? 0 : 2);
    }
  });

  it('handles the degenerate sizes', () => {
    expect(williamsOrder(0, 3)).toEqual([]);
    expect(williamsOrder(1, 5)).toEqual([0]);
  });
});

describe('median and medianOf', () => {
  it('takes the middle value, or the mean of the two middle ones, ignoring NaN', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([NaN, 5])).toBe(5);
    expect(median([])).toBeNaN();
  });

  it('medianBy takes the median of a derived value, leaving out undefined and NaN', () => {
    const rows = [
      { ops: 10, ms: 2 },
      { ops: 0, ms: 0 },
      { ops: 30, ms: 2 },
      { ops: 20, ms: 2 },
    ];
    expect(medianBy(rows, (r) => (r.ms > 0 ? r.ops / r.ms : undefined))).toBe(10);
    expect(medianBy(rows, () => NaN)).toBeUndefined();
    expect(medianBy([], () => 1)).toBeUndefined();
  });

  it('medianOf skips rounds without the key and is undefined when none has it', () => {
    const samples = [{ a: 1, b: undefined }, undefined, { a: 5, b: undefined }, { a: 3, b: undefined }];
    expect(medianOf(samples, 'a')).toBe(3);
    expect(medianOf(samples, 'b')).toBeUndefined();
  });
});

describe('outside load', () => {
  it('parses the aggregate cpu line of /proc/stat (ticks of 10 ms) into busy and steal µs', () => {
    // user nice system idle iowait irq softirq steal guest guest_nice
    const m = parseProcStat('cpu  100 5 20 900 7 1 2 3 0 0\ncpu0 1 2 3\n');
    expect(m).toEqual({ busy: (100 + 5 + 20 + 1 + 2 + 3) * 10_000, steal: 30_000 });
    expect(parseProcStat('intr 1 2 3')).toBeUndefined();
  });

  it('is the machine busy time minus ours, per core-second of wall time', () => {
    const load = outsideLoadCores({ busy: 0, steal: 0 }, { busy: 1_500_000, steal: 100_000 }, 1_000_000, 1_000);
    expect(load).toEqual({ outside: 0.5, steal: 0.1 });
    expect(outsideLoadCores(undefined, { busy: 1, steal: 0 }, 0, 1000)).toBeUndefined();
    expect(outsideLoadCores({ busy: 0, steal: 0 }, { busy: 1, steal: 0 }, undefined, 1000)).toBeUndefined();
  });
});

describe('roundsToUse', () => {
  const r = (flagged: boolean, id: number) => ({ flagged, id });

  it('uses the unflagged rounds when enough remain', () => {
    const { used, rule } = roundsToUse([r(false, 0), r(true, 1), r(false, 2), r(false, 3)], 3);
    expect(used.map((x) => x.id)).toEqual([0, 2, 3]);
    expect(rule).toContain('3/4 unflagged');
  });

  it('falls back to all rounds when too few are clean, and says so', () => {
    const { used, rule } = roundsToUse([r(true, 0), r(false, 1), r(true, 2)], 3);
    expect(used.map((x) => x.id)).toEqual([0, 1, 2]);
    expect(rule).toContain('only 1 unflagged');
  });
});

describe('keepInFlight', () => {
  it('keeps exactly inFlight calls outstanding and waits for the last before resolving', async () => {
    let active = 0;
    let peak = 0;
    const call = async (): Promise<void> => {
      peak = Math.max(peak, ++active);
      await Promise.resolve();
      active--;
    };
    // A budget of 0 ms: the first wave starts, nothing more is launched, all of it is counted.
    expect(await keepInFlight(call, 7, 0)).toBe(7);
    expect(peak).toBe(7);
    expect(active).toBe(0);
  });

  it('rejects with the first failure', async () => {
    const boom = new Error('boom');
    await expect(keepInFlight(() => Promise.reject(boom), 3, 0)).rejects.toBe(boom);
  });
});
