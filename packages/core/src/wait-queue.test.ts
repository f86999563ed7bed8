import { describe, expect, it } from 'vitest';
import { AbortError, ManualClock, TimeoutError, WaitQueue, sleep } from '@xmppbus/core';

describe('WaitQueue', () => {
  it('wakes every waiter at once and forgets them', async () => {
    const q = new WaitQueue();
    const a = q.wait();
    const b = q.wait();
    expect(q.size).toBe(2);
    q.wake();
    await Promise.all([a, b]);
    expect(q.size).toBe(0);
  });

  it('times a waiter out on its own clock and removes it', async () => {
    const clock = new ManualClock();
    const q = new WaitQueue({ clock, what: 'drain' });
    const w = q.wait({ timeout: 500 });
    const check = expect(w).rejects.toThrow(TimeoutError);
    clock.advance(499);
    expect(q.size).toBe(1);
    clock.advance(1);
    await check;
    expect(q.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('rejects an aborted waiter with the abort reason, and fails the rest with the given error', async () => {
    const q = new WaitQueue();
    const ac = new AbortController();
    const a = q.wait({ signal: ac.signal });
    const b = q.wait();
    ac.abort();
    await expect(a).rejects.toBeInstanceOf(AbortError);
    expect(q.size).toBe(1);
    q.fail(new TimeoutError('gone'));
    await expect(b).rejects.toThrow('gone');
    expect(q.size).toBe(0);
  });
});

describe('sleep', () => {
  it('resolves when the clock reaches the delay, and rejects at once on abort', async () => {
    const clock = new ManualClock();
    let done = false;
    const s = sleep(100, { clock }).then(() => (done = true));
    clock.advance(99);
    await Promise.resolve();
    expect(done).toBe(false);
    clock.advance(1);
    await s;
    expect(done).toBe(true);
    const ac = new AbortController();
    const t = sleep(100, { clock, signal: ac.signal });
    ac.abort();
    await expect(t).rejects.toBeInstanceOf(AbortError);
    expect(clock.pending).toBe(0);
  });
});
