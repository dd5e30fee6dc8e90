/**
 * A Map of per-connection records that stay from one use to the next, for the tables a call or a
 * batch passes through.
 *
 * A Map whose entries come and go at the rate of calls has its hash table replaced over and over,
 * and V8 links each replaced table to the next (for iterators that outlive a rehash). Once one of
 * them is in the old generation (after an idle spell, or any full GC), each dead table keeps the
 * next alive through young GCs, and with it everything the tables held: a quarter of what a call
 * allocated was promoted, scavenges took 6 ms instead of 0.5, and cross-node calls ran 40 % slower
 * (BENCHMARKS.md, "Results, sixth pass").
 *
 * So a record stays while it is in use, and a sweep drops only those that are idle and were not
 * used since the sweep before. Sweeps are timed (at most one per `sweepMs`, when a new key comes),
 * not counted in new keys: a count would let keys made again after a sweep bring the next one
 * sooner, and a table smaller than the connections in use would drop and make records without end.
 * A connection in use at least once per sweep interval keeps its record. One that goes is let go
 * by its owner at once when idle ({@link KeptMap.release}); else (a record busy when its connection
 * went, a key never told of) at a sweep after it has been idle a whole interval.
 */

/** What a record of a {@link KeptMap} carries for it. */
export interface Kept {
  /** Used since the last sweep (set by the table). */
  used: boolean;
}

export class KeptMap<V extends Kept> {
  readonly #map = new Map<string, V>();
  readonly #idle: (value: V) => boolean;
  readonly #sweepMs: number;
  readonly #now: () => number;
  #sweptAt: number;

  /**
   * @param idle whether a record holds nothing (only those may go)
   * @param sweepMs the least time between two sweeps
   * @param now the clock (tests give their own)
   */
  constructor(idle: (value: V) => boolean, sweepMs = 10_000, now: () => number = () => performance.now()) {
    this.#idle = idle;
    this.#sweepMs = sweepMs;
    this.#now = now;
    this.#sweptAt = now();
  }

  /** The record of `key`, marked used. */
  get(key: string): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) value.used = true;
    return value;
  }

  /** The record of `key`, without marking it used (for a look that is not a use). */
  peek(key: string): V | undefined {
    return this.#map.get(key);
  }

  /** Adds a record for a key that has none (a sweep may run first). */
  add(key: string, value: V): V {
    const now = this.#now();
    if (now - this.#sweptAt >= this.#sweepMs) {
      this.#sweptAt = now;
      this.#sweep();
    }
    value.used = true;
    this.#map.set(key, value);
    return value;
  }

  /** Drops the record of `key` if it is idle (its connection is gone; a busy one goes at a sweep). */
  release(key: string): void {
    const value = this.#map.get(key);
    if (value !== undefined && this.#idle(value)) this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }

  values(): IterableIterator<V> {
    return this.#map.values();
  }

  /** Records kept, idle ones included. */
  get size(): number {
    return this.#map.size;
  }

  #sweep(): void {
    for (const [key, value] of this.#map) {
      if (!value.used && this.#idle(value)) this.#map.delete(key);
      else value.used = false;
    }
  }
}
