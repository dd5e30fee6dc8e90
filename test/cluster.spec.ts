/**
 * Cluster mode in one process: two or three nodes (Servers with `cluster`), a real redis-server,
 * clients spread over the nodes. The multi-process tests (SIGKILL, Redis restarts under load) are
 * in cluster-processes.spec.ts.
 */
import { expect } from 'chai';
import {
  Client, ClusterUnavailableError, PeerNotConnectedError, RedisDirectory, RemoteError, Server, TimeoutError, UnauthorizedError, type ClusterOptions,
} from '../lib/index.js';
import { cleanup, once, recordingLogger, rejection, sleep } from './helpers.js';
import { eventually } from './cluster-nodes.js';
import { CLUSTER_SECRET, listedOn, startNode, startNodeClient } from './cluster-in-process.js';
import { suiteRedis } from './redis-server.js';

const SECRET = CLUSTER_SECRET;

describe('cluster mode (in one process)', function () {
  const suite = suiteRedis();

  afterEach(cleanup);

  const node = (name: string, extra: Partial<ClusterOptions> = {}, logger = recordingLogger()): Promise<Server> => startNode(suite.url, name, extra, logger);

  const client = (server: Server, identity: string): Promise<Client> => startNodeClient(server, identity, (made) => made.registerRpc('whoami', () => identity));

  const listed = listedOn;

  it('refuses bad cluster options at construction', () => {
    const base = { redis: 'redis://127.0.0.1:1', node: 'a', advertise: 'tcp://127.0.0.1:0', secret: SECRET };
    expect(() => new Server('svc', { cluster: { ...base, secret: 'short' } })).to.throw(TypeError, /at least 32/);
    expect(() => new Server('svc', { cluster: { ...base, advertise: 'nowhere' } })).to.throw(TypeError, /advertise/);
    expect(() => new Server('svc', { cluster: { ...base, redis: 'localhost' } })).to.throw(TypeError, /redis:\/\//);
    expect(() => new Server('svc', { cluster: { ...base, ttl: 5 } as ClusterOptions })).to.throw(TypeError, /ttl/);
  });

  it('sendTo, invoke and notifyTo reach a client on another node; results, errors and metadata travel', async () => {
    const a = await node('a');
    const b = await node('b');
    const bob = await client(b, 'bob');
    const notes: string[] = [];
    bob.registerRpc('note', (text: string) => void notes.push(text));
    bob.registerRpc('add', (x: number, y: number) => x + y);
    bob.registerRpc('boom', () => {
      throw new RangeError('out of range on bob');
    });
    bob.registerRpc('custom', () => {
      class QuotaError extends Error {
        override name = 'QuotaError';
      }
      throw new QuotaError('quota');
    });
    bob.registerRpc('meta', (ctx: { metadata: Record<string, string>; identity: string }) => [ctx.metadata.trace, ctx.identity], { withContext: true });
    await listed(a, 'bob', 'b');

    expect(await a.sendTo('bob').whoami()).to.equal('bob');
    expect(await a.sendTo('bob').add(2, 3)).to.equal(5);
    expect(await a.invoke('add', [4, 5], { to: 'bob' })).to.equal(9);
    const range = await rejection(a.sendTo('bob').boom());
    expect(range).to.be.instanceOf(RangeError);
    expect(range.message).to.equal('out of range on bob');
    const custom = await rejection(a.sendTo('bob').custom());
    expect(custom).to.be.instanceOf(RemoteError);
    expect((custom as RemoteError).remoteName).to.equal('QuotaError');
    // Run as the server (one id on every node), the caller's metadata along.
    expect(await a.invoke('meta', [], { to: 'bob', metadata: { trace: 't-1' } })).to.deep.equal(['t-1', 'svc']);
    await a.notifyTo('bob').note('hello');
    await eventually(async () => expect(notes).to.deep.equal(['hello']));
    expect(await a.sendTo('bob', { timeoutMs: 2000 }).add(1, 1)).to.equal(2);
  });

  it('a deadline travels: the far node stops waiting at the caller\'s deadline, a TimeoutError comes back', async () => {
    const a = await node('a');
    const b = await node('b');
    const bob = await client(b, 'bob');
    bob.registerRpc('slow', () => sleep(1500).then(() => 'late'));
    await listed(a, 'bob', 'b');
    const error = await rejection(a.sendTo('bob', { timeoutMs: 200 }).slow());
    expect(error).to.be.instanceOf(TimeoutError);
    // The far node's own deadline for "slow" answered, not the link's (which allows a margin).
    expect(error.message).to.match(/"slow" got no answer within 200 ms/);
  });

  it('an identity connected nowhere: PeerNotConnectedError', async () => {
    const a = await node('a');
    await node('b');
    expect(await rejection(a.sendTo('nobody').whoami())).to.be.instanceOf(PeerNotConnectedError);
    expect(await rejection(a.notifyTo('nobody').whoami())).to.be.instanceOf(PeerNotConnectedError);
  });

  it('one identity, one connection cluster-wide: the newest replaces the older on another node (peer:gone "replaced" there)', async () => {
    const a = await node('a');
    const b = await node('b');
    const old = await client(a, 'alice');
    await listed(b, 'alice', 'a');
    const gone = once(a, 'peer:gone', 5000);
    const fresh = await client(b, 'alice');
    fresh.registerRpc('which', () => 'fresh');
    old.registerRpc('which', () => 'old');
    expect(await gone).to.deep.equal(['alice', 'replaced']);
    expect(a.connectedPeers()).to.not.include('alice');
    await listed(a, 'alice', 'b');
    expect(await a.sendTo('alice').which()).to.equal('fresh');
    // The old connection was told: its calls fail rather than take the name back.
    expect(await rejection(old.call.anything())).to.be.instanceOf(UnauthorizedError);
  });

  it('an identity claimed elsewhere without a word (the eviction lost): dropped here at the next sweep, as replaced', async () => {
    const a = await node('a');
    await client(a, 'alice');
    await listed(a, 'alice', 'a');
    const elsewhere = new RedisDirectory({ redis: suite.url, node: 'z', endpoint: 'tcp://127.0.0.1:9', namespace: 'svc', ttlMs: 1500, logger: recordingLogger() });
    try {
      await elsewhere.start();
      const gone = once(a, 'peer:gone', 5000);
      expect(await elsewhere.claim('alice')).to.equal('a');
      expect(await gone).to.deep.equal(['alice', 'replaced']);
      expect(a.connectedPeers()).to.not.include('alice');
    } finally {
      await elsewhere.close();
    }
  });

  it('an identity that moves (reconnects to another node) is found there', async () => {
    const a = await node('a');
    const b = await node('b');
    const c = await node('c');
    const first = await client(a, 'mover');
    await listed(c, 'mover', 'a');
    expect(await c.sendTo('mover').whoami()).to.equal('mover');
    await first.stop();
    await eventually(async () => expect((await c.clusterPeers()).map((p) => p.identity)).to.not.include('mover'));
    await client(b, 'mover');
    await listed(c, 'mover', 'b');
    expect(await c.sendTo('mover').whoami()).to.equal('mover');
    expect(await a.sendTo('mover').whoami()).to.equal('mover');
  });

  it('publish reaches subscribers on every node and counts them; clusterPeers lists everyone with their node', async () => {
    const a = await node('a');
    const b = await node('b');
    const c = await node('c');
    const got: string[] = [];
    const subscribers = await Promise.all([client(a, 's1'), client(b, 's2'), client(c, 's3'), client(c, 'quiet')]);
    for (const [i, subscriber] of subscribers.entries()) {
      subscriber.registerRpc('price', (value: number) => void got.push(`s${i + 1}:${value}`));
      if (i < 3) await subscriber.subscribe('prices');
    }
    await listed(a, 's3', 'c');
    await eventually(async () => expect((await a.clusterPeers()).length).to.equal(4));
    expect(await b.clusterPeers()).to.deep.equal([
      { identity: 'quiet', node: 'c' }, { identity: 's1', node: 'a' }, { identity: 's2', node: 'b' }, { identity: 's3', node: 'c' },
    ]);
    expect(await a.publish('prices.eur').price(7)).to.equal(3);
    await eventually(async () => expect(got.sort()).to.deep.equal(['s1:7', 's2:7', 's3:7']));
  });

  it('a node with another secret cannot link: its cross-node calls are refused (UnauthorizedError)', async () => {
    const a = await node('a');
    const intruder = await node('x', { secret: 'another secret of at least thirty-two chars' });
    await client(a, 'alice');
    await listed(intruder, 'alice', 'a');
    expect(await rejection(intruder.sendTo('alice').whoami())).to.be.instanceOf(UnauthorizedError);
  });

  it('a node that stops takes its entries along: calls to its clients fail with PeerNotConnectedError', async () => {
    const a = await node('a');
    const b = await node('b');
    await client(b, 'bob');
    await listed(a, 'bob', 'b');
    expect(await a.sendTo('bob').whoami()).to.equal('bob');
    await b.stop();
    expect(await rejection(a.sendTo('bob').whoami())).to.be.instanceOf(PeerNotConnectedError);
    expect(await a.clusterPeers()).to.deep.equal([]);
  });

  it('redis unreachable: local calls go on, cross-node calls fail at once with ClusterUnavailableError; back: reachable again', async function () {
    this.timeout(20_000);
    const logger = recordingLogger();
    const a = await node('a', {}, logger);
    const b = await node('b');
    await client(a, 'alice');
    await client(b, 'bob');
    await listed(a, 'bob', 'b');
    await suite.redis.stop();
    await eventually(async () => expect(await rejection(a.sendTo('bob').whoami())).to.be.instanceOf(ClusterUnavailableError));
    expect(await a.sendTo('alice').whoami()).to.equal('alice');
    expect(await rejection(a.clusterPeers())).to.be.instanceOf(ClusterUnavailableError);
    await suite.redis.start();
    await eventually(async () => expect(await a.sendTo('bob').whoami()).to.equal('bob'), 10_000);
    await eventually(async () => expect(await b.sendTo('alice').whoami()).to.equal('alice'), 10_000);
    expect(logger.entries.filter((e) => /redis unreachable/.test(e.message))).to.have.length(1);
  });
});
