import { ManualClock, type Clock } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import { IotScheduler } from './scheduler.js';

describe('IotScheduler', () => {
  it('runs many deadlines in order on one clock timer, skipping cancelled ones', () => {
    const clock = new ManualClock(0);
    const s = new IotScheduler(clock);
    const fired: number[] = [];
    const tasks = [];
    for (let i = 0; i < 1000; i++) tasks.push(s.at(((i * 7919) % 1000) + 1, () => fired.push(i)));
    expect(clock.pending).toBe(1);
    expect(s.size).toBe(1000);
    tasks[0]!.cancel(); // at 1
    clock.advance(500);
    expect(fired).toHaveLength(499);
    const times = fired.map((i) => ((i * 7919) % 1000) + 1);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    clock.advance(500);
    expect(fired).toHaveLength(999);
    expect(s.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('holds no timer when idle, and a task scheduled while firing runs when due', () => {
    const clock = new ManualClock(0);
    const s = new IotScheduler(clock);
    const fired: string[] = [];
    const t = s.at(10, () => fired.push('a'));
    t.cancel();
    expect(clock.pending).toBe(0);
    s.at(10, () => {
      fired.push('b');
      s.at(10, () => fired.push('c'));
      s.at(30, () => fired.push('d'));
    });
    clock.advance(10);
    expect(fired).toEqual(['b', 'c']);
    clock.advance(20);
    expect(fired).toEqual(['b', 'c', 'd']);
    s.at(5, () => fired.push('e'));
    s.clear();
    clock.advance(100);
    expect(fired).toEqual(['b', 'c', 'd']);
    expect(clock.pending).toBe(0);
  });

  it('a task that re-arms itself at the current time waits for the next timer (never spins in one run)', () => {
    // A clock whose timers run only when the test says so: one call = one timer turn.
    const due: (() => void)[] = [];
    const clock: Clock = {
      now: () => 0,
      setTimeout: (fn) => {
        due.push(fn);
        return { cancel: () => void due.splice(due.indexOf(fn) >>> 0, 1) };
      },
    };
    const s = new IotScheduler(clock);
    let runs = 0;
    const again = (): void => {
      runs++;
      s.at(0, again);
    };
    s.at(0, again);
    due.shift()!();
    expect(runs).toBe(1);
    due.shift()!();
    expect(runs).toBe(2);
    expect(due).toHaveLength(1);
  });

  it('cancelled entries do not pile up: a deadline re-armed on every event holds O(live) memory', () => {
    const clock = new ManualClock(0);
    const s = new IotScheduler(clock);
    const fired: string[] = [];
    s.at(86_400_000, () => fired.push('expiry'));
    let heartbeat = s.at(3_600_000, () => fired.push('stale'));
    for (let t = 1; t <= 10_000; t++) {
      heartbeat.cancel();
      heartbeat = s.at(3_600_000 + t, () => fired.push(`heartbeat ${t}`));
    }
    expect(s.size).toBe(2);
    expect(s._held).toBeLessThanOrEqual(130);
    clock.advance(3_600_000 + 10_000);
    expect(fired).toEqual(['heartbeat 10000']);
    clock.advance(86_400_000);
    expect(fired).toEqual(['heartbeat 10000', 'expiry']);
    expect(clock.pending).toBe(0);
  });
});
