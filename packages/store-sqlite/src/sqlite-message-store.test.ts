import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { messageStoreContract } from '@xmppbus/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { NewOutboxRecord } from '@xmppbus/messaging';
import { SqliteMessageStore, sqliteMessageStore } from './sqlite-message-store.js';

const dir = mkdtempSync(join(tmpdir(), 'xmppbus-sqlite-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

// `reopen` is a new instance on the same file: durability, not just the object's memory.
messageStoreContract('SqliteMessageStore', {
  create: () => sqliteMessageStore(join(dir, `${++n}.db`)),
  reopen: (s) => new SqliteMessageStore({ path: (s as SqliteMessageStore).path, synchronous: 'full' }),
});

describe('SqliteMessageStore', () => {
  it('checks its options', () => {
    expect(() => sqliteMessageStore('')).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
    expect(() => sqliteMessageStore({ path: 'x.db', synchronous: 'off' as 'full' })).toThrow(/synchronous/);
    expect(() => sqliteMessageStore({ path: 'x.db', busyTimeout: -1 })).toThrow(/busyTimeout/);
  });

  it('fails to open with a StoreError naming the path', async () => {
    const s = sqliteMessageStore(join(dir, 'missing-dir', 'x.db'));
    await expect(s.open()).rejects.toMatchObject({
      code: 'ERR_STORE',
      message: expect.stringContaining('missing-dir'),
    });
    await expect(s.loadOutbox()).rejects.toMatchObject({ code: 'ERR_STORE' });
  });

  it('exposes the database between open and close, and rolls back a failed effect there', async () => {
    const s = sqliteMessageStore(join(dir, 'effects.db'));
    expect(() => s.database).toThrow(expect.objectContaining({ code: 'ERR_STORE' }));
    await s.open();
    s.database.exec('CREATE TABLE effects (id TEXT)');
    const ins = s.database.prepare('INSERT INTO effects VALUES (?)');
    await s.inboxCompleteWith('a@h', '1', 1, () => void ins.run('1'));
    await expect(
      s.inboxCompleteWith('a@h', '2', 1, () => {
        ins.run('2');
        throw new Error('handler failed');
      }),
    ).rejects.toThrow('handler failed');
    expect(s.database.prepare('SELECT id FROM effects').all()).toEqual([{ id: '1' }]);
    expect(await s.inboxGet('a@h', '2')).toBeUndefined();
    await s[Symbol.asyncDispose]();
    expect(() => s.database).toThrow(expect.objectContaining({ code: 'ERR_STORE' }));
  });

  it('runs a transactional effect inside the transaction that marks it delivered', async () => {
    const s = sqliteMessageStore(join(dir, 'tx.db'));
    await s.open();
    let inTx = false;
    await s.inboxCompleteWith('a@h', '1', 1, () => void (inTx = s.database.inTransaction));
    expect(inTx).toBe(true);
    await s.close();
  });

  const rec = (id: string): NewOutboxRecord => ({
    id,
    to: 'b@h',
    qos: 2,
    stanza: `<message id="${id}"/>`,
    payload: '{urn:t}t',
    createdAt: 1,
    notBefore: 1,
    expiresAt: null,
    attempts: 0,
    state: 'queued',
  });

  it('removeMany and markReceivedMany change several records in one write, durably', async () => {
    const s = sqliteMessageStore(join(dir, 'many.db'));
    await s.open();
    await Promise.all(['a', 'b', 'c', 'd'].map((id) => s.enqueue(rec(id))));
    await Promise.all([s.markReceivedMany(['b', 'nope']), s.removeMany(['a', 'c'])]);
    await s.close();
    const again = new SqliteMessageStore({ path: s.path });
    await again.open();
    expect((await again.loadOutbox()).map((r) => [r.id, r.state])).toEqual([
      ['b', 'received'],
      ['d', 'queued'],
    ]);
    await again.close();
  });

  it('rolls the whole group commit back when a many-record write fails part-way', async () => {
    const s = sqliteMessageStore(join(dir, 'abort.db'));
    await s.open();
    await Promise.all(['a', 'b', 'c'].map((id) => s.enqueue(rec(id))));
    s.database.exec(
      `CREATE TRIGGER refuse BEFORE DELETE ON outbox WHEN old.id = 'b' BEGIN SELECT RAISE(ABORT, 'refused'); END`,
    );
    const other = s.markReceived('c'); // same group commit
    await expect(s.removeMany(['a', 'b'])).rejects.toMatchObject({ code: 'ERR_STORE' });
    await expect(other).rejects.toMatchObject({ code: 'ERR_STORE' });
    expect((await s.loadOutbox()).map((r) => [r.id, r.state])).toEqual([
      ['a', 'queued'],
      ['b', 'queued'],
      ['c', 'queued'],
    ]);
    await s.close();
  });

  it('inboxComplete stays atomic without a savepoint: a failed delivered mark keeps the pending record', async () => {
    const s = sqliteMessageStore(join(dir, 'complete.db'));
    await s.open();
    const msg = { sender: 'a@h', from: 'a@h/r', stanza: '<message/>', ns: 'urn:xmpp:qos', receivedAt: 1 };
    await s.inboxPut({ ...msg, msgId: '1' });
    s.database.exec(
      `CREATE TRIGGER refuse BEFORE INSERT ON delivered WHEN new.msg_id = '1' BEGIN SELECT RAISE(ABORT, 'refused'); END`,
    );
    await expect(s.inboxComplete('a@h', '1', 2)).rejects.toMatchObject({ code: 'ERR_STORE' });
    expect(await s.inboxGet('a@h', '1')).toMatchObject({ msgId: '1' });
    await s.close();
  });
});
