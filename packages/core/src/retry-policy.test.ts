import { describe, expect, it } from 'vitest';
import { ConfigError } from '@xmppbus/core';
import { Backoff, DEFAULT_RECONNECT } from './backoff.js';

function schedule(b: Backoff, n: number): number[] {
  return Array.from({ length: n }, () => b.next());
}

describe('Backoff', () => {
  it('grows exponentially from initialDelayMs and caps at maxDelayMs (no jitter)', () => {
    const b = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0 });
    expect(schedule(b, 7)).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect(b.attempt).toBe(7);
  });

  it('defaults: 200 ms, ×2, 30 s cap, jitter 0.5', () => {
    expect(DEFAULT_RECONNECT).toEqual({ initialDelayMs: 200, maxDelayMs: 30_000, factor: 2, jitter: 0.5 });
    // random() = 0 → the top of the jitter window, i.e. the base itself.
    const top = new Backoff({}, () => 0);
    expect(schedule(top, 10)).toEqual([200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000]);
    // random() → 1 → the bottom of the window: base·(1 − 0.5).
    const bottom = new Backoff({}, () => 0.999_999_9);
    expect(schedule(bottom, 3)).toEqual([100, 200, 400]);
  });

  it('jitter draws uniformly from [base·(1−jitter), base]', () => {
    const draws = [0, 0.25, 0.5, 0.75];
    let i = 0;
    const b = new Backoff({ initialDelayMs: 1000, maxDelayMs: 1000, jitter: 0.4 }, () => draws[i++ % draws.length]!);
    expect(schedule(b, 4)).toEqual([1000, 900, 800, 700]);
  });

  it('full jitter (1) can go down to zero', () => {
    const b = new Backoff({ initialDelayMs: 500, jitter: 1 }, () => 0.999_999_99);
    expect(b.next()).toBe(0);
  });

  it('reset() starts the schedule again', () => {
    const b = new Backoff({ initialDelayMs: 10, jitter: 0 });
    schedule(b, 5);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(10);
  });

  it('never overflows on very long outages', () => {
    const b = new Backoff({ initialDelayMs: 1, maxDelayMs: 5000, factor: 10, jitter: 0 });
    const s = schedule(b, 2000);
    expect(s.at(-1)).toBe(5000);
    expect(s.every((d) => Number.isFinite(d) && d >= 0 && d <= 5000)).toBe(true);
  });

  it('rejects nonsense options with ConfigError', () => {
    expect(() => new Backoff({ initialDelayMs: -1 })).toThrow(ConfigError);
    expect(() => new Backoff({ initialDelayMs: 100, maxDelayMs: 50 })).toThrow(ConfigError);
    expect(new Backoff({ initialDelayMs: 60_000 }).options.maxDelayMs).toBe(60_000);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(ConfigError);
    expect(() => new Backoff({ jitter: 2 })).toThrow(ConfigError);
    expect(() => new Backoff({ jitter: Number.NaN })).toThrow(ConfigError);
  });
});
