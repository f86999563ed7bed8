import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { RetryPolicy, type Backoff, type RetryOptions } from './retry-policy.js';

function backoff(options: RetryOptions = {}, random?: () => number): Backoff {
  return new RetryPolicy(options, {}, random).backoff();
}

function schedule(b: Backoff, n: number): number[] {
  return Array.from({ length: n }, () => b.next());
}

describe('RetryPolicy / Backoff', () => {
  it('grows exponentially from initialDelay and caps at maxDelay (no jitter)', () => {
    const b = backoff({ initialDelay: 100, maxDelay: 1000, factor: 2, jitter: 0 });
    expect(schedule(b, 7)).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect(b.attempt).toBe(7);
  });

  it('defaults: 200 ms, ×2, 30 s cap, jitter 0.5, unbounded attempts', () => {
    expect(new RetryPolicy().options).toEqual({
      attempts: Infinity,
      initialDelay: 200,
      maxDelay: 30_000,
      factor: 2,
      jitter: 0.5,
    });
    // random() = 0 → the top of the jitter window, i.e. the base itself.
    const top = backoff({}, () => 0);
    expect(schedule(top, 10)).toEqual([200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000]);
    // random() → 1 → the bottom of the window: base·(1 − 0.5).
    const bottom = backoff({}, () => 0.999_999_9);
    expect(schedule(bottom, 3)).toEqual([100, 200, 400]);
  });

  it("the caller's defaults apply under the user's options", () => {
    const p = new RetryPolicy({ factor: 3 }, { initialDelay: 50, maxDelay: 400, jitter: 0 });
    expect(schedule(p.backoff(), 4)).toEqual([50, 150, 400, 400]);
  });

  it('jitter draws uniformly from [base·(1−jitter), base]', () => {
    const draws = [0, 0.25, 0.5, 0.75];
    let i = 0;
    const b = backoff({ initialDelay: 1000, maxDelay: 1000, jitter: 0.4 }, () => draws[i++ % draws.length]!);
    expect(schedule(b, 4)).toEqual([1000, 900, 800, 700]);
  });

  it('full jitter (1) can go down to zero', () => {
    const b = backoff({ initialDelay: 500, jitter: 1 }, () => 0.999_999_99);
    expect(b.next()).toBe(0);
  });

  it('reset() starts the schedule again', () => {
    const b = backoff({ initialDelay: 10, jitter: 0 });
    schedule(b, 5);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(10);
  });

  it('never overflows on very long outages', () => {
    const b = backoff({ initialDelay: 1, maxDelay: 5000, factor: 10, jitter: 0 });
    const s = schedule(b, 2000);
    expect(s.at(-1)).toBe(5000);
    expect(s.every((d) => Number.isFinite(d) && d >= 0 && d <= 5000)).toBe(true);
  });

  it('canRetry() counts attempts, the first included', () => {
    const p = new RetryPolicy({ attempts: 3 });
    expect([0, 1, 2, 3, 4].map((n) => p.canRetry(n))).toEqual([true, true, true, false, false]);
    expect(new RetryPolicy().canRetry(1e9)).toBe(true);
  });

  it('rejects nonsense options with ConfigError naming the option', () => {
    expect(() => new RetryPolicy({ initialDelay: -1 })).toThrow(ConfigError);
    expect(() => new RetryPolicy({ initialDelay: 100, maxDelay: 50 })).toThrow(ConfigError);
    expect(new RetryPolicy({ initialDelay: 60_000 }).maxDelay).toBe(60_000);
    expect(() => new RetryPolicy({ factor: 0.5 })).toThrow(ConfigError);
    expect(() => new RetryPolicy({ jitter: 2 })).toThrow(ConfigError);
    expect(() => new RetryPolicy({ jitter: Number.NaN })).toThrow(ConfigError);
    expect(() => new RetryPolicy({ attempts: 0 })).toThrow(ConfigError);
    expect(() => new RetryPolicy({ attempts: 1.5 })).toThrow(ConfigError);
    expect(() => new RetryPolicy({ jitter: 2 }, {}, Math.random, 'reconnect')).toThrow(/^reconnect\.jitter/);
  });
});
