/**
 * Items grouped by the key of the connection they belong to (calls in flight, work running), so
 * that a lost connection finds its own items without a scan of everybody's. A scan per lost
 * connection costs connections x items: 10,000 clients going at once (a network blip, a restart)
 * with a call in flight each is 10^8 steps.
 */
export class ByConnection<T> {
  readonly #groups = new Map<string, Set<T>>();

  add(key: string, item: T): void {
    let group = this.#groups.get(key);
    if (!group) this.#groups.set(key, (group = new Set()));
    group.add(item);
  }

  /** Removes one item; a group left empty goes (keys of connections long gone are not kept). */
  delete(key: string, item: T): void {
    const group = this.#groups.get(key);
    if (!group?.delete(item)) return;
    if (group.size === 0) this.#groups.delete(key);
  }

  /** The items of `key`, oldest first, as a list of their own (safe to change the table while walking it). */
  of(key: string): T[] {
    const group = this.#groups.get(key);
    return group ? [...group] : [];
  }

  /** Connections with at least one item. */
  get groups(): number {
    return this.#groups.size;
  }
}
