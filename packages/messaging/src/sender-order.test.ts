import { deferred } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import { SenderOrder } from './sender-order.js';

describe('SenderOrder', () => {
  it('runs one sender in order, others in parallel, and reports idle', async () => {
    let idle = 0;
    const order = new SenderOrder(() => idle++);
    const log: string[] = [];
    const gate = deferred<void>();
    const a1 = order.run('a', async () => {
      await gate.promise;
      log.push('a1');
    });
    const a2 = order.run('a', async () => void log.push('a2'));
    const b1 = order.run('b', async () => void log.push('b1'));
    await b1;
    expect(log).toEqual(['b1']);
    expect(order.active).toBe(2);
    gate.resolve();
    await Promise.all([a1, a2]);
    expect(log).toEqual(['b1', 'a1', 'a2']);
    expect(order.active).toBe(0);
    expect(idle).toBeGreaterThanOrEqual(1);
  });

  it('keeps the order after a failure, and counts held work', async () => {
    const order = new SenderOrder();
    const failed = order.run('a', () => Promise.reject(new Error('x')));
    const next = order.run('a', async () => undefined);
    await expect(failed).rejects.toThrow('x');
    await next;
    const release = order.hold();
    expect(order.active).toBe(1);
    release();
    release();
    expect(order.active).toBe(0);
  });
});
