/**
 * Admission bookkeeping shared by every unit that keeps inbound work waiting (rpc calls, QoS
 * envelopes, batches): byte and count budgets per sender and in total, and a fair queue that
 * serves senders in turn. Budgets count a stanza's size on the wire, so one sender's huge
 * stanzas cannot exhaust memory, and per-sender caps stop one flood from starving the others.
 */
import { ConfigError } from './errors.js';
import { bareJid } from './jid.js';
import type { Element } from './xml.js';

/** Set by stream transports on each inbound stanza: its size on the wire in bytes. */
export const STANZA_BYTES: unique symbol = Symbol.for('xmppbus.stanzaBytes') as never;

/**
 * The size of an inbound stanza on the wire: what the transport recorded, or (for stanzas built
 * in memory) an estimate from names, attributes and text, walked iteratively.
 */
export function stanzaBytes(el: Element): number {
  const known = (el as Element & { [STANZA_BYTES]?: number })[STANZA_BYTES];
  if (known !== undefined) return known;
  let bytes = 0;
  const stack: (Element | string)[] = [el];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (typeof n === 'string') {
      bytes += n.length;
      continue;
    }
    bytes += 2 * n.name.length + 5;
    for (const k in n.attrs) {
      const v = n.attrs[k];
      if (v !== undefined && v !== null) bytes += k.length + String(v).length + 4;
    }
    for (const c of n.children) stack.push(c);
  }
  return bytes;
}

/** Bytes charged per node (element or text) of a large stanza: a parsed node costs ~150 bytes of heap. */
export const NODE_COST = 64;
/** Below this size a stanza is charged its bytes only: its tree costs ≤ 60 KiB, bounded by count budgets. */
const SMALL_STANZA = 1024;

/**
 * What keeping an inbound stanza costs, for budgets: its size on the wire (a property read when
 * the transport recorded it), and for a stanza of 1 KiB or more at least `NODE_COST` per node of
 * its tree — 242 KiB of empty elements hold ~9 MiB of heap once parsed (measured), so wire bytes
 * alone would let a few such stanzas exhaust memory inside their byte budget.
 */
export function stanzaCost(el: Element): number {
  const bytes = stanzaBytes(el);
  if (bytes < SMALL_STANZA) return bytes;
  // Walked only for large stanzas, whose parse cost far more than this walk.
  let nodes = 0;
  const stack: Element[] = [el];
  while (stack.length > 0) {
    const n = stack.pop()!;
    nodes++;
    for (const c of n.children) {
      if (typeof c === 'string') nodes++;
      else stack.push(c);
    }
  }
  return Math.max(bytes, nodes * NODE_COST);
}

export interface BudgetLimits {
  /** Bytes one sender may keep waiting (default 1 MiB). */
  perSenderBytes?: number;
  /** Stanzas one sender may keep waiting (default 256). */
  perSenderCount?: number;
  /** Bytes all senders together may keep waiting (default 16 MiB). */
  totalBytes?: number;
  /** Stanzas all senders together may keep waiting (default 4096). */
  totalCount?: number;
}

interface Usage {
  bytes: number;
  count: number;
}

/**
 * Byte and count budgets per sender (bare JID) and in total. `tryTake` either accounts the whole
 * stanza or nothing; `give` returns it when the work is done. Idle senders' entries are kept
 * until there are more than 1024 of them (a steady caller does not allocate an entry per call),
 * then swept, so the map stays bounded by the senders with work in hand plus that slack.
 */
export class SenderBudget {
  readonly perSenderBytes: number;
  readonly perSenderCount: number;
  readonly totalBytes: number;
  readonly totalCount: number;
  readonly #senders = new Map<string, Usage>();
  #bytes = 0;
  #count = 0;
  /** Stanzas refused for being over a budget. */
  refused = 0;

  constructor(limits: BudgetLimits = {}, name = 'budget') {
    this.perSenderBytes = positive(limits.perSenderBytes ?? 1 << 20, `${name}.perSenderBytes`);
    this.perSenderCount = positive(limits.perSenderCount ?? 256, `${name}.perSenderCount`);
    this.totalBytes = positive(limits.totalBytes ?? 16 << 20, `${name}.totalBytes`);
    this.totalCount = positive(limits.totalCount ?? 4096, `${name}.totalCount`);
  }

  /** Bytes and stanzas waiting, in total. */
  get usage(): Usage {
    return { bytes: this.#bytes, count: this.#count };
  }

  /** Bytes and stanzas `sender` keeps waiting. */
  usageOf(sender: string): Usage {
    const u = this.#senders.get(bareJid(sender));
    return u === undefined ? { bytes: 0, count: 0 } : { bytes: u.bytes, count: u.count };
  }

  /** Senders with work in hand. */
  get senders(): number {
    let n = 0;
    for (const u of this.#senders.values()) if (u.count > 0) n++;
    return n;
  }

  /** Accounts `bytes` to `sender` if every budget allows it; otherwise counts a refusal. */
  tryTake(sender: string, bytes: number): boolean {
    const key = bareJid(sender);
    const u = this.#senders.get(key);
    const ok =
      this.#count < this.totalCount &&
      this.#bytes + bytes <= this.totalBytes &&
      (u === undefined
        ? bytes <= this.perSenderBytes
        : u.count < this.perSenderCount && u.bytes + bytes <= this.perSenderBytes);
    if (!ok) {
      this.refused++;
      return false;
    }
    if (u === undefined) {
      if (this.#senders.size >= IDLE_SLACK) this.#sweep();
      this.#senders.set(key, { bytes, count: 1 });
    } else {
      u.bytes += bytes;
      u.count++;
    }
    this.#bytes += bytes;
    this.#count++;
    return true;
  }

  /** Returns what `tryTake` accounted. */
  give(sender: string, bytes: number): void {
    const key = bareJid(sender);
    const u = this.#senders.get(key);
    if (u === undefined || u.count <= 0) return;
    u.bytes -= bytes;
    u.count--;
    this.#bytes -= bytes;
    this.#count--;
  }

  #sweep(): void {
    for (const [k, u] of this.#senders) if (u.count <= 0) this.#senders.delete(k);
  }
}

const IDLE_SLACK = 1024;

/** Every limit is a whole number of bytes or stanzas, at least 1 (the one check for every unit's budgets). */
function positive(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${name} must be an integer >= 1, got ${String(v)}`);
  return v;
}

/**
 * A queue that serves senders in turn (round robin over bare JIDs), each sender's items in
 * arrival order: a sender with a thousand waiting calls gets one turn, like a sender with one.
 */
export class FairQueue<T> {
  readonly #bySender = new Map<string, { items: T[]; head: number }>();
  /** Senders with waiting items, in service order. */
  #ring: string[] = [];
  #next = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  sizeOf(sender: string): number {
    const q = this.#bySender.get(bareJid(sender));
    return q === undefined ? 0 : q.items.length - q.head;
  }

  push(sender: string, item: T): void {
    const key = bareJid(sender);
    let q = this.#bySender.get(key);
    if (q === undefined) {
      q = { items: [], head: 0 };
      this.#bySender.set(key, q);
      this.#ring.push(key);
    }
    q.items.push(item);
    this.#size++;
  }

  /** The next item, from the next sender in turn. */
  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    if (this.#next >= this.#ring.length) this.#next = 0;
    const key = this.#ring[this.#next]!;
    const q = this.#bySender.get(key)!;
    const item = q.items[q.head]!;
    q.items[q.head++] = undefined as never; // let the item be collected
    this.#size--;
    if (q.head === q.items.length) {
      this.#bySender.delete(key);
      this.#ring.splice(this.#next, 1); // the next sender slides into this slot
    } else {
      if (q.head > 64 && q.head * 2 > q.items.length) {
        q.items = q.items.slice(q.head);
        q.head = 0;
      }
      this.#next++;
    }
    return item;
  }

  /** Removes and returns every waiting item (e.g. to refuse them on close). */
  clear(): T[] {
    const out: T[] = [];
    while (this.#size > 0) out.push(this.shift() as T);
    this.#ring = [];
    this.#next = 0;
    return out;
  }
}
