/**
 * An optional per-connection limit on the work a peer may start: a token bucket per connection
 * (`perSecond` refill, `burst` capacity). Past it, the engine refuses the work with a retryable
 * BusyError instead of running it, so one peer's flood costs the others little.
 */
import type { Connection } from './connection.js';

/** A per-connection limit on the work a peer may start (`rateLimit` option). */
export interface RateLimit {
  /** Work messages a connection may send per second, on average. */
  readonly perSecond: number;
  /** How many it may send at once after a quiet spell. Default: one second's worth. */
  readonly burst?: number;
}

interface Bucket {
  tokens: number;
  last: number;
}

export class RateLimiter {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #buckets = new WeakMap<Connection, Bucket>();
  readonly #now: () => number;

  constructor(limit: RateLimit, now: () => number = performance.now.bind(performance)) {
    this.#perMs = limit.perSecond / 1000;
    this.#burst = limit.burst ?? limit.perSecond;
    this.#now = now;
  }

  /** Takes one token for `connection`; false when its bucket is empty. */
  take(connection: Connection): boolean {
    const now = this.#now();
    let bucket = this.#buckets.get(connection);
    if (!bucket) {
      bucket = { tokens: this.#burst, last: now };
      this.#buckets.set(connection, bucket);
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.last) * this.#perMs);
      bucket.last = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }
}
