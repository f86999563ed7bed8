import type { HistoryPoint } from './fleet.js';

/** A fixed-size ring of (time, number) points: memory per field is bounded by its capacity. */
export class HistoryRing {
  readonly #t: Float64Array;
  readonly #v: Float64Array;
  #start = 0;
  #length = 0;

  constructor(capacity: number) {
    this.#t = new Float64Array(capacity);
    this.#v = new Float64Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  push(t: number, v: number): void {
    const cap = this.#t.length;
    if (cap === 0) return;
    const at = (this.#start + this.#length) % cap;
    this.#t[at] = t;
    this.#v[at] = v;
    if (this.#length < cap) this.#length++;
    else this.#start = (this.#start + 1) % cap; // full: the oldest point goes
  }

  /** Oldest first. */
  points(): HistoryPoint[] {
    const cap = this.#t.length;
    const out: HistoryPoint[] = new Array<HistoryPoint>(this.#length);
    for (let i = 0; i < this.#length; i++) {
      const j = (this.#start + i) % cap;
      out[i] = { t: this.#t[j] ?? 0, v: this.#v[j] ?? 0 };
    }
    return out;
  }
}
