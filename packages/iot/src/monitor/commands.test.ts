import { XmppBusError } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import { CommandTracker } from './commands.js';
import type { CommandView, FleetValue } from './fleet.js';

function tracker(max = 2) {
  const sends = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  const values = new Map<string, FleetValue>();
  const events: string[] = [];
  const t = new CommandTracker({
    max,
    send: (_agent, _parameter, _value, id) =>
      new Promise<void>((resolve, reject) => sends.set(id, { resolve, reject })),
    valueOf: (agent, field) => values.get(`${agent} ${field}`),
    now: () => 1000,
    emit: (c: CommandView) =>
      events.push(`${c.state} ${c.parameter}=${String(c.value)}${c.error ? ` (${c.error})` : ''}`),
  });
  const turn = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) await Promise.resolve();
  };
  return { t, sends, values, events, turn };
}

describe('CommandTracker', () => {
  it('is delivered when the agent took it and reported the commanded value, in either order', async () => {
    const { t, sends, values, events, turn } = tracker();
    values.set('a@x relay', true);
    const out = t.queue('a@x', 'relay', false);
    expect(out.state).toBe('queued');
    const id = out.state === 'queued' ? out.id : '';
    expect(t.views()).toMatchObject([{ id, agent: 'a@x', state: 'queued', queuedAt: 1000 }]);
    t.onValue('a@x', 'relay', false); // not taken yet: a coincidence, not delivery
    sends.get(id)!.resolve();
    await turn();
    values.set('a@x relay', true); // the agent's first report after login: the old value
    expect(events).toEqual(['queued relay=false']);
    t.onValue('a@x', 'relay', true);
    t.onValue('a@x', 'relay', false);
    expect(events).toEqual(['queued relay=false', 'delivered relay=false']);
    expect(t.size).toBe(0);
    // Reported before the receipt came back: delivered with the receipt.
    const second = t.queue('a@x', 'relay', true);
    values.set('a@x relay', true);
    sends.get(second.state === 'queued' ? second.id : '')!.resolve();
    await turn();
    expect(events.at(-1)).toBe('delivered relay=true');
  });

  it('fails with the reason when the command expires, and is bounded', async () => {
    const { t, sends, events, turn } = tracker(2);
    const a = t.queue('a@x', 'setpoint', 19);
    t.queue('b@x', 'setpoint', 20);
    expect(() => t.queue('c@x', 'setpoint', 21)).toThrow(XmppBusError);
    sends.get(a.state === 'queued' ? a.id : '')!.reject(new Error('expired'));
    await turn();
    expect(events).toEqual(['queued setpoint=19', 'queued setpoint=20', 'failed setpoint=19 (expired)']);
    expect(t.views().map((v) => v.agent)).toEqual(['b@x']);
    t.close();
    expect(t.size).toBe(0);
    expect(() => t.queue('c@x', 'setpoint', 21)).toThrow(XmppBusError);
  });
});
