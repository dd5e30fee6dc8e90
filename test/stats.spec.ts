import { expect } from 'chai';
import { pack as packPlain } from 'msgpackr';
import * as zmq from 'zeromq';
import { Client } from '../lib/index.js';
import { cleanup, recordingLogger, rejection, startServer, track, until, uuidBytes } from './helpers.js';

describe('peer.stats()', function () {
  this.timeout(20_000);
  afterEach(cleanup);

  it('counts calls each way, failures by code on both sides, messages and bytes, and connected peers', async () => {
    const server = await startServer();
    server.registerRpc('echo', (value: string) => value);
    server.registerRpc('hang', () => new Promise(() => {}));
    server.registerRpc('note', () => undefined, { oneWay: true });
    const client = track(new Client('service', { logger: recordingLogger() }));
    client.connect(server.endpoint);
    await client.start();
    await until(() => client.connected, 3000, 'the client is connected');
    const before = client.stats();
    expect(before).to.include({ callsOut: 0, connectedPeers: 1 });

    for (let i = 0; i < 3; i++) expect(await client.call.echo('x'.repeat(1000))).to.have.length(1000);
    expect((await rejection(client.call.missing())).name).to.equal('ServiceNotFoundError');
    expect((await rejection(client.callWith({ timeoutMs: 100 }).hang())).name).to.equal('TimeoutError');
    await client.notify.note();
    await until(() => server.stats().callsIn === 6, 3000, 'the server counts the one-way call');

    const c = client.stats();
    expect(c).to.include({ callsOut: 6, callsIn: 0, pendingCalls: 0, connectedPeers: 1, queuedMessages: 0, queuedBytes: 0 });
    expect(c.failedOut).to.deep.equal({ service_not_found: 1, timeout: 1 });
    expect(c.bytesOut - before.bytesOut, 'three 1000-byte arguments went out').to.be.greaterThan(3000);
    expect(c.bytesIn - before.bytesIn, 'three 1000-byte results came back').to.be.greaterThan(3000);
    expect(c.messagesOut).to.be.greaterThan(before.messagesOut + 5);

    const s = server.stats();
    expect(s).to.include({ callsIn: 6, callsOut: 0, connectedPeers: 1, runningHandlers: 1 });
    expect(s.failedIn).to.deep.equal({ service_not_found: 1 });
    expect(s.bytesIn).to.be.greaterThan(3000);

    await client.stop();
    await until(() => server.stats().connectedPeers === 0, 3000, 'the server sees the client go');
  });

  it('shows the send queue of a peer that does not read: messages and bytes waiting', async () => {
    const server = await startServer({ sendHighWaterMark: 2, maxSendQueue: 1000 });
    const big = 'x'.repeat(64 * 1024);
    server.registerRpc('big', () => big);
    // A pseud-style peer that asks and never reads its answers.
    const greedy = track(new zmq.Dealer({ linger: 0, receiveHighWaterMark: 1, receiveBufferSize: 4096 }));
    greedy.connect(server.endpoint);
    for (let i = 0; i < 40; i++) await greedy.send(['', 'v1', uuidBytes(), Buffer.from([0x03]), packPlain(['big', [], {}])]);
    await until(() => server.stats().callsIn === 40 && server.stats().queuedMessages > 5, 10_000, 'every request run, answers waiting');
    const { queuedMessages, queuedBytes } = server.stats();
    expect(queuedBytes, 'each waiting answer holds the 64 KiB result').to.be.greaterThan(queuedMessages * 64 * 1024 - 1);
  });
});
