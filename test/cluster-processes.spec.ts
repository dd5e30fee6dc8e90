/**
 * Cluster mode with three server processes (test/fixtures/cluster-node.ts) and a real
 * redis-server; clients in this process spread over the nodes. Cross-node calls are driven through
 * the nodes' `relay` function: client -> node X -> server.sendTo(identity) -> (link) -> node Y -> client.
 */
import { expect } from 'chai';
import { Client, ClusterUnavailableError, PeerNotConnectedError, RpcError, TimeoutError } from '../lib/index.js';
import { once, recordingLogger } from './helpers.js';
import { NodeProcess, eventually } from './cluster-nodes.js';
import { TestRedis, skipWithoutRedis } from './redis-server.js';

const TTL_MS = 1500;

describe('cluster mode (three server processes)', function () {
  this.timeout(30_000);
  let redis: TestRedis | undefined;
  const nodes: Record<string, NodeProcess> = {};
  const notes: string[] = [];

  before(async function () {
    if (!skipWithoutRedis(this)) return;
    redis = await TestRedis.start();
    const started = await Promise.all(['a', 'b', 'c'].map((name) => NodeProcess.start(redis!.url, name, TTL_MS)));
    for (const node of started) nodes[node.name] = node;
  });

  /** Clients live across this suite's tests (a root-level cleanup must not stop them): stopped here. */
  const made: Client[] = [];

  after(async () => {
    await Promise.all(made.map((client) => client.stop()));
    await Promise.all(Object.values(nodes).map((node) => node.stop()));
    await redis?.close();
  });

  /** A client of `node` proving `identity`. */
  async function member(node: string, identity: string): Promise<Client> {
    const client = new Client('svc', { userId: identity, logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs: 5000 });
    made.push(client);
    client.registerRpc('whoami', () => identity);
    client.registerRpc('note', (text: string) => void notes.push(`${identity}:${text}`));
    client.connect(nodes[node]!.endpoint);
    const ready = once(client, 'connected', 10_000);
    await client.start();
    await ready;
    return client;
  }

  /** Waits until the directory lists exactly these identities -> nodes. */
  async function listed(via: Client, expected: Record<string, string>): Promise<void> {
    await eventually(async () => {
      const peers = (await via.call.peers()) as Array<{ identity: string; node: string }>;
      const wanted = Object.keys(expected);
      expect(Object.fromEntries(peers.filter((p) => wanted.includes(p.identity)).map((p) => [p.identity, p.node]))).to.deep.equal(expected);
    }, 10_000);
  }

  const clients: Record<string, Client> = {};
  const placement: Record<string, string> = { 'a-1': 'a', 'a-2': 'a', 'b-1': 'b', 'b-2': 'b', 'c-1': 'c', 'c-2': 'c' };

  it('sendTo, notifyTo and publish from every node reach clients on every node', async () => {
    for (const [identity, node] of Object.entries(placement)) clients[identity] = await member(node, identity);
    await listed(clients['a-1']!, placement);
    for (const from of Object.keys(placement)) {
      for (const to of Object.keys(placement)) {
        expect(await clients[from]!.call.relay(to, 'whoami', [], false)).to.equal(to);
      }
    }
    await clients['b-1']!.call.relay('c-2', 'note', ['one-way'], true);
    await eventually(async () => expect(notes).to.include('c-2:one-way'));
    for (const identity of ['a-2', 'b-2', 'c-1']) await clients[identity]!.subscribe('news');
    expect(await clients['a-1']!.call.announce('news.today', 'note', ['headline'])).to.equal(3);
    await eventually(async () => expect(notes.filter((n) => n.endsWith(':headline')).sort()).to.deep.equal(['a-2:headline', 'b-2:headline', 'c-1:headline']));
  });

  it('redis stopped and restarted under load: every call settles with its result or a typed error; all reachable again after', async () => {
    const outcomes: Array<{ ok: boolean; error?: unknown; expected: string; got?: unknown }> = [];
    const targets = Object.keys(placement);
    let stopAt = 40;
    const worker = async (from: string): Promise<void> => {
      for (let i = 0; i < 60; i++) {
        const to = targets[(i + from.length) % targets.length]!;
        try {
          const got = await clients[from]!.call.relay(to, 'whoami', [], false);
          outcomes.push({ ok: true, expected: to, got });
        } catch (error) {
          outcomes.push({ ok: false, error, expected: to });
        }
        if (outcomes.length === stopAt) {
          stopAt = -1;
          await redis!.stop();
          setTimeout(() => void redis!.start(), 300);
        }
      }
    };
    await Promise.all(['a-1', 'b-1', 'c-1'].map(worker));
    expect(outcomes).to.have.length(180);
    for (const outcome of outcomes) {
      if (outcome.ok) expect(outcome.got).to.equal(outcome.expected);
      else {
        expect(outcome.error).to.be.instanceOf(RpcError);
        expect(outcome.error, String(outcome.error)).to.be.instanceOf(ClusterUnavailableError);
      }
    }
    expect(outcomes.some((o) => !o.ok), 'some calls met the outage').to.equal(true);
    // Redis back, empty: every node published its table again.
    await listed(clients['a-1']!, placement);
    for (const to of targets) expect(await clients['b-2']!.call.relay(to, 'whoami', [], false)).to.equal(to);
  });

  it('a node SIGKILLed under load: calls to its clients fail fast (PeerNotConnectedError), others untouched; its clients reconnect elsewhere and are reachable', async () => {
    const outcomes: Array<{ to: string; ok: boolean; error?: unknown }> = [];
    let killed: Promise<void> | undefined;
    const worker = async (from: string): Promise<void> => {
      for (let i = 0; i < 40; i++) {
        const to = ['b-1', 'b-2', 'c-1', 'c-2'][i % 4]!;
        try {
          expect(await clients[from]!.call.relay(to, 'whoami', [], false, 5000)).to.equal(to);
          outcomes.push({ to, ok: true });
        } catch (error) {
          outcomes.push({ to, ok: false, error });
        }
        if (outcomes.length === 20) killed = nodes.c!.kill();
      }
    };
    await Promise.all([worker('a-1'), worker('a-2')]);
    await killed;
    for (const outcome of outcomes.filter((o) => o.to.startsWith('b-'))) expect(outcome.ok, String(outcome.error)).to.equal(true);
    const failed = outcomes.filter((o) => !o.ok);
    expect(failed.length, 'calls to the dead node failed').to.be.greaterThan(0);
    for (const { error } of failed) {
      expect(error, String(error)).to.not.be.instanceOf(TimeoutError);
      expect(error, String(error)).to.be.instanceOf(PeerNotConnectedError);
    }
    // Its clients reconnect to b (here: new connections proving the same identities).
    await Promise.all(['c-1', 'c-2'].map((identity) => clients[identity]!.stop()));
    for (const identity of ['c-1', 'c-2']) clients[identity] = await member('b', identity);
    await listed(clients['a-1']!, { 'c-1': 'b', 'c-2': 'b' });
    for (const identity of ['c-1', 'c-2']) expect(await clients['a-2']!.call.relay(identity, 'whoami', [], false)).to.equal(identity);
    // The dead node's entries are gone with its TTL.
    await eventually(async () => {
      const peers = (await clients['a-1']!.call.peers()) as Array<{ node: string }>;
      expect(peers.map((p) => p.node)).to.not.include('c');
    }, 10_000);
  });
});
