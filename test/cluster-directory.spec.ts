/**
 * The cluster directory against a real redis-server (started here, persistence off).
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { ClusterUnavailableError, RedisDirectory } from '../lib/index.js';
import { once, recordingLogger, rejection, sleep } from './helpers.js';
import { TestRedis, skipWithoutRedis } from './redis-server.js';

describe('cluster directory (redis)', function () {
  let redis: TestRedis | undefined;
  const made: RedisDirectory[] = [];

  before(async function () {
    if (!skipWithoutRedis(this)) return;
    redis = await TestRedis.start();
  });

  after(async () => {
    await redis?.close();
  });

  afterEach(async () => {
    await Promise.all(made.splice(0).map((directory) => directory.close()));
  });

  async function directory(node: string, ttlMs = 1000, logger = recordingLogger()): Promise<RedisDirectory> {
    const made1 = new RedisDirectory({ redis: redis!.url, node, endpoint: `tcp://127.0.0.1:1${node.charCodeAt(0)}`, namespace: 'svc', ttlMs, logger });
    made.push(made1);
    const up = once(made1, 'up');
    await made1.start();
    await up;
    return made1;
  }

  it('refuses bad settings at construction', () => {
    const logger = recordingLogger();
    expect(() => new RedisDirectory({ redis: 'http://x', node: 'a', endpoint: 'tcp://127.0.0.1:1', namespace: 's', ttlMs: 1000, logger })).to.throw(TypeError, /redis:\/\//);
    expect(() => new RedisDirectory({ redis: 'redis://127.0.0.1:1', node: 'a b', endpoint: 'tcp://127.0.0.1:1', namespace: 's', ttlMs: 1000, logger })).to.throw(TypeError, /cluster.node/);
    expect(() => new RedisDirectory({ redis: 'redis://127.0.0.1:1', node: 'a', endpoint: 'tcp://127.0.0.1:1', namespace: 's', ttlMs: 10, logger })).to.throw(TypeError, /ttlMs/);
  });

  it('claims, locates and releases identities; lists nodes and peers', async () => {
    const a = await directory('a');
    const b = await directory('b');
    expect(await a.claim('alice')).to.equal(undefined);
    expect(await b.claim('bob')).to.equal(undefined);
    expect(await b.locate('alice')).to.deep.equal({ node: 'a', endpoint: a.endpoint });
    expect(await a.locate('bob')).to.deep.equal({ node: 'b', endpoint: b.endpoint });
    expect(await a.locate('carol')).to.equal(undefined);
    expect((await a.nodes()).map((n) => n.node).sort()).to.deep.equal(['a', 'b']);
    expect(await b.peers()).to.deep.equal([{ identity: 'alice', node: 'a' }, { identity: 'bob', node: 'b' }]);
    await a.release('alice');
    expect(await b.locate('alice')).to.equal(undefined);
    expect(await b.peers()).to.deep.equal([{ identity: 'bob', node: 'b' }]);
  });

  it('the newest claim wins: the previous node is named, its release and refresh leave the new entry alone, it hears the identity moved', async () => {
    const a = await directory('a');
    const b = await directory('b');
    await a.claim('alice');
    expect(await b.claim('alice')).to.equal('a');
    await a.release('alice'); // the old connection's departure, arriving late
    expect(await a.locate('alice')).to.deep.equal({ node: 'b', endpoint: b.endpoint });

    await a.claim('dave');
    await b.claim('dave');
    const moved = once(a, 'moved');
    await a.sweep();
    expect((await moved)[0]).to.deep.equal(['dave']);
    expect(a.held.has('dave')).to.equal(false);
    expect(await a.locate('dave')).to.deep.equal({ node: 'b', endpoint: b.endpoint });
    expect(await a.peers()).to.deep.equal([{ identity: 'alice', node: 'b' }, { identity: 'dave', node: 'b' }]);
  });

  it('entries of a node that stops refreshing expire with its TTL', async () => {
    const a = await directory('a');
    // A node that died: its keys, written as a node writes them, and nobody refreshing them.
    const raw = new Redis(redis!.url, { lazyConnect: true });
    try {
      await raw.connect();
      await raw.set('zeropeer:svc:node:ghost', 'tcp://127.0.0.1:9', 'PX', 300);
      await raw.set('zeropeer:svc:peer:eve', 'ghost', 'PX', 300);
      await raw.sadd('zeropeer:svc:nodes', 'ghost');
      expect(await a.locate('eve')).to.deep.equal({ node: 'ghost', endpoint: 'tcp://127.0.0.1:9' });
      await sleep(400);
      expect(await a.locate('eve')).to.equal(undefined);
      expect((await a.nodes()).map((n) => n.node)).to.deep.equal(['a']);
      expect(await raw.sismember('zeropeer:svc:nodes', 'ghost')).to.equal(0); // swept from the set
    } finally {
      raw.disconnect();
    }
  });

  it('a live node keeps its entries past the TTL (refreshed on each sweep)', async () => {
    const a = await directory('a', 300);
    await a.claim('alice');
    await sleep(700);
    expect(await a.locate('alice')).to.deep.equal({ node: 'a', endpoint: a.endpoint });
  });

  it('redis lost: ClusterUnavailableError at once, logged once; back: the table is published again', async () => {
    const logger = recordingLogger();
    const a = await directory('a', 1000, logger);
    await a.claim('alice');
    const down = once(a, 'down', 5000);
    await redis!.stop();
    await down;
    const error = await rejection(a.locate('alice'));
    expect(error).to.be.instanceOf(ClusterUnavailableError);
    expect((error as ClusterUnavailableError).code).to.equal('cluster_unavailable');
    // Claims made during the outage are kept and published when redis returns.
    expect(await rejection(a.claim('bob'))).to.be.instanceOf(ClusterUnavailableError);
    await sleep(300); // a few reconnection attempts fail meanwhile
    const up = once(a, 'up', 10_000);
    await redis!.start(); // empty: no persistence
    await up;
    expect(await a.locate('alice')).to.deep.equal({ node: 'a', endpoint: a.endpoint });
    expect(await a.locate('bob')).to.deep.equal({ node: 'a', endpoint: a.endpoint });
    const warnings = logger.entries.filter((e) => e.level === 'warn' && /redis unreachable/.test(e.message));
    expect(warnings).to.have.length(1);
    expect(logger.entries.some((e) => e.level === 'info' && /redis is back/.test(e.message))).to.equal(true);
  });

  it('close removes this node and its entries', async () => {
    const a = await directory('a');
    const b = await directory('b');
    await a.claim('alice');
    await a.close();
    expect(await b.locate('alice')).to.equal(undefined);
    expect((await b.nodes()).map((n) => n.node)).to.deep.equal(['b']);
  });
});
