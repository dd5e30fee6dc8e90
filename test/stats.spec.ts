import { expect } from 'chai';
import { Client } from '../lib/index.js';
import { cleanup, recordingLogger, rejection, startServer, track, until } from './helpers.js';

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
});
