import { ManualClock } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import { AlertEngine, type AlertRule, type AlertTransition } from './alerts.js';
import { HistoryRing } from './history.js';

function engine(rules: AlertRule[]): { e: AlertEngine; clock: ManualClock; log: string[] } {
  const clock = new ManualClock(1_000_000);
  const log: string[] = [];
  const e = new AlertEngine({
    rules,
    clock,
    emit: (t: AlertTransition) => log.push(`${t.state} ${t.alert.id} @${t.at - 1_000_000}`),
  });
  return { e, clock, log };
}

describe('AlertEngine', () => {
  it('raises above a threshold and clears only below threshold − hysteresis', () => {
    const { e, log } = engine([{ kind: 'threshold', name: 'hot', field: 't', above: 30, hysteresis: 2 }]);
    for (const v of [25, 29.9, 30.5, 31, 29, 28.5, 30.5, 28, 27, 31]) e.onValue('a@x', 't', v, '°C');
    expect(log).toEqual(['raised hot/a@x/t @0', 'cleared hot/a@x/t @0', 'raised hot/a@x/t @0']);
    expect(e.active()[0]).toMatchObject({ kind: 'threshold', agent: 'a@x', field: 't', value: 31 });
    expect(e.active()[0]?.message).toBe('t 31 °C above 30 °C');
  });

  it('handles a below limit with hysteresis, and ignores other fields, agents and non-numbers', () => {
    const { e, log } = engine([
      { kind: 'threshold', name: 'cold', field: 't', below: 10, hysteresis: 1, agents: ['a@x'] },
    ]);
    e.onValue('b@x', 't', 0);
    e.onValue('a@x', 'u', 0);
    e.onValue('a@x', 't', true);
    e.onValue('a@x', 't', 9);
    e.onValue('a@x', 't', 10.5);
    e.onValue('a@x', 't', 11);
    expect(log).toEqual(['raised cold/a@x/t @0', 'cleared cold/a@x/t @0']);
  });

  it('raises stale after maxInterval without a value while online, on the clock, and clears on the next value', () => {
    const { e, clock, log } = engine([{ kind: 'stale', name: 'quiet', field: 't', maxInterval: 5_000 }]);
    e.onPresence('a@x', 'online');
    clock.advance(4_000);
    e.onValue('a@x', 't', 1);
    clock.advance(4_999);
    expect(log).toEqual([]);
    clock.advance(1);
    expect(log).toEqual(['raised quiet/a@x/t @9000']);
    clock.advance(60_000); // raised once, not again
    e.onValue('a@x', 't', 2);
    expect(log).toEqual(['raised quiet/a@x/t @9000', 'cleared quiet/a@x/t @69000']);
    // Offline: not stale (the offline rule speaks for it), and no timer keeps running.
    e.onPresence('a@x', 'offline');
    clock.advance(60_000);
    expect(log).toHaveLength(2);
    expect(clock.pending).toBe(0);
  });

  it('raises offline after the grace period and clears when the agent is back', () => {
    const { e, clock, log } = engine([{ kind: 'offline', name: 'down', grace: 1_000, severity: 'critical' }]);
    e.onPresence('a@x', 'online');
    e.onPresence('a@x', 'offline');
    clock.advance(500);
    e.onPresence('a@x', 'online'); // back within the grace period: nothing
    e.onPresence('a@x', 'offline');
    clock.advance(1_000);
    expect(log).toEqual(['raised down/a@x/ @1500']);
    expect(e.active()[0]?.severity).toBe('critical');
    e.onPresence('a@x', 'away');
    expect(log).toEqual(['raised down/a@x/ @1500', 'cleared down/a@x/ @1500']);
    e.close();
    expect(clock.pending).toBe(0);
  });

  it('removeAgent clears its alerts and cancels its timers', () => {
    const { e, clock, log } = engine([
      { kind: 'stale', name: 'quiet', maxInterval: 1_000 },
      { kind: 'threshold', name: 'hot', field: 't', above: 1 },
    ]);
    e.onPresence('a@x', 'online');
    e.onValue('a@x', 't', 5);
    e.removeAgent('a@x');
    expect(log).toEqual(['raised hot/a@x/t @0', 'cleared hot/a@x/t @0']);
    expect(clock.pending).toBe(0);
  });
});

describe('HistoryRing', () => {
  it('keeps the newest points up to its capacity, oldest first', () => {
    const r = new HistoryRing(3);
    for (let i = 1; i <= 5; i++) r.push(i, i * 10);
    expect(r.points()).toEqual([
      { t: 3, v: 30 },
      { t: 4, v: 40 },
      { t: 5, v: 50 },
    ]);
    expect(r.length).toBe(3);
  });
});
