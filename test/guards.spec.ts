/**
 * Guards: one test per protection that a mutation review (one-line changes to lib/ and security/)
 * found unguarded. Each test fails when its protection is removed; the protection and the mutation
 * it was checked against are named above each test.
 *
 * Everything goes through real sockets: zeropeer peers, and raw ZeroMQ sockets (DEALERs playing
 * clients, ROUTERs playing servers) that speak the wire protocol by hand: pseud v1
 * `['', 'v1', id, type, body]`, or compact `[msgpack [type, id, body]]`. Wire constants come from
 * the public `MessageType`; limits that are not options (two argon2 verifications at once, 1024
 * subscriptions per connection) are the values the README documents.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { SignJWT } from 'jose';
import { pack, unpack } from 'msgpackr';
import * as zmq from 'zeromq';
import { Client, MessageType, RpcError, UnauthorizedError, type ReplyChannel } from '../lib/index.js';
import { RawPeer, RawServer, cleanup, endpointFor, once, recordingLogger, sleep, startClient, startServer, track, until, uuidBytes } from './helpers.js';

/** One message a raw socket received (routing id left out), decoded. */
interface Received {
  framing: 'v1' | 'compact';
  type: number;
  id: Buffer | number;
  body: unknown;
  frames: Buffer[];
}

/** A received message as a failed assertion should show it. */
function summary(message: Received): { framing: string; type: number; id: string | number; body: unknown } {
  const id = Buffer.isBuffer(message.id) ? `0x${message.id.toString('hex')}` : message.id;
  return { framing: message.framing, type: message.type, id, body: message.body };
}

/** Types whose v1 body is MessagePack; the others carry a UTF-8 string. */
const MSGPACK_BODIES = new Set<number>([MessageType.WORK, MessageType.OK, MessageType.ERROR, MessageType.HELLO]);

function decodeReceived(frames: Buffer[]): Received {
  if (frames.length === 1) {
    const [type, id, body] = unpack(frames[0]!) as [number, number, unknown];
    return { framing: 'compact', type, id, body, frames };
  }
  expect(frames, 'a v1 message: ["", "v1", id, type, body]').to.have.length(5);
  const type = frames[3]![0]!;
  const body = MSGPACK_BODIES.has(type) ? unpack(frames[4]!) : frames[4]!.toString('utf8');
  return { framing: 'v1', type, id: frames[2]!, body, frames };
}

/**
 * A raw socket speaking the wire protocol by hand: a DEALER playing a client, or a ROUTER with
 * routing id 'service' playing a server (it answers whoever spoke last). Everything it receives is
 * kept in order (`received`); `next()` hands out what is not a HEARTBEAT. Closed at cleanup.
 */
class RawWire {
  readonly socket: zmq.Dealer | zmq.Router;
  /** Every message received, heartbeats included, in order. */
  readonly received: Received[] = [];
  /** A ROUTER's peer: the routing id of whoever spoke last. */
  #peer: Buffer | undefined;
  #read = 0;
  #wake: (() => void) | undefined;

  constructor(options: { routingId?: string; server?: boolean } = {}) {
    this.socket = options.server
      ? track(new zmq.Router({ routingId: 'service', mandatory: true, linger: 0 }))
      : track(new zmq.Dealer({ linger: 0, ...(options.routingId ? { routingId: options.routingId } : {}) }));
    void this.#receive();
  }

  async #receive(): Promise<void> {
    try {
      for await (let frames of this.socket) {
        if (this.socket instanceof zmq.Router) {
          this.#peer = frames[0];
          frames = frames.slice(1);
        }
        this.received.push(decodeReceived(frames));
        this.#wake?.();
      }
    } catch {
      // closed
    }
  }

  async #send(frames: Array<Buffer | string>): Promise<void> {
    await this.socket.send(this.socket instanceof zmq.Router ? [this.#peer!, ...frames] : frames);
  }

  connect(endpoint: string): void {
    this.socket.connect(endpoint);
  }

  async bind(endpoint: string): Promise<void> {
    await this.socket.bind(endpoint);
  }

  /** Sends a pseud v1 message; the body is MessagePack for WORK/OK/ERROR/HELLO, else a string. */
  async sendV1(id: Buffer, type: number, body: unknown): Promise<void> {
    const bodyFrame = MSGPACK_BODIES.has(type) ? pack(body) : Buffer.from(String(body));
    await this.#send(['', 'v1', id, Buffer.from([type]), bodyFrame]);
  }

  /** Sends a compact message: one frame, MessagePack `[type, id, body]`. */
  async sendCompact(type: number, id: number, body: unknown): Promise<void> {
    await this.#send([pack([type, id, body])]);
  }

  /** The next message that is not a HEARTBEAT, or rejects after `timeoutMs`. */
  async next(timeoutMs = 3000): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#read < this.received.length) {
        const message = this.received[this.#read++]!;
        if (message.type !== MessageType.HEARTBEAT) return message;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message from the server within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** What arrives (heartbeats left out) within `ms`, counting from now and from what was unread. */
  async collect(ms: number): Promise<Received[]> {
    await sleep(ms);
    const rest = this.received.slice(this.#read).filter((m) => m.type !== MessageType.HEARTBEAT);
    this.#read = this.received.length;
    return rest;
  }

  /** HELLO with a pseud-style (uuid4) id, so the server speaks v1 to us; resolves once AUTHENTICATED. */
  async hello(login: string, password = '', timeoutMs = 3000): Promise<void> {
    const id = uuidBytes();
    await this.sendV1(id, MessageType.HELLO, [login, password]);
    const answer = await this.next(timeoutMs);
    expect(answer.type, `HELLO answered ${JSON.stringify(answer.body)}`).to.equal(MessageType.AUTHENTICATED);
    expect(answer.id).to.deep.equal(id);
  }

  /** A normal v1 call: the answer, which must be the next message and echo the id. */
  async call(name: string, args: unknown[] = [], timeoutMs = 3000): Promise<Received> {
    const { answer, before } = await this.callAfter(name, args, timeoutMs);
    expect(before.map(summary), `the next message answers "${name}"`).to.deep.equal([]);
    return answer;
  }

  /** A normal v1 call: its answer, and whatever else came before it (heartbeats left out). */
  async callAfter(name: string, args: unknown[] = [], timeoutMs = 3000): Promise<{ answer: Received; before: Received[] }> {
    const id = uuidBytes();
    await this.sendV1(id, MessageType.WORK, [name, args, {}]);
    const before: Received[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await this.next(Math.max(1, deadline - Date.now()));
      if (Buffer.isBuffer(message.id) && message.id.equals(id)) return { answer: message, before };
      before.push(message);
    }
  }

  close(): void {
    this.socket.close();
  }
}

/** A promise's state, readable without awaiting it. */
function watch<T>(promise: Promise<T>): { settled: boolean; value?: T; error?: unknown; done: Promise<void> } {
  const state: { settled: boolean; value?: T; error?: unknown; done: Promise<void> } = { settled: false, done: Promise.resolve() };
  state.done = promise.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    (error: unknown) => {
      state.settled = true;
      state.error = error;
    },
  );
  return state;
}

/** A handler that waits for `release(value)`: `started` counts how many calls are waiting. */
function gatedHandler<T>(): { handler: (...args: unknown[]) => Promise<T>; started: () => number; release: (value: T) => void } {
  const waiting: Array<(value: T) => void> = [];
  let started = 0;
  return {
    handler: () =>
      new Promise<T>((resolve) => {
        started++;
        waiting.push(resolve);
      }),
    started: () => started,
    release: (value) => waiting.shift()?.(value),
  };
}

describe('guards: protections a mutation review showed untested', function () {
  this.timeout(10_000);
  afterEach(cleanup);

  // -----------------------------------------------------------------------------------------------
  // lib/peer.ts #onReply: `call.connectionKey !== connection.key`
  it("a forged OK / ERROR from another authenticated connection never settles the server's call to a client", async () => {
    const server = await startServer();
    const honest = await startClient(server, { userId: 'honest' });
    const gate = gatedHandler<string>();
    honest.registerRpc('work', gate.handler);
    server.registerRpc('ping', () => 'pong');

    // mallory: a raw DEALER, authenticated (noop HELLO), that answers the server's calls to it, so
    // it learns the server's message-id counter (and the v1 id prefix) from the WORK it receives.
    const mallory = new RawWire();
    mallory.connect(server.endpoint);
    await mallory.hello('mallory');
    const probe = async (): Promise<{ prefix: Buffer; counter: number }> => {
      const answered = server.sendTo('mallory').probe();
      const work = await mallory.next();
      expect(work.type).to.equal(MessageType.WORK);
      const id = work.id as Buffer;
      expect(id).to.have.length(16);
      await mallory.sendV1(id, MessageType.OK, 'probed');
      expect(await answered).to.equal('probed');
      return { prefix: id.subarray(0, 12), counter: id.readUInt32BE(12) };
    };
    const { prefix, counter } = await probe();

    // Four calls to honest: ids counter+1 .. counter+4, one for each kind of forgery.
    const calls = ['a', 'b', 'c', 'd'].map((x) => watch(server.sendTo('honest').work(x)));
    await until(() => gate.started() === 4, 3000, 'honest runs the four calls');
    const v1Id = (n: number): Buffer => {
      const id = Buffer.alloc(16);
      prefix.copy(id);
      id.writeUInt32BE(n >>> 0, 12);
      return id;
    };
    const forgedError = ['Error', 'forged by mallory', ''];
    await mallory.sendV1(v1Id(counter + 1), MessageType.OK, 'forged');
    await mallory.sendV1(v1Id(counter + 2), MessageType.ERROR, forgedError);
    await mallory.sendCompact(MessageType.OK, (counter + 3) >>> 0, 'forged');
    await mallory.sendCompact(MessageType.ERROR, (counter + 4) >>> 0, forgedError);
    // Same connection, in order: once ping is answered, the server has read every forgery.
    expect((await mallory.call('ping')).body).to.equal('pong');
    // The ids mallory forged were the real ones: the next id the server hands out is counter+5.
    expect((await probe()).counter, 'the forged ids were those of the calls to honest').to.equal((counter + 5) >>> 0);

    expect(calls.map((c) => c.settled), 'no forged answer settled a call to honest').to.deep.equal([false, false, false, false]);
    for (const x of ['a', 'b', 'c', 'd']) gate.release(`real ${x}`);
    await Promise.all(calls.map((c) => c.done));
    expect(calls.map((c) => c.error)).to.deep.equal([undefined, undefined, undefined, undefined]);
    expect(calls.map((c) => c.value)).to.deep.equal(['real a', 'real b', 'real c', 'real d']);
  });

  // -----------------------------------------------------------------------------------------------
  // lib/peer.ts #stillThere: an answer goes only to the connection (record and epoch) that asked
  // How the caller left decides which part of the check stands between the answer and the
  // newcomer: after a disconnect, the old record is down and gone from the table; after a heartbeat
  // timeout, the old record is still marked up (only the table no longer holds it).
  for (const how of ['disconnect', 'timeout'] as const) {
    it(`the late answer to a caller who left (${how}) never reaches a newcomer on the same routing id`, async () => {
      const server = await startServer({
        security: 'trusted_peer',
        ...(how === 'timeout' ? { heartbeat: { intervalMs: 100, timeoutMs: 500 } } : {}),
      });
      const gate = gatedHandler<string>();
      server.registerRpc('slow', gate.handler);
      server.registerRpc('whereami', (channel: ReplyChannel) => channel.reply(channel.address), { raw: true });
      server.registerRpc('ping', () => 'pong');
      const routingId = `rid-${randomUUID().slice(0, 8)}`;

      const alice = new RawWire({ routingId });
      alice.connect(server.endpoint);
      await alice.hello('alice');
      // A peer is held to heartbeats once it has sent one (a pseud peer that never does is not).
      if (how === 'timeout') await alice.sendV1(Buffer.alloc(0), MessageType.HEARTBEAT, '');
      await alice.sendV1(uuidBytes(), MessageType.WORK, ['slow', [], {}]);
      await until(() => gate.started() === 1, 3000, 'the slow handler runs');

      // alice leaves without a word (a raw peer says no GOODBYE): the transport closes, or she
      // falls silent first (she sends no heartbeats) and the server gives up on her.
      const gone = once(server, 'peer:gone', 3000);
      if (how === 'disconnect') alice.close();
      expect(await gone).to.deep.equal(['alice', how]);
      alice.close();
      expect(server.connectedPeers()).to.deep.equal([]);

      // The newcomer takes the same routing id. libzmq may still hold the old pipe for a moment (and
      // then ignores the newcomer's routing id): try again with a fresh socket until the server
      // itself says that the newcomer's address is that routing id.
      let mallory: RawWire | undefined;
      for (let attempt = 0; attempt < 10 && !mallory; attempt++) {
        await sleep(100);
        const candidate = new RawWire({ routingId });
        candidate.connect(server.endpoint);
        try {
          await candidate.hello('mallory', '', 500);
          const where = await candidate.call('whereami', [], 500);
          if (where.type === MessageType.OK && where.body === routingId) mallory = candidate;
        } catch {
          // refused or garbled: a fresh socket
        }
        if (!mallory) candidate.close();
      }
      expect(mallory, `a newcomer got routing id ${routingId}`).to.not.equal(undefined);
      expect(server.connectedPeers()).to.deep.equal(['mallory']);

      gate.release('alice-secret');
      // The answer (if any) is sent as the handler settles, before the server reads this ping.
      const { answer, before } = await mallory!.callAfter('ping');
      expect(answer.body).to.equal('pong');
      const late = [...before, ...(await mallory!.collect(300))];
      expect(late.map(summary), 'nothing for a call the newcomer never made').to.deep.equal([]);
      for (const message of mallory!.received) {
        expect(message.frames.map((f) => f.toString('latin1')).join('|')).not.to.contain('alice-secret');
      }
    });
  }

  // lib/peer.ts #stillThere, on a client: `connection.epoch === r.epoch` (the server it reconnected to is another one)
  it('the late answer to a server that went away never reaches the server that took its place', async () => {
    const endpoint = endpointFor('ipc');
    const client = track(new Client('service', { logger: recordingLogger(), drainTimeoutMs: 50 }));
    const gate = gatedHandler<string>();
    client.registerRpc('slow', gate.handler);
    client.registerRpc('ping', () => 'pong');
    /** A raw server on `endpoint` that lets the client in (v1, no compact framing). */
    const rawServer = async (): Promise<RawWire> => {
      const server = new RawWire({ server: true });
      await server.bind(endpoint);
      const probe = await server.next();
      expect(probe.type, 'the probe: a v1 WORK').to.equal(MessageType.WORK);
      await server.sendV1(probe.id as Buffer, MessageType.UNAUTHORIZED, 'Authentication Required');
      const hello = await server.next();
      expect(hello.type).to.equal(MessageType.HELLO);
      await server.sendV1(hello.id as Buffer, MessageType.AUTHENTICATED, 'welcome');
      return server;
    };

    const connected = once(client, 'connected');
    client.connect(endpoint);
    await client.start();
    const first = await rawServer();
    await connected;
    await first.sendV1(uuidBytes(), MessageType.WORK, ['slow', [], {}]);
    await until(() => gate.started() === 1, 3000, 'the client runs the first server\'s call');

    const disconnected = once(client, 'disconnected');
    first.close();
    await disconnected;
    const reconnected = once(client, 'reconnected');
    const second = await rawServer(); // same endpoint, same routing id: the client's connection record is reused
    await reconnected;

    gate.release('for the first server only');
    const pingId = uuidBytes();
    await second.sendV1(pingId, MessageType.WORK, ['ping', [], {}]);
    const before: Received[] = [];
    for (;;) {
      const message = await second.next();
      if (Buffer.isBuffer(message.id) && message.id.equals(pingId)) break;
      before.push(message);
    }
    const late = [...before, ...(await second.collect(300))];
    expect(late.map(summary), 'nothing for a call the second server never made').to.deep.equal([]);
  });

  // -----------------------------------------------------------------------------------------------
  // lib/peer.ts #onWork: one-way work (empty v1 id, compact id 0) gets #oneWayResponder
  it('one-way work (empty v1 id, compact id 0) is never answered, whether its handler returns or throws', async () => {
    const server = await startServer();
    let ticks = 0;
    let booms = 0;
    server.registerRpc('tick', () => {
      ticks++;
      return 'a result nobody gets';
    });
    server.registerRpc('boom', () => {
      booms++;
      throw new RangeError('a failure nobody hears of');
    });
    server.registerRpc('ping', () => 'pong');
    const raw = new RawWire();
    raw.connect(server.endpoint);
    await raw.hello('oneway');

    await raw.sendV1(Buffer.alloc(0), MessageType.WORK, ['tick', [], {}]);
    await raw.sendV1(Buffer.alloc(0), MessageType.WORK, ['boom', [], {}]);
    await raw.sendCompact(MessageType.WORK, 0, ['tick', []]);
    await raw.sendCompact(MessageType.WORK, 0, ['boom', []]);
    // Same connection, in order: once ping is answered, the server has dealt with the one-way work.
    const { answer, before } = await raw.callAfter('ping');
    expect([answer.type, answer.body]).to.deep.equal([MessageType.OK, 'pong']);
    expect([ticks, booms], 'every one-way handler ran').to.deep.equal([2, 2]);
    const answered = [...before, ...(await raw.collect(300))];
    expect(answered.map(summary), 'nothing answers one-way work').to.deep.equal([]);
  });

  // -----------------------------------------------------------------------------------------------
  // lib/outbox.ts send(): `queue.items.length >= this.limit` (maxSendQueue)
  it('maxSendQueue bounds what waits for a peer that does not read: it receives at most the queue plus the ZeroMQ pipe', async () => {
    const sendHighWaterMark = 4;
    const maxSendQueue = 8;
    const receiveHighWaterMark = 2;
    const requests = 60;
    // inproc: the pipe between the two sockets holds at most sendHWM + receiveHWM messages, with
    // no kernel buffers besides, so the bound below is exact.
    const server = await startServer({ sendHighWaterMark, maxSendQueue, heartbeat: false }, 'inproc');
    let runs = 0;
    server.registerRpc('echo', (n: number) => {
      runs++;
      return n;
    });
    const stalled = track(new zmq.Dealer({ linger: 0, receiveHighWaterMark, receiveTimeout: 300 }));
    stalled.connect(server.endpoint);
    const ids = new Set<string>();
    for (let i = 0; i < requests; i++) {
      const id = uuidBytes();
      ids.add(id.toString('hex'));
      await stalled.send(['', 'v1', id, Buffer.from([MessageType.WORK]), pack(['echo', [i], {}])]);
    }
    await until(() => runs === requests, 5000, 'every request was run');
    await sleep(100); // the answers that found the pipe full are queued or dropped by now

    // Now read everything there is.
    const answers: number[] = [];
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await stalled.receive();
      } catch (error) {
        if ((error as { code?: string }).code === 'EAGAIN') break; // nothing more within receiveTimeout
        throw error;
      }
      const message = decodeReceived(frames);
      if (message.type === MessageType.HEARTBEAT) continue;
      expect(message.type).to.equal(MessageType.OK);
      expect(ids.has((message.id as Buffer).toString('hex')), 'an answer to one of our requests').to.equal(true);
      answers.push(message.body as number);
    }
    const bound = maxSendQueue + sendHighWaterMark + receiveHighWaterMark;
    expect(answers.length, `received ${answers.length} answers; bound ${bound}`).to.be.within(1, bound);
    expect(answers, 'the oldest answers, in order').to.deep.equal(answers.map((_, i) => i));
  });

  // -----------------------------------------------------------------------------------------------
  describe('login limits', () => {
    // lib/server.ts #throttle: `failedLoginDelayMs * 2 ** (failures - maxFailedLogins)`
    it('the delay of a throttled refusal doubles with each further failure', async () => {
      const failedLoginDelayMs = 100;
      const server = await startServer({ security: 'plain', users: async () => false, maxFailedLogins: 1, failedLoginDelayMs });
      const raw = new RawPeer(server.id, { routingId: `throttle-${randomUUID().slice(0, 8)}` });
      await raw.connect(server.endpoint);
      const refusal = async (): Promise<number> => {
        const id = uuidBytes();
        const sent = Date.now();
        await raw.sendV1(id, MessageType.HELLO, ['alice', 'guess']);
        const answer = await raw.next(5000);
        expect(answer[3]![0]).to.equal(MessageType.UNAUTHORIZED);
        expect(answer[2]).to.deep.equal(id);
        return Date.now() - sent;
      };
      await refusal(); // verified and refused: the one failure allowed
      const delays = [await refusal(), await refusal(), await refusal()]; // throttled: 100, 200, 400 ms
      expect(delays[2]!, `delays ${delays.join(', ')} ms`).to.be.at.least(1.5 * delays[0]!);
    });

    // security/plain.ts: `new Gate(MAX_CONCURRENT_VERIFICATIONS, ...)`, two at a time (README: Abuse)
    it('at most two password verifications run at once, whatever the number of connections', async () => {
      let active = 0;
      let most = 0;
      let verified = 0;
      const server = await startServer({
        security: 'plain',
        users: async () => {
          active++;
          most = Math.max(most, active);
          await sleep(50);
          active--;
          verified++;
          return false;
        },
      });
      const raws = await Promise.all(Array.from({ length: 6 }, async () => {
        const raw = new RawPeer(server.id, { routingId: `login-${randomUUID().slice(0, 8)}` });
        await raw.connect(server.endpoint);
        return raw;
      }));
      const answers = await Promise.all(raws.map(async (raw) => {
        await raw.sendV1(uuidBytes(), MessageType.HELLO, ['alice', 'guess']);
        return (await raw.next(5000))[3]![0];
      }));
      expect(answers).to.deep.equal(Array(6).fill(MessageType.UNAUTHORIZED));
      expect(verified).to.equal(6);
      expect(most, 'verifications running at once').to.equal(2);
    });

    // lib/server.ts '_zeropeer.subscribe': MAX_TOPICS_PER_CONNECTION (1024, README: Limits)
    it('a connection may hold 1024 subscriptions: the next one is refused, and gets no publication', async () => {
      const server = await startServer();
      const client = await startClient(server, { userId: 'subscriber' });
      const seen: string[] = [];
      client.registerRpc('news', (topic: string) => {
        seen.push(topic);
      });
      await Promise.all(Array.from({ length: 1024 }, (_, i) => client.subscribe(`topic-${i}.`)));
      const refused = await client.subscribe('topic-1024.').then(() => undefined, (error: unknown) => error);
      expect(refused, 'the 1025th subscription').to.be.instanceOf(RpcError);
      expect((refused as Error).message).to.contain('1024');
      await client.subscribe('topic-0.'); // one it holds already costs nothing
      expect(await server.publish('topic-1024.').news('topic-1024.')).to.equal(0);
      expect(await server.publish('topic-1023.').news('topic-1023.')).to.equal(1);
      await until(() => seen.length === 1, 3000, 'the publication to a held topic arrived');
      expect(seen).to.deep.equal(['topic-1023.']);
    });

    describe('tokens (jwt)', () => {
      const SECRET = 'a-guard-secret-of-at-least-32-bytes!';
      const jwtOptions = { security: 'jwt', jwt: { secret: SECRET, algorithms: ['HS256'] } };
      /** A token for alice valid for 1 to 2 s (exp is in whole seconds). */
      const shortToken = (): Promise<string> =>
        new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice')
          .setExpirationTime(Math.floor(Date.now() / 1000) + 2).sign(new TextEncoder().encode(SECRET));

      // lib/client.ts onUnauthorized -> lib/peer.ts requeueUnauthorized: put back once, not rejected
      it('a call that races the expiry of its token is sent again once, with a fresh token, and succeeds', async () => {
        const server = await startServer(jwtOptions);
        let runs = 0;
        server.registerRpc('whoami', (identity: string) => {
          runs++;
          return identity;
        }, { withIdentity: true });
        let tokens = 0;
        const client = await startClient(server, { security: 'jwt', token: () => (tokens++, shortToken()), timeoutMs: 3000, tokenRefreshMarginMs: 0 }); // the expiry path itself
        expect(tokens).to.equal(1);
        // The moment the server takes alice out of its table, before it tells her: her call leaves
        // while she still believes herself authenticated, and reaches a server that refuses it.
        const raced = new Promise<{ reason: unknown; call: ReturnType<typeof watch> }>((resolve) => {
          server.once('peer:gone', (_identity: string, reason: string) => resolve({ reason, call: watch(client.call.whoami()) }));
        });
        const { reason, call } = await raced;
        expect(reason).to.equal('expired');
        await call.done;
        expect(call.error, String(call.error)).to.equal(undefined);
        expect(call.value, 'the caller sees no error').to.equal('alice');
        expect(runs, 'the refused attempt did not run; the second one did').to.equal(1);
        expect(tokens, 'a fresh token was asked for').to.equal(2);
        expect(server.connectedPeers()).to.deep.equal(['alice']);
      });

      // lib/peer.ts requeueUnauthorized: `call.retried` (a second refusal rejects)
      it('a call refused as unauthorized a second time rejects with UnauthorizedError, not sent a third time', async () => {
        const raw = new RawServer();
        const endpoint = await raw.bind();
        let tokens = 0;
        const client = track(new Client('service', {
          logger: recordingLogger(),
          security: 'jwt',
          token: () => `token-${++tokens}`,
          timeoutMs: 3000,
          heartbeat: false,
        }));
        client.connect(endpoint);
        await client.start();
        const call = watch(client.call.whoami());
        // The raw server lets every HELLO in and refuses every WORK, as a server whose tokens
        // all expire at once would.
        let works = 0;
        while (!call.settled) {
          const frames = await raw.next(3000).catch(() => undefined);
          if (!frames) break;
          const [routingId, , , id, type] = frames as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
          if (type[0] === MessageType.HELLO) {
            await raw.send([routingId, '', 'v1', id, Buffer.from([MessageType.AUTHENTICATED]), 'welcome']);
          } else if (type[0] === MessageType.WORK) {
            works++;
            await raw.send([routingId, '', 'v1', id, Buffer.from([MessageType.UNAUTHORIZED]), 'token expired']);
            await sleep(20); // let the client settle the call (or send it again) before looking
          }
        }
        await call.done;
        expect(call.error, String(call.error)).to.be.instanceOf(UnauthorizedError);
        expect(works, 'sent twice: once, and once again').to.equal(2);
      });

      // lib/client.ts #credentialsFailed: `#retryRefusal = true` (the next call asks for a token again)
      it('a token function that threw is asked again by the next call, which then succeeds', async () => {
        const server = await startServer(jwtOptions);
        server.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
        let tokens = 0;
        const client = track(new Client(server.id, {
          logger: recordingLogger(),
          security: 'jwt',
          token: () => {
            tokens++;
            if (tokens === 1) throw new Error('identity provider down');
            return shortToken();
          },
          timeoutMs: 3000,
        }));
        client.connect(server.endpoint);
        await client.start();
        await until(() => tokens === 1, 3000, 'the token function was asked once');
        await sleep(50); // nothing asks again by itself
        expect(tokens).to.equal(1);
        expect(await client.call.whoami()).to.equal('alice');
        expect(tokens, 'asked again for the call').to.equal(2);
      });
    });
  });
});

