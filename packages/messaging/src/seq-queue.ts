/**
 * A peer's due messages in `seq` order. Removal leaves a hole instead of splicing: messages
 * complete near the head, and `splice` at the front of a 10 000-message backlog moved the whole
 * array each time (~10 µs per message in the benchmark profile). The array is compacted once
 * the dead head passes half of it, so every operation is amortised O(1) near the head.
 */
export class SeqQueue<T> {
  /** Slots from `head` on; `undefined` is a removed item. Read with `head`/`length`, never write. */
  items: (T | undefined)[] = [];
  head = 0;
  readonly #key: (item: T) => number;

  constructor(key: (item: T) => number) {
    this.#key = key;
  }

  get length(): number {
    return this.items.length;
  }

  /** Inserts keeping the order by key (appending is the common case). */
  insert(item: T): void {
    const items = this.items;
    const k = this.#key(item);
    let i = items.length;
    while (i > this.head) {
      const prev = items[i - 1];
      if (prev !== undefined && this.#key(prev) <= k) break;
      i--;
    }
    if (i === items.length) items.push(item);
    else items.splice(i, 0, item);
  }

  /** Removes `item` if present (returns whether it was). */
  remove(item: T): boolean {
    const items = this.items;
    const i = items.indexOf(item, this.head);
    if (i < 0) return false;
    items[i] = undefined;
    while (this.head < items.length && items[this.head] === undefined) this.head++;
    if (this.head === items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 256 && this.head * 2 > items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
    return true;
  }
}
