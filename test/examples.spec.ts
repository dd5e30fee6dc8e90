import { expect } from 'chai';
import { runDemo } from '../examples/demo.js';

describe('examples', () => {
  it('the demo talks both ways, shows an error and a deadline, and stops every peer', async function () {
    this.timeout(15_000);
    const lines: string[] = [];
    await runDemo((line) => lines.push(line));
    const text = lines.join('\n');
    expect(text).to.contain("string.lower('ABC') = abc");
    expect(text).to.contain('whoami() = you are bob');
    expect(text).to.contain('connected peers = alice, bob');
    expect(text).to.contain('addition(2, 4) = 6');
    expect(text).to.contain('threw InventoryError: out of stock');
    expect(text).to.contain('with a 100 ms deadline');
    expect(lines.at(-1)).to.equal('done: every peer stopped');
  });
});
