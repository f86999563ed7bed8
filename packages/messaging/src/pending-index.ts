/**
 * The QoS 2 assured messages stored and awaiting `deliver`, as the receiver accounts them: bytes
 * and count per sender and in total (core `SenderBudget`), each sender's entries in arrival
 * order, so that expiry (`pendingTtl`) and eviction (oldest of a sender first) are O(1) per
 * entry. A sender at its cap loses its own oldest entry once it waited `EVICT_AFTER` for its
 * `deliver`; a full total evicts the oldest entry of the sender holding the most bytes. A sender
 * that delivers promptly never loses one: its young entries are refused, not evicted.
 *
 * Entries stored by an earlier process are known only by count (the store lists counts, not
 * ids): they are accounted as zero-byte entries until the TTL prune removes them.
 */
import { SenderBudget, type BudgetLimits } from '@xmppbus/core';

/** How long an entry must have waited for its `deliver` before its sender's next one may evict it. */
export const EVICT_AFTER = 60_000;

interface Entry<T> {
  readonly bytes: number;
  readonly at: number;
  /** What the receiver keeps for a fast `deliver` (never the parsed tree). */
  readonly data: T;
}

export type Admission =
  | { readonly ok: true; readonly evicted: readonly (readonly [sender: string, msgId: string])[] }
  | { readonly ok: false; readonly never: boolean; readonly text: string };

export class PendingIndex<T> {
  readonly budget: SenderBudget;
  readonly #evictAfter: number;
  readonly #bySender = new Map<string, Map<string, Entry<T>>>();
  readonly #restored = new Map<string, number>();
  /** Pending count per sender (known + restored): the messenger's `pendingInbound`. */
  readonly counts = new Map<string, number>();

  constructor(limits: Required<BudgetLimits>, ttl: number) {
    this.budget = new SenderBudget(limits, 'receive.pending');
    this.#evictAfter = Math.min(EVICT_AFTER, ttl);
  }

  has(sender: string, msgId: string): boolean {
    return this.#bySender.get(sender)?.has(msgId) ?? false;
  }

  get(sender: string, msgId: string): T | undefined {
    return this.#bySender.get(sender)?.get(msgId)?.data;
  }

  /**
   * Accounts a new entry, evicting old ones when that makes room (`canEvict`: the store can
   * discard records). The caller discards the evicted entries from the store.
   */
  admit(sender: string, msgId: string, bytes: number, now: number, data: T, canEvict: boolean): Admission {
    const b = this.budget;
    if (bytes > b.perSenderBytes || bytes > b.totalBytes) {
      return { ok: false, never: true, text: `assured message of ${bytes} bytes exceeds the pending budget` };
    }
    const evicted: [string, string][] = [];
    while (!b.tryTake(sender, bytes)) {
      b.refused--; // counted once, below, if no room can be made
      const own = b.usageOf(sender);
      const senderFull = own.count >= b.perSenderCount || own.bytes + bytes > b.perSenderBytes;
      const victim = canEvict ? (senderFull ? sender : this.#largest()) : undefined;
      const oldest = victim === undefined ? undefined : this.#oldest(victim, now);
      if (victim === undefined || oldest === undefined) {
        b.refused++;
        return {
          ok: false,
          never: false,
          text: senderFull
            ? `pending assured messages from ${sender} over budget (${b.perSenderCount} messages, ${b.perSenderBytes} bytes)`
            : `pending assured messages over budget (${b.totalCount} messages, ${b.totalBytes} bytes)`,
        };
      }
      this.remove(victim, oldest);
      evicted.push([victim, oldest]);
    }
    let m = this.#bySender.get(sender);
    if (!m) this.#bySender.set(sender, (m = new Map()));
    m.set(msgId, { bytes, at: now, data });
    this.counts.set(sender, (this.counts.get(sender) ?? 0) + 1);
    return { ok: true, evicted };
  }

  /** Forgets an entry (delivered, discarded or failed to store); unknown ones are ignored. */
  remove(sender: string, msgId: string): boolean {
    const m = this.#bySender.get(sender);
    const e = m?.get(msgId);
    if (!m || !e) return false;
    m.delete(msgId);
    if (m.size === 0) this.#bySender.delete(sender);
    this.budget.give(sender, e.bytes);
    this.#decrement(sender);
    return true;
  }

  /** Forgets one restored (earlier process) entry of `sender`, if any: it was delivered. */
  removeRestored(sender: string): void {
    const n = this.#restored.get(sender);
    if (n === undefined) return;
    if (n <= 1) this.#restored.delete(sender);
    else this.#restored.set(sender, n - 1);
    this.budget.give(sender, 0);
    this.#decrement(sender);
  }

  /** Drops the entries received before `before` (their store records are pruned by the caller). */
  expire(before: number): number {
    let n = 0;
    for (const [sender, m] of this.#bySender) {
      for (const [msgId, e] of m) {
        if (e.at >= before) break; // arrival order (deleting visited entries while iterating is safe)
        this.remove(sender, msgId);
        n++;
      }
    }
    return n;
  }

  /** Aligns the restored counts with the store's pending counts (after open or a prune). */
  reconcile(storeCounts: ReadonlyMap<string, number>): void {
    const senders = new Set([...storeCounts.keys(), ...this.#restored.keys()]);
    for (const sender of senders) {
      const known = this.#bySender.get(sender)?.size ?? 0;
      const want = Math.max(0, (storeCounts.get(sender) ?? 0) - known);
      let have = this.#restored.get(sender) ?? 0;
      while (have > want) {
        this.removeRestored(sender);
        have--;
      }
      while (have < want && this.budget.tryTake(sender, 0)) {
        have++;
        this.#restored.set(sender, have);
        this.counts.set(sender, (this.counts.get(sender) ?? 0) + 1);
      }
    }
  }

  /** The oldest entry of `sender` that waited long enough to be evicted. */
  #oldest(sender: string, now: number): string | undefined {
    const first = this.#bySender.get(sender)?.entries().next().value;
    return first !== undefined && now - first[1].at >= this.#evictAfter ? first[0] : undefined;
  }

  /** The sender holding the most pending bytes (only computed when the total is full). */
  #largest(): string | undefined {
    let best: string | undefined;
    let most = -1;
    for (const [sender, m] of this.#bySender) {
      const bytes = this.budget.usageOf(sender).bytes;
      if (bytes > most && m.size > 0) {
        most = bytes;
        best = sender;
      }
    }
    return best;
  }

  #decrement(sender: string): void {
    const n = (this.counts.get(sender) ?? 1) - 1;
    if (n <= 0) this.counts.delete(sender);
    else this.counts.set(sender, n);
  }
}
