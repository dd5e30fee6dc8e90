/**
 * KeptMap: per-connection records that stay from one use to the next. A sweep (at most one per
 * interval, when a new key comes) drops only records that are idle and were not used since the
 * sweep before: a connection in use never loses its record (no Map entry made and deleted per
 * call), while keys of connections long gone do not stay. The clock is the test's own.
 */
import { expect } from 'chai';
import { KeptMap, type Kept } from '../../lib/kept-map.js';

interface Count extends Kept {
  count: number;
}

const record = (count = 0): Count => ({ count, used: true });

describe('KeptMap', () => {
  it('a record in use is never swept, however many keys come and go around it', () => {
    let now = 0;
    const table = new KeptMap<Count>((value) => value.count === 0, 100, () => now);
    const live: Count[] = [];
    let passing = 0;
    for (let round = 0; round < 50; round++) {
      // 2,000 connections, each used once a round (idle between uses, as a client between calls).
      for (let i = 0; i < 2000; i++) {
        const kept = table.get(`live-${i}`) ?? table.add(`live-${i}`, record());
        if (round > 0) expect(kept, `live-${i} in round ${round}`).to.equal(live[i]);
        live[i] = kept;
      }
      // Keys used once and never again, over time: sweeps run among them.
      for (let i = 0; i < 100; i++) {
        table.add(`passing-${passing++}`, record());
        now += 1;
      }
    }
    // What passed by in the last two intervals at most (100 a round of 100 ms), besides the live ones.
    expect(table.size, 'what passed by does not pile up').to.be.at.most(2000 + 300);
  });

  it('a record that holds something stays even when unused; an idle unused one goes at the second sweep', () => {
    let now = 0;
    const table = new KeptMap<Count>((value) => value.count === 0, 10, () => now);
    const busy = table.add('busy', record(3));
    table.add('idle', record(0));
    now = 10;
    table.add('a', record()); // sweep 1: both were used (made) since the start: kept, marks cleared
    expect(table.peek('idle')).to.not.equal(undefined);
    now = 20;
    table.add('b', record()); // sweep 2: 'idle' unused since sweep 1 and idle: gone; 'busy' holds 3
    expect(table.peek('idle'), 'idle and unused for a whole interval: gone').to.equal(undefined);
    expect(table.peek('busy')).to.equal(busy);
  });

  it('peek does not count as a use; get does; no sweep before the interval; clear drops all', () => {
    let now = 0;
    const table = new KeptMap<Count>((value) => value.count === 0, 10, () => now);
    table.add('peeked', record());
    table.add('got', record());
    now = 10;
    table.add('x', record()); // sweep 1: marks cleared
    table.peek('peeked');
    table.get('got');
    now = 19;
    table.add('y', record()); // 9 ms after sweep 1: no sweep
    expect(table.size).to.equal(4);
    now = 20;
    table.add('z', record()); // sweep 2
    expect(table.peek('peeked'), 'only peeked at: gone').to.equal(undefined);
    expect(table.peek('got'), 'used').to.not.equal(undefined);
    expect(table.peek('y'), 'made after sweep 1').to.not.equal(undefined);
    table.clear();
    expect(table.size).to.equal(0);
  });

  it('release drops a record at once when it is idle, and leaves a busy one for a sweep', () => {
    const table = new KeptMap<Count>((value) => value.count === 0, 10, () => 0);
    table.add('idle', record(0));
    const busy = table.add('busy', record(2));
    table.release('idle');
    table.release('busy');
    table.release('nobody');
    expect(table.peek('idle')).to.equal(undefined);
    expect(table.peek('busy')).to.equal(busy);
  });
});
