/**
 * ByConnection: items grouped by connection key, so that a lost connection reaches its own items
 * without a scan of everybody's; empty groups do not stay behind.
 */
import { expect } from 'chai';
import { ByConnection } from '../../lib/engine/by-connection.js';

describe('ByConnection', () => {
  it('gives the items of one key, oldest first, and nothing of the other keys', () => {
    const table = new ByConnection<string>();
    table.add('a', 'a1');
    table.add('b', 'b1');
    table.add('a', 'a2');
    table.add('a', 'a1'); // already there: stays where it was
    expect(table.of('a')).to.deep.equal(['a1', 'a2']);
    expect(table.of('b')).to.deep.equal(['b1']);
    expect(table.of('nobody')).to.deep.equal([]);
    expect(table.groups).to.equal(2);
  });

  it('a group left empty goes; deleting what is not there changes nothing', () => {
    const table = new ByConnection<number>();
    table.add('k', 1);
    table.add('k', 2);
    table.delete('k', 3);
    table.delete('other', 1);
    expect(table.of('k')).to.deep.equal([1, 2]);
    table.delete('k', 1);
    table.delete('k', 2);
    expect(table.of('k')).to.deep.equal([]);
    expect(table.groups, 'no group kept for a key with no item').to.equal(0);
  });

  it('the list it gives is its own: deleting while walking it visits every item once', () => {
    const table = new ByConnection<number>();
    for (let i = 0; i < 5; i++) table.add('k', i);
    const seen: number[] = [];
    for (const item of table.of('k')) {
      seen.push(item);
      table.delete('k', item);
    }
    expect(seen).to.deep.equal([0, 1, 2, 3, 4]);
    expect(table.groups).to.equal(0);
  });
});
