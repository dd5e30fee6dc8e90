/**
 * Items grouped by the key of the connection they belong to (calls in flight), so that a lost
 * connection finds its own items without a scan of everybody's. A scan per lost connection costs
 * connections x items: 10,000 clients going at once (a network blip, a restart) with a call in
 * flight each is 10^8 steps.
 *
 * No Set per group, and no Map entry made and deleted per item (see KeptMap for what that costs):
 * a group is an array in which an item knows its place (one removed is replaced by the last), and
 * a group left empty stays while its connection is in use.
 */
import { KeptMap, type Kept } from '../kept-map.js';

/** What an item of a {@link ByConnection} keeps for it: its place in its group, and when it came. */
export interface Grouped {
  groupAt: number;
  groupSeq: number;
}

interface Group<T> extends Kept {
  readonly items: T[];
}

export class ByConnection<T extends Grouped> {
  readonly #groups: KeptMap<Group<T>>;
  /** Numbers items in the order they came: `of` gives them oldest first. */
  #seq = 0;

  /** @param sweepMs, now: see KeptMap (tests give their own clock) */
  constructor(sweepMs?: number, now?: () => number) {
    this.#groups = new KeptMap<Group<T>>((group) => group.items.length === 0, sweepMs, now);
  }

  add(key: string, item: T): void {
    const { items } = this.#groups.get(key) ?? this.#groups.add(key, { items: [], used: true });
    if (items[item.groupAt] === item) return; // already there: it stays where it was
    item.groupAt = items.length;
    item.groupSeq = this.#seq++;
    items.push(item);
  }

  /** Removes one item (nothing when it is not in the group of `key`). */
  delete(key: string, item: T): void {
    const items = this.#groups.get(key)?.items;
    const at = item.groupAt;
    if (!items || items[at] !== item) return;
    const last = items.pop()!;
    if (last !== item) {
      items[at] = last;
      last.groupAt = at;
    }
    item.groupAt = -1;
  }

  /** The items of `key`, oldest first, as a list of their own (safe to change the table while walking it). */
  of(key: string): T[] {
    const items = this.#groups.peek(key)?.items;
    return items ? [...items].sort((a, b) => a.groupSeq - b.groupSeq) : [];
  }

  /** The connection of `key` is gone: its group goes now if it is empty (else at a sweep, once emptied). */
  release(key: string): void {
    this.#groups.release(key);
  }

  /** Connections with at least one item. */
  get groups(): number {
    let groups = 0;
    for (const group of this.#groups.values()) if (group.items.length > 0) groups++;
    return groups;
  }

  /** Groups kept, empty ones included (for tests). */
  get kept(): number {
    return this.#groups.size;
  }
}
