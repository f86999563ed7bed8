import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointStoreContract } from '@xmppbus/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { sqliteMessageStore } from './sqlite-message-store.js';
import type { SqliteCheckpointStore } from './sqlite-checkpoint-store.js';
import { sqliteCheckpointStore } from './sqlite-checkpoint-store.js';

const dir = mkdtempSync(join(tmpdir(), 'xmppbus-sqlite-checkpoints-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

checkpointStoreContract('SqliteCheckpointStore', {
  create: () => sqliteCheckpointStore(join(dir, `${++n}.db`)),
  reopen: (s) => sqliteCheckpointStore((s as SqliteCheckpointStore).path),
});

describe('SqliteCheckpointStore', () => {
  it('shares a file with the message store', async () => {
    const path = join(dir, 'shared.db');
    const messages = sqliteMessageStore(path);
    await messages.open();
    const checkpoints = sqliteCheckpointStore(path);
    await checkpoints.open();
    await checkpoints.save('k', { lastId: 'a', recent: ['a'] });
    await messages.inboxComplete('s@h', 'm', 1);
    await checkpoints.close();
    await messages.close();
    const again = sqliteCheckpointStore(path);
    expect(await again.load('k')).toEqual({ lastId: 'a', recent: ['a'] });
    await again.close();
  });

  it('rejects after close until opened again', async () => {
    const s = sqliteCheckpointStore(join(dir, 'closed.db'));
    await s.save('k', { lastId: undefined, recent: [] });
    await s.close();
    await expect(s.load('k')).rejects.toMatchObject({ code: 'ERR_STORE' });
    await s.open();
    expect(await s.load('k')).toEqual({ lastId: undefined, recent: [] });
    await s.close();
  });

  it('fails with a StoreError when the file cannot be opened', async () => {
    const s = sqliteCheckpointStore(join(dir, 'missing-dir', 'c.db'));
    await expect(s.load('k')).rejects.toMatchObject({ code: 'ERR_STORE' });
    await expect(s.open()).rejects.toMatchObject({ code: 'ERR_STORE' });
  });
});
