/**
 * Cluster mode: what travels with a call forwarded to another node besides its arguments: the
 * caller's cancel, its deadline (also one inherited from a handler's ctx.signal), and the caller's
 * node going away; and streams from a client on another node (items, errors, credit, cancel).
 * Nodes in one process, a real redis-server.
 */
import { expect } from 'chai';
import { CancelledError, Client, EncodingError, PeerNotConnectedError, Server, TimeoutError, type CallContext } from '../lib/index.js';
import { cleanup, once, recordingLogger, rejection, sleep, track, until } from './helpers.js';
import { listedOn, startNode, waiter } from './cluster-in-process.js';
import { suiteRedis } from './redis-server.js';

describe('cluster mode: cancel, deadlines and streams across nodes', function () {
  const suite = suiteRedis();

  afterEach(cleanup);

  const node = (name: string): Promise<Server> => startNode(suite.url, name);

  const listed = listedOn;

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

  it('a far node with outgoing interceptors hands them a real AbortSignal for the forwarded call, and the CANCEL still reaches the client', async () => {
    const a = await node('a');
    const b = await node('b');
    const signals: unknown[] = [];
    b.use({ outgoing: (next) => (call) => {
      signals.push(call.signal);
      // User code may combine it: only a real AbortSignal may be given to AbortSignal.any().
      AbortSignal.any([call.signal!]);
      return next(call);
    } });
    const { seen } = await waiter(b, 'bob');
    await listed(a, 'bob', 'b');
    const controller = new AbortController();
    const call = a.invoke('wait', [], { to: 'bob', signal: controller.signal, timeoutMs: 5000 });
    await until(() => seen.length === 1);
    expect(signals).to.have.length(1);
    expect(signals[0]).to.be.instanceOf(AbortSignal);
    controller.abort(new Error('user gave up'));
    expect(await rejection(call)).to.be.instanceOf(CancelledError);
    await until(() => seen[0]!.signal.aborted);
    expect(seen[0]!.signal.reason).to.be.instanceOf(CancelledError);
  });

  it('a deadline inherited from a handler\'s ctx.signal travels: the far client\'s ctx.deadline is the caller\'s caller\'s, and its signal aborts by then', async () => {
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
    // Its own deadline (TimeoutError) or the CANCEL the caller's node sends when its handler's deadline passes: whichever comes first.
    expect(seen[0]!.signal.reason).to.satisfy((reason: unknown) => reason instanceof TimeoutError || reason instanceof CancelledError);
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

  /** A client on `server` with streaming functions; `produced` counts what its generator made. */
  async function producer(server: Server, identity: string): Promise<{ client: Client; state: { produced: number; finished: boolean; ctx?: CallContext } }> {
    const client = track(new Client('svc', { userId: identity, logger: recordingLogger(), drainTimeoutMs: 50 }));
    const state: { produced: number; finished: boolean; ctx?: CallContext } = { produced: 0, finished: false };
    client.registerRpc('count', async function* (n: number) {
      for (let i = 0; i < n; i++) yield i;
    });
    client.registerRpc('failing', async function* () {
      yield 'a';
      yield 'b';
      throw new RangeError('ran out on bob');
    });
    client.registerRpc('endless', async function* (ctx: CallContext) {
      state.ctx = ctx;
      try {
        for (let i = 0; i < 1_000_000; i++) {
          state.produced++;
          yield `item ${i}`;
        }
      } finally {
        state.finished = true;
      }
    }, { withContext: true });
    client.connect(server.endpoint);
    const ready = once(client, 'connected');
    await client.start();
    await ready;
    return { client, state };
  }

  async function collect<T>(stream: AsyncIterable<T>, limit = 1000): Promise<{ items: T[]; error?: Error }> {
    const items: T[] = [];
    try {
      for await (const item of stream) {
        items.push(item);
        if (items.length >= limit) break;
      }
    } catch (error) {
      return { items, error: error as Error };
    }
    return { items };
  }

  it('streamTo and invokeStream reach a client on another node: its items, then its end or its error (typed)', async () => {
    const a = await node('a');
    const b = await node('b');
    await producer(b, 'bob');
    await listed(a, 'bob', 'b');
    expect(await collect(a.streamTo('bob').count(5))).to.deep.equal({ items: [0, 1, 2, 3, 4] });
    expect(await collect(a.invokeStream('count', [300], { to: 'bob' }))).to.deep.equal({ items: [...Array(300).keys()] });
    const failed = await collect(a.streamTo('bob').failing());
    expect(failed.items).to.deep.equal(['a', 'b']);
    expect(failed.error).to.be.instanceOf(RangeError);
    expect(failed.error!.message).to.equal('ran out on bob');
    const nowhere = await collect(a.streamTo('nobody').count(1));
    expect(nowhere.error).to.be.instanceOf(PeerNotConnectedError);
  });

  it('streamed arguments cross nodes too: to a call, to a stream (both ways at once), and a handler that stops reading returns the caller\'s iterator', async () => {
    const a = await node('a');
    const b = await node('b');
    const { client: bob } = await producer(b, 'bob');
    bob.registerRpc('sum', async (numbers: AsyncIterable<number>) => {
      let total = 0;
      for await (const n of numbers) total += n;
      return total;
    });
    bob.registerRpc('double', async function* (numbers: AsyncIterable<number>) {
      for await (const n of numbers) yield n * 2;
    });
    bob.registerRpc('firstOnly', async (numbers: AsyncIterable<number>) => {
      for await (const n of numbers) return n;
      return undefined;
    });
    await listed(a, 'bob', 'b');
    const made = { pulled: 0, finished: false };
    async function* numbers(n: number): AsyncGenerator<number> {
      try {
        for (let i = 1; i <= n; i++) {
          made.pulled++;
          yield i;
        }
      } finally {
        made.finished = true;
      }
    }
    expect(await a.sendTo('bob').sum(numbers(1000))).to.equal(500_500);
    expect(await collect(a.streamTo('bob').double(numbers(5)))).to.deep.equal({ items: [2, 4, 6, 8, 10] });
    made.pulled = 0;
    made.finished = false;
    expect(await a.sendTo('bob').firstOnly(numbers(1_000_000))).to.equal(1);
    await until(() => made.finished);
    // Pulled no further than the windows on the way (the link's and the client's), not to a million.
    expect(made.pulled).to.be.below(2000);
    // One-way calls cannot stream an argument, across nodes as here.
    expect(await rejection(a.notifyTo('bob').sum(numbers(1)))).to.be.instanceOf(EncodingError);
  });

  it('credit holds end to end: a caller that stops reading stops the client\'s producer within a few windows, and reading on resumes it', async () => {
    const a = await node('a');
    const b = await node('b');
    const { state } = await producer(b, 'bob');
    await listed(a, 'bob', 'b');
    const stream = a.streamTo('bob', { streamWindow: { items: 4, bytes: 1024 * 1024 } }).endless();
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).value).to.equal('item 0');
    await until(() => state.produced > 4);
    // Let whatever can flow, flow; with credit ignored anywhere on the way it would run to a million.
    let before = -1;
    for (let i = 0; i < 20 && before !== state.produced; i++) {
      before = state.produced;
      await sleep(50);
    }
    // The client's window, the far node's stream, the link's window and the caller's relay: 4 each, plus one in hand.
    expect(state.produced).to.be.at.most(4 * 4 + 2);
    for (let i = 1; i < 40; i++) expect((await iterator.next()).value).to.equal(`item ${i}`);
    expect(state.produced).to.be.at.least(40);
    await stream.cancel('enough');
    await until(() => state.finished);
  });

  it('the caller cancels a stream (break, cancel(), its signal): the client\'s generator is returned and its ctx.signal aborts', async () => {
    const a = await node('a');
    const b = await node('b');
    const { state } = await producer(b, 'bob');
    await listed(a, 'bob', 'b');
    const first = await collect(a.streamTo('bob').endless(), 3);
    expect(first.items).to.deep.equal(['item 0', 'item 1', 'item 2']);
    await until(() => state.finished && state.ctx!.signal.aborted);
    expect(state.ctx!.signal.reason).to.be.instanceOf(CancelledError);

    state.finished = false;
    const controller = new AbortController();
    const stream = a.streamTo('bob', { signal: controller.signal }).endless();
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    const ctx = state.ctx!;
    controller.abort(new Error('user gave up'));
    const error = await rejection((async () => {
      for (let i = 0; i < 100_000; i++) await iterator.next();
    })());
    expect(error).to.be.instanceOf(CancelledError);
    await until(() => state.finished && ctx.signal.aborted);
    expect((ctx.signal.reason as Error).message).to.include('user gave up');
  });

  it('a stream\'s deadline travels to the client on the other node, and ends the stream there with TimeoutError', async () => {
    const a = await node('a');
    const b = await node('b');
    const { state } = await producer(b, 'bob');
    await listed(a, 'bob', 'b');
    const deadline = Date.now() + 300;
    const stream = a.streamTo('bob', { deadline, streamWindow: { items: 2, bytes: 1024 } }).endless();
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    expect(state.ctx!.deadline).to.be.a('number').and.to.be.below(deadline + 1000);
    // The caller stops reading: the deadline, not the caller, ends it.
    await until(() => state.ctx!.signal.aborted, 3000);
    expect(state.ctx!.signal.reason).to.be.instanceOf(TimeoutError);
    const error = await rejection((async () => {
      for (let i = 0; i < 100; i++) await iterator.next();
    })());
    expect(error).to.be.instanceOf(TimeoutError);
  });

  it('a node going away mid-stream or mid-call: the holder\'s going ends the caller\'s stream and call with PeerNotConnectedError; the caller\'s going returns the client\'s generator', async () => {
    const a = await node('a');
    const b = await node('b');
    const { client: bob, state } = await producer(b, 'bob');
    let holding = 0;
    let held: CallContext | undefined;
    bob.registerRpc('hold', (ctx: CallContext) => {
      holding++;
      held = ctx;
      return new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve('stopped'), { once: true }));
    }, { withContext: true });
    await listed(a, 'bob', 'b');
    const stream = a.streamTo('bob', { streamWindow: { items: 4, bytes: 1024 * 1024 } }).endless();
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    await a.stop();
    await until(() => state.finished && state.ctx!.signal.aborted);

    const c = await node('c');
    await listed(c, 'bob', 'b');
    const second = c.streamTo('bob', { streamWindow: { items: 4, bytes: 1024 * 1024 } }).endless();
    const reader = second[Symbol.asyncIterator]();
    await reader.next();
    const holdCall = c.invoke('hold', [], { to: 'bob', timeoutMs: 5000 });
    await until(() => holding === 1);
    await b.stop();
    const error = await rejection((async () => {
      for (let i = 0; i < 100; i++) await reader.next();
    })());
    expect(error).to.be.instanceOf(PeerNotConnectedError);
    expect(await rejection(holdCall)).to.be.instanceOf(PeerNotConnectedError);
    // The holder's stop cancelled its own call to bob (the relay signal aborts on the stop): a
    // CANCEL reached bob, with the stop as its reason.
    await until(() => held!.signal.aborted);
    expect(held!.signal.reason).to.be.instanceOf(CancelledError);
    expect((held!.signal.reason as Error).message).to.match(/stopped/);
  });
});
