import { expect } from 'chai';
import { encode as packPlain } from 'msgpackr';
import * as zmq from 'zeromq';
import { cleanup, recordingLogger, startClient, startServer, until, uuidBytes } from './helpers.js';

describe('backpressure: a peer that does not read', () => {
  const sockets: zmq.Socket[] = [];
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await cleanup();
  });

  it('fills only its own queue: its answers are dropped past maxSendQueue, everyone else is served', async function () {
    this.timeout(20_000);
    const logger = recordingLogger();
    const server = await startServer({ logger, sendHighWaterMark: 4, maxSendQueue: 8 });
    const big = 'x'.repeat(256 * 1024);
    let runs = 0;
    server.registerRpc('big', () => {
      runs++;
      return big;
    });
    server.registerRpc('ping', () => 'pong');

    // A pseud-style peer that asks for a lot and never reads an answer.
    const greedy = new zmq.Dealer({ linger: 0, receiveHighWaterMark: 1, receiveBufferSize: 4096 });
    sockets.push(greedy);
    greedy.connect(server.endpoint);
    const requests = 200;
    for (let i = 0; i < requests; i++) {
      await greedy.send(['', 'v1', uuidBytes(), Buffer.from([0x03]), packPlain(['big', [], {}])]);
    }
    await until(() => runs === requests, 10_000, 'every request was run');
    await until(() => /send queue is full \(\d+ messages\)/.test(logger.text()), 10_000, 'a full queue was reported');

    // The rest of the server does not notice.
    const client = await startClient(server);
    expect(await client.call.ping()).to.equal('pong');
    expect(server.pendingCalls).to.equal(0);
  });
});
