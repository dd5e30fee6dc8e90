import { expect } from 'chai';
import type { Connection } from '../../lib/engine/connection.js';
import { RateLimiter } from '../../lib/engine/rate-limit.js';

/** A connection record for the limiter (it only uses it as a key). */
const connection = (): Connection => ({ key: 'k', routingId: Buffer.from('k'), address: 'k', framing: 'v1', up: true, heard: true, epoch: 1, identity: undefined, authenticated: false, heartbeats: false });

describe('RateLimiter', () => {
  it('lets a burst through, then refuses until time refills the bucket', () => {
    let now = 0;
    const limiter = new RateLimiter({ perSecond: 10, burst: 3 }, () => now);
    const c = connection();
    expect([1, 2, 3, 4].map(() => limiter.take(c))).to.deep.equal([true, true, true, false]);
    now += 99; // 0.99 of a token
    expect(limiter.take(c)).to.equal(false);
    now += 2;
    expect(limiter.take(c)).to.equal(true);
    expect(limiter.take(c)).to.equal(false);
  });

  it('refills at most to the burst, and keeps one bucket per connection', () => {
    let now = 0;
    const limiter = new RateLimiter({ perSecond: 1000, burst: 2 }, () => now);
    const a = connection();
    const b = connection();
    expect([limiter.take(a), limiter.take(a), limiter.take(a)]).to.deep.equal([true, true, false]);
    expect(limiter.take(b), 'another connection has its own bucket').to.equal(true);
    now += 60_000;
    expect([limiter.take(a), limiter.take(a), limiter.take(a)]).to.deep.equal([true, true, false]);
  });

  it('defaults the burst to one second of the rate', () => {
    const limiter = new RateLimiter({ perSecond: 5 }, () => 0);
    const c = connection();
    expect(Array.from({ length: 6 }, () => limiter.take(c))).to.deep.equal([true, true, true, true, true, false]);
  });
});
