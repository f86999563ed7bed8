// The Messenger on the SQLite store: outbox recovery after a restart, and exactly-once QoS 2
// with a transactional handler whose effect commits with the delivered mark.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Session } from '@xmppbus/core';
import { Messenger, type MessengerOptions } from '@xmppbus/messaging';
import { event } from '@xmppbus/schema';
import { memoryHub, type MemoryTransport } from '@xmppbus/transport-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { sqliteMessageStore } from './sqlite-message-store.js';

const Note = event({
  ns: 'urn:test:notes:1',
  name: 'note',
  schema: Type.Object({ n: Type.Integer(), text: Type.String() }),
});

const fast = { initialDelay: 5, maxDelay: 40, factor: 2, jitter: 0.1 };
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A started messenger on its own session over `t` (the session closes after the test). */
async function messenger(
  t: MemoryTransport,
  options: Partial<Omit<MessengerOptions, 'session'>> = {},
): Promise<Messenger> {
  const session = new Session({ transport: t });
  const m = new Messenger({ session, retry: fast, attemptTimeout: 2000, ...options });
  cleanups.push(() => session.close());
  await m.start();
  return m;
}

describe('Messenger on the SQLite store', () => {
  it('recovers the outbox after a restart and delivers QoS 2 exactly once with a transactional handler', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xmppbus-msg-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const hub = memoryHub();
    // The receiver is not there yet: the messages wait in the sender's outbox on disk.
    const a1 = hub.connect('svc-a.test');
    const session1 = new Session({ transport: a1 });
    const s1 = new Messenger({ session: session1, store: sqliteMessageStore(join(dir, 'a.db')), retry: fast });
    await s1.start();
    for (let i = 0; i < 20; i++) await s1.enqueue(Note, 'svc-b.test', { n: i, text: 'd' }, { qos: 2, id: `m${i}` });
    expect(s1.counters.queued).toBe(20);
    await session1.close();

    const b = hub.connect('svc-b.test');
    cleanups.push(() => b.close());
    const bStore = sqliteMessageStore(join(dir, 'b.db'));
    const receiver = await messenger(b, { store: bStore });
    bStore.database.exec('CREATE TABLE effects (msg_id TEXT)');
    const ins = bStore.database.prepare('INSERT INTO effects VALUES (?)');
    receiver.handle(Note, (_v, meta) => void ins.run(meta.id), { transactional: true });

    const a2 = hub.connect('svc-a.test');
    cleanups.push(() => a2.close());
    const s2 = await messenger(a2, { store: sqliteMessageStore(join(dir, 'a.db')), delayThreshold: 0 });
    await s2.flush({ timeout: 10_000 });
    // A producer retry with the same ids after delivery: deduped by the receiver.
    for (let i = 0; i < 20; i++) await s2.send(Note, 'svc-b.test', { n: i, text: 'd' }, { qos: 2, id: `m${i}` });
    await s2.flush({ timeout: 10_000 });
    const rows = bStore.database.prepare('SELECT msg_id, count(*) AS c FROM effects GROUP BY msg_id').all() as {
      msg_id: string;
      c: number;
    }[];
    expect(rows).toHaveLength(20);
    expect(rows.every((r) => r.c === 1)).toBe(true);
    expect(receiver.counters.duplicates).toBeGreaterThanOrEqual(20);
  });
});
