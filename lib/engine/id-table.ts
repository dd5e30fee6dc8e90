/**
 * Items by their numeric id (the calls in flight by message id), in an open-addressing table on
 * one array: the slot is the id's low bits, probing linear, deletion by backward shift (no
 * tombstones). It grows when half full; emptied, a large one goes back to its first size.
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
/** An empty table larger than this (a burst of calls passed) goes back to INITIAL_SLOTS. */
const KEPT_SLOTS = 1024;

export class IdTable<T extends HasId> {
  #slots: (T | undefined)[] = new Array<T | undefined>(INITIAL_SLOTS).fill(undefined);
  #mask = INITIAL_SLOTS - 1;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Slots in the array (for tests). */
  get capacity(): number {
    return this.#slots.length;
  }

  get(id: number): T | undefined {
    const slots = this.#slots;
    const mask = this.#mask;
    for (let i = id & mask; ; i = (i + 1) & mask) {
      const item = slots[i];
      if (item === undefined || item.id === id) return item;
    }
  }

  /** Adds `item`; one already there with the same id is replaced. */
  set(item: T): void {
    if ((this.#size + 1) * 2 > this.#slots.length) this.#grow();
    const slots = this.#slots;
    const mask = this.#mask;
    let i = item.id & mask;
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
    let i = id & mask;
    let item = slots[i];
    while (item !== undefined && item.id !== id) {
      i = (i + 1) & mask;
      item = slots[i];
    }
    if (item === undefined) return undefined;
    slots[i] = undefined;
    if (--this.#size === 0 && slots.length > KEPT_SLOTS) {
      this.#slots = new Array<T | undefined>(INITIAL_SLOTS).fill(undefined);
      this.#mask = INITIAL_SLOTS - 1;
      return item;
    }
    // Backward shift: move up each later item of the run whose home slot is not between the hole
    // and it, so that a lookup never stops at the hole before reaching it.
    for (let j = (i + 1) & mask, next = slots[j]; next !== undefined; j = (j + 1) & mask, next = slots[j]) {
      const home = next.id & mask;
      const between = i <= j ? i < home && home <= j : i < home || home <= j;
      if (!between) {
        slots[i] = next;
        slots[j] = undefined;
        i = j;
      }
    }
    return item;
  }

  /** The items, as a list of their own (safe to change the table while walking it), in no particular order. */
  values(): T[] {
    const items: T[] = [];
    for (const item of this.#slots) if (item !== undefined) items.push(item);
    return items;
  }

  #grow(): void {
    const old = this.#slots;
    this.#slots = new Array<T | undefined>(old.length * 2).fill(undefined);
    this.#mask = this.#slots.length - 1;
    this.#size = 0;
    for (const item of old) if (item !== undefined) this.set(item);
  }
}
