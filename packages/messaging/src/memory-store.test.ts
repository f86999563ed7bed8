import { messageStoreContract } from '@xmppbus/testing';
import { describe, expect, it } from 'vitest';
import { memoryStore } from './memory-store.js';

// `reopen` defaults to the same instance: memory keeps its state across close/open.
messageStoreContract('MemoryStore', { create: () => memoryStore() });

describe('MemoryStore', () => {
  it('removeMany and markReceivedMany change several records; unknown ids are a no-op', async () => {
    const s = memoryStore();
    await s.open();
    const rec = { to: 'b@h', qos: 2 as const, stanza: '<message/>', payload: '{urn:t}t', createdAt: 1, notBefore: 1 };
    for (const id of ['a', 'b', 'c']) await s.enqueue({ ...rec, id, expiresAt: null, attempts: 0, state: 'queued' });
    await s.markReceivedMany(['b', 'nope']);
    await s.removeMany(['a', 'nope']);
    expect((await s.loadOutbox()).map((r) => [r.id, r.state])).toEqual([
      ['b', 'received'],
      ['c', 'queued'],
    ]);
  });
});
