/**
 * The cache behind `server.sendTo(identity)` without options: one proxy per identity, reused by
 * `server.sendTo(id).fn()` in a loop. Bounded, since anyone can be named (an identity not
 * connected, a typo): past the bound the cache starts over. The bound grows with the clients
 * connected, so that a push to 10,000 of them does not make most proxies again each time (a fixed
 * bound of 4,096 did).
 */
export class ProxyCache<V> {
  readonly #entries = new Map<string, V>();

  /**
   * @param minimum entries always allowed.
   * @param live how many identities are connected now: the cache holds twice that, at least `minimum`.
   */
  constructor(readonly minimum: number, private readonly live: () => number) {}

  /** The cached value for `key`, or a new one from `make` (cached). */
  get(key: string, make: () => V): V {
    let value = this.#entries.get(key);
    if (value === undefined) {
      value = make();
      if (this.#entries.size >= Math.max(this.minimum, 2 * this.live())) this.#entries.clear();
      this.#entries.set(key, value);
    }
    return value;
  }

  get size(): number {
    return this.#entries.size;
  }
}
