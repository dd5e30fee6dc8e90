import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { decode } from 'msgpackr';
import {
  CallStream, CancelledError, Client, EncodingError, MessageTooLargeError, MessageType, PeerNotConnectedError, Server, TimeoutError,
  type CallContext, type StreamOptions,
} from '../lib/index.js';
import { RawPeer, cleanup, clientOnRawServer, rejection, sleep, startClient, startServer, track, until, uuidBytes } from './helpers.js';

type Direction = 'client -> server' | 'server -> client';
const DIRECTIONS: readonly Direction[] = ['client -> server', 'server -> client'];

interface StreamPair {
  callee: Server | Client;
  caller: Server | Client;
  stream<T = unknown>(name: string, args?: unknown[], options?: StreamOptions): CallStream<T>;
  call(name: string, args?: unknown[]): Promise<unknown>;
}

async function pair(direction: Direction, options: { streamWindow?: { items: number; bytes: number }; maxMessageBytes?: number } = {}): Promise<StreamPair> {
  const server = await startServer(options);
  const client = await startClient(server, { userId: 'alice', ...options });
  if (direction === 'client -> server') {
    return { callee: server, caller: client, stream: (n, a = [], o = {}) => client.invokeStream(n, a, o), call: (n, a = []) => client.invoke(n, a) };
  }
  return {
    callee: client, caller: server,
    stream: (n, a = [], o = {}) => server.invokeStream(n, a, { ...o, to: 'alice' }),
    call: (n, a = []) => server.invoke(n, a, { to: 'alice' }),
  };
}

async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

/** A producer that counts what its iterator was asked for, and whether its finally ran. */
function counted(limit = Infinity, delayMs = 0): { handler: (ctx: CallContext) => AsyncGenerator<number>; pulled: () => number; finished: () => boolean; signal: () => AbortSignal | undefined } {
  let pulled = 0;
  let finished = false;
  let signal: AbortSignal | undefined;
  return {
    handler: async function* (ctx: CallContext) {
      signal = ctx.signal;
      try {
        for (let i = 0; i < limit; i++) {
          pulled++;
          yield i;
          if (delayMs) await sleep(delayMs);
        }
      } finally {
        finished = true;
      }
    },
    pulled: () => pulled,
    finished: () => finished,
    signal: () => signal,
  };
}

describe('streams', () => {
  afterEach(cleanup);

  for (const direction of DIRECTIONS) {
    describe(direction, () => {
      it('a handler returning an AsyncIterable streams its items in order; return ends the stream', async () => {
        const { callee, stream } = await pair(direction);
        callee.registerRpc('logs.tail', async function* (n: number) {
          for (let i = 0; i < n; i++) yield `line ${i}`;
        });
        const items = await drain(stream<string>('logs.tail', [500]));
        expect(items).to.have.length(500);
        expect(items[0]).to.equal('line 0');
        expect(items[499]).to.equal('line 499');
        expect(await drain(stream('logs.tail', [0]))).to.deep.equal([]);
      });

      it('a throw ends the stream with the typed error, after the items before it', async () => {
        const { callee, stream } = await pair(direction);
        callee.registerRpc('broken', async function* () {
          yield 1;
          yield 2;
          throw new RangeError('out of range at 3');
        });
        const got: number[] = [];
        const error = await rejection((async () => {
          for await (const item of stream<number>('broken')) got.push(item);
        })());
        expect(got).to.deep.equal([1, 2]);
        expect(error).to.be.instanceOf(RangeError);
        expect(error.message).to.equal('out of range at 3');
      });

      it('break in for-await returns the producer\'s iterator (its finally runs) and aborts its ctx.signal', async () => {
        const { callee, caller, stream } = await pair(direction);
        const producer = counted();
        callee.registerRpc('endless', producer.handler, { withContext: true });
        let seen = 0;
        for await (const item of stream<number>('endless')) {
          expect(item).to.equal(seen);
          if (++seen === 10) break;
        }
        await until(() => producer.finished(), 3000, "the producer's finally");
        expect(producer.signal()!.aborted).to.equal(true);
        expect(producer.signal()!.reason).to.be.instanceOf(CancelledError);
        await until(() => callee.stats().runningHandlers === 0);
        expect(caller.stats().pendingCalls).to.equal(0);
      });

      it('cancel(reason) mid-stream runs the producer\'s finally; the consumer ends quietly', async () => {
        const { callee, stream } = await pair(direction);
        const producer = counted(Infinity, 2);
        callee.registerRpc('endless', producer.handler, { withContext: true });
        const s = stream<number>('endless');
        const first = await s.next();
        expect(first).to.deep.equal({ done: false, value: 0 });
        await s.cancel('enough');
        expect(await s.next()).to.deep.equal({ done: true, value: undefined });
        await until(() => producer.finished(), 3000, "the producer's finally");
        expect((producer.signal()!.reason as Error).message).to.include('enough');
      });

      it('an aborted signal: the consumer rejects with CancelledError, the producer stops', async () => {
        const { callee, stream } = await pair(direction);
        const producer = counted(Infinity, 2);
        callee.registerRpc('endless', producer.handler, { withContext: true });
        const controller = new AbortController();
        const s = stream<number>('endless', [], { signal: controller.signal });
        await s.next();
        controller.abort(new Error('user left'));
        const error = await rejection((async () => {
          for (let i = 0; i < 100_000; i++) await s.next();
        })());
        expect(error).to.be.instanceOf(CancelledError);
        await until(() => producer.finished(), 3000, "the producer's finally");
      });

      it('flow control: a slow consumer holds the producer to the window (10^6 items offered)', async () => {
        const { callee, stream } = await pair(direction, { streamWindow: { items: 16, bytes: 1024 * 1024 } });
        const producer = counted(1_000_000);
        callee.registerRpc('million', producer.handler, { withContext: true });
        const s = stream<number>('million');
        let consumed = 0;
        for (let round = 0; round < 5; round++) {
          for (let i = 0; i < 8; i++) {
            expect((await s.next()).value).to.equal(consumed);
            consumed++;
          }
          await sleep(40); // the consumer sleeps: the producer must wait for credit
          expect(producer.pulled()).to.be.at.most(consumed + 16);
        }
        expect(s.buffered).to.be.at.most(16);
        await s.cancel();
        await until(() => producer.finished());
        expect(producer.pulled()).to.be.below(1000);
      });

      it('flow control in bytes: items of 1 KiB with a 4 KiB window', async () => {
        const { callee, stream } = await pair(direction, { streamWindow: { items: 1000, bytes: 4096 } });
        let pulled = 0;
        callee.registerRpc('blocks', async function* () {
          for (let i = 0; i < 100_000; i++) {
            pulled++;
            yield Buffer.alloc(1024, i % 256);
          }
        });
        const s = stream<Buffer>('blocks');
        for (let i = 0; i < 6; i++) expect((await s.next()).value).to.have.length(1024);
        await sleep(40);
        // Sent and not consumed stays under the byte window, plus the one item that crossed it.
        expect(pulled - 6).to.be.at.most(5);
        await s.cancel();
      });

      it('timeoutMs bounds the wait for each next item: TimeoutError, and the producer is stopped', async () => {
        const { callee, stream } = await pair(direction);
        const producer = counted(Infinity, 300);
        callee.registerRpc('slow', producer.handler, { withContext: true });
        const s = stream<number>('slow', [], { timeoutMs: 80 });
        expect((await s.next()).value).to.equal(0);
        const error = await rejection(s.next());
        expect(error).to.be.instanceOf(TimeoutError);
        expect(error.message).to.include('no item within 80 ms');
        await until(() => producer.finished(), 3000, "the producer's finally");
      });

      it('a deadline bounds the whole stream; the producer sees it as ctx.deadline and its signal aborts', async () => {
        const { callee, stream } = await pair(direction);
        const producer = counted(Infinity, 10);
        let deadline: number | undefined;
        callee.registerRpc('ticks', (ctx: CallContext) => {
          deadline = ctx.deadline;
          return producer.handler(ctx);
        }, { withContext: true });
        // Room for the first items to arrive on a loaded machine before the deadline ends the stream.
        const in500 = Date.now() + 500;
        const got: number[] = [];
        const error = await rejection((async () => {
          for await (const item of stream<number>('ticks', [], { deadline: in500, timeoutMs: 5000 })) got.push(item);
        })());
        expect(error).to.be.instanceOf(TimeoutError);
        expect(got.length).to.be.greaterThan(0);
        expect(deadline).to.be.a('number');
        await until(() => producer.finished(), 3000, "the producer's finally");
        expect(producer.signal()!.aborted).to.equal(true);
      });

      it('peer.call on a streaming function gets the items as one list', async () => {
        const { callee, call } = await pair(direction);
        callee.registerRpc('few', async function* () {
          yield 'a';
          yield 'b';
        });
        expect(await call('few')).to.deep.equal(['a', 'b']);
      });

      it('the list over maxMessageBytes: an error naming the limit, and the producer is stopped', async () => {
        const { callee, call } = await pair(direction, { maxMessageBytes: 64 * 1024 });
        const producer = counted(1_000_000);
        callee.registerRpc('big', async function* (ctx: CallContext) {
          for await (const i of producer.handler(ctx)) yield `${i}`.padEnd(1024, '.');
        }, { withContext: true });
        const error = await rejection(call('big'));
        expect(error).to.be.instanceOf(MessageTooLargeError);
        expect(error.message).to.include('maxMessageBytes (65536)');
        expect(producer.finished()).to.equal(true);
        expect(producer.pulled()).to.be.below(100);
      });

      it('an AsyncIterable argument arrives at the handler as an AsyncIterable (client streaming)', async () => {
        const { callee, call } = await pair(direction);
        callee.registerRpc('sum', async (numbers: AsyncIterable<number>, scale: number) => {
          let total = 0;
          for await (const n of numbers) total += n;
          return total * scale;
        });
        async function* upTo(n: number): AsyncGenerator<number> {
          for (let i = 1; i <= n; i++) yield i;
        }
        expect(await call('sum', [upTo(1000), 2])).to.equal(1001000);
      });

      it('both ways at once: a streamed argument and a streamed result', async () => {
        const { callee, stream } = await pair(direction);
        callee.registerRpc('double', async function* (numbers: AsyncIterable<number>) {
          for await (const n of numbers) yield n * 2;
        });
        async function* upTo(n: number): AsyncGenerator<number> {
          for (let i = 0; i < n; i++) yield i;
        }
        const got = await drain(stream<number>('double', [upTo(300)]));
        expect(got).to.have.length(300);
        expect(got[299]).to.equal(598);
      });

      it('an argument stream is held to the callee\'s window; the handler leaving it early runs the caller\'s finally', async () => {
        const { callee, call } = await pair(direction, { streamWindow: { items: 8, bytes: 1024 * 1024 } });
        let pulled = 0;
        let finished = false;
        async function* endless(): AsyncGenerator<number> {
          try {
            for (let i = 0; i < 1_000_000; i++) {
              pulled++;
              yield i;
            }
          } finally {
            finished = true;
          }
        }
        let pulledWhileSleeping = -1;
        callee.registerRpc('firstFew', async (numbers: AsyncIterable<number>) => {
          const got: number[] = [];
          for await (const n of numbers) {
            got.push(n);
            if (got.length === 4) {
              await sleep(50); // the producer over there must wait for credit meanwhile
              pulledWhileSleeping = pulled;
            }
            if (got.length === 6) break;
          }
          return got;
        });
        expect(await call('firstFew', [endless()])).to.deep.equal([0, 1, 2, 3, 4, 5]);
        expect(pulledWhileSleeping).to.be.at.most(4 + 8);
        await until(() => finished, 3000, "the caller's finally");
        expect(pulled).to.be.below(100);
      });

      it('a throw in the caller\'s AsyncIterable reaches the handler, typed, after the items before it', async () => {
        const { callee, call } = await pair(direction);
        callee.registerRpc('collect', async (items: AsyncIterable<number>) => {
          const got: number[] = [];
          try {
            for await (const n of items) got.push(n);
          } catch (error) {
            return `${got.join(',')} then ${(error as Error).name}: ${(error as Error).message}`;
          }
          return 'no error';
        });
        async function* broken(): AsyncGenerator<number> {
          yield 1;
          yield 2;
          throw new TypeError('bad input');
        }
        expect(await call('collect', [broken()])).to.equal('1,2 then TypeError: bad input');
      });

      it('peer.call on an endless streaming function, cancelled: the producer stops (its finally runs)', async () => {
        const { callee, caller } = await pair(direction);
        const producer = counted(Infinity, 1);
        callee.registerRpc('endless', producer.handler, { withContext: true });
        const controller = new AbortController();
        const call = caller instanceof Client
          ? caller.invoke('endless', [], { signal: controller.signal })
          : (caller as Server).invoke('endless', [], { signal: controller.signal, to: 'alice' });
        await until(() => producer.pulled() > 3);
        controller.abort();
        expect(await rejection(call)).to.be.instanceOf(CancelledError);
        await until(() => producer.finished(), 3000, "the producer's finally");
      });

      it('a stream of a function that returns a list (or a value) yields its items', async () => {
        const { callee, stream } = await pair(direction);
        callee.registerRpc('list', () => [1, 2, 3]);
        callee.registerRpc('one', () => 'single');
        expect(await drain(stream('list'))).to.deep.equal([1, 2, 3]);
        expect(await drain(stream('one'))).to.deep.equal(['single']);
      });
    });
  }

  it('a pseud v1 caller of a streaming function gets one list', async () => {
    const server = await startServer();
    server.registerRpc('few', async function* () {
      yield 1;
      yield 2;
    });
    const raw = new RawPeer(server.id, { routingId: 'pseud-client' });
    await raw.connect(server.endpoint);
    await raw.sendV1(uuidBytes(), MessageType.WORK, ['few', [], {}]);
    const frames = await raw.next();
    expect([...frames[3]!]).to.deep.equal([MessageType.OK]);
    expect(decode(frames[4]!)).to.deep.equal([1, 2]);
  });

  it('an AsyncIterable argument to a pseud v1 peer is refused with EncodingError (nothing pseud cannot read is sent)', async () => {
    const { client } = await clientOnRawServer();
    const error = await rejection(client.invoke('sum', [(async function* () { yield 1; })()]));
    expect(error).to.be.instanceOf(EncodingError);
    expect(error.message).to.include('zeropeer peers only');
  });

  it('the client stopping ends the server\'s producer: its finally runs, its signal aborts', async () => {
    const server = await startServer();
    const producer = counted(Infinity, 5);
    server.registerRpc('endless', producer.handler, { withContext: true });
    const client = await startClient(server, { userId: 'alice' });
    const s = client.invokeStream<number>('endless');
    await s.next();
    await client.stop();
    await until(() => producer.finished(), 3000, "the producer's finally");
    expect(producer.signal()!.aborted).to.equal(true);
  });

  describe('a SIGKILLed peer in a child process', () => {
    const FIXTURE = fileURLToPath(new URL('./fixtures/peer-process.js', import.meta.url));
    const heartbeat = { intervalMs: 100, timeoutMs: 600 };
    const children: ChildProcess[] = [];

    function spawnPeer(...args: string[]): { proc: ChildProcess; line(prefix: string): Promise<string> } {
      const proc = spawn(process.execPath, [FIXTURE, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      children.push(proc);
      let buffered = '';
      const waiters: Array<{ prefix: string; resolve: (line: string) => void }> = [];
      const seen: string[] = [];
      proc.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          seen.push(line);
          for (const w of waiters.splice(0)) {
            if (line.startsWith(w.prefix)) w.resolve(line);
            else waiters.push(w);
          }
        }
      });
      return {
        proc,
        line: (prefix) => {
          const already = seen.find((l) => l.startsWith(prefix));
          if (already) return Promise.resolve(already);
          return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no "${prefix}" line from the child`)), 8000);
            waiters.push({ prefix, resolve: (l) => { clearTimeout(timer); resolve(l); } });
          });
        },
      };
    }

    afterEach(async () => {
      for (const proc of children.splice(0)) {
        if (proc.exitCode === null && proc.signalCode === null) {
          const exited = new Promise((resolve) => proc.once('exit', resolve));
          proc.kill('SIGKILL');
          await exited;
        }
      }
    });

    it('the server is killed: the client\'s stream ends with PeerNotConnectedError', async function () {
      this.timeout(15_000);
      const child = spawnPeer('server', 'tcp://127.0.0.1:0', JSON.stringify({ heartbeat }));
      const endpoint = (await child.line('ready ')).slice('ready '.length);
      const client = track(new Client('service', { userId: 'alice', heartbeat, drainTimeoutMs: 50, logger: { debug() {}, info() {}, warn() {}, error() {} } }));
      client.connect(endpoint);
      await client.start();
      const s = client.invokeStream<number>('ticks', [], { timeoutMs: 10_000 });
      expect((await s.next()).value).to.equal(0);
      child.proc.kill('SIGKILL');
      const error = await rejection((async () => {
        for (let i = 0; i < 100_000; i++) await s.next();
      })());
      expect(error).to.be.instanceOf(PeerNotConnectedError);
    });

    it('the client is killed: the server\'s stream from it ends with PeerNotConnectedError', async function () {
      this.timeout(15_000);
      const server = await startServer({ heartbeat });
      const child = spawnPeer('client', server.endpoint, 'bob', JSON.stringify({ heartbeat }));
      await child.line('ready');
      await until(() => server.connectedPeers().includes('bob'));
      const s = server.invokeStream<number>('ticks', [], { to: 'bob', timeoutMs: 10_000 });
      expect((await s.next()).value).to.equal(0);
      child.proc.kill('SIGKILL');
      const error = await rejection((async () => {
        for (let i = 0; i < 100_000; i++) await s.next();
      })());
      expect(error).to.be.instanceOf(PeerNotConnectedError);
    });

    it('the client is killed while reading the server\'s stream: the server\'s producer stops (its finally runs)', async function () {
      this.timeout(15_000);
      const server = await startServer({ heartbeat });
      const child = spawnPeer('client', server.endpoint, 'bob', JSON.stringify({ heartbeat }));
      await child.line('ready');
      await until(() => server.connectedPeers().includes('bob'));
      let pulled = 0;
      let finished = false;
      async function* endless(): AsyncGenerator<number> {
        try {
          for (;;) {
            pulled++;
            yield pulled;
            await sleep(2);
          }
        } finally {
          finished = true;
        }
      }
      const call = server.invoke('consume', [endless()], { to: 'bob', timeoutMs: 10_000 });
      await child.line('called consume');
      await until(() => pulled > 5);
      child.proc.kill('SIGKILL');
      expect(await rejection(call)).to.be.instanceOf(PeerNotConnectedError);
      await until(() => finished, 3000, "the server's producer's finally");
    });
  });
});
