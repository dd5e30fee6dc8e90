/**
 * Interoperation with peers that speak pseud's protocol v1 by hand:
 * `[routing id, '', 'v1', 16-byte id, type byte, MessagePack body]`.
 * A raw pseud client against a real Server (both directions), and a real Client against a raw
 * pseud-style noop server that never answers HELLO.
 */
import { MessageType } from '../lib/index.js';
import { expect } from 'chai';
import { decode, encode } from 'msgpackr';
import * as zmq from 'zeromq';
import { Client, RemoteError, type Server } from '../lib/index.js';
import { cleanup, isHeartbeat, once, quickHash, RawPeer, RawServer, recordingLogger, sleep, startServer, track, uuidBytes } from './helpers.js';

/** Message types, from the exported table (never copied constants). */
const T = MessageType;

const PSEUD = 'pseud-client';

/** Checks a v1 message (frames after the routing id) and returns its id and decoded body. */
function expectV1(frames: Buffer[], type: number): { id: Buffer; body: unknown } {
  expect(frames, 'pseud v1: 6 frames with the routing id').to.have.length(5);
  expect(frames[0]!.length, 'empty delimiter frame').to.equal(0);
  expect(frames[1]!.toString()).to.equal('v1');
  expect(frames[2]!.length, '16-byte message id').to.equal(16);
  expect([...frames[3]!], `message type 0x${type.toString(16)}`).to.deep.equal([type]);
  return { id: frames[2]!, body: decode(frames[4]!) };
}

describe('pseud v1 interop: a raw pseud client against a zeropeer Server', () => {
  let server: Server;
  let raw: RawPeer;
  const seen: unknown[][] = [];

  beforeEach(async () => {
    seen.length = 0;
    server = await startServer({ sendStacks: true });
    server.registerRpc('string.lower', (s: string) => s.toLowerCase());
    server.registerRpc('record', (...args: unknown[]) => {
      seen.push(args);
      return args.length;
    });
    server.registerRpc('fail', (what: string) => {
      throw new TypeError(`cannot handle ${what}`);
    });
    raw = new RawPeer(server.id, { routingId: PSEUD });
    await raw.connect(server.endpoint, { heartbeat: false }); // pseud sends nothing before its first call
  });

  afterEach(cleanup);

  async function work(name: string, args: unknown[], kwargs: Record<string, unknown> = {}): Promise<{ id: Buffer; reply: Buffer[] }> {
    const id = uuidBytes();
    await raw.sendV1(id, T.WORK, [name, args, kwargs]);
    return { id, reply: await raw.next(5000) };
  }

  it('WORK -> OK with the MessagePack result and the same id', async () => {
    const { id, reply } = await work('string.lower', ['ABC']);
    const answer = expectV1(reply, T.OK);
    expect(answer.id.equals(id), 'the id is echoed').to.equal(true);
    expect(answer.body).to.equal('abc');
  });

  it('answers several WORKs each with its own id', async () => {
    const ids = [uuidBytes(), uuidBytes(), uuidBytes()];
    for (const [i, id] of ids.entries()) await raw.sendV1(id, T.WORK, ['string.lower', [`X${i}`], {}]);
    const answers = new Map<string, unknown>();
    for (let i = 0; i < ids.length; i++) {
      const { id, body } = expectV1(await raw.next(5000), T.OK);
      answers.set(id.toString('hex'), body);
    }
    expect(answers).to.deep.equal(new Map(ids.map((id, i) => [id.toString('hex'), `x${i}`])));
  });

  it('kwargs are bound to parameters by name; a parameter not given keeps its default', async () => {
    server.registerRpc('greet', (name: string, greeting = 'hello', punctuation = '!') => `${greeting} ${name}${punctuation}`);
    const { id, reply } = await work('greet', ['bob'], { punctuation: '?' });
    const answer = expectV1(reply, T.OK);
    expect(answer.id.equals(id)).to.equal(true);
    expect(answer.body).to.equal('hello bob?');
    expect(expectV1((await work('greet', [], { name: 'ann', greeting: 'hi' })).reply, T.OK).body).to.equal('hi ann!');
  });

  it('an unknown keyword, or one also given by position -> ERROR ParameterError; the handler never runs', async () => {
    let runs = 0;
    server.registerRpc('greet', (name: string) => {
      runs++;
      return name;
    });
    const unknown = expectV1((await work('greet', ['bob'], { colour: 'red' })).reply, T.ERROR).body as unknown[];
    expect(unknown[0]).to.equal('ParameterError');
    expect(unknown[1]).to.include('colour');
    const twice = expectV1((await work('greet', ['bob'], { name: 'ann' })).reply, T.ERROR).body as unknown[];
    expect(twice[0]).to.equal('ParameterError');
    expect(runs).to.equal(0);
  });

  it('with { kwargs: "object" } the kwargs map arrives as one extra last argument, a plain object', async () => {
    server.registerRpc('options', (...args: unknown[]) => {
      seen.push(args);
      return args.length;
    }, { kwargs: 'object' });
    const { id, reply } = await work('options', [1, 'two'], { a: 1, b: 'bee' });
    const answer = expectV1(reply, T.OK);
    expect(answer.id.equals(id)).to.equal(true);
    expect(answer.body).to.equal(3);
    expect(seen).to.have.length(1);
    expect(seen[0]).to.deep.equal([1, 'two', { a: 1, b: 'bee' }]);
    const kwargs = seen[0]![2];
    expect(kwargs).to.not.be.instanceOf(Map);
    expect(Object.getPrototypeOf(kwargs)).to.equal(Object.prototype);
  });

  it('an empty kwargs map adds no argument', async () => {
    const { reply } = await work('record', [1, 'two'], {});
    expect(expectV1(reply, T.OK).body).to.equal(2);
    expect(seen).to.deep.equal([[1, 'two']]);
  });

  it('answers in standard MessagePack: Set as array, undefined as nil, bytes as bin, wide integers as int64, Date as ext -1', async () => {
    server.registerRpc('values', () => ({ set: new Set([1, 2]), none: undefined, bytes: new Uint8Array([1, 2]), wide: 2 ** 40, at: new Date(0) }));
    const { reply } = await work('values', []);
    const body = expectV1(reply, T.OK).body as Record<string, unknown>;
    const bytes = reply[4]!;
    // The only extension in the body is the standard timestamp (type -1): d6 ff.
    expect(bytes.includes(Buffer.from('d6ff00000000', 'hex')), 'Date as timestamp 32').to.equal(true);
    expect(bytes.includes(Buffer.from('d30000010000000000', 'hex')), '2^40 as int64').to.equal(true);
    expect(bytes.includes(Buffer.from('c4020102', 'hex')), 'bytes as bin8').to.equal(true);
    expect(body['set']).to.deep.equal([1, 2]);
    expect(body['none']).to.equal(null);
    expect(body['wide']).to.satisfy((v: unknown) => v === 2 ** 40 || v === 2n ** 40n);
  });

  it('a 64-bit integer from pseud reaches the handler as a number when safe', async () => {
    // Python packs 2**40 as uint64 (cf): the handler sees a number, not a BigInt.
    const id = uuidBytes();
    const body = Buffer.concat([Buffer.from([0x93, 0xa6]), Buffer.from('record'), Buffer.from([0x91, 0xcf]), Buffer.from('0000010000000000', 'hex'), Buffer.from([0x80])]);
    await raw.sendV1(id, T.WORK, body, { raw: true });
    expect(expectV1(await raw.next(5000), T.OK).body).to.equal(1);
    expect(seen).to.deep.equal([[2 ** 40]]);
  });

  it('a BigInt beyond 64 bits in a result -> an ERROR (EncodingError), nothing undecodable sent', async () => {
    server.registerRpc('huge', () => 2n ** 70n);
    const { reply } = await work('huge', []);
    const body = expectV1(reply, T.ERROR).body as unknown[];
    expect(body[0]).to.equal('EncodingError');
  });

  it('a handler that throws TypeError -> ERROR body of exactly [ "TypeError", message, stack ]', async () => {
    const { id, reply } = await work('fail', ['that']);
    const answer = expectV1(reply, T.ERROR);
    expect(answer.id.equals(id)).to.equal(true);
    expect(answer.body, 'pseud unpacks exactly three items').to.be.an('array').with.length(3);
    const [name, message, stack] = answer.body as unknown[];
    expect(name).to.equal('TypeError');
    expect(message).to.equal('cannot handle that');
    expect(stack).to.be.a('string').and.include('cannot handle that');
  });

  it('an unknown function -> ERROR [ "ServiceNotFoundError", message, stack ]', async () => {
    const { id, reply } = await work('no.such.thing', []);
    const answer = expectV1(reply, T.ERROR);
    expect(answer.id.equals(id)).to.equal(true);
    expect(answer.body).to.be.an('array').with.length(3);
    expect((answer.body as unknown[])[0]).to.equal('ServiceNotFoundError');
  });

  it('the server pushes work to the pseud client (identity = routing id) and gets its OK', async () => {
    const first = await work('string.lower', ['A']);
    expectV1(first.reply, T.OK);
    expect(server.connectedPeers()).to.include(PSEUD);

    const result = server.sendTo(PSEUD).addition(2, 4);
    const pushed = expectV1(await raw.next(5000), T.WORK);
    expect(pushed.body, 'a v1 WORK body is [name, args, kwargs]').to.deep.equal(['addition', [2, 4], {}]);
    await raw.sendV1(pushed.id, T.OK, 6);
    expect(await result).to.equal(6);
    expect(server.pendingCalls).to.equal(0);
  });

  it('the server pushes work and the pseud client answers ERROR -> RemoteError with remoteName', async () => {
    expectV1((await work('string.lower', ['A'])).reply, T.OK);

    const result = server.sendTo(PSEUD).validate('x');
    const pushed = expectV1(await raw.next(5000), T.WORK);
    expect(pushed.body).to.deep.equal(['validate', ['x'], {}]);
    await raw.sendV1(pushed.id, T.ERROR, ['ValueError', 'bad', 'tb']);
    const error = await result.then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(RemoteError);
    expect((error as RemoteError).remoteName).to.equal('ValueError');
    expect((error as RemoteError).message).to.equal('bad');
    expect((error as RemoteError).remoteStack).to.equal('tb');
    expect(server.pendingCalls).to.equal(0);
  });

  it('the server sends keyword arguments to a pseud client as the kwargs map', async () => {
    expectV1((await work('string.lower', ['A'])).reply, T.OK);
    const result = server.invoke('configure', ['x'], { to: PSEUD, kwargs: { verbose: true } });
    const pushed = expectV1(await raw.next(5000), T.WORK);
    expect(pushed.body).to.deep.equal(['configure', ['x'], { verbose: true }]);
    await raw.sendV1(pushed.id, T.OK, null);
    expect(await result).to.equal(null);
  });
});

describe('pseud v1 interop: a zeropeer Client against a raw pseud server', () => {
  afterEach(cleanup);

  /** A client of a raw pseud server without authentication: it answers the probe ERROR, as pseud does. */
  async function clientOfPseud(options: ConstructorParameters<typeof Client>[1] = {}): Promise<{ client: Client; server: RawServer; logger: ReturnType<typeof recordingLogger> }> {
    const server = new RawServer({ probe: 'error' });
    track(server);
    const endpoint = await server.bind();
    const logger = recordingLogger();
    // helloTimeoutMs far beyond the test's limits: being ready must not come from a timeout.
    const client = new Client('service', { logger, helloTimeoutMs: 60_000, timeoutMs: 8000, drainTimeoutMs: 50, ...options });
    track(client);
    const connected = once(client, 'connected', 5000);
    client.connect(endpoint);
    await client.start();
    await connected;
    expect(server.probes, 'one probe, answered ERROR').to.equal(1);
    return { client, server, logger };
  }

  it('the first message is a v1 WORK a pseud server answers; answered ERROR, the client is ready at once, no HELLO ever', async () => {
    const { client, server } = await clientOfPseud({ security: 'plain', userId: 'alice', password: 'pw' });
    const result = client.call.string.lower('ABC');
    const frames = await server.next();
    expect(frames, 'v1 WORK: 6 frames').to.have.length(6);
    const work = expectV1(frames.slice(1), T.WORK);
    expect(work.body).to.deep.equal(['string.lower', ['ABC'], {}]);
    await server.send([frames[0]!, '', 'v1', work.id, Buffer.from([T.OK]), encode('abc')]);
    expect(await result).to.equal('abc');
    expect(client.pendingCalls).to.equal(0);
  });

  it('a pseud server that authenticates on demand: WORK -> UNAUTHORIZED -> HELLO (bytes it can read) -> AUTHENTICATED -> the call goes out', async () => {
    const server = new RawServer({ probe: 'none' });
    track(server);
    const endpoint = await server.bind();
    const client = track(new Client('service', { logger: recordingLogger(), security: 'plain', userId: 'alice', password: 'pw', timeoutMs: 8000, drainTimeoutMs: 50, helloTimeoutMs: 60_000 }));
    client.connect(endpoint);
    await client.start();
    const result = client.call.string.lower('ABC');
    // pseud breaks on a HELLO before any WORK (KeyError): the first message must be a WORK.
    const first = await server.next();
    expect([...first[4]!], 'the first message is WORK').to.deep.equal([T.WORK]);
    await server.send([first[0]!, '', 'v1', first[3]!, Buffer.from([T.UNAUTHORIZED]), 'Authentication Required']);
    const hello = await server.next();
    expect([...hello[4]!], 'then HELLO').to.deep.equal([T.HELLO]);
    expect(decode(hello[5]!)).to.deep.equal(['alice', 'pw']);
    await server.send([hello[0]!, '', 'v1', hello[3]!, Buffer.from([T.AUTHENTICATED]), "Welcome 'alice'"]);
    const work = await server.next();
    expect(decode(work[5]!)).to.deep.equal(['string.lower', ['ABC'], {}]);
    await server.send([work[0]!, '', 'v1', work[3]!, Buffer.from([T.OK]), encode('abc')]);
    expect(await result).to.equal('abc');
  });

  it('a pseud ERROR answer rejects the call with RemoteError; kwargs travel as the kwargs map', async () => {
    const { client, server } = await clientOfPseud();
    const result = client.invoke('compute', [1], { kwargs: { precise: true } });
    const frames = await server.next();
    const work = expectV1(frames.slice(1), T.WORK);
    expect(work.body).to.deep.equal(['compute', [1], { precise: true }]);
    await server.send([frames[0]!, '', 'v1', work.id, Buffer.from([T.ERROR]), encode(['ValueError', 'bad', 'tb'])]);
    const error = await result.then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(RemoteError);
    expect((error as RemoteError).remoteName).to.equal('ValueError');
  });

  it('the pseud server can call the client\'s functions in v1', async () => {
    const { client, server } = await clientOfPseud();
    client.registerRpc('addition', (a: number, b: number) => a + b);
    // Learn the client's routing id from a call it makes.
    const result = client.call.ping();
    const frames = await server.next();
    const work = expectV1(frames.slice(1), T.WORK);
    await server.send([frames[0]!, '', 'v1', work.id, Buffer.from([T.OK]), encode('pong')]);
    expect(await result).to.equal('pong');

    const id = uuidBytes();
    await server.send([frames[0]!, '', 'v1', id, Buffer.from([T.WORK]), encode(['addition', [2, 4], {}])]);
    const reply = await server.next();
    const answer = expectV1(reply.slice(1), T.OK);
    expect(answer.id.equals(id)).to.equal(true);
    expect(answer.body).to.equal(6);
  });

  it('an idle pseud server is never sent HEARTBEAT nor declared silent; a call longer than heartbeat.timeoutMs succeeds', async function () {
    this.timeout(15_000);
    const { client, server } = await clientOfPseud({ heartbeat: { intervalMs: 50, timeoutMs: 300 } });
    const events: string[] = [];
    client.on('disconnected', () => events.push('disconnected'));
    const result = client.call.slow();
    const frames = await server.next();
    await sleep(1200); // four heartbeat timeouts
    await server.send([frames[0]!, '', 'v1', frames[3]!, Buffer.from([T.OK]), encode('done')]);
    expect(await result).to.equal('done');
    await sleep(600);
    expect(events).to.deep.equal([]);
    expect(client.connected).to.equal(true);
    const late = await server.next(200).then((f) => f, () => undefined);
    expect(late, 'nothing at all from an idle client (no HEARTBEAT)').to.equal(undefined);
  });
});

describe('pseud v1 interop: a raw pseud client says HELLO with bytes', () => {
  afterEach(cleanup);

  it('login and password as MessagePack bin (UTF-8) are accepted', async () => {
    const server = await startServer({ security: 'plain', users: { 'zoë': await quickHash('pässword') } });
    server.registerRpc('string.lower', (s: string) => s.toLowerCase());
    const raw = new RawPeer(server.id, { routingId: PSEUD });
    await raw.connect(server.endpoint, { heartbeat: false });
    const helloId = uuidBytes();
    await raw.sendV1(helloId, T.HELLO, [Buffer.from('zoë'), Buffer.from('pässword')]);
    const answer = await raw.next(5000);
    expect([...answer[3]!], 'AUTHENTICATED').to.deep.equal([T.AUTHENTICATED]);
    expect(server.connectedPeers()).to.deep.equal(['zoë']);
  });
});

describe('pseud v1 peers and liveness: nothing unsolicited, no heartbeat verdicts on peers that never heartbeat', function () {
  this.timeout(15_000);
  afterEach(cleanup);

  /** Heartbeats far shorter than the waits below: a verdict or a HEARTBEAT would show. */
  const HB = { intervalMs: 50, timeoutMs: 300 } as const;

  it('a REQ socket (pseud SyncClient) reads the answer to its call as its first reply, even after idle heartbeat intervals', async () => {
    const server = await startServer({ heartbeat: HB });
    server.registerRpc('string.lower', (s: string) => s.toLowerCase());
    const req = track(new zmq.Request({ receiveTimeout: 5000, linger: 0 }));
    req.connect(server.endpoint);
    for (const word of ['ABC', 'DEF']) {
      await sleep(4 * HB.timeoutMs); // several heartbeat intervals and timeouts, idle
      const id = uuidBytes();
      await req.send(['v1', id, Buffer.from([T.WORK]), encode(['string.lower', [word], {}])]);
      const reply = await req.receive();
      expect(reply, 'a REQ reply: [v1, id, type, body]').to.have.length(4);
      expect([...reply[2]!], 'the first reply is OK, not a HEARTBEAT').to.deep.equal([T.OK]);
      expect(reply[1]!.equals(id)).to.equal(true);
      expect(decode(reply[3]!)).to.equal(word.toLowerCase());
    }
  });

  it('an idle pseud client is not dropped as "timeout", is sent no HEARTBEAT, and a push longer than timeoutMs succeeds', async () => {
    const server = await startServer({ heartbeat: HB });
    server.registerRpc('string.lower', (s: string) => s.toLowerCase());
    const gone: unknown[][] = [];
    server.on('peer:gone', (...args: unknown[]) => gone.push(args));
    const raw = new RawPeer(server.id, { routingId: PSEUD });
    await raw.connect(server.endpoint, { heartbeat: false });
    const id = uuidBytes();
    await raw.sendV1(id, T.WORK, ['string.lower', ['A'], {}]);
    const first = await raw.next(5000, { heartbeats: true });
    expect(isHeartbeat(first), 'nothing unsolicited: the first message is the answer').to.equal(false);
    expect(decode(first[4]!)).to.equal('a');

    await sleep(4 * HB.timeoutMs);
    expect(gone).to.deep.equal([]);
    expect(server.connectedPeers()).to.include(PSEUD);

    const result = server.sendTo(PSEUD).addition(2, 4);
    const pushed = await raw.next(5000, { heartbeats: true });
    expect(isHeartbeat(pushed), 'no HEARTBEAT (nor anything else) before the push').to.equal(false);
    expect([...pushed[3]!]).to.deep.equal([T.WORK]);
    await sleep(2 * HB.timeoutMs); // the pseud client takes its time
    await raw.sendV1(pushed[2]!, T.OK, 6);
    expect(await result).to.equal(6);
    expect(gone).to.deep.equal([]);
  });

  it('a pseud client that sends HEARTBEAT is held to heartbeats: silent, it is gone "timeout"', async () => {
    const server = await startServer({ heartbeat: HB });
    server.registerRpc('string.lower', (s: string) => s.toLowerCase());
    const raw = new RawPeer(server.id, { routingId: PSEUD });
    await raw.connect(server.endpoint, { heartbeat: false });
    await raw.sendV1(uuidBytes(), T.WORK, ['string.lower', ['A'], {}]);
    await raw.next(5000);
    const gone = once(server, 'peer:gone', 5000);
    await raw.sendV1(Buffer.alloc(0), T.HEARTBEAT, '', { raw: true });
    expect(await gone).to.deep.equal([PSEUD, 'timeout']);
  });
});
