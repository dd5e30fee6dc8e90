import { expect } from 'chai';
import {
  CancelledError,
  Client,
  ParameterError,
  PeerNotConnectedError,
  RpcError,
  Server,
  ServiceClosedError,
  ServiceNotFoundError,
  TimeoutError,
} from '../lib/index.js';
import { cleanup, endpointFor, once, recordingLogger, rejection, sleep, startClient, startServer, until, type Transport } from './helpers.js';

describe('calls', () => {
  afterEach(cleanup);

  for (const transport of ['tcp', 'ipc', 'inproc'] as Transport[]) {
    describe(`over ${transport}`, () => {
      it('client -> server and server -> client', async () => {
        const server = await startServer({}, transport);
        server.registerRpc('string.lower', (s: string) => s.toLowerCase());
        const client = await startClient(server, { userId: 'alice' });
        client.registerRpc('addition', (a: number, b: number) => a + b);

        expect(await client.call.string.lower('ABC')).to.equal('abc');
        expect(await server.sendTo('alice').addition(2, 4)).to.equal(6);
        expect(server.connectedPeers()).to.deep.equal(['alice']);
      });
    });
  }

  it('reports the real endpoint when bound on port 0', async () => {
    const server = await startServer();
    expect(server.endpoint).to.match(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(server.endpoint).not.to.match(/:0$/);
  });

  it('runs async handlers and many concurrent calls, each answered to its own caller', async () => {
    const server = await startServer();
    server.registerRpc('double', async (n: number) => {
      await sleep(n % 3);
      return n * 2;
    });
    const client = await startClient(server);
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => client.call.double(i)));
    expect(results).to.deep.equal(Array.from({ length: 500 }, (_, i) => i * 2));
    expect(client.pendingCalls).to.equal(0);
  });

  it('keeps calls made before the server exists, and sends them once it is up', async () => {
    const logger = recordingLogger();
    const server = new Server('late', { logger, drainTimeoutMs: 50 });
    server.registerRpc('hello', () => 'world');
    const client = new Client('late', { logger, timeoutMs: 3000 });
    try {
      await client.start();
      // Bind after the call: the client must wait for the route, not fail with a routing error.
      const endpoint = endpointFor('ipc');
      client.connect(endpoint);
      const answer = client.call.hello();
      await sleep(50);
      await server.bind(endpoint);
      await server.start();
      expect(await answer).to.equal('world');
    } finally {
      await client.stop();
      await server.stop();
    }
  });

  it('a call waiting for a connection that never comes ends with TimeoutError', async () => {
    const client = new Client('nobody', { logger: recordingLogger(), timeoutMs: 100 });
    try {
      client.connect(endpointFor('ipc'));
      await client.start();
      const error = await client.call.anything().catch((e: unknown) => e);
      expect(error).to.be.instanceOf(TimeoutError);
      expect(client.pendingCalls).to.equal(0);
    } finally {
      await client.stop();
    }
  });

  describe('deadlines and cancellation', () => {
    it('rejects with TimeoutError at the peer default deadline, and the table forgets the call', async () => {
      const server = await startServer();
      server.registerRpc('hang', () => new Promise(() => {}));
      const client = await startClient(server, { timeoutMs: 80 });
      const error = await client.call.hang().catch((e: unknown) => e);
      expect(error).to.be.instanceOf(TimeoutError);
      expect(error).to.be.instanceOf(RpcError);
      expect((error as Error).message).to.contain('hang');
      expect(client.pendingCalls).to.equal(0);
    });

    it('a per-call timeoutMs overrides the default', async () => {
      const server = await startServer();
      server.registerRpc('slow', async () => {
        await sleep(150);
        return 'done';
      });
      const client = await startClient(server, { timeoutMs: 50 });
      expect(await client.invoke('slow', [], { timeoutMs: 2000 })).to.equal('done');
      expect(await client.callWith({ timeoutMs: 2000 }).slow()).to.equal('done');
      expect(await client.call.slow().catch((e: unknown) => e)).to.be.instanceOf(TimeoutError);
    });

    it('an AbortSignal rejects the wait at once with CancelledError, its reason as the cause', async () => {
      const server = await startServer();
      server.registerRpc('hang', () => new Promise(() => {}));
      const client = await startClient(server, { timeoutMs: 5000 });
      const controller = new AbortController();
      const call = client.invoke('hang', [], { signal: controller.signal });
      const reason = new Error('user gave up');
      controller.abort(reason);
      const error = await rejection(call);
      expect(error).to.be.instanceOf(CancelledError);
      expect(error).to.include({ code: 'cancelled' });
      expect(error.cause).to.equal(reason);
      expect(error.message).to.include('user gave up');
      expect(client.pendingCalls).to.equal(0);

      const aborted = AbortSignal.abort();
      const early = await rejection(client.invoke('hang', [], { signal: aborted }));
      expect(early).to.be.instanceOf(CancelledError);
      expect((early.cause as Error).name).to.equal('AbortError');
    });

    it('an answer that arrives after the deadline is dropped', async () => {
      const server = await startServer();
      let finished = false;
      server.registerRpc('late', async () => {
        await sleep(100);
        finished = true;
        return 'late';
      });
      const client = await startClient(server, { timeoutMs: 30 });
      expect(await client.call.late().catch((e: unknown) => e)).to.be.instanceOf(TimeoutError);
      await until(() => finished);
      await sleep(20);
      expect(client.pendingCalls).to.equal(0);
      server.registerRpc('ping', () => 'pong');
      expect(await client.call.ping()).to.equal('pong');
    });
  });

  describe('stop', () => {
    it('rejects the local calls in flight with ServiceClosedError, and later calls too', async () => {
      const server = await startServer();
      server.registerRpc('hang', () => new Promise(() => {}));
      const client = await startClient(server);
      const inFlight = [client.call.hang(), client.call.hang()];
      await sleep(20);
      await client.stop();
      for (const call of inFlight) expect(await call.catch((e: unknown) => e)).to.be.instanceOf(ServiceClosedError);
      expect(await client.call.hang().catch((e: unknown) => e)).to.be.instanceOf(ServiceClosedError);
      expect(client.pendingCalls).to.equal(0);
    });

    it('a server that stops fails the client calls in flight instead of leaving them to time out', async () => {
      const server = await startServer();
      server.registerRpc('hang', () => new Promise(() => {}));
      const client = await startClient(server, { timeoutMs: 10_000 });
      const call = client.call.hang();
      await sleep(20);
      await server.stop();
      const error = await call.catch((e: unknown) => e);
      expect(error).to.be.instanceOf(ServiceClosedError);
    });

    it('is idempotent, and start after stop is refused', async () => {
      const server = await startServer();
      await Promise.all([server.stop(), server.stop()]);
      await server.stop();
      expect(await server.start().catch((e: unknown) => e)).to.be.instanceOf(ServiceClosedError);
    });

    it('start is idempotent', async () => {
      const server = await startServer();
      await server.start();
      server.registerRpc('x', () => 1);
      const client = await startClient(server);
      await client.start();
      expect(await client.call.x()).to.equal(1);
    });

    it('works with await using', async () => {
      let stopped: Server | undefined;
      {
        await using server = new Server('disposable', { logger: recordingLogger() });
        await server.bind(endpointFor('inproc'));
        await server.start();
        stopped = server;
      }
      expect(await stopped.start().catch((e: unknown) => e)).to.be.instanceOf(ServiceClosedError);
    });

    it('lets a running handler answer before the socket closes (drainTimeoutMs)', async () => {
      const server = await startServer({ drainTimeoutMs: 2000 });
      server.registerRpc('slow', async () => {
        await sleep(100);
        return 'finished';
      });
      const client = await startClient(server);
      const call = client.call.slow();
      await sleep(20);
      const stopping = server.stop();
      expect(await call).to.equal('finished');
      await stopping;
    });
  });

  describe('server -> client', () => {
    it('sendTo an identity that is not connected rejects at once with PeerNotConnectedError', async () => {
      const server = await startServer();
      const error = await server.sendTo('ghost').anything().catch((e: unknown) => e);
      expect(error).to.be.instanceOf(PeerNotConnectedError);
      expect(server.pendingCalls).to.equal(0);
    });

    it('calls in flight to a client that disconnects reject at once with PeerNotConnectedError', async () => {
      const server = await startServer({ timeoutMs: 10_000 });
      const client = await startClient(server, { userId: 'carol' });
      client.registerRpc('hang', () => new Promise(() => {}));
      const call = server.sendTo('carol').hang();
      await sleep(20);
      const gone = once(server, 'peer:gone');
      await client.stop();
      expect(await call.catch((e: unknown) => e)).to.be.instanceOf(PeerNotConnectedError);
      // A zeropeer client says GOODBYE as it stops: gone at once, reason 'stopped'.
      expect(await gone).to.deep.equal(['carol', 'stopped']);
      expect(server.connectedPeers()).to.deep.equal([]);
      expect(server.pendingCalls).to.equal(0);
    });

    it('emits peer:authenticated with the declared identity', async () => {
      const server = await startServer();
      const authenticated = once(server, 'peer:authenticated');
      await startClient(server, { userId: 'dave' });
      expect(await authenticated).to.deep.equal(['dave']);
    });

    it('an answer from another client cannot settle a call made to the first', async () => {
      const server = await startServer({ timeoutMs: 300 });
      const honest = await startClient(server, { userId: 'honest' });
      honest.registerRpc('hang', () => new Promise(() => {}));
      await startClient(server, { userId: 'other' });
      const call = server.sendTo('honest').hang();
      expect(await call.catch((e: unknown) => e)).to.be.instanceOf(TimeoutError);
    });
  });

  describe('proxies', () => {
    it('are not thenables, so awaiting one does not call anything', async () => {
      const server = await startServer();
      let calls = 0;
      server.registerRpc('x', () => ++calls);
      const client = await startClient(server);
      const proxy = client.call.x;
      expect((proxy as unknown as { then?: unknown }).then).to.equal(undefined);
      expect(await Promise.resolve(client.call)).to.be.a('function');
      expect(calls).to.equal(0);
    });

    it('an unknown name rejects with ServiceNotFoundError naming it', async () => {
      const server = await startServer();
      const client = await startClient(server);
      const error = await client.call.does.not.exist().catch((e: unknown) => e);
      expect(error).to.be.instanceOf(ServiceNotFoundError);
      expect((error as Error).message).to.contain('does.not.exist');
    });

    it('invoke binds keyword arguments to parameters by name; an unknown name is a ParameterError', async () => {
      const server = await startServer();
      server.registerRpc('greet', (name: string, greeting = 'hello') => `${greeting} ${name}`);
      server.registerRpc('greetWith', (name: string, options?: { greeting?: string }) => `${options?.greeting ?? 'hello'} ${name}`, { kwargs: 'object' });
      const client = await startClient(server);
      expect(await client.invoke('greet', ['eve'], { kwargs: { greeting: 'hi' } })).to.equal('hi eve');
      expect(await client.invoke('greet', ['eve'], { kwargs: {} })).to.equal('hello eve');
      const error = await rejection(client.invoke('greet', ['eve'], { kwargs: { tone: 'warm' } }));
      expect(error).to.be.instanceOf(ParameterError);
      // The trailing-object form, only where the registration asks for it.
      expect(await client.invoke('greetWith', ['eve'], { kwargs: { greeting: 'hi' } })).to.equal('hi eve');
    });
  });

  describe('limits', () => {
    it('maxPendingCalls bounds the table: the call over it is refused, nothing else is affected', async () => {
      const server = await startServer();
      server.registerRpc('hang', () => new Promise(() => {}));
      server.registerRpc('ping', () => 'pong');
      const client = await startClient(server, { maxPendingCalls: 3, timeoutMs: 200 });
      const held = [client.call.hang(), client.call.hang(), client.call.hang()];
      const refused = await client.call.ping().catch((e: unknown) => e);
      expect(refused).to.be.instanceOf(RpcError);
      expect((refused as Error).message).to.contain('maxPendingCalls');
      for (const call of held) expect(await call.catch((e: unknown) => e)).to.be.instanceOf(TimeoutError);
      expect(await client.call.ping()).to.equal('pong');
    });

    it('rejects invalid options with a clear error', () => {
      expect(() => new Server('s', { timeoutMs: -1 })).to.throw(TypeError, /timeoutMs/);
      expect(() => new Server('')).to.throw(TypeError);
      expect(() => new Client('s', { security: 'no-such-plugin' })).to.throw(TypeError, /no-such-plugin/);
    });
  });
});
