import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock, systemClock } from '@xmppbus/core';

describe('ManualClock', () => {
  it('fires due timers in time order, ties in scheduling order, and only when advanced', () => {
    const clock = new ManualClock(1_000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`z@${clock.now()}`), -5); // negative = 0
    expect(fired).toEqual([]);
    expect(clock.pending).toBe(4);
    clock.advance(0);
    expect(fired).toEqual(['z@1000']);
    clock.advance(20);
    expect(fired).toEqual(['z@1000', 'a@1010', 'b@1010']);
    expect(clock.now()).toBe(1_020);
    clock.advance(10);
    expect(fired).toEqual(['z@1000', 'a@1010', 'b@1010', 'c@1030']);
    expect(clock.pending).toBe(0);
  });

  it('runs timers scheduled while firing if they fall due within the same advance', () => {
    const clock = new ManualClock();
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now());
      clock.setTimeout(() => fired.push(clock.now()), 5); // due at 15
      clock.setTimeout(() => fired.push(clock.now()), 50); // due at 60
    }, 10);
    clock.advance(20);
    expect(fired).toEqual([10, 15]);
    expect(clock.pending).toBe(1);
    clock.advance(40);
    expect(fired).toEqual([10, 15, 60]);
  });

  it('cancel() stops a timer, also from inside another timer due at the same time', () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    const t1 = clock.setTimeout(() => fired.push('t1'), 10);
    clock.setTimeout(() => {
      fired.push('t2');
      t3.cancel();
    }, 20);
    const t3 = clock.setTimeout(() => fired.push('t3'), 20);
    t1.cancel();
    t1.cancel(); // idempotent
    expect(clock.pending).toBe(2);
    clock.advance(100);
    expect(fired).toEqual(['t2']);
    expect(clock.pending).toBe(0);
  });
});

describe('systemClock', () => {
  it('tells the time and its timers can be cancelled', async () => {
    const before = Date.now();
    expect(systemClock.now()).toBeGreaterThanOrEqual(before);
    let cancelledFired = false;
    systemClock.setTimeout(() => (cancelledFired = true), 1).cancel();
    await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 5));
    expect(cancelledFired).toBe(false);
  });
});

describe('systemClock beyond the timer range (2^31 − 1 ms)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires a far-future timer when due, not at once (the timer range is waited in steps)', () => {
    vi.useFakeTimers({ now: 0 }); // the fake timers, like Node, fire an overflowing delay after 1 ms
    const fired: number[] = [];
    const ms = 30 * 24 * 3600_000; // 30 days, beyond the 24.8 days a timer holds
    systemClock.setTimeout(() => fired.push(Date.now()), ms);
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(ms - 2 ** 31);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([ms]);
  });

  it('cancels a far-future timer, also after its first step', () => {
    vi.useFakeTimers({ now: 0 });
    let fired = false;
    const t = systemClock.setTimeout(() => (fired = true), 2 ** 33);
    vi.advanceTimersByTime(2 ** 31);
    t.cancel();
    vi.advanceTimersByTime(2 ** 34);
    expect(fired).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sets no overflowing Node timer (no TimeoutOverflowWarning)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      systemClock.setTimeout(() => undefined, 2 ** 40).cancel();
      // Node emits the warning on the next tick; a macrotask later it would have been seen.
      await new Promise<void>((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });
});
