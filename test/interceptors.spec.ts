/**
 * Interceptors and per-call metadata, through real sockets (tcp on loopback): incoming and
 * outgoing chains on both peers, in both directions; their order; what they may change; how they
 * end a call early or fail it; and metadata, which travels in compact framing only (never to a
 * pseud v1 peer).
 */
import { expect } from 'chai';
import { decode } from 'msgpackr';
import {
  MessageType,
  Client,
  ParameterError,
  RpcError,
  type CallContext,
  type InterceptedCall,
  type Interceptor,
  type ReplyChannel,
  type Server,
} from '../lib/index.js';
import { cleanup, once, rejection, RawPeer, RawServer, recordingLogger, startClient, startServer, track, until, uuidBytes } from './helpers.js';

const WORK = MessageType.WORK;
const OK = 0x01;

/** An interceptor that logs `name>` on the way in and `<name` on the way out. */
function tag(log: string[], name: string): Interceptor {
  return (next) => async (call) => {
    log.push(`${name}>`);
    try {
      return await next(call);
    } finally {
      log.push(`<${name}`);
    }
  };
}

/** An interceptor that keeps a copy of what it saw of each call (before calling on). */
function spy(seen: InterceptedCall[]): Interceptor {
  return (next) => (call) => {
    seen.push({ ...call, args: [...call.args], metadata: { ...call.metadata } });
    return next(call);
  };
}

class PermissionError extends Error {
  override name = 'PermissionError';
}

describe('interceptors', () => {
  afterEach(cleanup);

  describe('order: the first in the list is outermost; use() appends innermost', () => {
    it('server incoming (client -> server)', async () => {
      const log: string[] = [];
      const server = await startServer({ interceptors: { incoming: [tag(log, 'A'), tag(log, 'B')] } });
      expect(server.use({ incoming: tag(log, 'C') }), 'use() returns the peer').to.equal(server);
      server.registerRpc('work', () => {
        log.push('handler');
        return 1;
      });
      const client = await startClient(server, { userId: 'alice' });
      expect(await client.call.work()).to.equal(1);
      expect(log).to.deep.equal(['A>', 'B>', 'C>', 'handler', '<C', '<B', '<A']);
    });

    it('client outgoing (client -> server)', async () => {
      const log: string[] = [];
      const server = await startServer();
      server.registerRpc('work', () => {
        log.push('remote handler');
        return 2;
      });
      const client = await startClient(server, { userId: 'alice', interceptors: { outgoing: [tag(log, 'A'), tag(log, 'B')] } });
      client.use({ outgoing: [tag(log, 'C'), tag(log, 'D')] });
      expect(await client.call.work()).to.equal(2);
      expect(log).to.deep.equal(['A>', 'B>', 'C>', 'D>', 'remote handler', '<D', '<C', '<B', '<A']);
    });

    it('server outgoing and client incoming (server -> client via sendTo)', async () => {
      const log: string[] = [];
      const server = await startServer({ interceptors: { outgoing: [tag(log, 'S1')] } });
      server.use({ outgoing: tag(log, 'S2') });
      const client = await startClient(server, { userId: 'alice', interceptors: { incoming: [tag(log, 'C1')] } });
      client.use({ incoming: tag(log, 'C2') });
      client.registerRpc('addition', (a: number, b: number) => {
        log.push('client handler');
        return a + b;
      });
      expect(await server.sendTo('alice').addition(2, 4)).to.equal(6);
      expect(log).to.deep.equal(['S1>', 'S2>', 'C1>', 'C2>', 'client handler', '<C2', '<C1', '<S2', '<S1']);
    });

    it('an interceptor added with use() after start applies to the next calls', async () => {
      const log: string[] = [];
      const server = await startServer();
      server.registerRpc('ping', () => 'pong');
      const client = await startClient(server, { userId: 'alice' });
      expect(await client.call.ping()).to.equal('pong');
      expect(log).to.deep.equal([]);
      server.use({ incoming: tag(log, 'late-in') });
      client.use({ outgoing: tag(log, 'late-out') });
      expect(await client.call.ping()).to.equal('pong');
      expect(log).to.deep.equal(['late-out>', 'late-in>', '<late-in', '<late-out']);
    });

    it('use() refuses something that is not a function', async () => {
      const server = await startServer();
      expect(() => server.use({ incoming: 'nope' as unknown as Interceptor })).to.throw(TypeError, /incoming interceptor must be a function/);
    });
  });

  describe('what an interceptor sees', () => {
    it('direction, method, identity, deadline and signal, on each side of each direction', async () => {
      const serverIn: InterceptedCall[] = [];
      const serverOut: InterceptedCall[] = [];
      const clientIn: InterceptedCall[] = [];
      const clientOut: InterceptedCall[] = [];
      const server = await startServer({ interceptors: { incoming: [spy(serverIn)], outgoing: [spy(serverOut)] } });
      server.registerRpc('math.add', (a: number, b: number) => a + b);
      const client = await startClient(server, { userId: 'alice', interceptors: { incoming: [spy(clientIn)], outgoing: [spy(clientOut)] } });
      client.registerRpc('twice', (n: number) => n * 2);

      const controller = new AbortController();
      const before = Date.now();
      expect(await client.invoke('math.add', [1, 2], { timeoutMs: 4000, signal: controller.signal })).to.equal(3);
      expect(clientOut).to.have.length(1);
      expect(clientOut[0]).to.include({ method: 'math.add', direction: 'outgoing', identity: 'service', signal: controller.signal });
      expect(clientOut[0]!.args).to.deep.equal([1, 2]);
      expect(clientOut[0]!.deadline).to.be.within(before + 4000, Date.now() + 4000);
      expect(serverIn).to.have.length(1);
      expect(serverIn[0]).to.include({ method: 'math.add', direction: 'incoming', identity: 'alice' });
      // The caller's deadline travels (time left, so a few ms of transit may be added).
      expect(serverIn[0]!.deadline).to.be.within(before + 3000, Date.now() + 4100);
      expect(serverIn[0]!.signal).to.be.instanceOf(AbortSignal);
      expect(serverIn[0]!.signal!.aborted).to.equal(false);

      expect(await server.sendTo('alice').twice(21)).to.equal(42);
      expect(serverOut).to.have.length(1);
      expect(serverOut[0]).to.include({ method: 'twice', direction: 'outgoing', identity: 'alice' });
      expect(serverOut[0]!.deadline).to.be.a('number');
      expect(clientIn).to.have.length(1);
      expect(clientIn[0]).to.include({ method: 'twice', direction: 'incoming', identity: 'service' });
      expect(clientIn[0]!.args).to.deep.equal([21]);
    });

    it('incoming interceptors do not run for a name nobody registered (ServiceNotFoundError first)', async () => {
      const seen: InterceptedCall[] = [];
      const server = await startServer({ interceptors: { incoming: [spy(seen)] } });
      const client = await startClient(server, { userId: 'alice' });
      const error = await rejection(client.call.missing());
      expect(error.name).to.equal('ServiceNotFoundError');
      expect(seen).to.deep.equal([]);
    });
  });

  describe('changing a call', () => {
    it('outgoing and incoming interceptors can change the arguments', async () => {
      const server = await startServer({
        interceptors: { incoming: [(next) => (call) => next({ ...call, args: call.args.map((a) => (typeof a === 'number' ? a * 10 : a)) })] },
      });
      server.registerRpc('echo', (...args: unknown[]) => args);
      const client = await startClient(server, {
        userId: 'alice',
        interceptors: {
          outgoing: [(next) => (call) => {
            call.args = [...call.args, 3];
            return next(call);
          }],
        },
      });
      expect(await client.call.echo(1, 'x', 2)).to.deep.equal([10, 'x', 20, 30]);
    });

    it('server -> client: the server\'s outgoing and the client\'s incoming change the arguments too', async () => {
      const server = await startServer({
        interceptors: { outgoing: [(next) => (call) => next({ ...call, args: ['from-interceptor', ...call.args] })] },
      });
      const client = await startClient(server, {
        userId: 'alice',
        interceptors: { incoming: [(next) => (call) => next({ ...call, args: call.args.map(String) })] },
      });
      client.registerRpc('echo', (...args: unknown[]) => args);
      expect(await server.sendTo('alice').echo(1, true)).to.deep.equal(['from-interceptor', '1', 'true']);
    });

    it('an incoming interceptor can change the result, and map a handler\'s error', async () => {
      const server = await startServer({
        interceptors: {
          incoming: [(next) => async (call) => {
            try {
              return { method: call.method, result: await next(call) };
            } catch (error) {
              throw new RpcError(`${call.method} failed: ${(error as Error).message}`);
            }
          }],
        },
      });
      server.registerRpc('ok', () => 7);
      server.registerRpc('bad', () => {
        throw new TypeError('broken');
      });
      const client = await startClient(server, { userId: 'alice' });
      expect(await client.call.ok()).to.deep.equal({ method: 'ok', result: 7 });
      const error = await rejection(client.call.bad());
      expect(error).to.be.instanceOf(RpcError);
      expect(error.message).to.equal('bad failed: broken');
    });

    it('incoming interceptors wrap raw handlers (reply channel) too', async () => {
      const server = await startServer({ interceptors: { incoming: [(next) => async (call) => `wrapped(${String(await next(call))})`] } });
      server.registerRpc('later', (channel: ReplyChannel, x: number) => {
        setImmediate(() => channel.reply(x + 1));
      }, { raw: true });
      const client = await startClient(server, { userId: 'alice' });
      expect(await client.call.later(1)).to.equal('wrapped(2)');
    });
  });

  describe('ending a call early', () => {
    it('an outgoing interceptor that returns without next(): nothing is sent, the caller gets its value', async () => {
      let runs = 0;
      const server = await startServer();
      server.registerRpc('expensive', () => ++runs);
      const cache = new Map<string, unknown>([['expensive', 'cached']]);
      const client = await startClient(server, {
        userId: 'alice',
        interceptors: { outgoing: [(next) => async (call) => (cache.has(call.method) ? cache.get(call.method) : next(call))] },
      });
      expect(await client.call.expensive()).to.equal('cached');
      cache.clear();
      expect(await client.call.expensive()).to.equal(1);
      expect(runs).to.equal(1);
    });

    it('an incoming interceptor that returns without next(): the handler does not run', async () => {
      let runs = 0;
      const server = await startServer({ interceptors: { incoming: [(next) => async (call) => (call.method === 'stubbed' ? 'stub' : next(call))] } });
      server.registerRpc('stubbed', () => ++runs);
      server.registerRpc('real', () => 'real');
      const client = await startClient(server, { userId: 'alice' });
      expect(await client.call.stubbed()).to.equal('stub');
      expect(await client.call.real()).to.equal('real');
      expect(runs).to.equal(0);
    });

    it('an outgoing interceptor that throws: the caller gets that very error, nothing is sent', async () => {
      let runs = 0;
      const server = await startServer();
      server.registerRpc('guarded', () => ++runs);
      const refusal = new PermissionError('not from here');
      const client = await startClient(server, {
        userId: 'alice',
        interceptors: {
          outgoing: [() => async () => {
            throw refusal;
          }],
        },
      });
      expect(await rejection(client.call.guarded())).to.equal(refusal);
      expect(runs).to.equal(0);
      expect(client.pendingCalls).to.equal(0);
    });

    it('an interceptor that throws synchronously (not async) fails the call the same way', async () => {
      const server = await startServer({
        interceptors: {
          incoming: [() => () => {
            throw new ParameterError('refused by the server interceptor');
          }],
        },
      });
      server.registerRpc('f', () => 'ran');
      const client = await startClient(server, { userId: 'alice' });
      const remote = await rejection(client.call.f());
      expect(remote).to.be.instanceOf(ParameterError);
      expect(remote.message).to.equal('refused by the server interceptor');
      expect((remote as ParameterError).origin).to.equal('remote');

      client.use({
        outgoing: () => () => {
          throw new TypeError('refused by the client interceptor');
        },
      });
      const local = await rejection(client.call.f());
      expect(local).to.be.instanceOf(TypeError);
      expect(local.message).to.equal('refused by the client interceptor');
    });

    it('an incoming interceptor that throws: the caller gets the error (server -> client too)', async () => {
      const server = await startServer();
      const client = await startClient(server, {
        userId: 'alice',
        interceptors: {
          incoming: [(next) => async (call) => {
            if (call.identity !== 'trusted-server') throw new PermissionError(`${call.identity} may not call ${call.method}`);
            return next(call);
          }],
        },
      });
      let runs = 0;
      client.registerRpc('wipe', () => ++runs);
      const error = await rejection(server.sendTo('alice').wipe());
      expect(error.message).to.equal('service may not call wipe');
      expect((error as { remoteName?: string }).remoteName).to.equal('PermissionError');
      expect(runs).to.equal(0);
    });
  });

  describe('metadata', () => {
    /** A server whose `meta` handler answers with ctx.metadata, and whose incoming interceptor records call.metadata. */
    async function metadataServer(seen: InterceptedCall[], options: Parameters<typeof startServer>[0] = {}): Promise<Server> {
      const server = await startServer({ interceptors: { incoming: [spy(seen)] }, ...options });
      server.registerRpc('meta', (ctx: CallContext) => ctx.metadata, { withContext: true });
      return server;
    }

    it('invoke(name, args, { metadata }) reaches the handler (ctx.metadata) and the incoming interceptor', async () => {
      const seen: InterceptedCall[] = [];
      const server = await metadataServer(seen);
      const client = await startClient(server, { userId: 'alice' });
      const metadata = { 'x-request-id': 'r-1', tenant: 'acme' };
      expect(await client.invoke('meta', [], { metadata })).to.deep.equal(metadata);
      expect(seen[0]!.metadata).to.deep.equal(metadata);
    });

    it('client.callWith({ metadata }) sends it with every call of that proxy', async () => {
      const seen: InterceptedCall[] = [];
      const server = await metadataServer(seen);
      const client = await startClient(server, { userId: 'alice' });
      const traced = client.callWith({ metadata: { traceparent: '00-abc-def-01' } });
      expect(await traced.meta()).to.deep.equal({ traceparent: '00-abc-def-01' });
      expect(await traced.meta()).to.deep.equal({ traceparent: '00-abc-def-01' });
      expect(await client.call.meta(), 'the plain proxy sends none').to.deep.equal({});
      expect(seen.map((call) => call.metadata)).to.deep.equal([{ traceparent: '00-abc-def-01' }, { traceparent: '00-abc-def-01' }, {}]);
    });

    it('server -> client: invoke({ to, metadata }) and sendTo(identity, { metadata })', async () => {
      const server = await startServer();
      const client = await startClient(server, { userId: 'alice' });
      client.registerRpc('meta', (ctx: CallContext) => ({ identity: ctx.identity, method: ctx.method, metadata: ctx.metadata }), { withContext: true });
      expect(await server.invoke('meta', [], { to: 'alice', metadata: { a: '1' } }))
        .to.deep.equal({ identity: 'service', method: 'meta', metadata: { a: '1' } });
      expect(await server.sendTo('alice', { metadata: { b: '2' } }).meta()).to.deep.include({ metadata: { b: '2' } });
    });

    it('an outgoing interceptor can add and change metadata; an incoming one can too, before the handler', async () => {
      const seen: InterceptedCall[] = [];
      const server = await metadataServer(seen);
      server.use({
        incoming: (next) => (call) => {
          call.metadata['seen-by'] = 'server';
          return next(call);
        },
      });
      const client = await startClient(server, {
        userId: 'alice',
        interceptors: {
          outgoing: [(next) => (call) => {
            call.metadata['tenant'] = call.metadata['tenant']?.toUpperCase() ?? 'NONE';
            call.metadata['added'] = 'yes';
            return next(call);
          }],
        },
      });
      expect(await client.invoke('meta', [], { metadata: { tenant: 'acme' } })).to.deep.equal({ tenant: 'ACME', added: 'yes', 'seen-by': 'server' });
      expect(seen[0]!.metadata, 'the outermost incoming interceptor sees what came over the wire').to.deep.equal({ tenant: 'ACME', added: 'yes' });
      expect(await client.call.meta()).to.deep.equal({ tenant: 'NONE', added: 'yes', 'seen-by': 'server' });
    });

    it('an outgoing interceptor can remove metadata, down to none at all', async () => {
      const seen: InterceptedCall[] = [];
      const server = await metadataServer(seen);
      const client = await startClient(server, {
        userId: 'alice',
        interceptors: {
          outgoing: [(next) => (call) => {
            delete call.metadata['authorization'];
            return next(call);
          }],
        },
      });
      expect(await client.invoke('meta', [], { metadata: { authorization: 'secret', keep: 'me' } })).to.deep.equal({ keep: 'me' });
      expect(await client.invoke('meta', [], { metadata: { authorization: 'secret' } }), 'the last key removed').to.deep.equal({});
    });

    it('the caller\'s metadata object is not changed by interceptors', async () => {
      const server = await metadataServer([]);
      const client = await startClient(server, {
        userId: 'alice',
        interceptors: {
          outgoing: [(next) => (call) => {
            call.metadata['added'] = 'x';
            return next(call);
          }],
        },
      });
      const metadata = { mine: '1' };
      await client.invoke('meta', [], { metadata });
      expect(metadata).to.deep.equal({ mine: '1' });
    });

    it('one-way calls carry metadata too', async () => {
      const server = await startServer();
      const got: Array<Readonly<Record<string, string>>> = [];
      server.registerRpc('note', (ctx: CallContext) => {
        got.push(ctx.metadata);
      }, { withContext: true });
      const client = await startClient(server, { userId: 'alice' });
      await client.invokeOneWay('note', [], { metadata: { k: 'v' } });
      await until(() => got.length === 1, 2000, 'the one-way call');
      expect(got[0]).to.deep.equal({ k: 'v' });
    });

    it('metadata values must be strings: a number is refused on receipt (ProtocolError for the caller)', async () => {
      const server = await metadataServer([]);
      const client = await startClient(server, { userId: 'alice' });
      const error = await rejection(client.invoke('meta', [], { metadata: { n: 1 as unknown as string } }));
      expect(error.name).to.equal('ProtocolError');
      expect(error.message).to.contain('metadata values must be strings');
    });

    it('metadata relayed by a proxy (proxyTo) reaches the upstream handler', async () => {
      const core = await startServer({ security: 'trusted_peer', trustedProxies: ['edge'] }, 'tcp', 'core');
      core.registerRpc('meta', (ctx: CallContext) => ({ identity: ctx.identity, metadata: ctx.metadata }), { withContext: true });
      const upstream = await startClient(core, { security: 'trusted_peer', userId: 'edge' });
      const edge = await startServer({ security: 'trusted_peer', proxyTo: upstream }, 'tcp', 'edge');
      const alice = await startClient(edge, { security: 'trusted_peer', userId: 'alice' });
      expect(await alice.invoke('meta', [], { metadata: { traceparent: '00-1-2-01' } }))
        .to.deep.equal({ identity: 'alice', metadata: { traceparent: '00-1-2-01' } });
    });
  });

  describe('metadata is never sent to a pseud (v1) peer', () => {
    it('a server calling a raw v1 client sends [name, args, kwargs] only, even when an interceptor adds metadata', async () => {
      const seenOut: InterceptedCall[] = [];
      const server = await startServer({
        interceptors: {
          outgoing: [(next) => (call) => {
            call.metadata['traceparent'] = '00-aa-bb-01';
            return next(call);
          }, spy(seenOut)],
        },
      });
      server.registerRpc('hello', () => 'hi');
      const raw = new RawPeer(server.id, { routingId: 'pseud-client' });
      await raw.connect(server.endpoint);
      // A first call makes the server know the pseud client (noop: its routing id is its identity).
      await raw.sendV1(uuidBytes(), WORK, ['hello', [], {}]);
      expect(decode((await raw.next())[4]!)).to.equal('hi');

      const result = server.invoke('configure', ['x'], { to: 'pseud-client', metadata: { tenant: 'acme' } });
      const frames = await raw.next();
      expect(frames, 'v1: five frames after the routing id').to.have.length(5);
      expect([...frames[3]!]).to.deep.equal([WORK]);
      expect(decode(frames[4]!), 'exactly pseud\'s three fields').to.deep.equal(['configure', ['x'], {}]);
      expect(seenOut[0]!.metadata, 'the interceptors still saw it').to.deep.equal({ tenant: 'acme', traceparent: '00-aa-bb-01' });
      await raw.sendV1(frames[2]!, OK, 'done');
      expect(await result).to.equal('done');
    });

    it('a client of a raw pseud server sends [name, args, kwargs] only', async () => {
      const rawServer = new RawServer({ probe: 'error' }); // a pseud server without authentication
      const endpoint = await rawServer.bind();
      const client = track(new Client('service', {
        logger: recordingLogger(), drainTimeoutMs: 50,
        interceptors: {
          outgoing: [(next) => (call) => {
            call.metadata['traceparent'] = '00-aa-bb-01';
            return next(call);
          }],
        },
      }));
      const connected = once(client, 'connected', 5000);
      client.connect(endpoint);
      await client.start();
      await connected;

      const result = client.invoke('compute', [1], { metadata: { tenant: 'acme' } });
      const frames = await rawServer.next();
      expect(frames).to.have.length(6);
      expect([...frames[4]!]).to.deep.equal([WORK]);
      expect(decode(frames[5]!)).to.deep.equal(['compute', [1], {}]);
      await rawServer.send([frames[0]!, '', 'v1', frames[3]!, Buffer.from([OK]), Buffer.from([0x2a])]);
      expect(await result).to.equal(42);
    });

    it('work from a v1 peer arrives with empty metadata (interceptor and ctx)', async () => {
      const seen: InterceptedCall[] = [];
      const server = await startServer({ interceptors: { incoming: [spy(seen)] } });
      server.registerRpc('meta', (ctx: CallContext) => ctx.metadata, { withContext: true });
      const raw = new RawPeer(server.id, { routingId: 'pseud-client' });
      await raw.connect(server.endpoint);
      await raw.sendV1(uuidBytes(), WORK, ['meta', [], {}]);
      const frames = await raw.next();
      expect([...frames[3]!]).to.deep.equal([OK]);
      expect(decode(frames[4]!)).to.deep.equal({});
      expect(seen).to.have.length(1);
      expect(seen[0]).to.include({ method: 'meta', identity: 'pseud-client', direction: 'incoming' });
      expect(seen[0]!.metadata).to.deep.equal({});
    });
  });
});
