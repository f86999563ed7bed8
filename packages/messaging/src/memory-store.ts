/**
 * In-memory MessageStore for tests and for processes that accept losing their outbox on a
 * crash. Same semantics as the SQLite store, minus durability.
 */
import type {
  DeadLetter,
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

  open(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  enqueue(record: NewOutboxRecord): Promise<OutboxRecord> {
    const existing = this.#outbox.get(record.id);
    if (existing) return Promise.resolve({ ...existing });
    const rec: OutboxRecord = { ...record, seq: ++this.#seq };
    this.#outbox.set(rec.id, rec);
    return Promise.resolve({ ...rec });
  }

  loadOutbox(): Promise<OutboxRecord[]> {
    return Promise.resolve([...this.#outbox.values()].sort((a, b) => a.seq - b.seq).map((r) => ({ ...r })));
  }

  markReceived(id: string): Promise<void> {
    const r = this.#outbox.get(id);
    if (r) r.state = 'received';
    return Promise.resolve();
  }

  recordAttempt(id: string, attempts: number, notBefore: number): Promise<void> {
    const r = this.#outbox.get(id);
    if (r) {
      r.attempts = attempts;
      r.notBefore = notBefore;
    }
    return Promise.resolve();
  }

  remove(id: string): Promise<void> {
    this.#outbox.delete(id);
    return Promise.resolve();
  }

  deadLetter(id: string, reason: DeadLetterReason, error: string | undefined, at: number): Promise<void> {
    const r = this.#outbox.get(id);
    if (r) {
      this.#outbox.delete(id);
      this.#dead.set(id, { ...r, reason, error, deadAt: at });
    }
    return Promise.resolve();
  }

  listDeadLetters(options: { limit?: number; to?: string } = {}): Promise<DeadLetter[]> {
    let list = [...this.#dead.values()].sort((a, b) => a.deadAt - b.deadAt || a.seq - b.seq);
    if (options.to !== undefined) list = list.filter((d) => d.to === options.to);
    if (options.limit !== undefined) list = list.slice(0, options.limit);
    return Promise.resolve(list.map((d) => ({ ...d })));
  }

  getDeadLetter(id: string): Promise<DeadLetter | undefined> {
    const d = this.#dead.get(id);
    return Promise.resolve(d ? { ...d } : undefined);
  }

  replayDeadLetter(id: string, notBefore: number, expiresAt: number | null): Promise<OutboxRecord | undefined> {
    const d = this.#dead.get(id);
    if (!d || this.#outbox.has(id)) return Promise.resolve(undefined);
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
    return Promise.resolve({ ...rec });
  }

  removeDeadLetter(id: string): Promise<boolean> {
    return Promise.resolve(this.#dead.delete(id));
  }

  inboxPut(record: InboxRecord): Promise<InboxPutResult> {
    const key = `${record.sender}\n${record.msgId}`;
    if (this.#delivered.has(key)) return Promise.resolve('delivered');
    if (this.#inbox.has(key)) return Promise.resolve('pending');
    this.#inbox.set(key, { ...record });
    return Promise.resolve('stored');
  }

  inboxGet(sender: string, msgId: string): Promise<InboxRecord | 'delivered' | undefined> {
    const key = `${sender}\n${msgId}`;
    const r = this.#inbox.get(key);
    if (r) return Promise.resolve({ ...r });
    return Promise.resolve(this.#delivered.has(key) ? 'delivered' : undefined);
  }

  inboxComplete(sender: string, msgId: string, at: number): Promise<void> {
    this.inboxCompleteSync(sender, msgId, at);
    return Promise.resolve();
  }

  inboxCompleteSync(sender: string, msgId: string, at: number): void {
    const key = `${sender}\n${msgId}`;
    this.#inbox.delete(key);
    this.#delivered.set(key, at);
  }

  inboxPendingCounts(): Promise<Map<string, number>> {
    const m = new Map<string, number>();
    for (const r of this.#inbox.values()) m.set(r.sender, (m.get(r.sender) ?? 0) + 1);
    return Promise.resolve(m);
  }

  prune(deliveredBefore: number, pendingBefore: number): Promise<number> {
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
    return Promise.resolve(n);
  }

  /** Runs `fn` at once: memory has no transactions, and nothing here can crash half-way. */
  transaction<T>(fn: () => T): T {
    return fn();
  }
}

/** Creates an in-memory store (state is lost with the process). */
export function memoryStore(): MemoryStore {
  return new MemoryStore();
}
