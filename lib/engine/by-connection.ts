/**
 * Items grouped by the key of the connection they belong to (calls in flight), so that a lost
 * connection finds its own items without a scan of everybody's. A scan per lost connection costs
 * connections x items: 10,000 clients going at once (a network blip, a restart) with a call in
 * flight each is 10^8 steps.
 *
 * No Set per group, and no Map entry made and deleted per item. A Map or Set whose entries come and
 * go at the rate of calls has its hash table replaced over and over, and V8 links each replaced
 * table to the next (for iterators that outlive a rehash). Once one replaced table is in the old
 * generation (after an idle spell, or any full GC), each dead table keeps the next one alive
 * through young GCs, and with it everything the tables held: a quarter of what a call allocated was
 * promoted, and cross-node calls ran 40 % slower (BENCHMARKS.md, "Results, sixth pass"). So a
 * group is an array in which an item knows its place (one removed is replaced by the last), and a
 * group left empty stays until the empty ones outnumber the others.
 */

/** What an item of a {@link ByConnection} keeps for it: its place in its group, and when it came. */
export interface Grouped {
  groupAt: number;
  groupSeq: number;
}

/** Empty groups kept at least, before a sweep drops them. */
const KEPT_EMPTY = 1024;

export class ByConnection<T extends Grouped> {
  readonly #groups = new Map<string, T[]>();
  /** Groups that are empty now (they stay, see above). */
  #empty = 0;
  /** Numbers items in the order they came: `of` gives them oldest first. */
  #seq = 0;

  add(key: string, item: T): void {
    let group = this.#groups.get(key);
    if (!group) this.#groups.set(key, (group = []));
    else if (group[item.groupAt] === item) return; // already there: it stays where it was
    else if (group.length === 0) this.#empty--;
    item.groupAt = group.length;
    item.groupSeq = this.#seq++;
    group.push(item);
  }

  /** Removes one item (nothing when it is not in the group of `key`). */
  delete(key: string, item: T): void {
    const group = this.#groups.get(key);
    const at = item.groupAt;
    if (!group || group[at] !== item) return;
    const last = group.pop()!;
    if (last !== item) {
      group[at] = last;
      last.groupAt = at;
    }
    item.groupAt = -1;
    // Keys of connections long gone are not kept for good: a sweep now and then.
    if (group.length === 0 && ++this.#empty > KEPT_EMPTY && this.#empty * 2 > this.#groups.size) this.#sweep();
  }

  #sweep(): void {
    for (const [key, group] of this.#groups) if (group.length === 0) this.#groups.delete(key);
    this.#empty = 0;
  }

  /** The items of `key`, oldest first, as a list of their own (safe to change the table while walking it). */
  of(key: string): T[] {
    const group = this.#groups.get(key);
    return group ? [...group].sort((a, b) => a.groupSeq - b.groupSeq) : [];
  }

  /** Connections with at least one item. */
  get groups(): number {
    return this.#groups.size - this.#empty;
  }

  /** Groups kept, empty ones included (for tests). */
  get kept(): number {
    return this.#groups.size;
  }
}
