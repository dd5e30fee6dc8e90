/**
 * Cluster mode: the links between nodes. CURVE by default (a key pair made at start, its public
 * key published in the directory and vouched for by the secret), clear text with `curve: false`,
 * fixed keys when given; a directory entry not vouched for by the secret is refused.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { Client, PeerNotConnectedError, Server, UnauthorizedError, curveKeyPair, type ClusterOptions } from '../lib/index.js';
import { clusterLinkSecurity } from '../lib/cluster/link-security.js';
import { cleanup, recordingLogger, rejection, track } from './helpers.js';
import { eventually } from './cluster-nodes.js';
import { CLUSTER_SECRET, listedOn, startNode, startNodeClient } from './cluster-in-process.js';
import { TestRedis, freePort, portReleased, skipWithoutRedis } from './redis-server.js';

const SECRET = CLUSTER_SECRET;

describe('cluster mode: links between nodes', function () {
  let redis: TestRedis | undefined;
  let raw: Redis | undefined;

  before(async function () {
    if (!skipWithoutRedis(this)) return;
    redis = await TestRedis.start();
    raw = new Redis(redis.url, { lazyConnect: true });
    await raw.connect();
  });

  after(async () => {
    raw?.disconnect();
    await redis?.close();
  });

  afterEach(async () => {
    await cleanup();
    await raw?.flushall();
  });

  const node = (name: string, extra: Partial<ClusterOptions> = {}, logger = recordingLogger()): Promise<Server> => startNode(redis!.url, name, extra, logger);

  const client = (server: Server, identity: string): Promise<Client> => startNodeClient(server, identity, (made) => made.registerRpc('whoami', () => identity));

  const listed = listedOn;

  /** What node `name` published in the directory. */
  async function entry(name: string): Promise<{ endpoint: string; publicKey?: string; proof?: string }> {
    const value = await raw!.get(`zeropeer:svc:node:${name}`);
    expect(value, `node:${name}`).to.be.a('string');
    return JSON.parse(value!) as { endpoint: string; publicKey?: string; proof?: string };
  }

  /** A link client as a node makes it (the right secret), with or without CURVE. */
  function linkClient(endpoint: string, serverPublicKey?: string): Client {
    const made = track(new Client('svc.cluster', {
      security: clusterLinkSecurity(SECRET, 'spy'), logger: recordingLogger(), drainTimeoutMs: 50,
      ...(serverPublicKey ? { curve: { ...curveKeyPair(), serverPublicKey } } : {}),
    }));
    made.connect(endpoint);
    void made.start();
    return made;
  }

  it('CURVE by default: the public key is in the directory, vouched for, with no secret there; a clear-text client gets nothing through', async () => {
    const a = await node('a');
    const b = await node('b');
    await client(b, 'bob');
    await listed(a, 'bob', 'b');
    expect(await a.sendTo('bob').whoami()).to.equal('bob');
    const published = await entry('b');
    expect(published.publicKey).to.be.a('string').with.length(40);
    expect(published.proof).to.match(/^[0-9a-f]{64}$/);
    const values: unknown[] = [];
    for (const key of await raw!.keys('*')) values.push((await raw!.type(key)) === 'string' ? await raw!.get(key) : await raw!.smembers(key));
    const everything = JSON.stringify(values);
    expect(everything).to.not.include(SECRET);
    // With the key from the directory, a holder of the secret gets through (and is told bob is not on "a")...
    const curved = linkClient((await entry('a')).endpoint, (await entry('a')).publicKey);
    expect(await rejection(curved.invoke('cluster.call', ['bob', 'whoami', null, 1000, false], { timeoutMs: 3000 }))).to.be.instanceOf(PeerNotConnectedError);
    // ...the same client in clear text does not get a call through.
    const clear = linkClient((await entry('a')).endpoint);
    const refused = await rejection(clear.invoke('cluster.call', ['bob', 'whoami', null, 1000, false], { timeoutMs: 1500 }));
    expect(refused).to.not.be.instanceOf(PeerNotConnectedError);
  });

  it('curve: false on a node: its link is clear text (and still authenticated); mixed clusters work both ways', async () => {
    const a = await node('a', { curve: false });
    const b = await node('b');
    await client(a, 'alice');
    await client(b, 'bob');
    await listed(a, 'bob', 'b');
    await listed(b, 'alice', 'a');
    expect((await entry('a')).publicKey).to.equal(undefined);
    expect(await a.sendTo('bob').whoami()).to.equal('bob');
    expect(await b.sendTo('alice').whoami()).to.equal('alice');
    const clear = linkClient((await entry('a')).endpoint);
    expect(await rejection(clear.invoke('cluster.call', ['bob', 'whoami', null, 1000, false], { timeoutMs: 3000 }))).to.be.instanceOf(PeerNotConnectedError);
  });

  it('fixed keys are used as given; a bad key or a bad curve option is refused at construction', async () => {
    const keys = curveKeyPair();
    const a = await node('a', { curve: keys });
    const b = await node('b');
    await client(a, 'alice');
    await listed(b, 'alice', 'a');
    expect((await entry('a')).publicKey).to.equal(keys.publicKey);
    for (const key of await raw!.keys('*')) if ((await raw!.type(key)) === 'string') expect(await raw!.get(key)).to.not.include(keys.secretKey);
    expect(await b.sendTo('alice').whoami()).to.equal('alice');
    const base = { redis: redis!.url, node: 'x', advertise: 'tcp://127.0.0.1:0', secret: SECRET };
    expect(() => new Server('svc', { cluster: { ...base, curve: { publicKey: 'short', secretKey: keys.secretKey } } })).to.throw(TypeError, /Z85/);
    expect(() => new Server('svc', { cluster: { ...base, curve: { ...keys, serverPublicKey: keys.publicKey } as ClusterOptions['curve'] } })).to.throw(TypeError, /serverPublicKey/);
    expect(() => new Server('svc', { cluster: { ...base, curve: true as unknown as false } })).to.throw(TypeError, /cluster.curve/);
  });

  it('a directory entry not vouched for by the secret (a forged endpoint or key) is refused: UnauthorizedError, logged once', async () => {
    const logger = recordingLogger();
    const a = await node('a', {}, logger);
    const b = await node('b');
    await client(b, 'bob');
    await listed(a, 'bob', 'b');
    const genuine = await entry('b');
    // Someone who can write to Redis but lacks the secret points b's entry at an endpoint and key of their own.
    await raw!.set('zeropeer:svc:node:b', JSON.stringify({ ...genuine, publicKey: curveKeyPair().publicKey }), 'PX', 60_000);
    await raw!.set('zeropeer:svc:node:ghost', 'tcp://127.0.0.1:9', 'PX', 60_000);
    await raw!.set('zeropeer:svc:peer:eve', 'ghost', 'PX', 60_000);
    expect(await rejection(a.sendTo('eve').whoami())).to.be.instanceOf(UnauthorizedError);
    expect(await rejection(a.sendTo('eve').whoami())).to.be.instanceOf(UnauthorizedError);
    expect(logger.entries.filter((e) => /not vouched for/.test(e.message) && e.level === 'warn')).to.have.length(1);
    // Forged keys for b: the cached location is used until b's own sweep writes its entry back.
    await eventually(async () => expect(await a.sendTo('bob').whoami()).to.equal('bob'));
  });

  it('a node restarted on the same endpoint comes back with a new key: the others link to it again', async () => {
    const a = await node('a');
    const port = await freePort();
    const advertise = `tcp://127.0.0.1:${port}`;
    const b = await node('b', { advertise });
    await client(b, 'bob');
    await listed(a, 'bob', 'b');
    expect(await a.sendTo('bob').whoami()).to.equal('bob');
    const before = (await entry('b')).publicKey;
    await b.stop();
    await portReleased(port);
    const again = await node('b', { advertise });
    await client(again, 'bob');
    expect((await entry('b')).publicKey).to.not.equal(before);
    await eventually(async () => expect(await a.sendTo('bob', { timeoutMs: 500 }).whoami()).to.equal('bob'), 8000);
  });
});
