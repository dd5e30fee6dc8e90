/**
 * proxyTo with an upstream that is not zeropeer (a pseud server, protocol v1, played by hand):
 * the calls the proxy cannot serve go upstream as plain v1 WORK (no `_zeropeer.proxy`), in plain
 * MessagePack, and pseud's answers (OK, ERROR) come back to the caller.
 */
import { expect } from 'chai';
import { decode, encode } from 'msgpackr';
import { Client, EncodingError, MessageType, RemoteError, UnauthorizedError, type ClientOptions, type Server } from '../lib/index.js';
import { cleanup, isProbe, RawServer, recordingLogger, rejection, sleep, startClient, startServer, track } from './helpers.js';

const T = MessageType;

/** A v1 WORK as the raw server got it: [routing id, '', 'v1', id, type, body]. */
function workOf(frames: Buffer[]): { name: string; args: unknown[]; kwargs: Record<string, unknown> } {
  expect(frames, 'v1: 6 frames').to.have.length(6);
  expect([...frames[4]!], 'a WORK').to.deep.equal([T.WORK]);
  const [name, args, kwargs] = decode(frames[5]!) as [string, unknown[], Record<string, unknown>];
  return { name, args, kwargs };
}

/** Answers a v1 message. */
function reply(server: RawServer, to: Buffer[], type: number, body: Buffer | string): Promise<void> {
  return server.send([to[0]!, '', 'v1', to[3]!, Buffer.from([type]), body]);
}

describe('proxyTo a pseud upstream (v1, not zeropeer)', () => {
  afterEach(cleanup);

  /** A raw pseud server, the proxy's client of it (ready), the proxy, and a zeropeer client of the proxy. */
  async function chain(probe: 'error' | 'none', upstreamOptions: ClientOptions = {}): Promise<{ pseud: RawServer; upstream: Client; edge: Server; caller: Client }> {
    const pseud = track(new RawServer({ probe }));
    const endpoint = await pseud.bind();
    const upstream = track(new Client('service', { logger: recordingLogger(), helloTimeoutMs: 60_000, timeoutMs: 8000, drainTimeoutMs: 50, ...upstreamOptions }));
    upstream.connect(endpoint);
    await upstream.start();
    const edge = await startServer({ proxyTo: upstream }, 'tcp', 'edge');
    edge.registerRpc('local', () => 'edge');
    const caller = await startClient(edge, { userId: 'alice', timeoutMs: 8000 });
    return { pseud, upstream, edge, caller };
  }

  it('a call the proxy cannot serve goes upstream as a plain v1 WORK of its own name; the OK comes back', async () => {
    const { pseud, caller } = await chain('error');
    expect(await caller.call.local(), 'served by the proxy itself').to.equal('edge');
    const result = caller.call.string.lower('ABC');
    const frames = await pseud.next();
    expect(workOf(frames), 'pseud sees the call itself, not _zeropeer.proxy').to.deep.equal({ name: 'string.lower', args: ['ABC'], kwargs: {} });
    await reply(pseud, frames, T.OK, encode('abc'));
    expect(await result).to.equal('abc');
  });

  it("pseud's ERROR reaches the caller as RemoteError with pseud's class name; keyword arguments go as pseud's kwargs map", async () => {
    const { pseud, caller } = await chain('error');
    const result = caller.invoke('compute', [1], { kwargs: { precise: true } });
    const frames = await pseud.next();
    expect(workOf(frames)).to.deep.equal({ name: 'compute', args: [1], kwargs: { precise: true } });
    await reply(pseud, frames, T.ERROR, encode(['ValueError', 'bad input', 'Traceback ...']));
    const error = await rejection(result);
    expect(error).to.be.instanceOf(RemoteError);
    expect((error as RemoteError).remoteName).to.equal('ValueError');
    expect(error.message).to.contain('bad input');
  });

  it('arguments that came in compact framing go upstream as standard MessagePack: Set as array, undefined as nil, a 64-bit BigInt as an integer, bytes as bin', async () => {
    const { pseud, caller } = await chain('error');
    const result = caller.call.store(new Set([1, 2]), undefined, 2n ** 40n, new Uint8Array([1, 2, 3]), new Map([['k', 'v']]));
    const frames = await pseud.next();
    const body = frames[5]!;
    const { args } = workOf(frames);
    expect(args[0], 'Set as an array').to.deep.equal([1, 2]);
    expect(args[1], 'undefined as nil').to.equal(null);
    const int64 = [0, 0, 1, 0, 0, 0, 0, 0];
    expect(body.includes(Buffer.from([0xd3, ...int64])) || body.includes(Buffer.from([0xcf, ...int64])), 'a BigInt within 64 bits as an int64 / uint64').to.equal(true);
    expect(Number(args[2])).to.equal(2 ** 40);
    expect(Buffer.from(args[3] as Uint8Array), 'bytes as bin').to.deep.equal(Buffer.from([1, 2, 3]));
    expect(args[4], 'a Map as a map').to.deep.equal({ k: 'v' });
    expect(body.includes(Buffer.from([0xc4, 0x03, 1, 2, 3])), 'bin 8 of 3 bytes').to.equal(true);
    await reply(pseud, frames, T.OK, encode(null));
    expect(await result).to.equal(null);
  });

  it('a BigInt beyond 64 bits is refused with EncodingError before anything goes upstream', async () => {
    const { pseud, caller } = await chain('error');
    const error = await rejection(caller.call.store(2n ** 70n));
    expect(error).to.be.instanceOf(EncodingError);
    // The next call is the next thing pseud gets: nothing was sent for the refused one.
    const result = caller.call.ping();
    const frames = await pseud.next();
    expect(workOf(frames).name).to.equal('ping');
    await reply(pseud, frames, T.OK, encode('pong'));
    expect(await result).to.equal('pong');
  });

  it("a pseud server that authenticates on demand: the relay waits for pseud's flow (WORK -> UNAUTHORIZED -> HELLO -> AUTHENTICATED), then runs as the proxy", async () => {
    const { pseud, caller } = await chain('none', { security: 'plain', userId: 'edge', password: 'edge-secret' });
    // The caller's call arrives before the upstream client knows what its server is.
    const result = caller.call.report('q');
    const probe = await pseud.next();
    expect(isProbe(probe), 'the upstream client opens with its probe').to.equal(true);
    await reply(pseud, probe, T.UNAUTHORIZED, 'Authentication Required');
    const hello = await pseud.next();
    expect([...hello[4]!], 'then HELLO').to.deep.equal([T.HELLO]);
    expect(decode(hello[5]!), 'the proxy logs in as itself: the caller is not known upstream').to.deep.equal(['edge', 'edge-secret']);
    await reply(pseud, hello, T.AUTHENTICATED, "Welcome 'edge'");
    // Then the relayed call (and, for the wait, an inspect that pseud answers ERROR): never _zeropeer.proxy.
    let relayed: Buffer[] | undefined;
    for (let i = 0; i < 2 && !relayed; i++) {
      const frames = await pseud.next();
      const { name } = workOf(frames);
      expect(name, 'no _zeropeer.proxy to pseud').to.not.equal('_zeropeer.proxy');
      if (name === 'report') relayed = frames;
      else await reply(pseud, frames, T.ERROR, encode(['ServiceNotFoundError', name, 'Traceback ...']));
    }
    expect(relayed, 'the relayed call reached pseud').to.not.equal(undefined);
    expect(workOf(relayed!).args).to.deep.equal(['q']);
    await reply(pseud, relayed!, T.OK, encode('done'));
    expect(await result).to.equal('done');
  });

  it('a pseud server that refuses the proxy\'s credentials: the relayed call fails with UnauthorizedError, and the proxy goes on serving', async () => {
    const { pseud, caller } = await chain('none', { security: 'plain', userId: 'edge', password: 'wrong' });
    const result = caller.call.report('q');
    const probe = await pseud.next();
    await reply(pseud, probe, T.UNAUTHORIZED, 'Authentication Required');
    const hello = await pseud.next();
    await reply(pseud, hello, T.UNAUTHORIZED, 'Authentication Error');
    expect(await rejection(result)).to.be.instanceOf(UnauthorizedError);
    expect(await caller.call.local(), 'the proxy itself still answers').to.equal('edge');
  });

  it('the caller\'s cancel stops the wait for pseud\'s answer (a v1 server cannot be told; its late answer is dropped)', async () => {
    const { pseud, caller, edge } = await chain('error');
    const abort = new AbortController();
    const result = caller.invoke('slow', [], { signal: abort.signal });
    const frames = await pseud.next();
    expect(workOf(frames).name).to.equal('slow');
    abort.abort();
    await rejection(result);
    await reply(pseud, frames, T.OK, encode('late'));
    // The proxy is still well: the next relayed call works.
    const next = caller.call.ping();
    const again = await pseud.next();
    await reply(pseud, again, T.OK, encode('pong'));
    expect(await next).to.equal('pong');
    await sleep(0);
    expect(edge.pendingCalls, 'nothing left pending on the proxy').to.equal(0);
  });
});
