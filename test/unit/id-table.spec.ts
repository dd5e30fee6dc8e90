/**
 * IdTable: items by numeric id in an open-addressing array (the calls in flight). Lookups must
 * find every item after any mix of adds and deletes (collisions, runs that wrap around the end of
 * the array, growth), and ids anywhere in the uint32 range (message ids start at a random value).
 */
import { expect } from 'chai';
import { IdTable } from '../../lib/engine/id-table.js';

interface Item {
  readonly id: number;
  readonly tag: string;
}

const item = (id: number, tag = `#${id}`): Item => ({ id, tag });

/** A reference: what a Map says, checked against the table after every step. */
function agree(table: IdTable<Item>, reference: Map<number, Item>, probes: readonly number[]): void {
  expect(table.size).to.equal(reference.size);
  for (const id of probes) expect(table.get(id), `get(${id})`).to.equal(reference.get(id));
  expect(table.values().map((x) => x.id).sort((a, b) => a - b)).to.deep.equal([...reference.keys()].sort((a, b) => a - b));
}

describe('IdTable', () => {
  it('finds, replaces and deletes by id; a missing id is undefined and deleting it changes nothing', () => {
    const table = new IdTable<Item>();
    expect(table.get(1)).to.equal(undefined);
    table.set(item(1));
    table.set(item(2));
    expect(table.get(1)?.tag).to.equal('#1');
    table.set(item(1, 'again'));
    expect(table.size).to.equal(2);
    expect(table.get(1)?.tag).to.equal('again');
    expect(table.delete(3)).to.equal(undefined);
    expect(table.size).to.equal(2);
    expect(table.delete(1)?.tag).to.equal('again');
    expect(table.get(1)).to.equal(undefined);
    expect(table.get(2)?.tag).to.equal('#2');
    expect(table.size).to.equal(1);
  });

  it('ids that share a slot are all found, whichever of them is deleted first', () => {
    // 31 ids in 64 slots (just under the growth point): some share a slot whatever the hash, and
    // some run wraps from the last slot to the first (the longest run says the table has runs).
    const ids = [...Array.from({ length: 16 }, (_, i) => i), ...Array.from({ length: 15 }, (_, i) => 63 + 64 * i)];
    for (const first of ids) {
      const table = new IdTable<Item>();
      const reference = new Map<number, Item>();
      for (const id of ids) {
        const x = item(id);
        table.set(x);
        reference.set(id, x);
      }
      expect(table.capacity).to.equal(64);
      expect(table.longestRun, 'some ids share a run').to.be.greaterThan(1);
      table.delete(first);
      reference.delete(first);
      agree(table, reference, [...ids, 16, 127]);
    }
  });

  it('consecutive ids (as message ids are) are spread: no long run to walk, however many are in flight', () => {
    // By the ids' low bits, N consecutive ids filled one run of N slots, and every delete walked it.
    const table = new IdTable<Item>();
    const start = 0xfffff000; // message ids start anywhere, and wrap past 2^32
    for (let i = 0; i < 20_000; i++) table.set(item(start + i));
    expect(table.longestRun).to.be.below(100);
    for (let i = 0; i < 20_000; i += 2) table.delete(start + i);
    expect(table.get(start + 1)?.id).to.equal(start + 1);
    expect(table.size).to.equal(10_000);
  });

  it('ids across the whole uint32 range, and lookups of values that are no ids (fractions, NaN, negatives) end', () => {
    const table = new IdTable<Item>();
    const ids = [0xffffffff, 0xfffffffe, 0x80000000, 0x7fffffff, 1, 2 ** 31 + 64];
    for (const id of ids) table.set(item(id));
    for (const id of ids) expect(table.get(id)?.id).to.equal(id);
    for (const odd of [1.5, Number.NaN, -1, Infinity, 2 ** 40]) expect(table.get(odd)).to.equal(undefined);
    expect(table.delete(0.5)).to.equal(undefined);
    expect(table.size).to.equal(ids.length);
  });

  it('agrees with a Map through growth and a long run of mixed adds and deletes (sequential ids, as calls have)', () => {
    const table = new IdTable<Item>();
    const reference = new Map<number, Item>();
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    let next = 0xfffff000; // wraps past 2^32 on the way, as message ids do
    for (let step = 0; step < 20_000; step++) {
      if (reference.size < 500 && (reference.size === 0 || random() < 0.55)) {
        next = (next + 1) >>> 0;
        const x = item(next);
        table.set(x);
        reference.set(next, x);
      } else {
        // Mostly the oldest (calls settle roughly in order), sometimes any.
        const keys = [...reference.keys()];
        const id = random() < 0.7 ? keys[0]! : keys[Math.floor(random() * keys.length)]!;
        expect(table.delete(id)?.id).to.equal(id);
        reference.delete(id);
      }
      if (step % 500 === 0) agree(table, reference, [next, (next + 1) >>> 0, ...[...reference.keys()].slice(0, 20)]);
    }
    agree(table, reference, [...reference.keys()]);
  });

  it('values() is a list of its own: deleting while walking it visits every item once', () => {
    const table = new IdTable<Item>();
    for (let id = 1; id <= 100; id++) table.set(item(id * 64)); // all in one run of collisions
    const seen: number[] = [];
    for (const x of table.values()) {
      seen.push(x.id);
      table.delete(x.id);
    }
    expect(seen.sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 100 }, (_, i) => (i + 1) * 64));
    expect(table.size).to.equal(0);
  });

  it('a burst grows it; emptied, it goes back to its first size and still works', () => {
    const table = new IdTable<Item>();
    const first = table.capacity;
    for (let id = 1; id <= 5000; id++) table.set(item(id));
    expect(table.capacity).to.be.above(5000);
    for (let id = 1; id <= 4999; id++) table.delete(id);
    expect(table.capacity, 'not while one is left').to.be.above(5000);
    expect(table.get(5000)?.id).to.equal(5000);
    table.delete(5000);
    expect(table.capacity).to.equal(first);
    expect(table.size).to.equal(0);
    for (let id = 7000; id < 7100; id++) table.set(item(id));
    for (let id = 7000; id < 7100; id++) expect(table.get(id)?.id).to.equal(id);
    expect(table.size).to.equal(100);
  });
});
