import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointStoreContract } from '@xmppbus/testing';
import { afterAll } from 'vitest';
import { FileCheckpointStore, MemoryCheckpointStore } from './checkpoint-store.js';

const dir = mkdtempSync(join(tmpdir(), 'xmppbus-checkpoints-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

checkpointStoreContract('MemoryCheckpointStore', { create: () => new MemoryCheckpointStore() });
checkpointStoreContract('FileCheckpointStore', {
  create: () => new FileCheckpointStore(join(dir, String(++n))),
  reopen: (s) => new FileCheckpointStore((s as FileCheckpointStore).dir),
});
