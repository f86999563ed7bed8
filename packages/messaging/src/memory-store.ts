/**
 * In-memory MessageStore for tests and for processes that accept losing their outbox on a
 * crash. Same contract as every store (see store.ts), minus durability across processes: the
 * state lives in this object, so `close` then `open` on the same instance finds it again.
 */
import { StoreError, toError } from '@xmppbus/core';
import type {
  DeadLetter,
  DeadLetterQuery,
  DeadLetterReason,
  InboxPutResult,
  InboxRecord,
  MessageStore,
  NewOutboxRecord,
  OutboxRecord,
} from './store.js';

export class MemoryStore implements MessageStore {
  readonly #outbox = new Map<string, OutboxRecord>();
  readonly #dead = new Map<string, DeadLetter>();
  readonly #inbox = new Map<string, InboxRecord>();
  readonly #delivered = new Map<string, number>();
  #seq = 0;
  #open = false;

  open(): Promise<void> {
    this.#open = true;
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#open = false;
    return Promise.resolve();
  }

  /** Runs `fn` if open, so misuse fails the same way as with a durable store. */
  #do<T>(what: string, fn: () => T): Promise<T> {
    if (!this.#open) return Promise.reject(new StoreError(`store is not open (${what})`));
    return Promise.resolve(fn());
  }

  enqueue(record: NewOutboxRecord): Promise<OutboxRecord> {
    return this.#do('enqueue', () => {
      const existing = this.#outbox.get(record.id);
      if (existing) return { ...existing };
      const rec: OutboxRecord = { ...record, seq: ++this.#seq };
      this.#outbox.set(rec.id, rec);
      return { ...rec };
    });
  }

  loadOutbox(): Promise<OutboxRecord[]> {
    return this.#do('loadOutbox', () =>
      [...this.#outbox.values()].sort((a, b) => a.seq - b.seq).map((r) => ({ ...r })),
    );
  }

  markReceived(id: string): Promise<void> {
    return this.#do('markReceived', () => {
      const r = this.#outbox.get(id);
      if (r) r.state = 'received';
    });
  }

  recordAttempt(id: string, attempts: number, notBefore: number): Promise<void> {
    return this.#do('recordAttempt', () => {
      const r = this.#outbox.get(id);
      if (r) {
        r.attempts = attempts;
        r.notBefore = notBefore;
      }
    });
  }

  remove(id: string): Promise<void> {
    return this.#do('remove', () => void this.#outbox.delete(id));
  }

  removeMany(ids: readonly string[]): Promise<void> {
    return this.#do('removeMany', () => {
      for (const id of ids) this.#outbox.delete(id);
    });
  }

  markReceivedMany(ids: readonly string[]): Promise<void> {
    return this.#do('markReceivedMany', () => {
      for (const id of ids) {
        const r = this.#outbox.get(id);
        if (r) r.state = 'received';
      }
    });
  }

  deadLetter(id: string, reason: DeadLetterReason, error: string | undefined, at: number): Promise<void> {
    return this.#do('deadLetter', () => {
      const r = this.#outbox.get(id);
      if (r) {
        this.#outbox.delete(id);
        this.#dead.set(id, { ...r, reason, error, deadAt: at });
      }
    });
  }

  listDeadLetters(query: DeadLetterQuery = {}): Promise<DeadLetter[]> {
    return this.#do('listDeadLetters', () => {
      let list = [...this.#dead.values()].sort((a, b) => a.deadAt - b.deadAt || a.seq - b.seq);
      if (query.to !== undefined) list = list.filter((d) => d.to === query.to);
      if (query.limit !== undefined) list = list.slice(0, query.limit);
      return list.map((d) => ({ ...d }));
    });
  }

  getDeadLetter(id: string): Promise<DeadLetter | undefined> {
    return this.#do('getDeadLetter', () => {
      const d = this.#dead.get(id);
      return d ? { ...d } : undefined;
    });
  }

  replayDeadLetter(id: string, notBefore: number, expiresAt: number | null): Promise<OutboxRecord | undefined> {
    return this.#do('replayDeadLetter', () => {
      const d = this.#dead.get(id);
      if (!d || this.#outbox.has(id)) return undefined;
      this.#dead.delete(id);
      const rec: OutboxRecord = {
        id: d.id,
        seq: ++this.#seq,
        to: d.to,
        qos: d.qos,
        stanza: d.stanza,
        payload: d.payload,
        createdAt: d.createdAt,
        notBefore,
        expiresAt,
        attempts: 0,
        state: 'queued',
      };
      this.#outbox.set(id, rec);
      return { ...rec };
    });
  }

  removeDeadLetter(id: string): Promise<boolean> {
    return this.#do('removeDeadLetter', () => this.#dead.delete(id));
  }

  inboxPut(record: InboxRecord): Promise<InboxPutResult> {
    return this.#do('inboxPut', (): InboxPutResult => {
      const key = inboxKey(record.sender, record.msgId);
      if (this.#delivered.has(key)) return 'delivered';
      if (this.#inbox.has(key)) return 'pending';
      this.#inbox.set(key, { ...record });
      return 'stored';
    });
  }

  inboxGet(sender: string, msgId: string): Promise<InboxRecord | 'delivered' | undefined> {
    return this.#do('inboxGet', () => {
      const key = inboxKey(sender, msgId);
      const r = this.#inbox.get(key);
      if (r) return { ...r };
      return this.#delivered.has(key) ? 'delivered' : undefined;
    });
  }

  inboxComplete(sender: string, msgId: string, at: number): Promise<void> {
    return this.#do('inboxComplete', () => this.#complete(sender, msgId, at));
  }

  /** Runs `effect`, then marks delivered: nothing here can crash in between, and a throw marks nothing. */
  inboxCompleteWith(sender: string, msgId: string, at: number, effect: () => void): Promise<void> {
    if (!this.#open) return Promise.reject(new StoreError('store is not open (inboxCompleteWith)'));
    try {
      effect();
    } catch (err) {
      return Promise.reject(toError(err));
    }
    this.#complete(sender, msgId, at);
    return Promise.resolve();
  }

  #complete(sender: string, msgId: string, at: number): void {
    const key = inboxKey(sender, msgId);
    this.#inbox.delete(key);
    // The first delivery time stays: dedupe retention counts from it.
    if (!this.#delivered.has(key)) this.#delivered.set(key, at);
  }

  inboxDiscard(sender: string, msgId: string): Promise<void> {
    return this.#do('inboxDiscard', () => void this.#inbox.delete(inboxKey(sender, msgId)));
  }

  inboxPendingCounts(): Promise<Map<string, number>> {
    return this.#do('inboxPendingCounts', () => {
      const m = new Map<string, number>();
      for (const r of this.#inbox.values()) m.set(r.sender, (m.get(r.sender) ?? 0) + 1);
      return m;
    });
  }

  prune(deliveredBefore: number, pendingBefore: number): Promise<number> {
    return this.#do('prune', () => {
      let n = 0;
      for (const [k, at] of this.#delivered) {
        if (at < deliveredBefore) {
          this.#delivered.delete(k);
          n++;
        }
      }
      for (const [k, r] of this.#inbox) {
        if (r.receivedAt < pendingBefore) {
          this.#inbox.delete(k);
          n++;
        }
      }
      return n;
    });
  }
}

function inboxKey(sender: string, msgId: string): string {
  return `${sender}\n${msgId}`;
}

/** Creates an in-memory store (state is lost with the process). */
export function memoryStore(): MemoryStore {
  return new MemoryStore();
}
