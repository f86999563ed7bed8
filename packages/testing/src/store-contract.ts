/**
 * Contract suites every store implementation must pass: `messageStoreContract` for messaging's
 * `MessageStore`, `checkpointStoreContract` for pubsub's `CheckpointStore`. Each implementation's
 * test file calls one with a factory, so the memory, file and SQLite stores are held to the same
 * rules (the ones written on the interfaces).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Checkpoint, CheckpointStore } from '@xmppbus/pubsub';
import type { InboxRecord, MessageStore, NewOutboxRecord } from '@xmppbus/messaging';

/** How a contract suite gets stores. */
export interface StoreFactory<S> {
  /** A new store on new, empty storage (not opened yet). */
  create: () => S | Promise<S>;
  /**
   * A store on the same storage as `store`, after `store` was closed: a new instance on the same
   * file for a durable store (this is what checks durability), the same instance for memory.
   * Default: `store` itself.
   */
  reopen?: (store: S) => S | Promise<S>;
}

const T0 = 1_700_000_000_000;

/** An outbox record with every field set; `over` replaces some. */
function outRec(id: string, over: Partial<NewOutboxRecord> = {}): NewOutboxRecord {
  return {
    id,
    to: 'peer@example.org/svc',
    qos: 2,
    stanza: `<message xmlns="jabber:client" to="peer@example.org"><n xmlns="urn:t">${id} &amp; ü</n></message>`,
    payload: '{urn:t}n',
    createdAt: T0,
    notBefore: T0,
    expiresAt: null,
    attempts: 0,
    state: 'queued',
    ...over,
  };
}

function inRec(sender: string, msgId: string, receivedAt = T0): InboxRecord {
  return {
    sender,
    msgId,
    from: `${sender}/r1`,
    stanza: `<message from="${sender}/r1"><n xmlns="urn:t">${msgId}</n></message>`,
    ns: 'urn:xmpp:qos',
    receivedAt,
  };
}

async function expectStoreError(p: Promise<unknown>): Promise<void> {
  await expect(p).rejects.toMatchObject({ name: 'StoreError', code: 'ERR_STORE' });
}

/**
 * Runs the MessageStore contract against the stores `factory` makes. Call it at the top level
 * of a test file: `messageStoreContract('MemoryStore', { create: () => memoryStore() })`.
 */
export function messageStoreContract(name: string, factory: StoreFactory<MessageStore>): void {
  describe(`MessageStore contract: ${name}`, () => {
    const open: MessageStore[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });
    const fresh = async (): Promise<MessageStore> => {
      const s = await factory.create();
      await s.open();
      open.push(s);
      return s;
    };
    const reopen = async (s: MessageStore): Promise<MessageStore> => {
      await s.close();
      const next = factory.reopen ? await factory.reopen(s) : s;
      await next.open();
      open.push(next);
      return next;
    };

    describe('lifecycle', () => {
      it('open and close are idempotent, and close then open finds the state again', async () => {
        const s = await fresh();
        await s.open();
        await s.enqueue(outRec('a'));
        await s.close();
        await s.close();
        const again = await reopen(s);
        expect((await again.loadOutbox()).map((r) => r.id)).toEqual(['a']);
      });

      it('rejects with StoreError before open and after close', async () => {
        const s = await factory.create();
        await expectStoreError(s.loadOutbox());
        await expectStoreError(s.enqueue(outRec('a')));
        await s.open();
        await s.close();
        await expectStoreError(s.loadOutbox());
        await expectStoreError(s.inboxPut(inRec('a@x', '1')));
        await expectStoreError(s.listDeadLetters());
      });

      it('close commits writes called before it', async () => {
        const s = await fresh();
        const pending = [s.enqueue(outRec('a')), s.inboxPut(inRec('a@x', '1'))];
        await s.close();
        await expect(Promise.all(pending)).resolves.toHaveLength(2);
        const again = await reopen(s);
        expect((await again.loadOutbox()).map((r) => r.id)).toEqual(['a']);
        expect(await again.inboxGet('a@x', '1')).toMatchObject({ msgId: '1' });
      });
    });

    describe('outbox', () => {
      it('enqueue assigns increasing seq and keeps every field', async () => {
        const s = await fresh();
        const a = await s.enqueue(outRec('a', { qos: 1, expiresAt: T0 + 5000, notBefore: T0 + 10 }));
        const b = await s.enqueue(outRec('b', { qos: 0 }));
        expect(b.seq).toBeGreaterThan(a.seq);
        expect(a).toEqual({ ...outRec('a', { qos: 1, expiresAt: T0 + 5000, notBefore: T0 + 10 }), seq: a.seq });
        expect(await s.loadOutbox()).toEqual([a, b]);
      });

      it('enqueue with a known id returns the stored record unchanged', async () => {
        const s = await fresh();
        const a = await s.enqueue(outRec('a'));
        await s.recordAttempt('a', 2, T0 + 100);
        const again = await s.enqueue(outRec('a', { to: 'other@example.org', stanza: '<message/>' }));
        expect(again).toEqual({ ...a, attempts: 2, notBefore: T0 + 100 });
        expect(await s.loadOutbox()).toHaveLength(1);
      });

      it('overlapping calls take effect in call order and reads see earlier writes', async () => {
        const s = await fresh();
        const writes = ['a', 'b', 'c', 'd'].map((id) => s.enqueue(outRec(id)));
        void s.remove('b');
        const list = await s.loadOutbox();
        expect(list.map((r) => r.id)).toEqual(['a', 'c', 'd']);
        const seqs = (await Promise.all(writes)).map((r) => r.seq);
        expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
      });

      it('markReceived, recordAttempt and remove change one record; unknown ids are a no-op', async () => {
        const s = await fresh();
        await s.enqueue(outRec('a'));
        const b = await s.enqueue(outRec('b'));
        await s.markReceived('a');
        await s.recordAttempt('a', 3, T0 + 999);
        await s.markReceived('nope');
        await s.recordAttempt('nope', 1, 1);
        await s.remove('nope');
        const [a] = await s.loadOutbox();
        expect(a).toMatchObject({ id: 'a', state: 'received', attempts: 3, notBefore: T0 + 999 });
        await s.remove('a');
        expect(await s.loadOutbox()).toEqual([b]);
      });

      it('returns copies: changing a returned record changes nothing stored', async () => {
        const s = await fresh();
        const input = outRec('a');
        const a = await s.enqueue(input);
        a.attempts = 42;
        input.to = 'changed@example.org';
        const [first] = await s.loadOutbox();
        first!.state = 'received';
        expect(await s.loadOutbox()).toEqual([{ ...outRec('a'), seq: a.seq }]);
      });

      it('seq keeps growing across removal and reopen', async () => {
        const s = await fresh();
        await s.enqueue(outRec('a'));
        const b = await s.enqueue(outRec('b'));
        await s.remove('b');
        const again = await reopen(s);
        const c = await again.enqueue(outRec('c'));
        expect(c.seq).toBeGreaterThan(b.seq);
      });

      it('keeps large stanzas and XML specials exactly', async () => {
        const s = await fresh();
        const stanza = `<message><n xmlns="urn:t">${'x&lt;ü😀\n\t '.repeat(60_000)}</n></message>`;
        await s.enqueue(outRec('big', { stanza }));
        const again = await reopen(s);
        expect((await again.loadOutbox())[0]!.stanza).toBe(stanza);
      });
    });

    describe('dead letters', () => {
      it('deadLetter moves a record with its reason, error and time', async () => {
        const s = await fresh();
        const a = await s.enqueue(outRec('a', { expiresAt: T0 + 1 }));
        await s.recordAttempt('a', 4, T0 + 50);
        await s.deadLetter('a', 'expired', 'ttl elapsed', T0 + 60);
        await s.deadLetter('nope', 'rejected', undefined, T0);
        expect(await s.loadOutbox()).toEqual([]);
        const dead = {
          ...a,
          attempts: 4,
          notBefore: T0 + 50,
          reason: 'expired',
          error: 'ttl elapsed',
          deadAt: T0 + 60,
        };
        expect(await s.getDeadLetter('a')).toEqual(dead);
        expect(await s.getDeadLetter('nope')).toBeUndefined();
        expect(await s.listDeadLetters()).toEqual([dead]);
      });

      it('keeps an undefined error undefined', async () => {
        const s = await fresh();
        await s.enqueue(outRec('a'));
        await s.deadLetter('a', 'overflow', undefined, T0);
        expect((await s.getDeadLetter('a'))!.error).toBeUndefined();
      });

      it('lists by deadAt then seq, filtered by `to`, bounded by `limit`', async () => {
        const s = await fresh();
        for (const [id, to] of [
          ['a', 'x@h'],
          ['b', 'y@h'],
          ['c', 'x@h'],
          ['d', 'x@h'],
        ] as const) {
          await s.enqueue(outRec(id, { to }));
        }
        await s.deadLetter('d', 'rejected', 'e', T0 + 1);
        await s.deadLetter('c', 'rejected', 'e', T0 + 2);
        await s.deadLetter('a', 'rejected', 'e', T0 + 2);
        await s.deadLetter('b', 'max-attempts', 'e', T0 + 3);
        const ids = async (q?: { limit?: number; to?: string }): Promise<string[]> =>
          (await s.listDeadLetters(q)).map((d) => d.id);
        expect(await ids()).toEqual(['d', 'a', 'c', 'b']);
        expect(await ids({ to: 'x@h' })).toEqual(['d', 'a', 'c']);
        expect(await ids({ limit: 2 })).toEqual(['d', 'a']);
        expect(await ids({ to: 'x@h', limit: 1 })).toEqual(['d']);
        expect(await ids({ limit: 0 })).toEqual([]);
        expect(await ids({ to: 'nobody@h' })).toEqual([]);
      });

      it('replayDeadLetter moves it back with a new seq, no attempts and a new schedule', async () => {
        const s = await fresh();
        const a = await s.enqueue(outRec('a', { expiresAt: T0 + 1 }));
        await s.markReceived('a');
        await s.recordAttempt('a', 5, T0 + 9);
        const b = await s.enqueue(outRec('b'));
        await s.deadLetter('a', 'expired', 'late', T0 + 10);
        const back = await s.replayDeadLetter('a', T0 + 20, T0 + 5000);
        expect(back).toEqual({
          ...a,
          seq: back!.seq,
          notBefore: T0 + 20,
          expiresAt: T0 + 5000,
          attempts: 0,
          state: 'queued',
        });
        expect(back!.seq).toBeGreaterThan(b.seq);
        expect(await s.getDeadLetter('a')).toBeUndefined();
        expect((await s.loadOutbox()).map((r) => r.id)).toEqual(['b', 'a']);
        expect(await s.replayDeadLetter('nope', T0, null)).toBeUndefined();
      });

      it('replayDeadLetter leaves both alone when the id is in the outbox again', async () => {
        const s = await fresh();
        await s.enqueue(outRec('a'));
        await s.deadLetter('a', 'rejected', 'no', T0);
        const again = await s.enqueue(outRec('a', { qos: 1 }));
        expect(await s.replayDeadLetter('a', T0, null)).toBeUndefined();
        expect(await s.loadOutbox()).toEqual([again]);
        expect(await s.getDeadLetter('a')).toMatchObject({ id: 'a', qos: 2 });
      });

      it('removeDeadLetter says whether there was one', async () => {
        const s = await fresh();
        await s.enqueue(outRec('a'));
        await s.deadLetter('a', 'rejected', 'no', T0);
        expect(await s.removeDeadLetter('a')).toBe(true);
        expect(await s.removeDeadLetter('a')).toBe(false);
        expect(await s.listDeadLetters()).toEqual([]);
      });
    });

    describe('inbox', () => {
      it('inboxPut stores once, then answers pending, then delivered', async () => {
        const s = await fresh();
        expect(await s.inboxPut(inRec('a@h', '1'))).toBe('stored');
        expect(await s.inboxPut({ ...inRec('a@h', '1'), stanza: '<other/>' })).toBe('pending');
        expect(await s.inboxGet('a@h', '1')).toEqual(inRec('a@h', '1'));
        await s.inboxComplete('a@h', '1', T0 + 1);
        expect(await s.inboxGet('a@h', '1')).toBe('delivered');
        expect(await s.inboxPut(inRec('a@h', '1'))).toBe('delivered');
        expect(await s.inboxGet('a@h', '1')).toBe('delivered');
        expect(await s.inboxGet('a@h', '2')).toBeUndefined();
      });

      it('scopes msgId by sender', async () => {
        const s = await fresh();
        await s.inboxPut(inRec('a@h', '1'));
        await s.inboxComplete('a@h', '1', T0);
        expect(await s.inboxPut(inRec('b@h', '1'))).toBe('stored');
        expect(await s.inboxGet('b@h', '1')).toEqual(inRec('b@h', '1'));
      });

      it('inboxComplete without a pending record still logs delivery', async () => {
        const s = await fresh();
        await s.inboxComplete('a@h', '9', T0);
        expect(await s.inboxGet('a@h', '9')).toBe('delivered');
      });

      it('inboxDiscard (when implemented) drops a pending record without marking it delivered', async (ctx) => {
        const s = await fresh();
        if (s.inboxDiscard === undefined) return ctx.skip();
        await s.inboxPut(inRec('a@h', '1'));
        await s.inboxPut(inRec('a@h', '2'));
        await s.inboxComplete('a@h', '2', T0);
        await s.inboxDiscard('a@h', '1');
        await s.inboxDiscard('a@h', '2'); // delivered: stays delivered
        await s.inboxDiscard('a@h', '9'); // unknown: no-op
        expect(await s.inboxGet('a@h', '1')).toBeUndefined();
        expect(await s.inboxGet('a@h', '2')).toBe('delivered');
        expect(await s.inboxPendingCounts()).toEqual(new Map());
        expect(await s.inboxPut(inRec('a@h', '1'))).toBe('stored');
      });

      it('counts pending records per sender', async () => {
        const s = await fresh();
        await s.inboxPut(inRec('a@h', '1'));
        await s.inboxPut(inRec('a@h', '2'));
        await s.inboxPut(inRec('b@h', '1'));
        await s.inboxPut(inRec('a@h', '1'));
        await s.inboxComplete('b@h', '1', T0);
        expect(await s.inboxPendingCounts()).toEqual(new Map([['a@h', 2]]));
      });

      it('prune forgets delivered entries and stale pending records before the bounds (exclusive)', async () => {
        const s = await fresh();
        await s.enqueue(outRec('o'));
        await s.inboxPut(inRec('a@h', 'old-pending', T0));
        await s.inboxPut(inRec('a@h', 'edge-pending', T0 + 100));
        await s.inboxComplete('a@h', 'old-done', T0);
        await s.inboxComplete('a@h', 'edge-done', T0 + 50);
        // the first delivery time counts for retention
        await s.inboxComplete('a@h', 'old-done', T0 + 1000);
        expect(await s.prune(T0 + 50, T0 + 100)).toBe(2);
        expect(await s.inboxGet('a@h', 'old-done')).toBeUndefined();
        expect(await s.inboxGet('a@h', 'old-pending')).toBeUndefined();
        expect(await s.inboxGet('a@h', 'edge-done')).toBe('delivered');
        expect(await s.inboxGet('a@h', 'edge-pending')).toMatchObject({ msgId: 'edge-pending' });
        expect(await s.loadOutbox()).toHaveLength(1);
        expect(await s.prune(T0, T0)).toBe(0);
      });

      it('inboxCompleteWith runs the effect and marks delivered together', async (ctx) => {
        const s = await fresh();
        if (!s.inboxCompleteWith) return ctx.skip();
        await s.inboxPut(inRec('a@h', '1'));
        let runs = 0;
        await s.inboxCompleteWith('a@h', '1', T0, () => void runs++);
        expect(runs).toBe(1);
        expect(await s.inboxGet('a@h', '1')).toBe('delivered');
        expect(await s.inboxPendingCounts()).toEqual(new Map());
      });

      it('inboxCompleteWith marks nothing when the effect throws, and rejects with its error', async (ctx) => {
        const s = await fresh();
        if (!s.inboxCompleteWith) return ctx.skip();
        await s.inboxPut(inRec('a@h', '1'));
        const boom = new Error('boom');
        const other = s.inboxPut(inRec('a@h', '2'));
        await expect(
          s.inboxCompleteWith('a@h', '1', T0, () => {
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await other).toBe('stored'); // a failing effect takes no other write with it
        expect(await s.inboxGet('a@h', '1')).toEqual(inRec('a@h', '1'));
      });
    });

    it('everything survives close and reopen', async () => {
      const s = await fresh();
      await s.enqueue(outRec('q', { expiresAt: T0 + 7 }));
      await s.enqueue(outRec('r'));
      await s.markReceived('r');
      await s.enqueue(outRec('d'));
      await s.deadLetter('d', 'max-attempts', 'tired', T0 + 3);
      await s.inboxPut(inRec('a@h', 'p'));
      await s.inboxComplete('a@h', 'done', T0);
      const before = {
        outbox: await s.loadOutbox(),
        dead: await s.listDeadLetters(),
        counts: await s.inboxPendingCounts(),
      };
      const again = await reopen(s);
      expect(await again.loadOutbox()).toEqual(before.outbox);
      expect(await again.listDeadLetters()).toEqual(before.dead);
      expect(await again.inboxPendingCounts()).toEqual(before.counts);
      expect(await again.inboxGet('a@h', 'p')).toEqual(inRec('a@h', 'p'));
      expect(await again.inboxGet('a@h', 'done')).toBe('delivered');
    });
  });
}

/**
 * Runs the CheckpointStore contract: `checkpointStoreContract('file', { create, reopen })`.
 * Stores with a `close()` are closed after each test.
 */
export function checkpointStoreContract(name: string, factory: StoreFactory<CheckpointStore>): void {
  describe(`CheckpointStore contract: ${name}`, () => {
    const made: CheckpointStore[] = [];
    afterEach(async () => {
      await Promise.all(made.splice(0).map((s) => closeIfClosable(s)));
    });
    const fresh = async (): Promise<CheckpointStore> => {
      const s = await factory.create();
      made.push(s);
      return s;
    };
    const reopen = async (s: CheckpointStore): Promise<CheckpointStore> => {
      const next = factory.reopen ? await factory.reopen(s) : s;
      made.push(next);
      return next;
    };
    const cp = (lastId: string | undefined, ...recent: string[]): Checkpoint => ({ lastId, recent });

    it('loads undefined for an unknown key', async () => {
      const s = await fresh();
      expect(await s.load('nobody')).toBeUndefined();
    });

    it('saves and loads, keeping the order of recent ids', async () => {
      const s = await fresh();
      await s.save('k', cp('i3', 'i1', 'i2', 'i3'));
      expect(await s.load('k')).toEqual(cp('i3', 'i1', 'i2', 'i3'));
      await s.save('empty', cp(undefined));
      expect(await s.load('empty')).toEqual(cp(undefined));
    });

    it('a save replaces the previous checkpoint of its key only', async () => {
      const s = await fresh();
      await s.save('k', cp('a', 'a'));
      await s.save('other', cp('x'));
      await s.save('k', cp('b', 'b'));
      expect(await s.load('k')).toEqual(cp('b', 'b'));
      expect(await s.load('other')).toEqual(cp('x'));
    });

    it('overlapping saves of one key take effect in call order', async () => {
      const s = await fresh();
      await Promise.all(['1', '2', '3', '4'].map((id) => s.save('k', cp(id, id))));
      expect(await s.load('k')).toEqual(cp('4', '4'));
    });

    it('keeps keys with any characters apart', async () => {
      const s = await fresh();
      const keys = ['pubsub.h/node#durable', 'pubsub.h/node#durable2', 'ü 😀 / \\ ..', ''];
      for (const [i, k] of keys.entries()) await s.save(k, cp(String(i)));
      for (const [i, k] of keys.entries()) expect(await s.load(k)).toEqual(cp(String(i)));
    });

    it('returns copies: changing a saved or loaded checkpoint changes nothing stored', async () => {
      const s = await fresh();
      const saved = cp('a', 'a');
      await s.save('k', saved);
      saved.recent.push('zzz');
      const loaded = await s.load('k');
      loaded!.recent.push('yyy');
      expect(await s.load('k')).toEqual(cp('a', 'a'));
    });

    it('survives reopening its storage', async () => {
      const s = await fresh();
      await s.save('k', cp('i9', 'i8', 'i9'));
      await closeIfClosable(s);
      const again = await reopen(s);
      expect(await again.load('k')).toEqual(cp('i9', 'i8', 'i9'));
    });
  });
}

async function closeIfClosable(s: object): Promise<void> {
  const close = (s as { close?: unknown }).close;
  if (typeof close === 'function') await (close as () => Promise<void>).call(s);
}
