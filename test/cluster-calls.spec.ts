/**
 * Cluster mode: what travels with a call forwarded to another node besides its arguments: the
 * caller's cancel, its deadline (also one inherited from a handler's ctx.signal), and the caller's
 * node going away. Nodes in one process, a real redis-server.
 */
import { expect } from 'chai';
import { CancelledError, Client, Server, TimeoutError, type CallContext } from '../lib/index.js';
import { cleanup, once, recordingLogger, rejection, track, until } from './helpers.js';
import { eventually } from './cluster-nodes.js';
import { TestRedis, skipWithoutRedis } from './redis-server.js';

const SECRET = 'a shared secret of at least thirty-two characters';

describe('cluster mode: cancel and deadlines across nodes', function () {
  let redis: TestRedis | undefined;

  before(async function () {
    if (!skipWithoutRedis(this)) return;
    redis = await TestRedis.start();
  });

  after(async () => {
    await redis?.close();
  });

  afterEach(cleanup);

  async function node(name: string): Promise<Server> {
    const server = track(new Server('svc', {
      logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs: 3000,
      cluster: { redis: redis!.url, node: name, advertise: 'tcp://127.0.0.1:0', secret: SECRET, ttlMs: 1500 },
    }));
    await server.bind('tcp://127.0.0.1:0');
    await server.start();
    return server;
  }

  /** A client on `server` whose `wait` handler records its context and holds until its signal aborts. */
  async function waiter(server: Server, identity: string): Promise<{ client: Client; seen: CallContext[] }> {
    const client = track(new Client('svc', { userId: identity, logger: recordingLogger(), drainTimeoutMs: 50 }));
    const seen: CallContext[] = [];
    client.registerRpc('wait', (ctx: CallContext) => {
      seen.push(ctx);
      return new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve('stopped'), { once: true }));
    }, { withContext: true });
    client.connect(server.endpoint);
    const ready = once(client, 'connected');
    await client.start();
    await ready;
    return { client, seen };
  }

  async function listed(server: Server, identity: string, where: string): Promise<void> {
    await eventually(async () => expect((await server.clusterPeers()).find((p) => p.identity === identity)?.node).to.equal(where));
  }

  it('the caller aborts its signal: the CANCEL reaches the client on the other node, whose ctx.signal aborts', async () => {
    const a = await node('a');
    const b = await node('b');
    const { seen } = await waiter(b, 'bob');
    await listed(a, 'bob', 'b');
    const controller = new AbortController();
    const call = a.invoke('wait', [], { to: 'bob', signal: controller.signal, timeoutMs: 5000 });
    await until(() => seen.length === 1);
    controller.abort(new Error('user gave up'));
    const error = await rejection(call);
    expect(error).to.be.instanceOf(CancelledError);
    expect(error.message).to.match(/"wait" was cancelled: user gave up/);
    await until(() => seen[0]!.signal.aborted);
    expect(seen[0]!.signal.reason).to.be.instanceOf(CancelledError);
    expect((seen[0]!.signal.reason as Error).message).to.include('user gave up');
    // A signal aborted before the call: nothing is sent.
    expect(await rejection(a.sendTo('bob', { signal: AbortSignal.abort(new Error('never mind')) }).wait())).to.be.instanceOf(CancelledError);
    expect(seen).to.have.length(1);
  });

  it('a deadline inherited from a handler\'s ctx.signal travels: the far client\'s ctx.deadline is the caller\'s caller\'s, and its signal aborts with TimeoutError', async () => {
    const a = await node('a');
    const b = await node('b');
    const { seen } = await waiter(b, 'bob');
    await listed(a, 'bob', 'b');
    a.registerRpc('relay', (ctx: CallContext) => a.invoke('wait', [], { to: 'bob', signal: ctx.signal }), { withContext: true });
    const alice = track(new Client('svc', { userId: 'alice', logger: recordingLogger(), drainTimeoutMs: 50 }));
    alice.connect(a.endpoint);
    await alice.start();
    const sentAt = Date.now();
    const error = await rejection(alice.invoke('relay', [], { timeoutMs: 400 }));
    expect(error).to.be.instanceOf(TimeoutError);
    await until(() => seen.length === 1 && seen[0]!.signal.aborted);
    // Without the inherited deadline, the far node would have used the server's timeoutMs (3000).
    expect(seen[0]!.deadline).to.be.a('number').and.to.be.below(sentAt + 1400);
    expect(seen[0]!.signal.reason).to.be.instanceOf(TimeoutError);
  });

  it('the caller\'s node stops mid-call: the client on the other node sees its signal abort', async () => {
    const a = await node('a');
    const b = await node('b');
    const { seen } = await waiter(b, 'bob');
    await listed(a, 'bob', 'b');
    const call = a.invoke('wait', [], { to: 'bob', timeoutMs: 5000 });
    await until(() => seen.length === 1);
    await a.stop();
    await rejection(call);
    await until(() => seen[0]!.signal.aborted);
    expect(seen[0]!.signal.reason).to.be.instanceOf(CancelledError);
  });
});
