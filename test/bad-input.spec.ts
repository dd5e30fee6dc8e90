/**
 * A peer must never crash or leak because another misbehaves. A raw ROUTER (RawPeer) sends bad
 * input to a real Server frame by frame; after each one the server must have reacted as documented,
 * logged it with context, and still serve both the misbehaving connection and a fresh zeropeer
 * Client. The last tests turn it around: a raw server sends garbage answers to a zeropeer Client.
 */
import { MessageType } from '../lib/index.js';
import { expect } from 'chai';
import { decode, encode } from 'msgpackr';
import { COMPACT_CAPABILITY, Client, ProtocolError, type CallContext, type Server } from '../lib/index.js';
import { cleanup, connectionRecords, once, RawPeer, RawServer, recordingLogger, startClient, startServer, track, until, uuidBytes, type LogEntry } from './helpers.js';

/** Message types, from the exported table (never copied constants). */
const T = MessageType;

/** The routing id of the misbehaving raw peer: printable, so that logs show it as text. */
const BAD = 'bad-peer';

/** MessagePack that cannot be decoded: an array of two announced, one given. */
const TRUNCATED = Buffer.from([0x92, 0x01]);
/** An array32 announcing four billion items, then nothing. */
const HUGE_TRUNCATED = Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]);
/** One value followed by bytes that belong to nothing. */
const TRAILING = Buffer.from([0x01, 0x02, 0x03]);

type RecordingLogger = ReturnType<typeof recordingLogger>;

interface Setup {
  server: Server;
  logger: RecordingLogger;
  raw: RawPeer;
}

async function setup(options: Parameters<typeof startServer>[0] = {}): Promise<Setup> {
  const logger = recordingLogger();
  const server = await startServer({ logger, ...options });
  server.registerRpc('echo', (value: unknown) => value);
  const raw = new RawPeer(server.id, { routingId: BAD });
  await raw.connect(server.endpoint);
  return { server, logger, raw };
}

/** Reads messages from the server until the one whose id frame is `id`; returns it and what came before. */
async function readUntil(raw: RawPeer, id: Buffer, timeoutMs = 5000): Promise<{ reply: Buffer[]; before: Buffer[][] }> {
  const before: Buffer[][] = [];
  for (;;) {
    const frames = await raw.next(timeoutMs);
    if (frames.length === 5 && frames[2]!.equals(id)) return { reply: frames, before };
    before.push(frames);
  }
}

/** Asserts a v1 ERROR answer (frames after the routing id) to `id` of class `className`; returns its body. */
function expectError(frames: Buffer[], id: Buffer, className: string): [string, string, string] {
  expect(frames, 'a v1 message: 6 frames with the routing id').to.have.length(5);
  expect(frames[0]!.length, 'empty delimiter frame').to.equal(0);
  expect(frames[1]!.toString()).to.equal('v1');
  expect(frames[2]!.equals(id), 'the message id is echoed').to.equal(true);
  expect([...frames[3]!], 'type ERROR').to.deep.equal([T.ERROR]);
  const body = decode(frames[4]!) as unknown;
  expect(body).to.be.an('array').with.length(3);
  const [name, message, stack] = body as [string, string, string];
  expect(name).to.equal(className);
  expect(message).to.be.a('string');
  expect(stack).to.be.a('string');
  return [name, message, stack];
}

/**
 * The server did not answer the bad input (the next message it sends the raw peer is the answer to
 * a good WORK sent afterwards), and it still serves this very connection.
 */
async function expectNoReplyAndRawStillServed(raw: RawPeer): Promise<void> {
  const id = uuidBytes();
  await raw.sendV1(id, T.WORK, ['echo', ['still here'], {}]);
  const frames = await raw.next(5000);
  expect(frames[2]!.equals(id), `the bad input was answered: ${JSON.stringify(frames.map((f) => f.toString('latin1')))}`).to.equal(true);
  expect([...frames[3]!]).to.deep.equal([T.OK]);
  expect(decode(frames[4]!)).to.equal('still here');
}

/** The misbehaving connection still gets answers. */
async function expectRawStillServed(raw: RawPeer): Promise<void> {
  const id = uuidBytes();
  await raw.sendV1(id, T.WORK, ['echo', [42], {}]);
  const { reply } = await readUntil(raw, id);
  expect([...reply[3]!]).to.deep.equal([T.OK]);
  expect(decode(reply[4]!)).to.equal(42);
}

/** A log entry of `level` about the raw peer, with context naming the server and the raw peer's routing id. */
function findLogged(logger: RecordingLogger, level: LogEntry['level'], pattern: RegExp): LogEntry | undefined {
  return logger.entries.find((e) => e.level === level && pattern.test(e.message) &&
    e.context?.['peer'] === 'service' && e.context?.['routingId'] === BAD);
}

function expectWarned(logger: RecordingLogger, pattern: RegExp): LogEntry {
  const entry = findLogged(logger, 'warn', pattern);
  expect(entry, `a warning matching ${pattern} with context { peer, routingId: "${BAD}" }; log:\n${logger.text()}`).to.not.equal(undefined);
  return entry!;
}

/** A fresh zeropeer Client connects to the server and gets a call through. */
async function expectClientServed(server: Server): Promise<void> {
  const client = await startClient(server);
  expect(await client.call.echo({ ok: true })).to.deep.equal({ ok: true });
  expect(client.pendingCalls).to.equal(0);
}

describe('bad input: the server survives peers that misbehave', () => {
  afterEach(cleanup);

  it('garbage MessagePack in a WORK body -> ERROR ProtocolError with the id echoed', async () => {
    const { server, logger, raw } = await setup();
    for (const garbage of [TRUNCATED, HUGE_TRUNCATED, TRAILING]) {
      const id = uuidBytes();
      await raw.sendV1(id, T.WORK, garbage, { raw: true });
      const { reply, before } = await readUntil(raw, id);
      expect(before, 'nothing but the answer').to.have.length(0);
      expectError(reply, id, 'ProtocolError');
    }
    expectWarned(logger, /bad message/);
    await expectRawStillServed(raw);
    await expectClientServed(server);
  });

  it('a wrong protocol version frame ("v2") -> ERROR ProtocolError naming the version', async () => {
    const { server, logger, raw } = await setup();
    const id = uuidBytes();
    await raw.sendFrames('', 'v2', id, Buffer.from([T.WORK]), encode(['echo', [1], {}]));
    const { reply } = await readUntil(raw, id);
    const [, message] = expectError(reply, id, 'ProtocolError');
    expect(message).to.include('v2');
    expectWarned(logger, /version/);
    await expectRawStillServed(raw);
    await expectClientServed(server);
  });

  it('an unknown message type byte (0x7f) -> ERROR ProtocolError', async () => {
    const { server, logger, raw } = await setup();
    const id = uuidBytes();
    await raw.sendV1(id, 0x7f, ['echo', [1], {}]);
    const { reply } = await readUntil(raw, id);
    const [, message] = expectError(reply, id, 'ProtocolError');
    expect(message).to.match(/type/);
    expectWarned(logger, /unknown message type/);
    await expectRawStillServed(raw);
    await expectClientServed(server);
  });

  it('a type frame that is not one byte -> ERROR ProtocolError', async () => {
    const { server, logger, raw } = await setup();
    const id = uuidBytes();
    await raw.sendFrames('', 'v1', id, Buffer.from([T.WORK, T.WORK]), encode(['echo', [1], {}]));
    const { reply } = await readUntil(raw, id);
    expectError(reply, id, 'ProtocolError');
    expectWarned(logger, /type/);
    await expectRawStillServed(raw);
    await expectClientServed(server);
  });

  for (const [label, body] of [
    ['a number', 42],
    ['[1, 2, 3]', [1, 2, 3]],
    ['a string', 'echo'],
    ['null', null],
    ['[name] without args', ['echo']],
    ['[name, args-not-an-array, kwargs]', ['echo', 'x', {}]],
    ['[name, args, kwargs-an-array]', ['echo', [1], [2]]],
    ['four items', ['echo', [1], {}, 'extra']],
  ] as Array<[string, unknown]>) {
    it(`a WORK body that is not [name, args, kwargs] (${label}) -> ERROR ProtocolError`, async () => {
      const { server, logger, raw } = await setup();
      const id = uuidBytes();
      await raw.sendV1(id, T.WORK, body);
      const { reply, before } = await readUntil(raw, id);
      expect(before).to.have.length(0);
      expectError(reply, id, 'ProtocolError');
      expectWarned(logger, /WORK/);
      await expectRawStillServed(raw);
      await expectClientServed(server);
    });
  }

  for (const [label, frames] of [
    ['3 frames', ['', 'v1']],
    ['4 frames', ['', 'v1', uuidBytes()]],
    ['7 frames', ['', 'v1', uuidBytes(), Buffer.from([T.WORK]), encode(['echo', [1], {}]), 'extra']],
    ['6 frames without the empty delimiter', ['x', 'v1', uuidBytes(), Buffer.from([T.WORK]), encode(['echo', [1], {}])]],
  ] as Array<[string, Array<Buffer | string>]>) {
    it(`a wrong frame count (${label}) -> no answer, logged, still serving`, async () => {
      const { server, logger, raw } = await setup();
      await raw.sendFrames(...frames);
      await expectNoReplyAndRawStillServed(raw);
      expectWarned(logger, /bad message/);
      await expectClientServed(server);
    });
  }

  it('a message over maxMessageBytes -> ERROR MessageTooLargeError with the id echoed', async () => {
    const { server, logger, raw } = await setup({ maxMessageBytes: 1024 });
    const id = uuidBytes();
    await raw.sendV1(id, T.WORK, ['echo', ['x'.repeat(4096)], {}]);
    const { reply, before } = await readUntil(raw, id);
    expect(before).to.have.length(0);
    const [, message] = expectError(reply, id, 'MessageTooLargeError');
    expect(message).to.include('1024');
    expectWarned(logger, /maxMessageBytes/);
    await expectRawStillServed(raw);
    await expectClientServed(server);
  });

  it('an oversize compact packet -> compact ERROR MessageTooLargeError, logged, still serving', async () => {
    const { server, logger, raw } = await setup({ maxMessageBytes: 1024 });
    await raw.sendFrames(encode([T.WORK, 7, ['echo', ['x'.repeat(4096)]]]));
    const reply = await raw.next(5000);
    expect(reply, 'answered in the framing it came in: one packet').to.have.length(1);
    const [type, id, body] = decode(reply[0]!) as [number, number, [string, string, string]];
    expect(type).to.equal(T.ERROR);
    expect(id).to.equal(7);
    expect(body[0]).to.equal('MessageTooLargeError');
    expectWarned(logger, /maxMessageBytes/);
    await expectNoReplyAndRawStillServed(raw);
    await expectClientServed(server);
  });

  it('a compact WORK deadline past a timer\'s range (alone or in the map) -> compact ERROR ProtocolError, the handler never runs, still serving', async () => {
    const { server, raw } = await setup();
    let ran = 0;
    server.registerRpc('watch', (ctx: CallContext) => {
      ran++;
      return ctx.signal.aborted;
    }, { withContext: true });
    // 1e16 ms made the deadline's date invalid (a RangeError in a timer: the process died); 2^31 ms
    // overflowed the timer, which Node fires at once (the handler's signal aborted on arrival).
    for (const [id, extras] of [[1, 2 ** 31], [2, 1e16], [3, 1e300], [4, { d: 1e300 }]] as Array<[number, unknown]>) {
      await raw.sendFrames(encode([T.WORK, id, ['watch', [], null, extras]]));
      const [type, replyId, body] = decode((await raw.next(5000))[0]!) as [number, number, [string, string]];
      expect([type, replyId, body[0]], JSON.stringify(extras)).to.deep.equal([T.ERROR, id, 'ProtocolError']);
      expect(body[1]).to.match(/deadline/);
    }
    expect(ran, 'no handler ran for a refused WORK').to.equal(0);
    // The largest deadline allowed is a working one: the handler runs, its signal not aborted.
    await raw.sendFrames(encode([T.WORK, 5, ['watch', [], null, 2 ** 31 - 1]]));
    expect(decode((await raw.next(5000))[0]!)).to.deep.equal([T.OK, 5, false]);
    await expectClientServed(server);
  });

  for (const [label, packet] of [
    ['truncated MessagePack', TRUNCATED],
    ['an array32 header with nothing after it', HUGE_TRUNCATED],
    ['text that is not MessagePack', Buffer.from('this is not msgpack \xff\xfe', 'latin1')],
    ['a valid value that is not [type, id, body]', encode({ hello: 'world' })],
    ['a [type, id, body] with a non-numeric type', encode(['WORK', 1, ['echo', [1]]])],
  ] as Array<[string, Buffer]>) {
    it(`a garbage compact packet (${label}) -> no answer, logged, still serving`, async () => {
      const { server, logger, raw } = await setup();
      await raw.sendFrames(packet);
      await expectNoReplyAndRawStillServed(raw);
      expectWarned(logger, /bad message/);
      await expectClientServed(server);
    });
  }

  it('an unknown method -> ERROR ServiceNotFoundError with the id echoed', async () => {
    const { server, raw } = await setup();
    const id = uuidBytes();
    await raw.sendV1(id, T.WORK, ['no.such.method', [1, 2], {}]);
    const { reply } = await readUntil(raw, id);
    const [, message] = expectError(reply, id, 'ServiceNotFoundError');
    expect(message).to.include('no.such.method');
    await expectRawStillServed(raw);
    await expectClientServed(server);
  });

  it('OK and ERROR answers that match no pending call are dropped: no answer, still serving', async () => {
    const { server, logger, raw } = await setup();
    await raw.sendV1(uuidBytes(), T.OK, 'a result nobody asked for');
    await raw.sendV1(uuidBytes(), T.ERROR, ['ValueError', 'nobody asked', 'tb']);
    // An id in zeropeer's own 16-byte form, but not one this server made.
    const forged = Buffer.concat([Buffer.from('zp'), Buffer.alloc(10), Buffer.from([0, 0, 0, 1])]);
    await raw.sendV1(forged, T.OK, 'forged');
    await raw.sendFrames(encode([T.OK, 1, 'compact result nobody asked for']));
    await raw.sendFrames(encode([T.ERROR, 2, ['Error', 'compact error nobody asked for', '']]));
    await expectNoReplyAndRawStillServed(raw);
    const dropped = logger.entries.filter((e) => /no pending call/.test(e.message) && e.context?.['routingId'] === BAD && e.context?.['peer'] === 'service');
    expect(dropped, logger.text()).to.have.length(5);
    expect(server.pendingCalls).to.equal(0);
    await expectClientServed(server);
  });

  it('an OK with a garbage body that matches no pending call -> no answer, logged, still serving', async () => {
    const { server, logger, raw } = await setup();
    await raw.sendV1(uuidBytes(), T.OK, TRUNCATED, { raw: true });
    await raw.sendV1(uuidBytes(), T.ERROR, TRUNCATED, { raw: true });
    await expectNoReplyAndRawStillServed(raw);
    expectWarned(logger, /bad message/);
    await expectClientServed(server);
  });

  it('garbage answers do not settle, or leak, the calls the server made to that peer', async () => {
    const { server, raw } = await setup();
    // One WORK makes the raw peer known by its routing id (noop), so that the server can call it.
    await expectRawStillServed(raw);
    const answer = server.sendTo(BAD).ping('x');
    const work = await raw.next(5000);
    expect([...work[3]!]).to.deep.equal([T.WORK]);
    const callId = work[2]!;

    await raw.sendV1(uuidBytes(), T.OK, 'not yours');
    await raw.sendV1(uuidBytes(), T.ERROR, ['Error', 'not yours', '']);
    await raw.sendFrames(encode([T.OK, 999_999, 'not yours']));
    await expectNoReplyAndRawStillServed(raw);
    expect(server.pendingCalls, 'the real call is still pending').to.equal(1);

    await raw.sendV1(callId, T.OK, 'pong');
    expect(await answer).to.equal('pong');
    expect(server.pendingCalls).to.equal(0);
  });

  it('a garbage answer to a call the server made rejects that call with ProtocolError at once', async () => {
    const { server, raw } = await setup();
    await expectRawStillServed(raw);
    const answer = server.sendTo(BAD, { timeoutMs: 8000 }).ping();
    const work = await raw.next(5000);
    await raw.sendV1(work[2]!, T.OK, TRUNCATED, { raw: true });
    const error = await answer.then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(ProtocolError);
    expect(server.pendingCalls).to.equal(0);
    await expectRawStillServed(raw);
    await expectClientServed(server);
  });

  it('a flood of 200 bad messages: every WORK answered, nothing pending, nothing leaked, still serving', async () => {
    const { server, logger, raw } = await setup({ maxMessageBytes: 1024 });
    const kinds: Array<() => Promise<Buffer | undefined>> = [
      async () => { const id = uuidBytes(); await raw.sendV1(id, T.WORK, TRUNCATED, { raw: true }); return id; },
      async () => { const id = uuidBytes(); await raw.sendFrames('', 'v2', id, Buffer.from([T.WORK]), encode(['echo', [1], {}])); return id; },
      async () => { const id = uuidBytes(); await raw.sendV1(id, 0x7f, ['echo', [1], {}]); return id; },
      async () => { const id = uuidBytes(); await raw.sendV1(id, T.WORK, [1, 2, 3]); return id; },
      async () => { await raw.sendFrames('', 'v1', uuidBytes()); return undefined; },
      async () => { const id = uuidBytes(); await raw.sendV1(id, T.WORK, ['echo', ['y'.repeat(4096)], {}]); return id; },
      async () => { await raw.sendFrames(HUGE_TRUNCATED); return undefined; },
      async () => { const id = uuidBytes(); await raw.sendV1(id, T.WORK, ['nope', [], {}]); return id; },
      async () => { await raw.sendV1(uuidBytes(), T.OK, 'stray'); return undefined; },
      async () => { await raw.sendV1(uuidBytes(), T.ERROR, TRUNCATED, { raw: true }); return undefined; },
    ];
    const expected = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const id = await kinds[i % kinds.length]!();
      if (id) expected.add(id.toString('hex'));
    }
    const last = uuidBytes();
    await raw.sendV1(last, T.WORK, ['echo', ['done'], {}]);
    const { reply, before } = await readUntil(raw, last, 8000);
    expect(decode(reply[4]!)).to.equal('done');
    // Every bad WORK-like message got exactly one ERROR, and nothing else was answered.
    const answered = before.map((frames) => {
      expect([...frames[3]!]).to.deep.equal([T.ERROR]);
      return frames[2]!.toString('hex');
    });
    expect(new Set(answered)).to.deep.equal(expected);
    expect(answered).to.have.length(expected.size);

    expect(server.pendingCalls).to.equal(0);
    expect(server.connectedPeers()).to.deep.equal([BAD]);
    expect(server.stats().connections, 'one connection record').to.equal(1);
    // One line per misbehaving peer per interval (a flood must not cost a log line per message).
    const warned = logger.entries.filter((e) => e.level === 'warn' && e.context?.['routingId'] === BAD && e.message.startsWith('bad message'));
    expect(warned.length).to.be.within(1, 2);
    await expectClientServed(server);
  });

  it('an empty frame from a peer (a fake ROUTER_NOTIFY) does not leak its connection record once it leaves', async () => {
    // ROUTER_NOTIFY announces a connect or a disconnect as [routing id, '']; a peer can send exactly
    // that. The server takes it for a disconnect, then the real disconnect reads as a connect: the
    // server's probe of the route on every connect must find nobody and drop the record.
    const { server, raw } = await setup();
    await expectRawStillServed(raw);
    const connections = connectionRecords(server);
    expect(connections.byKey(BAD)).not.to.equal(undefined);
    await raw.sendFrames('');
    raw.close();
    // The transport is gone: its record must go too (as it does in the control test below).
    await until(() => connections.byKey(BAD) === undefined, 3000, 'the connection record of the peer that left is dropped');
    await expectClientServed(server);
  });

  it('an empty frame from a peer that stays is checked against the route and ignored: record, identity and pushes kept', async () => {
    // Taken for a disconnect, it used to drop the record (and the login throttle kept with it).
    const { server, raw, logger } = await setup();
    await expectRawStillServed(raw);
    const connections = connectionRecords(server);
    const record = connections.byKey(BAD);
    expect(record).not.to.equal(undefined);
    const gone: unknown[] = [];
    server.on('peer:gone', (identity: string) => gone.push(identity));
    await raw.sendFrames('');
    await until(() => logger.entries.some((e) => e.message.startsWith('an empty message from a connected peer was ignored') && e.context?.['routingId'] === BAD),
      8000, 'the server checked the route and ignored the empty message');
    expect(connections.byKey(BAD), 'the same record').to.equal(record);
    expect(server.connectedPeers()).to.deep.equal([BAD]);
    expect(gone, 'no peer:gone').to.deep.equal([]);
    const pushed = server.sendTo(BAD).echo('still here');
    const work = await raw.next(5000);
    expect([...work[3]!]).to.deep.equal([T.WORK]);
    await raw.sendV1(work[2]!, T.OK, 'still here');
    expect(await pushed).to.equal('still here');
    await expectRawStillServed(raw);
  });

  it('control: a peer that leaves without misbehaving leaves no connection record', async () => {
    const { server, raw } = await setup();
    await expectRawStillServed(raw);
    const connections = connectionRecords(server);
    expect(connections.byKey(BAD)).not.to.equal(undefined);
    raw.close();
    await until(() => connections.byKey(BAD) === undefined, 3000, 'the connection record of the peer that left is dropped');
    await expectClientServed(server);
  });
});

describe('bad input: a client survives a server that answers with garbage', () => {
  afterEach(cleanup);

  /** A zeropeer Client connected to a RawServer, its HELLO answered AUTHENTICATED with `capabilities`. */
  async function connectedClient(capabilities: string): Promise<{ client: Client; server: RawServer; logger: RecordingLogger; routingId: Buffer }> {
    const server = new RawServer();
    track(server);
    const endpoint = await server.bind();
    const logger = recordingLogger();
    const client = new Client('service', { logger, timeoutMs: 8000, drainTimeoutMs: 50 });
    track(client);
    const connected = once(client, 'connected', 5000);
    client.connect(endpoint);
    await client.start();
    const hello = await server.next();
    expect(hello, 'a v1 HELLO').to.have.length(6);
    expect([...hello[4]!]).to.deep.equal([T.HELLO]);
    const routingId = hello[0]!;
    await server.send([routingId, '', 'v1', hello[3]!, Buffer.from([T.AUTHENTICATED]), capabilities]);
    await connected;
    return { client, server, logger, routingId };
  }

  it('a v1 OK whose body is garbage MessagePack rejects the call with ProtocolError (not a timeout)', async () => {
    const { client, server, logger, routingId } = await connectedClient('pseud says hi');
    const answer = client.call.echo('x');
    const work = await server.next();
    expect(work).to.have.length(6);
    expect([...work[4]!]).to.deep.equal([T.WORK]);
    expect(decode(work[5]!)).to.deep.equal(['echo', ['x'], {}]);
    await server.send([routingId, '', 'v1', work[3]!, Buffer.from([T.OK]), TRUNCATED]);
    const error = await answer.then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(ProtocolError);
    expect(client.pendingCalls).to.equal(0);
    expect(logger.entries.some((e) => e.level === 'warn' && e.context?.['peer'] === 'service' && e.context?.['routingId'] === 'service'),
      logger.text()).to.equal(true);

    // The client goes on working with the same server.
    const again = client.call.echo('y');
    const work2 = await server.next();
    await server.send([routingId, '', 'v1', work2[3]!, Buffer.from([T.OK]), encode('y')]);
    expect(await again).to.equal('y');
  });

  it('a v1 ERROR whose body is not [class, message, stack] rejects the call with ProtocolError', async () => {
    const { client, server, routingId } = await connectedClient('pseud says hi');
    const answer = client.call.echo('x');
    const work = await server.next();
    await server.send([routingId, '', 'v1', work[3]!, Buffer.from([T.ERROR]), encode(42)]);
    const error = await answer.then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(ProtocolError);
    expect(client.pendingCalls).to.equal(0);
  });

  it('a compact OK whose body is garbage rejects the call with ProtocolError (not a timeout)', async () => {
    const { client, server, routingId } = await connectedClient(COMPACT_CAPABILITY);
    const answer = client.call.echo('x');
    const work = await server.next();
    expect(work, 'compact framing: routing id + packet').to.have.length(2);
    const [type, id] = decode(work[1]!) as [number, number, unknown];
    expect(type).to.equal(T.WORK);
    // A readable head [OK, id, ...] and a truncated body.
    await server.send([routingId, Buffer.concat([Buffer.from([0x93, T.OK]), encode(id), TRUNCATED])]);
    const error = await answer.then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(ProtocolError);
    expect(client.pendingCalls).to.equal(0);
  });
});
