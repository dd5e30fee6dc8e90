import { expect } from 'chai';
import { runCustomAuth } from '../examples/custom-auth.js';
import { runDemo } from '../examples/demo.js';
import { runSharedTable } from '../examples/heartbeat-backend.js';
import { runPubSub } from '../examples/pubsub.js';
import { runReplyChannel } from '../examples/reply-channel.js';

describe('examples', function () {
  this.timeout(20_000);

  it('the demo authenticates, talks both ways, refuses a wrong password, shows an error and a deadline, and stops', async () => {
    const lines: string[] = [];
    await runDemo((line) => lines.push(line));
    const text = lines.join('\n');
    expect(text).to.contain('alice authenticated');
    expect(text).to.contain('bob authenticated');
    expect(text).to.contain("string.lower('ABC') = abc");
    expect(text).to.contain('whoami() = you are bob');
    expect(text).to.contain('connected peers = alice, bob');
    expect(text).to.contain('addition(2, 4) = 6');
    expect(text).to.contain('whoami() with a wrong password: UnauthorizedError');
    expect(text).to.contain('threw InventoryError: out of stock');
    expect(text).to.contain('with a 100 ms deadline');
    expect(lines.at(-1)).to.equal('done: every peer stopped');
  });

  it('the custom API-key plugin names a peer by its key and refuses an unknown one', async () => {
    const lines: string[] = [];
    await runCustomAuth((line) => lines.push(line));
    expect(lines).to.deep.equal(['with a known key: whoami() = reports', 'with an unknown key: UnauthorizedError']);
  });

  it('the shared-table heartbeat backend records which server each identity is on, and forgets a stopped one', async () => {
    const lines: string[] = [];
    await runSharedTable((line) => lines.push(line));
    expect(lines).to.deep.equal(['alice is on eu, bob is on us', 'after bob stops: bob is on no server']);
  });

  it('pub/sub delivers a publication to the subscribers of its prefixes only', async () => {
    const lines: string[] = [];
    await runPubSub((line) => lines.push(line));
    expect(lines[0]).to.equal('fx.eur.usd went to 2 subscribers');
    expect(lines.slice(1).sort()).to.deep.equal(['all-fx got EURUSD 1.0842', 'eur-desk got EURUSD 1.0842']);
  });

  it('the reply-channel job queue acks what it accepts and nacks when full', async () => {
    const lines: string[] = [];
    await runReplyChannel((line) => lines.push(line));
    expect(lines).to.deep.equal([
      'queued build for builder',
      'build: acknowledged',
      'queued test for builder',
      'test: acknowledged',
      'deploy: refused (queue full)',
      'queue size: 2',
    ]);
  });
});
