import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Client, PeerNotConnectedError, RpcError, Server, ServiceClosedError, TimeoutError, UnauthorizedError, curveKeyPair } from '../lib/index.js';
import { cleanup, quickHash, recordingLogger, rejection, startServer, track } from './helpers.js';

function client(serverId: string, options: ConstructorParameters<typeof Client>[1] = {}): Client {
  return track(new Client(serverId, { logger: recordingLogger(), ...options }));
}

/** A tcp endpoint where nothing listens: a port the system gave a server that has stopped since. */
async function deadEndpoint(): Promise<string> {
  // An ipc path nobody binds: a freed tcp port could be taken by another process's server meanwhile.
  return Promise.resolve(`ipc://${join(tmpdir(), `zeropeer-nothing-${randomBytes(6).toString('hex')}`)}`);
}

describe('first-run mistakes say what is wrong', function () {
  this.timeout(20_000);
  afterEach(cleanup);

  describe('client.ready()', () => {
    it('resolves once connected and authenticated, and at once after that', async () => {
      const server = await startServer({ security: 'plain', users: { alice: await quickHash('pw') } });
      const alice = client('service', { security: 'plain', userId: 'alice', password: 'pw' });
      alice.connect(server.endpoint);
      await alice.start();
      await alice.ready();
      expect(alice.connected).to.equal(true);
      expect(server.connectedPeers()).to.deep.equal(['alice']);
      await alice.ready();
    });

    it('rejects with UnauthorizedError when the credentials are refused (long before its deadline)', async () => {
      const server = await startServer({ security: 'plain', users: { alice: await quickHash('pw') } });
      const alice = client('service', { security: 'plain', userId: 'alice', password: 'wrong', timeoutMs: 60_000 });
      alice.connect(server.endpoint);
      await alice.start();
      expect(await rejection(alice.ready())).to.be.instanceOf(UnauthorizedError);
    });

    it('rejects at once when the peer at the endpoint has another id: "the peer there is \'jobs\', not \'job\'"', async () => {
      const server = await startServer({}, 'tcp', 'jobs');
      const wrong = client('job', { timeoutMs: 60_000 });
      wrong.connect(server.endpoint);
      await wrong.start();
      const error = await rejection(wrong.ready());
      expect(error).to.be.instanceOf(PeerNotConnectedError);
      expect(error.message).to.contain(`connected to ${server.endpoint}, but the peer there is 'jobs', not 'job'`);
      const call = await rejection(wrong.callWith({ timeoutMs: 200 }).anything());
      expect(call).to.be.instanceOf(TimeoutError);
      expect(call.message, 'a call that waited says why').to.contain("the peer there is 'jobs', not 'job'");
    });

    it('connecting to nothing: TimeoutError naming the endpoint where nothing answers', async () => {
      const endpoint = await deadEndpoint();
      const lonely = client('service');
      lonely.connect(endpoint);
      await lonely.start();
      const error = await rejection(lonely.ready({ timeoutMs: 200 }));
      expect(error).to.be.instanceOf(TimeoutError);
      expect(error.message).to.contain(`not ready within 200 ms: no connection to ${endpoint}`);
    });

    it('without CURVE against a CURVE server: the TimeoutError says the handshake failed and asks about CURVE', async () => {
      const server = await startServer({ curve: curveKeyPair() });
      const plain = client('service');
      plain.connect(server.endpoint);
      await plain.start();
      const error = await rejection(plain.ready({ timeoutMs: 500 }));
      expect(error).to.be.instanceOf(TimeoutError);
      expect(error.message).to.match(/ZMTP handshake failed .*does the server use CURVE\?/);
    });

    it('forgetting connect() or start() is refused at once with what to do', async () => {
      const unconnected = client('service');
      await unconnected.start();
      const noConnect = await rejection(unconnected.ready());
      expect(noConnect).to.be.instanceOf(RpcError);
      expect(noConnect.message).to.contain('client.connect(endpoint) was never called');
      const server = await startServer();
      const unstarted = client('service');
      unstarted.connect(server.endpoint);
      const noStart = await rejection(unstarted.ready());
      expect(noStart.message).to.contain('await client.start() first');
    });

    it('rejects with ServiceClosedError when the client stops while waiting', async () => {
      const lonely = client('service', { timeoutMs: 60_000 });
      lonely.connect(await deadEndpoint());
      await lonely.start();
      const waiting = rejection(lonely.ready());
      await lonely.stop();
      expect(await waiting).to.be.instanceOf(ServiceClosedError);
    });
  });

  describe('endpoints', () => {
    it('an invalid endpoint is an RpcError naming it, at connect() and at bind()', async () => {
      const bad = client('service');
      expect(() => bad.connect('tcp://no-port-here')).to.throw(RpcError, 'tcp://no-port-here');
      const server = track(new Server('service', { logger: recordingLogger() }));
      const error = await rejection(server.bind('nonsense://x'));
      expect(error).to.be.instanceOf(RpcError);
      expect(error.message).to.contain('nonsense://x');
    });

    it('a port in use is an RpcError naming the endpoint', async () => {
      const first = await startServer();
      const second = track(new Server('other', { logger: recordingLogger() }));
      const error = await rejection(second.bind(first.endpoint));
      expect(error).to.be.instanceOf(RpcError);
      expect(error.message).to.contain(`cannot bind ${first.endpoint}`);
    });
  });
});
