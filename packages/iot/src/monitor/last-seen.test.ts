import { describe, expect, it } from 'vitest';
import { LastSeenQueue } from './last-seen.js';

/** A queue whose questions are answered by hand. */
function queue(concurrency: number, offline: Set<string>) {
  const inFlight = new Map<string, () => void>();
  const sent: string[] = [];
  let peak = 0;
  const q = new LastSeenQueue({
    concurrency,
    wanted: (jid) => offline.has(jid),
    ask: (jid) =>
      new Promise<void>((resolve) => {
        sent.push(jid);
        inFlight.set(jid, resolve);
        peak = Math.max(peak, inFlight.size);
      }),
  });
  const answer = async (jid: string): Promise<void> => {
    inFlight.get(jid)!();
    inFlight.delete(jid);
    await Promise.resolve(); // let the queue's continuation run
    await Promise.resolve();
  };
  return { q, sent, inFlight, answer, peak: () => peak };
}

describe('LastSeenQueue', () => {
  it('asks at most `concurrency` at once, each agent once, and skips agents that came online', async () => {
    const jids = Array.from({ length: 10 }, (_, i) => `a${i}@x`);
    const offline = new Set(jids);
    const { q, sent, inFlight, answer, peak } = queue(3, offline);
    for (const j of jids) q.request(j);
    for (const j of jids) q.request(j); // discovered again: not asked again
    expect(sent).toEqual(['a0@x', 'a1@x', 'a2@x']);
    offline.delete('a3@x'); // its presence arrived while it waited
    await answer('a0@x');
    expect(sent).toEqual(['a0@x', 'a1@x', 'a2@x', 'a4@x']);
    while (inFlight.size > 0) await answer([...inFlight.keys()][0]!);
    await q.idle();
    expect(sent).toHaveLength(9);
    expect(new Set(sent).size).toBe(9);
    expect(sent).not.toContain('a3@x');
    expect(peak()).toBe(3);
    expect(q.asked).toBe(9);
    // Forgotten (discovered anew): may be asked again.
    q.forget('a0@x');
    q.request('a0@x');
    expect(sent.at(-1)).toBe('a0@x');
  });

  it('close drops what waits and refuses new questions', async () => {
    const offline = new Set(['a@x', 'b@x', 'c@x']);
    const { q, sent, answer } = queue(1, offline);
    q.request('a@x');
    q.request('b@x');
    q.close();
    q.request('c@x');
    await answer('a@x');
    await q.idle();
    expect(sent).toEqual(['a@x']);
  });
});
