/**
 * ProxyCache (behind `server.sendTo(id)`): one value per key, reused; bounded, the bound growing
 * with the identities connected so that a push to every client reuses what the last one made.
 */
import { expect } from 'chai';
import { ProxyCache } from '../../lib/proxy-cache.js';

describe('ProxyCache', () => {
  it('gives the same value for a key until the bound is reached, then starts over', () => {
    let made = 0;
    const cache = new ProxyCache<object>(3, () => 0);
    const make = (): object => ({ n: ++made });
    const a = cache.get('a', make);
    expect(cache.get('a', make)).to.equal(a);
    cache.get('b', make);
    cache.get('c', make);
    expect(made).to.equal(3);
    cache.get('d', make); // past the minimum of 3: starts over with d alone
    expect(cache.size).to.equal(1);
    expect(cache.get('a', make)).to.not.equal(a);
    expect(made).to.equal(5);
  });

  it('with more identities connected than the minimum, a round over all of them reuses every value', () => {
    let connected = 10;
    let made = 0;
    const cache = new ProxyCache<object>(4, () => connected);
    const make = (): object => ({ n: ++made });
    const keys = Array.from({ length: 10 }, (_, i) => `client-${i}`);
    const first = keys.map((key) => cache.get(key, make));
    const second = keys.map((key) => cache.get(key, make));
    expect(made, 'nothing made again in the second round').to.equal(10);
    second.forEach((value, i) => expect(value).to.equal(first[i]));
    connected = 0; // everyone gone: back to the minimum bound, the next new key starts over
    cache.get('stranger', make);
    expect(cache.size).to.equal(1);
  });
});
