import { describe, expect, it } from 'vitest';
import { ConfigError, FairQueue, STANZA_BYTES, SenderBudget, stanzaBytes, xml } from '@xmppbus/core';

describe('SenderBudget', () => {
  it('accounts bytes and counts per bare JID and in total, all or nothing, and forgets idle senders', () => {
    const b = new SenderBudget({ perSenderBytes: 100, perSenderCount: 2, totalBytes: 150, totalCount: 10 });
    expect(b.tryTake('a@x/1', 60)).toBe(true);
    expect(b.tryTake('a@x/2', 50)).toBe(false); // a's bytes: 110 > 100
    expect(b.tryTake('a@x/2', 40)).toBe(true); // same bare JID, other resource
    expect(b.tryTake('a@x', 1)).toBe(false); // a's count: 3 > 2
    expect(b.tryTake('b@x', 60)).toBe(false); // total bytes: 160 > 150
    expect(b.tryTake('b@x', 50)).toBe(true);
    expect(b.usage).toEqual({ bytes: 150, count: 3 });
    expect(b.refused).toBe(3);
    b.give('a@x/1', 60);
    b.give('a@x/2', 40);
    expect(b.usageOf('a@x')).toEqual({ bytes: 0, count: 0 });
    expect(b.senders).toBe(1);
    expect(b.tryTake('a@x', 100)).toBe(true);
  });

  it('refuses nonsense limits with ConfigError', () => {
    expect(() => new SenderBudget({ totalBytes: 0 })).toThrow(ConfigError);
  });
});

describe('FairQueue', () => {
  it('serves senders in turn, each in arrival order', () => {
    const q = new FairQueue<string>();
    for (let i = 0; i < 5; i++) q.push('flood@x/r', `f${i}`);
    q.push('b@x', 'b0');
    q.push('c@x', 'c0');
    q.push('b@x', 'b1');
    const out: string[] = [];
    for (let item = q.shift(); item !== undefined; item = q.shift()) out.push(item);
    expect(out).toEqual(['f0', 'b0', 'c0', 'f1', 'b1', 'f2', 'f3', 'f4']);
    expect(q.size).toBe(0);
  });

  it('keeps a late sender from waiting behind a long backlog', () => {
    const q = new FairQueue<number>();
    for (let i = 0; i < 1000; i++) q.push('flood@x', i);
    q.shift();
    q.push('late@x', -1);
    let position = 0;
    while (q.shift() !== -1) position++;
    expect(position).toBeLessThanOrEqual(1);
    expect(q.sizeOf('flood@x')).toBe(999);
    expect(q.clear()).toHaveLength(999);
    expect(q.size).toBe(0);
  });
});

describe('stanzaBytes', () => {
  it('uses the size a transport recorded, else estimates without recursion', () => {
    const el = xml('iq', { type: 'set' }, xml('a', {}, 'hello'));
    (el as unknown as Record<symbol, number>)[STANZA_BYTES] = 1234;
    expect(stanzaBytes(el)).toBe(1234);
    let deep = xml('x');
    for (let i = 0; i < 20_000; i++) deep = xml('x', {}, deep);
    expect(stanzaBytes(deep)).toBeGreaterThan(20_000 * 2);
  });
});
