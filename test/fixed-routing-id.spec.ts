/**
 * A Client with a fixed `routingId` that connects again at once: the server may still hold its
 * previous connection under that routing id, and libzmq then keeps the new one connected but never
 * reads it (a ROUTER ignores a second connection with a routing id in use). The client sees its first
 * message go unanswered and dials again, a bounded number of times, instead of waiting forever.
 */
import { expect } from 'chai';
import { Client, type Server } from '../lib/index.js';
import { isProbe, cleanup, once, RawServer, recordingLogger, startServer, track, until } from './helpers.js';
import { killChildren, spawnPeer } from './peer-child.js';

const ROUNDS = 8;

describe('a client with a fixed routingId that connects again at once', function () {
  this.timeout(30_000);
  afterEach(async () => {
    await killChildren();
    await cleanup();
  });

  it(`disconnect + connect, ${ROUNDS} times in a row: every call after it is answered, as the same identity, by a zeropeer server`, async () => {
    const server: Server = await startServer();
    server.registerRpc('who', (identity: string) => identity, { withIdentity: true });
    const logger = recordingLogger();
    const client = track(new Client(server.id, { logger, routingId: 'fixed-1', userId: 'alice', timeoutMs: 5000, helloTimeoutMs: 200, drainTimeoutMs: 50 }));
    client.connect(server.endpoint);
    await client.start();
    expect(await client.call.who()).to.equal('alice');
    for (let round = 0; round < ROUNDS; round++) {
      client.disconnect(server.endpoint);
      client.connect(server.endpoint);
      expect(await client.call.who(), `round ${round}`).to.equal('alice');
    }
    expect(server.connectedPeers()).to.deep.equal(['alice']);
    expect(logger.text(), 'never taken for a pseud server').to.not.contain('assuming a pseud v1 server');
    for (const entry of logger.entries.filter((e) => e.message.includes('connecting again'))) {
      expect(entry.message, 'the warning names the routing id and the cause').to.contain('"fixed-1"').and.contain('routing id in use');
    }
  });

  it('a client process started again while the server still holds the old one under the same routing id: it gets through once the old one is gone', async () => {
    const server: Server = await startServer();
    const options = JSON.stringify({ routingId: 'fixed-3', helloTimeoutMs: 500, timeoutMs: 5000 });
    const first = spawnPeer('client', server.endpoint, 'alice', options);
    await first.line((l) => l === 'ready');
    expect(await server.sendTo('alice').pid()).to.equal(first.proc.pid);
    // The second process connects while the first still holds 'fixed-3': the server never reads it.
    const second = spawnPeer('client', server.endpoint, 'alice', options);
    await until(() => second.stderr().includes('connecting again'), 10_000, 'the second client noticing its first message went unanswered');
    expect(second.stderr()).to.contain('"fixed-3"');
    const authenticated = once(server, 'peer:authenticated', 10_000);
    first.proc.kill('SIGKILL');
    await first.exited;
    expect((await authenticated)[0]).to.equal('alice');
    expect(await server.sendTo('alice').pid(), 'the second process answers as alice').to.equal(second.proc.pid);
  });

  it('a server that never answers the first message: dials again 3 times, then says HELLO as before (bounded)', async () => {
    const raw = track(new RawServer({ probe: 'none' }));
    const endpoint = await raw.bind();
    const logger = recordingLogger();
    const client = track(new Client('service', { logger, routingId: 'fixed-2', userId: 'alice', timeoutMs: 5000, helloTimeoutMs: 100, drainTimeoutMs: 50 }));
    client.connect(endpoint);
    await client.start();
    const kinds: string[] = [];
    for (let i = 0; i < 5; i++) {
      const frames = await raw.next().catch((e: Error) => { throw new Error(`${kinds.join(',')} ${logger.text()} ${e.message}`); });
      expect(frames[0]!.toString()).to.equal('fixed-2');
      kinds.push(isProbe(frames) ? 'probe' : frames[4]![0] === 0x02 ? 'HELLO' : `0x${frames[4]![0]!.toString(16)}`);
    }
    expect(kinds, 'the first message once per connection, then HELLO').to.deep.equal(['probe', 'probe', 'probe', 'probe', 'HELLO']);
    expect(logger.entries.filter((e) => e.message.includes('connecting again'))).to.have.length(3);
  });

  it('a client whose routing id is its own (the default) never dials again: a new connection gets a new routing id', async () => {
    const raw = track(new RawServer({ probe: 'none' }));
    const endpoint = await raw.bind();
    const logger = recordingLogger();
    const client = track(new Client('service', { logger, userId: 'alice', timeoutMs: 5000, helloTimeoutMs: 100, drainTimeoutMs: 50 }));
    client.connect(endpoint);
    await client.start();
    const first = await raw.next();
    expect(isProbe(first)).to.equal(true);
    const second = await raw.next();
    expect(second[4]![0], 'HELLO after the unanswered first message').to.equal(0x02);
    expect(logger.text()).to.not.contain('connecting again');
  });
});
