/**
 * ByConnection: items grouped by connection key, so that a lost connection reaches its own items
 * without a scan of everybody's; empty groups stay while their key is in use (no Map entry made
 * and deleted per call), and go once it is not (see KeptMap).
 */
import { expect } from 'chai';
import { ByConnection, type Grouped } from '../../lib/engine/by-connection.js';

interface Item extends Grouped {
  name: string;
}

const item = (name: string): Item => ({ name, groupAt: -1, groupSeq: 0 });
const names = (items: Item[]): string[] => items.map((one) => one.name);

describe('ByConnection', () => {
  it('gives the items of one key, oldest first, and nothing of the other keys', () => {
    const table = new ByConnection<Item>();
    const [a1, a2, b1] = [item('a1'), item('a2'), item('b1')];
    table.add('a', a1);
    table.add('b', b1);
    table.add('a', a2);
    table.add('a', a1); // already there: stays where it was
    expect(names(table.of('a'))).to.deep.equal(['a1', 'a2']);
    expect(names(table.of('b'))).to.deep.equal(['b1']);
    expect(table.of('nobody')).to.deep.equal([]);
    expect(table.groups).to.equal(2);
  });

  it('keeps the order items came in through deletes from the middle (a removed item is replaced by the last)', () => {
    const table = new ByConnection<Item>();
    const items = Array.from({ length: 8 }, (_, i) => item(`i${i}`));
    for (const one of items) table.add('k', one);
    table.delete('k', items[1]!);
    table.delete('k', items[4]!);
    table.delete('k', items[0]!);
    table.add('k', items[1]!); // back again: now the newest
    expect(names(table.of('k'))).to.deep.equal(['i2', 'i3', 'i5', 'i6', 'i7', 'i1']);
  });

  it('deleting what is not there (or is in another group) changes nothing; an emptied group counts as none', () => {
    const table = new ByConnection<Item>();
    const [one, two, three] = [item('1'), item('2'), item('3')];
    table.add('k', one);
    table.add('k', two);
    table.add('other', three); // at place 0 of its own group
    table.delete('k', three);
    table.delete('other', one);
    expect(names(table.of('k'))).to.deep.equal(['1', '2']);
    expect(names(table.of('other'))).to.deep.equal(['3']);
    table.delete('k', one);
    table.delete('k', two);
    expect(table.of('k')).to.deep.equal([]);
    expect(table.groups, 'a key with no item is no group').to.equal(1);
    table.add('k', one);
    expect(table.groups).to.equal(2);
  });

  it('an empty group stays while its key is in use, and goes once it is not (keys of connections long gone are not kept for good)', () => {
    let now = 0;
    const table = new ByConnection<Item>(100, () => now);
    const live = item('live');
    for (let i = 0; i < 3000; i++) {
      // A live connection with one call at a time (its group empty between calls), and connections that come once.
      table.add('live', live);
      table.delete('live', live);
      const gone = item(`c${i}`);
      table.add(`c${i}`, gone);
      table.delete(`c${i}`, gone);
      now += 1;
    }
    expect(table.kept, 'what came in the last two intervals, and the live key').to.be.at.most(201);
    expect(table.groups).to.equal(0);
    table.add('live', live);
    expect(names(table.of('live'))).to.deep.equal(['live']);
  });

  it('a group with a call in flight is never swept, however long the call; release lets an empty group go at once', () => {
    let now = 0;
    const table = new ByConnection<Item>(100, () => now);
    const long = item('long');
    table.add('k', long);
    for (let sweep = 0; sweep < 3; sweep++) {
      now += 100;
      const other = item(`o${sweep}`);
      table.add(`other-${sweep}`, other); // a new key: a sweep runs
      table.delete(`other-${sweep}`, other);
    }
    expect(names(table.of('k')), 'the connection\'s call is still found when it is lost').to.deep.equal(['long']);
    table.release('k'); // not empty: stays
    expect(names(table.of('k'))).to.deep.equal(['long']);
    table.delete('k', long);
    const kept = table.kept;
    table.release('k');
    expect(table.kept).to.equal(kept - 1);
  });

  it('the list it gives is its own: deleting while walking it visits every item once', () => {
    const table = new ByConnection<Item>();
    for (let i = 0; i < 5; i++) table.add('k', item(String(i)));
    const seen: string[] = [];
    for (const one of table.of('k')) {
      seen.push(one.name);
      table.delete('k', one);
    }
    expect(seen).to.deep.equal(['0', '1', '2', '3', '4']);
    expect(table.groups).to.equal(0);
  });
});
