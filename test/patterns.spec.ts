/**
 * "More ways to talk", through real sockets with authentication on: one-way calls, pub/sub,
 * reply channels, inspect, validation, service objects, remote shutdown and proxying.
 */
import { MessageType } from '../lib/index.js';
import { expect } from 'chai';
import { decode as unpackPlain } from 'msgpackr';
import {
  CancelledError,
  Client,
  NackError,
  ParameterError,
  PeerNotConnectedError,
  RegistrationError,
  Registry,
  RemoteError,
  ReplyChannel,
  Server,
  ServiceClosedError,
  ServiceNotFoundError,
  TimeoutError,
  UnauthorizedError,
  rpcMethod,
  type CallContext,
  type FunctionInfo,
  type ServerOptions,
} from '../lib/index.js';
import {
  RawPeer,
  cleanup,
  endpointFor,
  once,
  quickHash,
  recordingLogger,
  sleep,
  startClient,
  startServer,
  until,
  uuidBytes,
} from './helpers.js';

/** Message types, from the exported table (never copied constants). */
const T = MessageType;
const PASSWORD = 'correct horse';

/** Peers a test makes outside the helpers; stopped after each test. */
const extras: Array<{ stop(): Promise<void> }> = [];

/** The error a promise rejects with; fails the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    const value = await promise;
    throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (error) {
    if (error instanceof Error && error.message.startsWith('expected a rejection')) throw error;
    return error as Error;
  }
}

/** Frames from a RawPeer (after the routing id): ['', 'v1', id, type, body]. */
function v1Type(frames: Buffer[]): number {
  expect(frames).to.have.length(5);
  return frames[3]![0]!;
}

describe('more ways to talk (patterns)', function () {
  this.timeout(15000);

  let users: Record<string, string>;
  before(async () => {
    const hash = await quickHash(PASSWORD);
    users = { alice: hash, bob: hash, carol: hash };
  });

  afterEach(async () => {
    await Promise.all(extras.splice(0).map((peer) => peer.stop().catch(() => {})));
    await cleanup();
  });

  const plainServer = (options: ServerOptions = {}, id?: string) =>
    startServer({ security: 'plain', users, ...options }, 'ipc', id);
  const plainClient = (server: Server, userId: string, options: Record<string, unknown> = {}) =>
    startClient(server, { security: 'plain', userId, password: PASSWORD, ...options });
  const trustedServer = (options: ServerOptions = {}, id?: string) =>
    startServer({ security: 'trusted_peer', ...options }, 'tcp', id);
  const trustedClient = (server: Server, userId: string, options: Record<string, unknown> = {}) =>
    startClient(server, { security: 'trusted_peer', userId, ...options });

  // ---------------------------------------------------------------------------------------------
  describe('one-way calls', () => {
    it('client.notify resolves to undefined once sent, and the handler runs', async () => {
      const server = await plainServer();
      const seen: Array<[string, number]> = [];
      server.registerRpc('events.record', (who: string, n: number) => {
        seen.push([who, n]);
        return 'a result nobody gets';
      }, { withIdentity: true });
      const client = await plainClient(server, 'alice');

      const result = await client.notify.events.record(7);
      expect(result).to.equal(undefined);
      await until(() => seen.length === 1, 3000, 'the one-way handler ran');
      expect(seen).to.deep.equal([['alice', 7]]);
      expect(client.pendingCalls).to.equal(0);
    });

    it('no reply is sent for one-way work, even when the handler throws (logged at the receiver)', async () => {
      const logger = recordingLogger();
      const server = await plainServer({ logger });
      let ran = 0;
      server.registerRpc('events.explode', () => {
        ran++;
        throw new RangeError('kaboom');
      });
      server.registerRpc('ping', () => 'pong');

      // A zeropeer client: its promise resolves although the handler throws.
      const client = await plainClient(server, 'alice');
      expect(await client.notify.events.explode()).to.equal(undefined);
      await until(() => ran === 1, 3000, 'the throwing one-way handler ran');
      await until(
        () => logger.entries.some((e) => e.level === 'error' && e.message.includes('events.explode')),
        3000,
        'an error entry naming the function',
      );
      expect(await client.call.ping()).to.equal('pong');

      // A raw v1 peer, authenticated: whatever it reads next must be the answer to its ping, not
      // an ERROR (or OK) for the one-way work it sent first.
      const raw = new RawPeer(server.id);
      await raw.connect(server.endpoint);
      const helloId = uuidBytes();
      await raw.sendV1(helloId, T.HELLO, ['bob', PASSWORD]);
      const hello = await raw.next(5000);
      expect(v1Type(hello)).to.equal(T.AUTHENTICATED);
      expect(hello[2]).to.deep.equal(helloId);

      await raw.sendV1(Buffer.alloc(0), T.WORK, ['events.explode', [], {}]);
      const pingId = uuidBytes();
      await raw.sendV1(pingId, T.WORK, ['ping', [], {}]);
      const answer = await raw.next(3000);
      expect(v1Type(answer)).to.equal(T.OK);
      expect(answer[2]).to.deep.equal(pingId);
      expect(unpackPlain(answer[4]!)).to.equal('pong');
      expect(ran).to.equal(2);
      await rejection(raw.next(200)); // and nothing else came
    });

    it('server.notifyTo(identity) resolves once sent and runs the handler on that client', async () => {
      const server = await plainServer();
      const client = await plainClient(server, 'alice');
      const seen: string[] = [];
      client.registerRpc('ui.toast', (text: string) => {
        seen.push(text);
      });
      expect(await server.notifyTo('alice').ui.toast('hi')).to.equal(undefined);
      await until(() => seen.length === 1, 3000, 'the client ran the one-way call');
      expect(seen).to.deep.equal(['hi']);
      expect(server.pendingCalls).to.equal(0);
    });

    it('notifyTo an identity that is not connected rejects with PeerNotConnectedError', async () => {
      const server = await plainServer();
      const client = await plainClient(server, 'alice');
      client.registerRpc('ui.toast', () => {});
      expect(await rejection(server.notifyTo('nobody').ui.toast('x'))).to.be.instanceOf(PeerNotConnectedError);
      const gone = once(server, 'peer:gone', 5000);
      await client.stop();
      await gone;
      expect(await rejection(server.notifyTo('alice').ui.toast('x'))).to.be.instanceOf(PeerNotConnectedError);
    });

    it('notify before the connection is ready waits for it, then sends', async () => {
      const server = await plainServer();
      const seen: number[] = [];
      server.registerRpc('events.record', (n: number) => {
        seen.push(n);
      });
      const client = new Client(server.id, { security: 'plain', userId: 'alice', password: PASSWORD, logger: recordingLogger(), drainTimeoutMs: 50 });
      extras.push(client);
      client.connect(server.endpoint);
      await client.start();
      expect(client.connected).to.equal(false);
      const sent = client.notify.events.record(1);
      expect(await sent).to.equal(undefined);
      await until(() => seen.length === 1, 3000, 'the early one-way call arrived');
      expect(seen).to.deep.equal([1]);
    });

    it('notify from a client whose credentials were refused rejects with UnauthorizedError', async () => {
      const server = await plainServer();
      let ran = 0;
      server.registerRpc('events.record', () => {
        ran++;
      });
      const client = new Client(server.id, { security: 'plain', userId: 'alice', password: 'wrong', logger: recordingLogger(), drainTimeoutMs: 50 });
      extras.push(client);
      client.connect(server.endpoint);
      await client.start();
      expect(await rejection(client.notify.events.record(1))).to.be.instanceOf(UnauthorizedError);
      expect(await rejection(client.notify.events.record(2))).to.be.instanceOf(UnauthorizedError);
      expect(ran).to.equal(0);
    });

    it('a oneWay registration answers undefined at once, even when the handler is slow or throws', async () => {
      const server = await trustedServer();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let slowDone = false;
      let thrown = 0;
      server.registerRpc('jobs.slow', async () => {
        await gate;
        slowDone = true;
        return 'late result';
      }, { oneWay: true });
      server.registerRpc('jobs.fail', () => {
        thrown++;
        throw new TypeError('bad job');
      }, { oneWay: true });
      const client = await trustedClient(server, 'alice');

      // If the answer waited for the handler, this call would time out: the gate opens only after.
      expect(await client.callWith({ timeoutMs: 3000 }).jobs.slow()).to.equal(undefined);
      expect(slowDone).to.equal(false);
      release();
      await until(() => slowDone, 3000, 'the slow one-way handler finished');

      expect(await client.call.jobs.fail()).to.equal(undefined);
      expect(thrown).to.equal(1);
    });

    it('a oneWay registration whose handler throws logs the error at the receiver', async () => {
      const logger = recordingLogger();
      const server = await trustedServer({ logger });
      server.registerRpc('jobs.fail', () => {
        throw new TypeError('bad job');
      }, { oneWay: true });
      const client = await trustedClient(server, 'alice');
      expect(await client.call.jobs.fail()).to.equal(undefined);
      // registry.ts documents oneWay as "what the handler throws is only logged".
      await until(
        () => logger.entries.some((e) => e.level === 'error' && e.message.includes('jobs.fail')),
        1500,
        'an error entry naming jobs.fail',
      );
    });

    it('one-way work from an unauthenticated raw v1 peer (no HELLO) never runs the handler', async () => {
      const logger = recordingLogger();
      const server = await plainServer({ logger });
      let ran = 0;
      server.registerRpc('events.record', () => {
        ran++;
        return 'ran';
      });
      const raw = new RawPeer(server.id);
      await raw.connect(server.endpoint);
      await raw.sendV1(Buffer.alloc(0), T.WORK, ['events.record', [1], {}]);
      // Same connection, in order: once this one is answered, the one-way one was dealt with.
      const id = uuidBytes();
      await raw.sendV1(id, T.WORK, ['events.record', [2], {}]);
      const answer = await raw.next(3000);
      expect(v1Type(answer)).to.equal(T.UNAUTHORIZED);
      expect(answer[2]).to.deep.equal(id);
      expect(ran).to.equal(0);
      expect(logger.entries.some((e) => e.level === 'warn' && /one-way/.test(e.message)), logger.text()).to.equal(true);
      await rejection(raw.next(200)); // nothing answered the one-way work
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('pub/sub', () => {
    /** A client that records what is published to it. */
    async function subscriber(server: Server, userId: string) {
      const client = await plainClient(server, userId);
      const ticks: number[] = [];
      client.registerRpc('tick', (n: number) => {
        ticks.push(n);
      });
      client.registerRpc('barrier', () => true);
      return { client, ticks };
    }

    /** Everything sent to `identity` before this returns has been handled there (one connection, in order). */
    async function barrier(server: Server, identity: string): Promise<void> {
      expect(await server.sendTo(identity).barrier()).to.equal(true);
    }

    it('a subscriber of a prefix gets the publication; publish resolves to the number of clients', async () => {
      const server = await plainServer();
      const alice = await subscriber(server, 'alice');
      await alice.client.subscribe('prices');
      expect(alice.client.topics).to.deep.equal(['prices']);
      expect(await server.publish('prices.eur').tick(1)).to.equal(1);
      await until(() => alice.ticks.length === 1, 3000, 'alice got the tick');
      expect(alice.ticks).to.deep.equal([1]);
    });

    it('matches by prefix: "" gets everything, "pri" matches "prices", "prices.usd" does not get "prices.eur"', async () => {
      const server = await plainServer();
      const alice = await subscriber(server, 'alice');
      const bob = await subscriber(server, 'bob');
      const carol = await subscriber(server, 'carol');
      await alice.client.subscribe('');
      await bob.client.subscribe('pri');
      await carol.client.subscribe('prices.usd');

      expect(await server.publish('prices.eur').tick(1)).to.equal(2);
      expect(await server.publish('weather').tick(2)).to.equal(1);
      expect(await server.publish('prices.usd.spot').tick(3)).to.equal(3);
      for (const who of ['alice', 'bob', 'carol']) await barrier(server, who);
      expect(alice.ticks).to.deep.equal([1, 2, 3]);
      expect(bob.ticks).to.deep.equal([1, 3]);
      expect(carol.ticks).to.deep.equal([3]);
    });

    it('a client subscribed to two matching prefixes gets a publication once', async () => {
      const server = await plainServer();
      const alice = await subscriber(server, 'alice');
      await alice.client.subscribe('prices');
      await alice.client.subscribe('prices.eur');
      expect(await server.publish('prices.eur').tick(1)).to.equal(1);
      await barrier(server, 'alice');
      expect(alice.ticks).to.deep.equal([1]);
    });

    it('unsubscribed topics and clients that never subscribed get nothing', async () => {
      const server = await plainServer();
      const alice = await subscriber(server, 'alice');
      const bob = await subscriber(server, 'bob');
      await alice.client.subscribe('prices');
      await alice.client.unsubscribe('prices');
      expect(alice.client.topics).to.deep.equal([]);
      expect(await server.publish('prices.eur').tick(1)).to.equal(0);
      expect(await server.publish('').tick(2)).to.equal(0);
      await barrier(server, 'alice');
      await barrier(server, 'bob');
      expect(alice.ticks).to.deep.equal([]);
      expect(bob.ticks).to.deep.equal([]);
    });

    it('several subscribers each get one copy', async () => {
      const server = await plainServer();
      const all = [await subscriber(server, 'alice'), await subscriber(server, 'bob'), await subscriber(server, 'carol')];
      for (const { client } of all) await client.subscribe('news');
      expect(await server.publish('news.sport').tick(9)).to.equal(3);
      for (const who of ['alice', 'bob', 'carol']) await barrier(server, who);
      for (const { ticks } of all) expect(ticks).to.deep.equal([9]);
    });

    it('subscribing needs authentication: a refused client gets UnauthorizedError and nothing is published to it', async () => {
      const server = await plainServer();
      const client = new Client(server.id, { security: 'plain', userId: 'alice', password: 'wrong', logger: recordingLogger(), drainTimeoutMs: 50 });
      extras.push(client);
      const ticks: number[] = [];
      client.registerRpc('tick', (n: number) => {
        ticks.push(n);
      });
      client.connect(server.endpoint);
      await client.start();
      expect(await rejection(client.subscribe('prices'))).to.be.instanceOf(UnauthorizedError);
      expect(client.topics).to.deep.equal([]);
      expect(await server.publish('prices').tick(1)).to.equal(0);
      expect(ticks).to.deep.equal([]);
    });

    it('a raw peer that subscribes without HELLO is refused and gets no publication', async () => {
      const server = await plainServer();
      const raw = new RawPeer(server.id);
      await raw.connect(server.endpoint);
      const id = uuidBytes();
      await raw.sendV1(id, T.WORK, ['_zeropeer.subscribe', [''], {}]);
      const answer = await raw.next(3000);
      expect(v1Type(answer)).to.equal(T.UNAUTHORIZED);
      expect(await server.publish('anything').tick(1)).to.equal(0);
    });

    it('subscriptions survive a reconnection to a restarted server', async () => {
      const endpoint = endpointFor('ipc');
      const makeServer = async (): Promise<Server> => {
        const server = new Server('service', { security: 'plain', users, logger: recordingLogger(), drainTimeoutMs: 50 });
        extras.push(server);
        server.registerRpc('ping', () => 'pong');
        await server.bind(endpoint);
        await server.start();
        return server;
      };
      const first = await makeServer();
      const client = await plainClient(first, 'alice');
      const ticks: number[] = [];
      client.registerRpc('tick', (n: number) => {
        ticks.push(n);
      });
      await client.subscribe('prices');
      expect(await first.publish('prices.eur').tick(1)).to.equal(1);
      await until(() => ticks.length === 1, 3000, 'the first tick');

      const reconnected = once(client, 'reconnected', 10000);
      await first.stop();
      const second = await makeServer();
      await reconnected;
      // The client's own calls travel in order behind the subscription it sent again.
      expect(await client.call.ping()).to.equal('pong');
      expect(await second.publish('prices.eur').tick(2)).to.equal(1);
      await until(() => ticks.length === 2, 3000, 'the tick from the new server');
      expect(ticks).to.deep.equal([1, 2]);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('reply channels', () => {
    class QuotaError extends Error {}

    it('reply, ack, nack and error reach the caller as a value, undefined, NackError, the error', async () => {
      const server = await trustedServer();
      server.registerRpc('raw.reply', (channel: ReplyChannel, n: number) => channel.reply(n * 2), { raw: true });
      server.registerRpc('raw.ack', (channel: ReplyChannel) => channel.ack(), { raw: true });
      server.registerRpc('raw.nack', (channel: ReplyChannel) => channel.nack(), { raw: true });
      server.registerRpc('raw.range', (channel: ReplyChannel) => channel.error(new RangeError('x out of range')), { raw: true });
      server.registerRpc('raw.quota', (channel: ReplyChannel) => channel.error(new QuotaError('over quota')), { raw: true });
      server.registerRpc('raw.later', (channel: ReplyChannel, v: string) => {
        setTimeout(() => channel.reply(`later ${v}`), 20);
      }, { raw: true });
      const client = await trustedClient(server, 'alice');

      expect(await client.call.raw.reply(21)).to.equal(42);
      expect(await client.call.raw.ack()).to.equal(undefined);
      expect(await client.call.raw.later('on')).to.equal('later on');
      const nack = await rejection(client.call.raw.nack());
      expect(nack).to.be.instanceOf(NackError);
      const range = await rejection(client.call.raw.range());
      expect(range).to.be.instanceOf(RangeError);
      expect(range.message).to.equal('x out of range');
      const quota = await rejection(client.call.raw.quota());
      expect(quota).to.be.instanceOf(RemoteError);
      expect((quota as RemoteError).remoteName).to.equal('QuotaError');
      expect(quota.message).to.equal('over quota');
    });

    it('a second reply throws at the handler, unless unlessReplySent; the caller keeps the first', async () => {
      const server = await trustedServer();
      const thrown: unknown[] = [];
      server.registerRpc('raw.twice', (channel: ReplyChannel) => {
        channel.reply('first');
        expect(channel.replySent).to.equal(true);
        try {
          channel.reply('second');
        } catch (error) {
          thrown.push(error);
        }
        try {
          channel.nack();
        } catch (error) {
          thrown.push(error);
        }
      }, { raw: true });
      let quietDone = false;
      server.registerRpc('raw.quiet', (channel: ReplyChannel) => {
        channel.ack();
        channel.reply('second', { unlessReplySent: true });
        channel.error(new Error('third'), { unlessReplySent: true });
        quietDone = true;
      }, { raw: true });
      const client = await trustedClient(server, 'alice');

      expect(await client.call.raw.twice()).to.equal('first');
      expect(thrown).to.have.length(2);
      for (const error of thrown) expect(error).to.be.instanceOf(Error);
      expect(await client.call.raw.quiet()).to.equal(undefined);
      expect(quietDone).to.equal(true);
    });

    it("channel.identity is the caller's authenticated identity, channel.address a non-empty string", async () => {
      const server = await plainServer();
      server.registerRpc('raw.who', (channel: ReplyChannel) => channel.reply({ identity: channel.identity, address: channel.address }), { raw: true });
      const alice = await plainClient(server, 'alice');
      const bob = await plainClient(server, 'bob');
      const a = (await alice.call.raw.who()) as { identity: string; address: string };
      const b = (await bob.call.raw.who()) as { identity: string; address: string };
      expect(a.identity).to.equal('alice');
      expect(b.identity).to.equal('bob');
      expect(a.address).to.be.a('string').and.not.equal('');
      expect(b.address).to.be.a('string').and.not.equal('');
      expect(a.address).not.to.equal(b.address);
    });

    it('a raw handler that throws (or rejects) before replying fails the caller with that error', async () => {
      const server = await trustedServer();
      server.registerRpc('raw.throws', () => {
        throw new TypeError('thrown before a reply');
      }, { raw: true });
      server.registerRpc('raw.rejects', async () => {
        await sleep(5);
        throw new RangeError('rejected before a reply');
      }, { raw: true });
      const client = await trustedClient(server, 'alice');
      const thrown = await rejection(client.call.raw.throws());
      expect(thrown).to.be.instanceOf(TypeError);
      expect(thrown.message).to.equal('thrown before a reply');
      const rejected = await rejection(client.call.raw.rejects());
      expect(rejected).to.be.instanceOf(RangeError);
      expect(rejected.message).to.equal('rejected before a reply');
    });

    it("a raw handler that never replies: the caller gets the receiver's TimeoutError at the receiver's timeoutMs", async () => {
      const server = await trustedServer({ timeoutMs: 200 });
      let ran = 0;
      server.registerRpc('raw.silent', () => {
        ran++;
      }, { raw: true });
      const client = await trustedClient(server, 'alice', { timeoutMs: 5000 });
      const error = await rejection(client.call.raw.silent());
      expect(ran).to.equal(1);
      expect(error).to.be.instanceOf(TimeoutError);
      expect(error.message).to.include('did not reply');
      expect(error.message).to.include('raw.silent');
    });

    it('works the other way: a raw handler on the client, called by server.sendTo', async () => {
      const server = await trustedServer();
      const client = await trustedClient(server, 'alice');
      client.registerRpc('raw.confirm', (channel: ReplyChannel, ok: boolean) => {
        if (ok) channel.reply({ from: channel.identity, ok });
        else channel.nack();
      }, { raw: true });
      expect(await server.sendTo('alice').raw.confirm(true)).to.deep.equal({ from: server.id, ok: true });
      expect(await rejection(server.sendTo('alice').raw.confirm(false))).to.be.instanceOf(NackError);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('inspect', () => {
    class Calc {
      factor = 2;
      @rpcMethod
      scale(value: number) {
        return value * this.factor;
      }
      @rpcMethod
      add(left: number, right: number) {
        return left + right;
      }
      internal(secret: string) {
        return secret;
      }
    }

    async function inspectServer(): Promise<Server> {
      const server = await trustedServer({ registry: new Registry('inspect-test'), predicates: { admin: (id) => id === 'root' } });
      server.registerRpc('string.lower', (text: string) => text.toLowerCase(), { description: 'Lower-cases a string' });
      server.registerRpc('me.greet', (identity: string, greeting: string) => `${greeting} ${identity}`, { withIdentity: true });
      server.registerRpc('jobs.submit', (channel: ReplyChannel, job: unknown, priority: number) => channel.reply([job, priority]), { raw: true });
      server.registerRpc('admin.reset', (force: boolean) => force, { domain: 'admin', description: 'Resets everything' });
      server.registerRpc('report', (summary: boolean) => summary, { description: 'short' });
      server.registerRpc('report', (full: boolean, detail: number) => [full, detail], { domain: 'admin', description: 'long' });
      server.registerService('math', new Calc());
      return server;
    }

    const common: FunctionInfo[] = [
      { name: 'jobs.submit', params: ['job', 'priority'] },
      { name: 'math.add', params: ['left', 'right'] },
      { name: 'math.scale', params: ['value'] },
      { name: 'me.greet', params: ['greeting'] },
    ];

    it("lists the server's functions the caller may call, sorted, with descriptions and parameter names", async () => {
      const server = await inspectServer();
      const alice = await trustedClient(server, 'alice');
      const list = await alice.inspect();
      expect(list).to.deep.equal([
        ...common,
        { name: 'report', description: 'short', params: ['summary'] },
        { name: 'string.lower', description: 'Lower-cases a string', params: ['text'] },
      ]);
      const names = list.map((f) => f.name);
      expect(names).to.deep.equal([...names].sort());
      expect(names.some((n) => n.startsWith('_zeropeer.'))).to.equal(false);
      expect(names).not.to.include('math.internal');
    });

    it('lists functions of a domain only to identities its predicate allows, in the version they get', async () => {
      const server = await inspectServer();
      const alice = await trustedClient(server, 'alice');
      const root = await trustedClient(server, 'root');
      expect((await alice.inspect()).map((f) => f.name)).not.to.include('admin.reset');
      expect(await root.inspect()).to.deep.equal([
        { name: 'admin.reset', description: 'Resets everything', params: ['force'] },
        ...common,
        { name: 'report', description: 'long', params: ['full', 'detail'] },
        { name: 'string.lower', description: 'Lower-cases a string', params: ['text'] },
      ]);
      // What inspect shows is what a call gets.
      expect(await root.call.report(true, 3)).to.deep.equal([true, 3]);
      expect(await alice.call.report(true)).to.equal(true);
      expect(await rejection(alice.call.admin.reset(true))).to.be.instanceOf(ServiceNotFoundError);
    });

    it("server.inspect(identity) lists the client's functions", async () => {
      const server = await trustedServer();
      const client = await trustedClient(server, 'alice', { registry: new Registry('client-inspect') });
      client.registerRpc('ui.toast', (message: string, seconds: number) => [message, seconds], { description: 'Shows a toast' });
      client.registerRpc('ui.ask', (channel: ReplyChannel, question: string) => channel.reply(question), { raw: true });
      expect(await server.inspect('alice')).to.deep.equal([
        { name: 'ui.ask', params: ['question'] },
        { name: 'ui.toast', description: 'Shows a toast', params: ['message', 'seconds'] },
      ]);
      expect(await rejection(server.inspect('nobody'))).to.be.instanceOf(PeerNotConnectedError);
    });

    it('inspect names destructured and defaulted parameters once each', async () => {
      const server = await trustedServer({ registry: new Registry('inspect-shapes') });
      server.registerRpc('shapes.destructured', ({ a, b }: { a: number; b: number }, c: number) => a + b + c);
      server.registerRpc('shapes.defaulted', (a: number, b = Math.max(1, 2)) => a + b);
      const client = await trustedClient(server, 'alice');
      const list = await client.inspect();
      const byName = Object.fromEntries(list.map((f) => [f.name, f.params]));
      // registry.ts: "Destructured or unreadable parameters come out as `#index`".
      expect(byName['shapes.destructured']).to.deep.equal(['#0', 'c']);
      expect(byName['shapes.defaulted']).to.deep.equal(['a', 'b']);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('validation', () => {
    const toNumber = (value: unknown): number => {
      const n = Number(value);
      if (typeof value === 'boolean' || Number.isNaN(n)) throw new TypeError('not a number');
      return n;
    };
    const currencyCode = (value: unknown): string => {
      if (typeof value !== 'string' || !/^[A-Z]{3}$/.test(value)) throw new TypeError('not a 3-letter currency code');
      return value;
    };
    const positive = (value: unknown): number => {
      if (typeof value !== 'number' || !(value > 0)) throw new RangeError('must be positive');
      return value;
    };

    it('a failing validator rejects with ParameterError naming the parameter; the handler never runs', async () => {
      const server = await trustedServer();
      let runs = 0;
      server.registerRpc('pay', (amount: number, currency: string) => {
        runs++;
        return `${amount} ${currency}`;
      }, { params: [toNumber, currencyCode] });
      const client = await trustedClient(server, 'alice');

      const badCurrency = await rejection(client.call.pay(5, 'euro'));
      expect(badCurrency).to.be.instanceOf(ParameterError);
      expect(badCurrency.message).to.include('currency');
      const badAmount = await rejection(client.call.pay('lots', 'EUR'));
      expect(badAmount).to.be.instanceOf(ParameterError);
      expect(badAmount.message).to.include('amount');
      expect(badAmount.message).not.to.include('currency');
      expect(runs).to.equal(0);
      expect(await client.call.pay(5, 'EUR')).to.equal('5 EUR');
      expect(runs).to.equal(1);
    });

    it("a validator's returned value replaces the argument", async () => {
      const server = await trustedServer();
      const seen: unknown[] = [];
      server.registerRpc('double', (n: number) => {
        seen.push(n);
        return n * 2;
      }, { params: [toNumber] });
      const client = await trustedClient(server, 'alice');
      expect(await client.call.double('2')).to.equal(4);
      expect(seen).to.deep.equal([2]);
      expect(typeof seen[0]).to.equal('number');
    });

    it('too many arguments is a ParameterError, and the handler never runs', async () => {
      const server = await trustedServer();
      let runs = 0;
      server.registerRpc('pay', (amount: number, currency: string) => {
        runs++;
        return [amount, currency];
      }, { params: [toNumber, currencyCode] });
      const client = await trustedClient(server, 'alice');
      expect(await rejection(client.call.pay(1, 'EUR', 'extra'))).to.be.instanceOf(ParameterError);
      expect(runs).to.equal(0);
    });

    it('names parameters after the identity (withIdentity) and the channel (raw)', async () => {
      const server = await trustedServer();
      let runs = 0;
      server.registerRpc('credit', (identity: string, amount: number) => {
        runs++;
        return [identity, amount];
      }, { withIdentity: true, params: [positive] });
      server.registerRpc('queue', (channel: ReplyChannel, size: number) => {
        runs++;
        channel.reply(size);
      }, { raw: true, params: [positive] });
      const client = await trustedClient(server, 'alice');
      const credit = await rejection(client.call.credit(-1));
      expect(credit).to.be.instanceOf(ParameterError);
      expect(credit.message).to.include('amount');
      expect(credit.message).not.to.include('identity');
      const queue = await rejection(client.call.queue(-1));
      expect(queue).to.be.instanceOf(ParameterError);
      expect(queue.message).to.include('size');
      expect(queue.message).not.to.include('channel');
      expect(runs).to.equal(0);
      expect(await client.call.credit(3)).to.deep.equal(['alice', 3]);
      expect(await client.call.queue(4)).to.equal(4);
    });

    it('a failing returns validator rejects with ParameterError about the result; a passing one may convert it', async () => {
      const server = await trustedServer();
      let runs = 0;
      server.registerRpc('half', (n: number) => {
        runs++;
        return n / 2;
      }, {
        returns: (value) => {
          if (!Number.isInteger(value)) throw new RangeError('not a whole number');
          return value;
        },
      });
      server.registerRpc('asyncLabel', async (n: number) => n, { returns: (value) => `#${String(value)}` });
      const client = await trustedClient(server, 'alice');
      const error = await rejection(client.call.half(3));
      expect(error).to.be.instanceOf(ParameterError);
      expect(error.message).to.include('result');
      expect(runs).to.equal(1);
      expect(await client.call.half(4)).to.equal(2);
      expect(await client.call.asyncLabel(7)).to.equal('#7');
    });

    it('registering params or returns that are not functions is a RegistrationError', async () => {
      const server = await trustedServer();
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a wrong option type on purpose: the runtime check is under test
      expect(() => server.registerRpc('bad', (a: number) => a, { params: ['number' as any] })).to.throw(RegistrationError);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a wrong option type on purpose: the runtime check is under test
      expect(() => server.registerRpc('bad', (a: number) => a, { params: (() => 1) as any })).to.throw(RegistrationError);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a wrong option type on purpose: the runtime check is under test
      expect(() => server.registerRpc('bad', (a: number) => a, { returns: 5 as any })).to.throw(RegistrationError);
      const client = await trustedClient(server, 'alice');
      expect(await rejection(client.call.bad(1))).to.be.instanceOf(ServiceNotFoundError);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('service objects', () => {
    class Calculator {
      factor = 3;
      calls = 0;
      @rpcMethod
      scale(value: number) {
        this.calls++;
        return value * this.factor;
      }
      @rpcMethod
      async add(left: number, right: number) {
        this.calls++;
        return left + right;
      }
      internal() {
        this.calls++;
        return 'not for callers';
      }
    }

    it('exposes only decorated methods as namespace.method, bound to the instance', async () => {
      const server = await trustedServer();
      const calc = new Calculator();
      const names = server.registerService('math', calc);
      expect([...names].sort()).to.deep.equal(['math.add', 'math.scale']);
      const client = await trustedClient(server, 'alice');
      expect(await client.call.math.scale(5)).to.equal(15);
      calc.factor = 10;
      expect(await client.call.math.scale(5)).to.equal(50);
      expect(await client.call.math.add(2, 3)).to.equal(5);
      expect(calc.calls).to.equal(3);
      expect(await rejection(client.call.math.internal())).to.be.instanceOf(ServiceNotFoundError);
      expect(await rejection(client.call.math.factor())).to.be.instanceOf(ServiceNotFoundError);
      expect(calc.calls).to.equal(3);
    });

    it('nested plain objects give deeper names, with rpcMethod wrappers', async () => {
      const server = await trustedServer();
      const store = { prefix: 'v:' };
      const service = {
        b: {
          c: rpcMethod(function c(this: typeof service.b, x: number) {
            return `${this.label}${x}`;
          }),
          label: 'c=',
          d: {
            e: rpcMethod((s: string) => s.toUpperCase()),
          },
        },
        get: rpcMethod((key: string) => `${store.prefix}${key}`),
        hidden: (x: number) => x,
      };
      const names = server.registerService('a', service);
      expect([...names].sort()).to.deep.equal(['a.b.c', 'a.b.d.e', 'a.get']);
      const client = await trustedClient(server, 'alice');
      expect(await client.call.a.b.c(1)).to.equal('c=1');
      expect(await client.call.a.b.d.e('up')).to.equal('UP');
      expect(await client.call.a.get('k')).to.equal('v:k');
      expect(await rejection(client.call.a.hidden(1))).to.be.instanceOf(ServiceNotFoundError);
    });

    it('an object with nothing exposed is a RegistrationError', async () => {
      const server = await trustedServer();
      class Nothing {
        method() {
          return 1;
        }
      }
      expect(() => server.registerService('none', new Nothing())).to.throw(RegistrationError);
      expect(() => server.registerService('plain', { f: () => 1, nested: { g: () => 2 } })).to.throw(RegistrationError);
      const client = await trustedClient(server, 'alice');
      expect(await rejection(client.call.none.method())).to.be.instanceOf(ServiceNotFoundError);
      expect(await rejection(client.call.plain.f())).to.be.instanceOf(ServiceNotFoundError);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('remote shutdown', () => {
    it('is off by default: requestShutdown gets ServiceNotFoundError and the server keeps serving', async () => {
      const server = await plainServer();
      server.registerRpc('ping', () => 'pong');
      const alice = await plainClient(server, 'alice');
      expect(await rejection(alice.requestShutdown())).to.be.instanceOf(ServiceNotFoundError);
      expect(await alice.call.ping()).to.equal('pong');
      await server.start(); // still started: idempotent, resolves
      expect(server.connectedPeers()).to.include('alice');
    });

    it('a predicate refuses alice; root stops the server after the calls in flight finish', async () => {
      const server = await trustedServer({ remoteShutdown: (id) => id === 'root', drainTimeoutMs: 3000 });
      let slowStarted = false;
      server.registerRpc('slow', async (n: number) => {
        slowStarted = true;
        await sleep(200);
        return n * 10;
      });
      server.registerRpc('ping', () => 'pong');
      const alice = await trustedClient(server, 'alice');
      const bob = await trustedClient(server, 'bob');
      const root = await trustedClient(server, 'root');
      bob.registerRpc('hello', () => 'hi');

      expect(await rejection(alice.requestShutdown())).to.be.instanceOf(ServiceNotFoundError);
      expect(await alice.call.ping()).to.equal('pong');

      const gone: Array<[string, string]> = [];
      server.on('peer:gone', (identity, reason) => gone.push([identity, reason]));
      const slow = bob.call.slow(4);
      await until(() => slowStarted, 3000, 'the slow call started');
      const shutdown = root.requestShutdown();

      expect(await slow).to.equal(40);
      expect(await shutdown).to.equal(undefined);
      await until(() => gone.some(([, reason]) => reason === 'stopped'), 5000, "peer:gone 'stopped'");
      expect(await rejection(server.start())).to.be.instanceOf(ServiceClosedError);
      expect(await rejection(server.sendTo('bob').hello())).to.be.instanceOf(ServiceClosedError);
      const late = await rejection(alice.callWith({ timeoutMs: 500 }).ping());
      expect(late).to.satisfy((e: Error) => e instanceof ServiceClosedError || e instanceof TimeoutError, String(late));
    });

    it('a predicate that throws refuses', async () => {
      const server = await trustedServer({
        remoteShutdown: () => {
          throw new Error('predicate broke');
        },
      });
      server.registerRpc('ping', () => 'pong');
      const root = await trustedClient(server, 'root');
      expect(await rejection(root.requestShutdown())).to.be.instanceOf(ServiceNotFoundError);
      expect(await root.call.ping()).to.equal('pong');
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('proxying', () => {
    class LedgerError extends Error {}

    async function makeCore(options: ServerOptions = { trustedProxies: ['edge'] }): Promise<Server> {
      const core = await trustedServer({ predicates: { admin: (id) => id === 'root' }, ...options }, 'core');
      core.registerRpc('core.answer', (q: string) => `core answers ${q}`);
      core.registerRpc('core.whoami', (identity: string, tag: string) => `${identity}:${tag}`, { withIdentity: true });
      core.registerRpc('admin.reset', (identity: string) => `reset by ${identity}`, { domain: 'admin', withIdentity: true });
      core.registerRpc('core.range', () => {
        throw new RangeError('core out of range');
      });
      core.registerRpc('core.ledger', () => {
        throw new LedgerError('ledger closed');
      });
      core.registerRpc('shared', () => 'core');
      return core;
    }

    async function makeEdge(core: Server): Promise<Server> {
      const upstream = await trustedClient(core, 'edge');
      const edge = await plainServer({ proxyTo: upstream }, 'edge');
      edge.registerRpc('shared', () => 'edge');
      return edge;
    }

    it("relays calls edge cannot serve to core, which runs them as the original caller", async () => {
      const core = await makeCore();
      const edge = await makeEdge(core);
      const alice = await plainClient(edge, 'alice');
      const bob = await plainClient(edge, 'bob');

      expect(await alice.call.core.answer('q')).to.equal('core answers q');
      expect(await alice.call.core.whoami('t')).to.equal('alice:t');
      expect(await bob.call.core.whoami('t')).to.equal('bob:t');
      expect(await alice.call.shared()).to.equal('edge');
      expect(await rejection(alice.call.nowhere())).to.be.instanceOf(ServiceNotFoundError);
    });

    it("applies core's predicates to the original caller: root may, alice may not", async () => {
      const core = await makeCore();
      const upstream = await trustedClient(core, 'edge');
      const edge = await trustedServer({ proxyTo: upstream }, 'edge');
      const alice = await trustedClient(edge, 'alice');
      const root = await trustedClient(edge, 'root');
      expect(await root.call.admin.reset()).to.equal('reset by root');
      expect(await rejection(alice.call.admin.reset())).to.be.instanceOf(ServiceNotFoundError);
    });

    it("relays core's errors: RangeError stays RangeError, an unknown class stays named", async () => {
      const core = await makeCore();
      const edge = await makeEdge(core);
      const alice = await plainClient(edge, 'alice');
      const range = await rejection(alice.call.core.range());
      expect(range).to.be.instanceOf(RangeError);
      expect(range.message).to.equal('core out of range');
      const ledger = await rejection(alice.call.core.ledger());
      expect(ledger).to.be.instanceOf(RemoteError);
      expect((ledger as RemoteError).remoteName).to.equal('LedgerError');
    });

    it("a relayed call carries the caller's deadline and cancel through edge to core", async () => {
      const core = await makeCore();
      const slow = slowOnCore(core);
      const edge = await makeEdge(core);
      const alice = await plainClient(edge, 'alice');
      const controller = new AbortController();
      const made = Date.now();
      const call = alice.invoke('core.slow', [], { signal: controller.signal, timeoutMs: 3000 });
      await until(() => slow.reason() !== undefined);
      expect(slow.deadline()!).to.be.at.most(made + 3000 + 1000); // the caller's, give or take transit: not core's 5 s default
      controller.abort();
      expect(await rejection(call)).to.be.instanceOf(CancelledError);
      expect(await slow.reason()).to.be.instanceOf(CancelledError);
    });

    /** core.slow: never answers; records its deadline and the reason its signal aborts with. */
    function slowOnCore(core: Server): { deadline(): number | undefined; reason(): Promise<unknown> | undefined } {
      let deadline: number | undefined;
      let reason: Promise<unknown> | undefined;
      core.registerRpc('core.slow', (ctx: CallContext) => {
        deadline = ctx.deadline;
        reason = new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(ctx.signal.reason), { once: true }));
        return new Promise(() => {});
      }, { withContext: true });
      return { deadline: () => deadline, reason: () => reason };
    }

    it('edge stopping mid-call cancels the call it relays to core (core\'s handler sees its signal abort)', async () => {
      const core = await makeCore();
      const slow = slowOnCore(core);
      const edge = await makeEdge(core);
      const alice = await plainClient(edge, 'alice');
      const call = rejection(alice.invoke('core.slow', [], { timeoutMs: 5000 }));
      await until(() => slow.reason() !== undefined);
      await edge.stop();
      expect(await slow.reason()).to.be.instanceOf(CancelledError);
      expect(await call).to.be.instanceOf(Error);
    });

    it('an upstream client with outgoing interceptors: they see a real AbortSignal with the deadline, and cancel still reaches core', async () => {
      const core = await makeCore();
      const slow = slowOnCore(core);
      const upstream = await trustedClient(core, 'edge');
      const seen: unknown[] = [];
      upstream.use({ outgoing: (next) => (call) => {
        seen.push(call.signal);
        return next(call);
      } });
      const edge = await plainServer({ proxyTo: upstream }, 'edge');
      const alice = await plainClient(edge, 'alice');
      const controller = new AbortController();
      const made = Date.now();
      const call = alice.invoke('core.slow', [], { signal: controller.signal, timeoutMs: 3000 });
      await until(() => slow.reason() !== undefined);
      expect(seen.at(-1)).to.be.instanceOf(AbortSignal);
      expect(slow.deadline()!).to.be.at.most(made + 3000 + 1000);
      controller.abort();
      expect(await rejection(call)).to.be.instanceOf(CancelledError);
      expect(await slow.reason()).to.be.instanceOf(CancelledError);
    });

    it('without trustedProxies on core, relayed calls get ServiceNotFoundError', async () => {
      const core = await makeCore({});
      const edge = await makeEdge(core);
      const alice = await plainClient(edge, 'alice');
      expect(await rejection(alice.call.core.answer('q'))).to.be.instanceOf(ServiceNotFoundError);
      expect(await alice.call.shared()).to.equal('edge');
    });

    it('a client that is not a trusted proxy cannot relay for someone else', async () => {
      const core = await makeCore();
      const mallory = await trustedClient(core, 'mallory');
      const error = await rejection(mallory.invoke('_zeropeer.proxy', ['root', 'admin.reset', [], null]));
      expect(error).to.be.instanceOf(ServiceNotFoundError);
      expect(await mallory.call.core.whoami('t')).to.equal('mallory:t');
    });
  });
});
