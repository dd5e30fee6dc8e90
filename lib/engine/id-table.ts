/**
 * Items by their numeric id (the calls in flight by message id), in an open-addressing table on
 * one array: the slot is a Fibonacci hash of the id, probing linear, deletion by backward shift
 * (no tombstones). It grows when half full; emptied, a large one goes back to its first size.
 * (Not the id's low bits: message ids are consecutive, so N calls in flight would fill one run of
 * N slots, and every delete and every lookup of an absent id would walk it: quadratic in N.)
 *
 * Why not a Map: V8 replaces a Map's hash table when it grows or shrinks, and the replaced
 * table keeps its entries and a pointer to its successor (for iterators). Once one table has
 * lived long enough to reach the old generation, every later table hangs from it through that
 * pointer, and the young-generation GC (which treats old-to-young pointers as live) keeps all of
 * them, with every call they held, its promise and its answer, until the next full GC. A pending
 * table filled and emptied once per batch did that: about 2 MB kept and promoted by every scavenge
 * (BENCHMARKS.md, "Per-call cost after batching"). This array is replaced only when it grows.
 */
export interface HasId {
  readonly id: number;
}

const INITIAL_SLOTS = 64;
/** 2^32 / the golden ratio: multiplying by it spreads consecutive ids over the table. */
const FIBONACCI = 0x9e3779b1;
/** An empty table larger than this (a burst of calls passed) goes back to INITIAL_SLOTS. */
const KEPT_SLOTS = 1024;

export class IdTable<T extends HasId> {
  #slots: (T | undefined)[] = new Array<T | undefined>(INITIAL_SLOTS).fill(undefined);
  #mask = INITIAL_SLOTS - 1;
  /** 32 - log2(slots): the hash's top bits are the slot. */
  #shift = 32 - Math.log2(INITIAL_SLOTS);
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Slots in the array (for tests). */
  get capacity(): number {
    return this.#slots.length;
  }

  /** The longest run of occupied slots, which a delete or a miss may walk (for tests). */
  get longestRun(): number {
    let longest = 0;
    let run = 0;
    // Twice round: a run may wrap from the last slot to the first.
    for (let i = 0; i < 2 * this.#slots.length; i++) {
      run = this.#slots[i & this.#mask] === undefined ? 0 : run + 1;
      longest = Math.max(longest, Math.min(run, this.#size));
    }
    return longest;
  }

  get(id: number): T | undefined {
    const slots = this.#slots;
    const mask = this.#mask;
    for (let i = this.#home(id); ; i = (i + 1) & mask) {
      const item = slots[i];
      if (item === undefined || item.id === id) return item;
    }
  }

  /** Adds `item`; one already there with the same id is replaced. */
  set(item: T): void {
    if ((this.#size + 1) * 2 > this.#slots.length) this.#grow();
    const slots = this.#slots;
    const mask = this.#mask;
    let i = this.#home(item.id);
    for (let current = slots[i]; current !== undefined; current = slots[i]) {
      if (current.id === item.id) {
        slots[i] = item;
        return;
      }
      i = (i + 1) & mask;
    }
    slots[i] = item;
    this.#size++;
  }

  /** Removes the item of `id`; returns it, or undefined when there is none. */
  delete(id: number): T | undefined {
    const slots = this.#slots;
    const mask = this.#mask;
    let i = this.#home(id);
    let item = slots[i];
    while (item !== undefined && item.id !== id) {
      i = (i + 1) & mask;
      item = slots[i];
    }
    if (item === undefined) return undefined;
    slots[i] = undefined;
    if (--this.#size === 0 && slots.length > KEPT_SLOTS) {
      this.#resize(INITIAL_SLOTS);
      return item;
    }
    // Backward shift: move up each later item of the run whose home slot is not between the hole
    // and it, so that a lookup never stops at the hole before reaching it.
    for (let j = (i + 1) & mask, next = slots[j]; next !== undefined; j = (j + 1) & mask, next = slots[j]) {
      const home = this.#home(next.id);
      const between = i <= j ? i < home && home <= j : i < home || home <= j;
      if (!between) {
        slots[i] = next;
        slots[j] = undefined;
        i = j;
      }
    }
    return item;
  }

  /** The items, as a list of their own (safe to change the table while walking it), in no particular order (not the order they came in). */
  values(): T[] {
    const items: T[] = [];
    for (const item of this.#slots) if (item !== undefined) items.push(item);
    return items;
  }

  #home(id: number): number {
    return Math.imul(id, FIBONACCI) >>> this.#shift;
  }

  #resize(slots: number): void {
    this.#slots = new Array<T | undefined>(slots).fill(undefined);
    this.#mask = slots - 1;
    this.#shift = 32 - Math.log2(slots);
  }

  #grow(): void {
    const old = this.#slots;
    this.#resize(old.length * 2);
    this.#size = 0;
    for (const item of old) if (item !== undefined) this.set(item);
    old.fill(undefined); // an old array (maybe in the old generation) must not keep settled calls alive through scavenges
  }
}
