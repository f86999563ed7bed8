import { Type } from '@sinclair/typebox';
import { ManualClock, Session } from '@xmppbus/core';
import { event } from '@xmppbus/schema';
import { memoryHub } from '@xmppbus/transport-memory';
import { describe, expect, it } from 'vitest';
import type { Entry, Peer } from './entry.js';
import { OutboxFullError } from './errors.js';
import { memoryStore } from './memory-store.js';
import { resolveOptions } from './options.js';
import { Outbox } from './outbox.js';
import { SeqQueue } from './seq-queue.js';
import { newCounters } from './types.js';

const Note = event({ ns: 'urn:test:notes:1', name: 'note', schema: Type.Object({ n: Type.Integer() }) });

async function setup(options: { maxOutbox?: number; overflow?: 'reject' | 'drop-oldest' } = {}) {
  const clock = new ManualClock(1_000);
  const session = new Session({ transport: memoryHub().connect('a.test'), clock });
  const settings = resolveOptions({ session, ...options });
  const store = memoryStore();
  await store.open();
  const due: string[] = [];
  const dead: string[] = [];
  const peers = new Map<string, Peer>();
  const counters = newCounters();
  const outbox = new Outbox({
    session,
    store,
    settings,
    counters,
    events: {
      peerOf: (to) => {
        let p = peers.get(to);
        if (!p) {
          p = { to, queue: new SeqQueue<Entry>((e) => e.rec.seq) } as unknown as Peer;
          peers.set(to, p);
        }
        return p;
      },
      due: (e) => void due.push(e.rec.id),
      removed: () => undefined,
      deadLettered: (e, reason) => void dead.push(`${e.rec.id}:${reason}`),
    },
  });
  return { clock, outbox, store, due, dead, counters };
}

describe('Outbox', () => {
  it('writes the record before handing it over, and holds scheduled messages until due on the clock', async () => {
    const { clock, outbox, store, due } = await setup();
    await outbox.accept(Note, 'b.test', { n: 1 }, { id: 'now' }, false);
    await outbox.accept(Note, 'b.test', { n: 2 }, { id: 'later', deliverAt: 1_500 }, false);
    await outbox.accept(Note, 'b.test', { n: 3 }, { id: 'sooner', deliverAt: 1_200 }, false);
    expect((await store.loadOutbox()).map((r) => r.id)).toEqual(['now', 'later', 'sooner']);
    expect(due).toEqual(['now']);
    clock.advance(200);
    expect(due).toEqual(['now', 'sooner']);
    clock.advance(300);
    expect(due).toEqual(['now', 'sooner', 'later']);
    expect(outbox.size).toBe(3);
  });

  it('applies the overflow policy and dead-letters with a listener call', async () => {
    const rejecting = await setup({ maxOutbox: 1 });
    await rejecting.outbox.accept(Note, 'b.test', { n: 1 }, {}, false);
    await expect(rejecting.outbox.accept(Note, 'b.test', { n: 2 }, {}, false)).rejects.toBeInstanceOf(OutboxFullError);

    const dropping = await setup({ maxOutbox: 1, overflow: 'drop-oldest' });
    await dropping.outbox.accept(Note, 'b.test', { n: 1 }, { id: 'old' }, false);
    await dropping.outbox.accept(Note, 'b.test', { n: 2 }, { id: 'new' }, false);
    expect(dropping.dead).toEqual(['old:overflow']);
    expect((await dropping.store.listDeadLetters()).map((d) => d.id)).toEqual(['old']);
    expect(dropping.counters.deadLettered).toBe(1);
  });

  it('replays a dead letter under the same id, and refuses new messages once told to', async () => {
    const { outbox, due } = await setup({ maxOutbox: 1, overflow: 'drop-oldest' });
    await outbox.accept(Note, 'b.test', { n: 1 }, { id: 'x', ttl: 10 }, false);
    await outbox.accept(Note, 'b.test', { n: 2 }, { id: 'y' }, false);
    expect(await outbox.replay('x', {})).toBe(true);
    expect(await outbox.replay('x', {})).toBe(false); // no longer a dead letter
    outbox.refuseNew('draining');
    await expect(outbox.accept(Note, 'b.test', { n: 3 }, {}, false)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    expect(due).toEqual(['x', 'y', 'x']);
  });
});
