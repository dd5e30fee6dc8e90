/**
 * Heartbeats and the peer table: peers that die (SIGKILL), hang (SIGSTOP), stop, restart or go
 * silent, seen from the other side; heartbeat backends; `heartbeat: false`.
 *
 * Peers that must die for real run in child processes (test/fixtures/peer-process.ts). Heartbeats
 * are short (100 ms, timeout 400 ms); every assertion is on events and outcomes, never on how long
 * something took (waits have generous limits and only bound how long a failing test hangs).
 */
import { MessageType } from '../lib/index.js';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { encode as packPlain } from 'msgpackr';
import * as zmq from 'zeromq';
import {
  Client,
  MemoryHeartbeatBackend,
  PeerNotConnectedError,
  Server,
  ServiceClosedError,
  TimeoutError,
  registerHeartbeatBackend,
  type GoneReason,
  type HeartbeatBackend,
  type HeartbeatOptions,
  type TrackedPeer,
} from '../lib/index.js';
import { RawPeer, cleanup, isHeartbeat, isProbe, once, recordingLogger, sleep, startClient, startServer, track, until, uuidBytes } from './helpers.js';

/** Message types, from the exported table (never copied constants). */
const T = MessageType;

/** Short heartbeats for every peer in this file. */
const HB = { intervalMs: 100, timeoutMs: 400 } as const;
/** A deadline no test should ever reach: a call that ends with TimeoutError failed the test. */
const LONG = 15_000;

import type { RouterSocket } from '../lib/transport/router-socket.js';
import { killChildren, spawnPeer, type PeerChild } from './peer-child.js';

// ---- raw sockets -----------------------------------------------------------------------------

/** Things this file opened besides cleanup()'s (raw servers, clients of them), closed after each test. */
const closers: Array<() => void | Promise<void>> = [];

/**
 * A raw ROUTER bound with routing id 'service', playing a server by hand in pseud v1. Keeps every
 * message it received (routing id first); `respond` runs on each as it arrives.
 */
class RawServer {
  readonly socket = new zmq.Router({ routingId: 'service', mandatory: true, linger: 0 });
  readonly received: Buffer[][] = [];
  respond: ((frames: Buffer[]) => void) | undefined;
  #watchers: Array<() => void> = [];

  constructor() {
    closers.push(() => this.socket.close());
    void this.#receive();
  }

  async #receive(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        if (isProbe(frames)) {
          this.reply(frames, T.UNAUTHORIZED, 'Authentication Required'); // as a pseud server with authentication: HELLO next
          continue;
        }
        this.received.push(frames);
        this.respond?.(frames);
        for (const watcher of [...this.#watchers]) watcher();
      }
    } catch {
      // closed
    }
  }

  async bind(): Promise<string> {
    await this.socket.bind('tcp://127.0.0.1:0');
    return this.socket.lastEndpoint!;
  }

  /** Resolves with the first message received at index `from` or later that `match` accepts, and its index. */
  waitFor(match: (frames: Buffer[]) => boolean, from = 0, timeoutMs = 5000): Promise<{ frames: Buffer[]; index: number }> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        for (let i = from; i < this.received.length; i++) {
          if (match(this.received[i]!)) {
            clearTimeout(timer);
            this.#watchers = this.#watchers.filter((w) => w !== watcher);
            resolve({ frames: this.received[i]!, index: i });
            return true;
          }
        }
        return false;
      };
      const watcher = (): void => void check();
      const timer = setTimeout(() => {
        this.#watchers = this.#watchers.filter((w) => w !== watcher);
        reject(new Error(`no matching message within ${timeoutMs} ms (received ${this.received.length})`));
      }, timeoutMs);
      this.#watchers.push(watcher);
      check();
    });
  }

  /** Answers a v1 message (routing id first) with `type` and a string body, echoing its id. */
  reply(to: Buffer[], type: number, body: string | Buffer = ''): void {
    this.socket.send([to[0]!, '', 'v1', to[3]!, Buffer.from([type]), body]).catch(() => {});
  }

  /** A v1 HEARTBEAT to the peer that sent `to`: it shows this server speaks heartbeats. */
  heartbeat(to: Buffer[]): void {
    this.socket.send([to[0]!, '', 'v1', '', Buffer.from([T.HEARTBEAT]), '']).catch(() => {});
  }
}

/** Whether frames (routing id first) are a v1 message of `type`. */
function isV1(frames: Buffer[], type: number): boolean {
  return frames.length === 6 && frames[2]!.toString() === 'v1' && frames[4]!.length === 1 && frames[4]![0] === type;
}

// ---- small helpers ----------------------------------------------------------------------------

/** Resolves with the reason of the next 'peer:gone' for `identity`. */
function goneOf(server: Server, identity: string, timeoutMs = 5000): Promise<GoneReason> {
  return new Promise((resolve, reject) => {
    const listener = (who: string, reason: GoneReason): void => {
      if (who !== identity) return;
      clearTimeout(timer);
      server.off('peer:gone', listener);
      resolve(reason);
    };
    const timer = setTimeout(() => {
      server.off('peer:gone', listener);
      reject(new Error(`no 'peer:gone' for "${identity}" within ${timeoutMs} ms`));
    }, timeoutMs);
    server.on('peer:gone', listener);
  });
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => expect.fail(`expected a rejection, got ${JSON.stringify(value)}`),
    (error: unknown) => error,
  );
}

/** Constructs a peer that must be refused; stops it if it was not, and returns what was thrown. */
async function refused(make: () => { stop(): Promise<void> }): Promise<unknown> {
  let peer: { stop(): Promise<void> } | undefined;
  try {
    peer = make();
  } catch (error) {
    return error;
  }
  await peer.stop();
  return expect.fail('construction was expected to throw');
}

/** ipc paths made by this file; a killed server leaves its socket file behind, removed after each test. */
const ipcPaths: string[] = [];

function ipcEndpoint(): string {
  const path = join(tmpdir(), `zeropeer-hb-${randomUUID()}.sock`);
  ipcPaths.push(path);
  return `ipc://${path}`;
}

async function serverWith(heartbeat: HeartbeatOptions | false, extra: Record<string, unknown> = {}): Promise<Server> {
  return startServer({ heartbeat, timeoutMs: LONG, ...extra });
}

/** A RawPeer that says HELLO as `login` in v1 and gets AUTHENTICATED; then it says nothing more. */
async function silentRawPeer(server: Server, login: string): Promise<RawPeer> {
  const raw = new RawPeer(server.id);
  await raw.connect(server.endpoint);
  await raw.sendV1(uuidBytes(), T.HELLO, [login, '']);
  for (;;) {
    const frames = await raw.next(5000);
    if (frames[3]?.[0] === T.AUTHENTICATED) return raw;
  }
}

// ---- the suites ------------------------------------------------------------------------------

describe('heartbeats and the peer table', function () {
  this.timeout(20_000);

  afterEach(async () => {
    await killChildren();
    await cleanup();
    await Promise.all(closers.splice(0).reverse().map(async (close) => close()));
    for (const path of ipcPaths.splice(0)) rmSync(path, { force: true });
  });

  describe('a client in another process, seen from the server', () => {
    async function clientChild(server: Server, userId: string): Promise<PeerChild> {
      const authenticated = new Promise<void>((resolve) => {
        const listener = (identity: string): void => {
          if (identity !== userId) return;
          server.off('peer:authenticated', listener);
          resolve();
        };
        server.on('peer:authenticated', listener);
      });
      const child = spawnPeer('client', server.endpoint, userId, JSON.stringify({ heartbeat: HB, helloTimeoutMs: 10_000 }));
      await child.line((l) => l === 'ready');
      await authenticated;
      expect(server.connectedPeers()).to.include(userId);
      return child;
    }

    it('killed with SIGKILL: peer:gone (disconnect or timeout), unlisted, and a call in flight to it rejects with PeerNotConnectedError', async () => {
      const server = await serverWith(HB);
      const child = await clientChild(server, 'killed');
      expect(await server.sendTo('killed').addition(2, 4)).to.equal(6);

      const inFlight = server.sendTo('killed', { timeoutMs: LONG }).hang();
      inFlight.catch(() => {});
      await child.line((l) => l === 'called hang');

      const gone = goneOf(server, 'killed');
      child.proc.kill('SIGKILL');
      expect(await gone).to.be.oneOf(['disconnect', 'timeout']);
      expect(server.connectedPeers()).not.to.include('killed');

      const error = await rejection(inFlight);
      expect(error, String(error)).to.be.instanceOf(PeerNotConnectedError);
      expect(error).not.to.be.instanceOf(TimeoutError);

      // And a new call to it fails at once, not at its deadline.
      const late = await rejection(server.sendTo('killed', { timeoutMs: LONG }).addition(1, 1));
      expect(late).to.be.instanceOf(PeerNotConnectedError);
    });

    it('frozen with SIGSTOP (its connection stays open): peer:gone (timeout or disconnect)', async () => {
      const server = await serverWith(HB);
      const child = await clientChild(server, 'frozen');
      const inFlight = server.sendTo('frozen', { timeoutMs: LONG }).addition(1, 2);
      expect(await inFlight).to.equal(3);

      const gone = goneOf(server, 'frozen');
      child.proc.kill('SIGSTOP');
      expect(await gone).to.be.oneOf(['timeout', 'disconnect']);
      expect(server.connectedPeers()).not.to.include('frozen');
      const late = await rejection(server.sendTo('frozen', { timeoutMs: LONG }).addition(1, 1));
      expect(late).to.be.instanceOf(PeerNotConnectedError);

      // Thawed, it finds its way back by itself (a new HELLO) and answers again.
      const back = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no peer:authenticated for "frozen" within 10 s of SIGCONT')), 10_000);
        server.on('peer:authenticated', (identity) => {
          if (identity !== 'frozen') return;
          clearTimeout(timer); // no timer outlives the test
          resolve();
        });
      });
      child.proc.kill('SIGCONT');
      await back;
      expect(await server.sendTo('frozen', { timeoutMs: LONG }).addition(2, 2)).to.equal(4);
      // killChildren() kills it.
    });

    it('stopped by its own client.stop(): peer:gone with reason "stopped"', async () => {
      const server = await serverWith(HB);
      const child = await clientChild(server, 'leaving');
      const gone = goneOf(server, 'leaving');
      child.proc.stdin!.write('stop\n');
      expect(await gone).to.equal('stopped');
      expect(server.connectedPeers()).not.to.include('leaving');
      await child.line((l) => l === 'stopped');
      await child.exited;
      expect(child.proc.exitCode, child.stderr()).to.equal(0);
    });
  });

  describe('a server in another process, seen from a Client', () => {
    /** A server child on a fresh ipc endpoint, and a started Client of it. */
    async function serverChildAndClient(userId: string): Promise<{ endpoint: string; child: PeerChild; client: Client; events: string[] }> {
      const endpoint = ipcEndpoint();
      const child = spawnPeer('server', endpoint, JSON.stringify({ heartbeat: HB }));
      await child.line((l) => l.startsWith('ready '));
      const client = await startClientOf(endpoint, { userId, heartbeat: HB, timeoutMs: LONG, helloTimeoutMs: 10_000 });
      const events: string[] = [];
      client.on('disconnected', () => events.push('disconnected'));
      client.on('reconnected', () => events.push('reconnected'));
      expect(await client.call.whoami()).to.equal(userId);
      return { endpoint, child, client, events };
    }

    it('killed and restarted on the same ipc endpoint: the call in flight rejects with ServiceClosedError, a call made meanwhile goes through, reconnected', async () => {
      const { endpoint, child: first, client, events } = await serverChildAndClient('survivor');
      const firstPid = await client.call.pid();

      const inFlight = client.call.hang();
      inFlight.catch(() => {});
      await first.line((l) => l === 'called hang');

      first.proc.kill('SIGKILL');
      const lost = await rejection(inFlight);
      expect(lost, String(lost)).to.be.instanceOf(ServiceClosedError);
      await first.exited;

      // Made while the server is away: it waits for the server, bounded by its deadline.
      const meanwhile = client.callWith({ timeoutMs: LONG }).echo('after the restart');
      meanwhile.then(() => events.push('answered'), () => events.push('failed'));

      const reconnected = once(client, 'reconnected', 10_000);
      const second = spawnPeer('server', endpoint, JSON.stringify({ heartbeat: HB }));
      await second.line((l) => l.startsWith('ready '));
      await reconnected;
      expect(await meanwhile).to.equal('after the restart');
      expect(await client.call.whoami()).to.equal('survivor');
      expect(await client.call.pid()).not.to.equal(firstPid);
      await second.line((l) => l === 'authenticated survivor');
      expect(events).to.deep.equal(['disconnected', 'reconnected', 'answered']);
    });

    it('killed with SIGKILL: the Client emits \'disconnected\', then \'reconnected\' once it is back', async () => {
      // Regression: onTransportDown once read `up` after #onNotify had cleared it, so a transport
      // drop never emitted 'disconnected'.
      const { endpoint, child, client, events } = await serverChildAndClient('watcher');
      const disconnected = once(client, 'disconnected', 5000).then(() => true, () => false);
      child.proc.kill('SIGKILL');
      await child.exited;
      const reconnected = once(client, 'reconnected', 10_000);
      const second = spawnPeer('server', endpoint, JSON.stringify({ heartbeat: HB }));
      await second.line((l) => l.startsWith('ready '));
      await reconnected;
      expect(await disconnected, `'disconnected' emitted; events: ${events.join(', ')}`).to.equal(true);
      expect(events).to.deep.equal(['disconnected', 'reconnected']);
    });
  });

  describe('many clients on one server', () => {
    it('200 clients all listed, each answers a push; stopping half leaves exactly the other half (peer:gone "stopped" for each)', async function () {
      this.timeout(30_000);
      // Roomier heartbeats here: 200 peers in one event loop must not be taken for silent while they start.
      const heartbeat = { intervalMs: 200, timeoutMs: 3000 };
      const server = await serverWith(heartbeat);
      const ids = Array.from({ length: 200 }, (_, i) => `user-${String(i).padStart(3, '0')}`);
      const clients = await Promise.all(
        ids.map(async (userId) => {
          const client = await startClientOf(server.endpoint, { userId, heartbeat, helloTimeoutMs: 10_000, drainTimeoutMs: 10, timeoutMs: LONG });
          client.registerRpc('whoami', () => userId);
          return client;
        }),
      );
      await until(() => server.connectedPeers().length === ids.length, 10_000, 'all 200 listed');
      expect([...server.connectedPeers()].sort()).to.deep.equal(ids);

      const answers = await Promise.all(ids.map((id) => server.sendTo(id, { timeoutMs: LONG }).whoami()));
      expect(answers).to.deep.equal(ids);

      const gone = new Map<string, GoneReason[]>();
      server.on('peer:gone', (identity, reason) => gone.set(identity, [...(gone.get(identity) ?? []), reason]));
      const stopped = ids.filter((_, i) => i % 2 === 0);
      const kept = ids.filter((_, i) => i % 2 === 1);
      await Promise.all(clients.filter((_, i) => i % 2 === 0).map((client) => client.stop()));
      await until(() => gone.size === stopped.length, 10_000, 'a peer:gone for each stopped client');

      // A few intervals more: nothing else may leave, and the stopped ones' transport closing adds no event.
      await sleep(3 * heartbeat.intervalMs);
      expect([...gone.keys()].sort()).to.deep.equal(stopped);
      expect([...gone.values()].flat().every((reason) => reason === 'stopped'), JSON.stringify([...gone])).to.equal(true);
      expect([...gone.values()].every((reasons) => reasons.length === 1)).to.equal(true);
      expect([...server.connectedPeers()].sort()).to.deep.equal(kept);
    });
  });

  describe('one identity, a new connection', () => {
    it('a client restarted with the same identity: sendTo reaches the new one', async () => {
      const server = await serverWith(HB);
      const first = await startClient(server, { userId: 'dora', heartbeat: HB, timeoutMs: LONG });
      first.registerRpc('which', () => 'first');
      expect(await server.sendTo('dora').which()).to.equal('first');

      const gone = goneOf(server, 'dora');
      await first.stop();
      expect(await gone).to.equal('stopped');
      expect(server.connectedPeers()).not.to.include('dora');

      const second = await startClient(server, { userId: 'dora', heartbeat: HB, timeoutMs: LONG });
      second.registerRpc('which', () => 'second');
      expect(server.connectedPeers()).to.deep.equal(['dora']);
      expect(await server.sendTo('dora').which()).to.equal('second');
    });

    it('a second connection with the same identity replaces the first: peer:gone "replaced", calls to the old one fail, sendTo reaches the new one', async () => {
      const server = await serverWith(HB);
      const first = await startClient(server, { userId: 'erin', heartbeat: HB, timeoutMs: LONG });
      first.registerRpc('which', () => 'first');
      let hanging = false;
      first.registerRpc('hang', () => {
        hanging = true;
        return new Promise(() => {});
      });
      const inFlight = server.sendTo('erin', { timeoutMs: LONG }).hang();
      inFlight.catch(() => {});
      await until(() => hanging, 3000, 'the first client runs hang');

      const gone = goneOf(server, 'erin');
      const second = await startClient(server, { userId: 'erin', heartbeat: HB, timeoutMs: LONG });
      second.registerRpc('which', () => 'second');
      expect(await gone).to.equal('replaced');
      const error = await rejection(inFlight);
      expect(error, String(error)).to.be.instanceOf(PeerNotConnectedError);
      expect(server.connectedPeers()).to.deep.equal(['erin']);
      expect(await server.sendTo('erin').which()).to.equal('second');
    });

    it('a replaced client that keeps running does not take its identity back', async () => {
      // Regression: the replaced client, no longer sent HEARTBEATs, hit its heartbeat timeout, said
      // HELLO again and replaced the newer one: the two took the identity from each other forever.
      // A roomier timeout than HB: this test waits for nothing to happen, and a busy machine's stall
      // of a few hundred ms must not read as silence.
      const heartbeat = { intervalMs: 100, timeoutMs: 1000 };
      const server = await serverWith(heartbeat);
      const events: string[] = [];
      server.on('peer:gone', (identity, reason) => events.push(`gone ${identity} ${reason}`));
      const first = await startClient(server, { userId: 'gail', heartbeat, timeoutMs: LONG });
      first.registerRpc('which', () => 'first');
      const gone = goneOf(server, 'gail');
      const second = await startClient(server, { userId: 'gail', heartbeat, timeoutMs: LONG });
      second.registerRpc('which', () => 'second');
      expect(await gone).to.equal('replaced');
      // Two heartbeat timeouts: the identity must stay with the newest connection.
      await sleep(2 * (heartbeat.timeoutMs + heartbeat.intervalMs));
      expect(events).to.deep.equal(['gone gail replaced']);
      expect(await server.sendTo('gail').which()).to.equal('second');
    });
  });

  describe('heartbeat: false', () => {
    it('a raw peer that says HELLO and then nothing is declared gone "timeout" when heartbeats are on (and it is sent HEARTBEATs)', async () => {
      const server = await serverWith(HB);
      const gone = goneOf(server, 'mute');
      const raw = await silentRawPeer(server, 'mute');
      expect(server.connectedPeers()).to.include('mute');
      const beat = await raw.next(5000, { heartbeats: true });
      expect(isHeartbeat(beat), `a HEARTBEAT from the server: ${beat.map((f) => f.toString('hex')).join(' ')}`).to.equal(true);
      expect(await gone).to.equal('timeout');
      expect(server.connectedPeers()).not.to.include('mute');
    });

    it('with heartbeat: false on both sides no HEARTBEAT is sent, and a silent peer stays listed', async () => {
      // Both directions at once, over one wait longer than the default interval (3 s), so that a
      // `false` taken for "defaults" would show a HEARTBEAT here.
      const server = await serverWith(false);
      const gone: unknown[][] = [];
      server.on('peer:gone', (...args: unknown[]) => gone.push(args));
      const raw = await silentRawPeer(server, 'quiet');

      const rawServer = new RawServer();
      const endpoint = await rawServer.bind();
      rawServer.respond = (frames) => {
        if (isV1(frames, T.HELLO)) rawServer.reply(frames, T.AUTHENTICATED);
      };
      const client = await startClientOf(endpoint, { userId: 'calm', heartbeat: false, helloTimeoutMs: 10_000 });
      const clientEvents: string[] = [];
      client.on('disconnected', () => clientEvents.push('disconnected'));
      client.on('reconnected', () => clientEvents.push('reconnected'));
      const after = rawServer.received.length;

      const fromServer = await raw.next(3300, { heartbeats: true }).then(
        (frames) => frames,
        () => undefined,
      );
      expect(fromServer, 'no message at all from a server with heartbeat: false').to.equal(undefined);
      const fromClient = rawServer.received.slice(after);
      expect(fromClient.filter((f) => isV1(f, T.HEARTBEAT) || isHeartbeat(f.slice(1))), 'no HEARTBEAT from the client').to.have.length(0);
      expect(gone).to.deep.equal([]);
      expect(server.connectedPeers()).to.include('quiet');
      expect(clientEvents).to.deep.equal([]);
      expect(client.connected).to.equal(true);
    });

    it('never enables ZMTP heartbeats (they can abort libzmq); TCP keepalive is on instead', async () => {
      const on = new Server('zmtp-on', { heartbeat: { intervalMs: 150, timeoutMs: 700 } });
      const off = new Client('zmtp-off', { heartbeat: false });
      try {
        const socketOf = (peer: Server | Client): RouterSocket => (peer as unknown as { session: { socket: RouterSocket } }).session.socket;
        for (const peer of [on, off]) {
          expect(socketOf(peer).settings.heartbeatInterval).to.equal(0);
          expect(socketOf(peer).settings.tcpKeepalive).to.equal(1);
        }
      } finally {
        await on.stop();
        await off.stop();
      }
    });
  });

  describe('backends', () => {
    it('a backend object gets track, seen and untrack; what its expired() returns is gone "timeout"', async () => {
      const tracked: TrackedPeer[] = [];
      const untracked: Array<[TrackedPeer, string]> = [];
      const seen = new Map<string, number>();
      const doomed = new Set<string>();
      let closed = 0;
      const backend: HeartbeatBackend = {
        track: (peer) => void tracked.push(peer),
        untrack: (peer, reason) => void untracked.push([peer, reason]),
        seen: (key) => void seen.set(key, (seen.get(key) ?? 0) + 1),
        expired: () => {
          const keys = [...doomed];
          doomed.clear();
          return keys;
        },
        close: () => void closed++,
      };
      const server = new Server('service', { heartbeat: { ...HB, backend }, logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs: LONG });
      try {
        await server.bind('tcp://127.0.0.1:0');
        await server.start();
        const client = await startClientOf(server.endpoint, { userId: 'frank', heartbeat: HB, helloTimeoutMs: 10_000 });
        client.registerRpc('hang', () => new Promise(() => {}));

        await until(() => tracked.length === 1, 3000, 'track() called');
        const peer = tracked[0]!;
        expect(peer.identity).to.equal('frank');
        expect(peer.owner).to.equal('service');
        expect(peer.key).to.be.a('string').that.is.not.empty;
        // The client's heartbeats count as signs of life; the backend decides nothing has expired.
        await until(() => (seen.get(peer.key) ?? 0) >= 6, 5000, 'seen() for the client several times');
        expect(server.connectedPeers()).to.deep.equal(['frank']);
        expect(untracked).to.deep.equal([]);

        const inFlight = server.sendTo('frank', { timeoutMs: LONG }).hang();
        inFlight.catch(() => {});
        const gone = goneOf(server, 'frank');
        const back = once(server, 'peer:authenticated', 10_000);
        doomed.add(peer.key);
        expect(await gone).to.equal('timeout');
        expect(untracked).to.have.length(1);
        expect(untracked[0]![0].key).to.equal(peer.key);
        expect(untracked[0]![1]).to.equal('timeout');
        expect(server.connectedPeers()).not.to.include('frank');
        expect(await rejection(inFlight)).to.be.instanceOf(PeerNotConnectedError);

        // The client is alive: it notices the server stopped talking to it, and says HELLO again.
        expect(await back).to.deep.equal(['frank']);
        expect(server.connectedPeers()).to.deep.equal(['frank']);
        expect(tracked).to.have.length(2);
      } finally {
        await server.stop();
      }
      expect(closed).to.equal(1);
    });

    it('registerHeartbeatBackend(name, factory) then heartbeat: { backend: name } uses it', async () => {
      const name = `recording-${randomUUID()}`;
      const made: unknown[] = [];
      const tracked: TrackedPeer[] = [];
      const untracked: string[] = [];
      registerHeartbeatBackend(name, (options) => {
        made.push(options);
        const memory = new MemoryHeartbeatBackend();
        return {
          track: (peer, now) => {
            tracked.push(peer);
            memory.track(peer, now);
          },
          untrack: (peer, reason) => {
            untracked.push(`${peer.identity}:${reason}`);
            memory.untrack(peer);
          },
          seen: (key, now) => memory.seen(key, now),
          expired: (since) => memory.expired(since),
        };
      });
      expect(() => registerHeartbeatBackend(name, () => new MemoryHeartbeatBackend())).to.throw(TypeError);

      const server = await serverWith({ ...HB, backend: name });
      expect(made).to.deep.equal([{ intervalMs: HB.intervalMs, timeoutMs: HB.timeoutMs }]);
      const gone = goneOf(server, 'ghost');
      await silentRawPeer(server, 'ghost');
      expect(await gone).to.equal('timeout');
      expect(tracked.map((p) => p.identity)).to.deep.equal(['ghost']);
      expect(untracked).to.deep.equal(['ghost:timeout']);
    });

    it('refuses bad heartbeat settings with a TypeError at construction', async () => {
      const bad: Array<HeartbeatOptions> = [
        { backend: `no-such-backend-${randomUUID()}` },
        { intervalMs: 400, timeoutMs: 400 },
        { intervalMs: 500, timeoutMs: 400 },
        { intervalMs: 0, timeoutMs: 400 },
        { intervalMs: -100, timeoutMs: 400 },
        { intervalMs: 100, timeoutMs: 0 },
        { intervalMs: 100, timeoutMs: -400 },
        { intervalMs: Number.NaN, timeoutMs: 400 },
        { intervalMs: 100, timeoutMs: 400, backend: { track() {}, untrack() {}, seen() {} } as unknown as HeartbeatBackend },
      ];
      for (const heartbeat of bad) {
        const what = JSON.stringify(heartbeat, (_k, v: unknown) => (Number.isNaN(v) ? 'NaN' : v));
        expect(await refused(() => new Server('service', { heartbeat })), `Server ${what}`).to.be.instanceOf(TypeError);
        expect(await refused(() => new Client('service', { heartbeat })), `Client ${what}`).to.be.instanceOf(TypeError);
      }
    });
  });

  describe('a Client against a raw server', () => {
    it('sends HEARTBEAT (0x06) to an idle server that sent one, periodically, and stays connected while the server answers in kind', async () => {
      const rawServer = new RawServer();
      const endpoint = await rawServer.bind();
      rawServer.respond = (frames) => {
        if (isV1(frames, T.HELLO)) {
          rawServer.reply(frames, T.AUTHENTICATED);
          rawServer.heartbeat(frames); // shows it speaks heartbeats: from now on the client sends them
        }
        if (isV1(frames, T.HEARTBEAT)) rawServer.heartbeat(frames);
      };
      // A roomier timeout than HB (a stall of a few hundred ms must not read as silence), and
      // heartbeats spanning more than two timeouts: only the server's answers keep the client connected.
      const heartbeat = { intervalMs: 100, timeoutMs: 1000 };
      const client = await startClientOf(endpoint, { userId: 'beating', heartbeat, helloTimeoutMs: 10_000 });
      const events: string[] = [];
      client.on('disconnected', () => events.push('disconnected'));

      const hello = await rawServer.waitFor((f) => isV1(f, T.HELLO));
      let index = hello.index;
      for (let n = 0; n < 2 * (heartbeat.timeoutMs / heartbeat.intervalMs) + 4; n++) {
        const beat = await rawServer.waitFor((f) => isV1(f, T.HEARTBEAT), index + 1);
        expect(beat.frames[0]!.equals(hello.frames[0]!), 'from the same client').to.equal(true);
        expect([...beat.frames[4]!]).to.deep.equal([0x06]);
        index = beat.index;
      }
      const other = rawServer.received.slice(hello.index + 1).filter((f) => !isV1(f, T.HEARTBEAT));
      expect(other.map((f) => f.slice(1).map((x) => x.toString('hex')).join(' ')), 'nothing but HEARTBEATs').to.deep.equal([]);
      expect(events).to.deep.equal([]);
      expect(client.connected).to.equal(true);
    });

    it('a server that goes silent (connection open): disconnected, the call in flight rejects with ServiceClosedError; reconnected once a new HELLO is answered', async () => {
      const rawServer = new RawServer();
      const endpoint = await rawServer.bind();
      let answerHellos = true;
      rawServer.respond = (frames) => {
        if (answerHellos && isV1(frames, T.HELLO)) {
          rawServer.reply(frames, T.AUTHENTICATED);
          rawServer.heartbeat(frames); // it speaks heartbeats: its silence will count
        }
      };
      const client = await startClientOf(endpoint, { userId: 'patient', heartbeat: HB, helloTimeoutMs: 10_000, timeoutMs: LONG });
      const events: string[] = [];
      client.on('disconnected', () => events.push('disconnected'));
      client.on('reconnected', () => events.push('reconnected'));
      const firstHello = await rawServer.waitFor((f) => isV1(f, T.HELLO));
      answerHellos = false;

      const disconnected = once(client, 'disconnected', 10_000);
      const inFlight = client.call.slow();
      inFlight.catch(() => {});
      await rawServer.waitFor((f) => isV1(f, T.WORK), firstHello.index + 1);
      await disconnected;
      const error = await rejection(inFlight);
      expect(error, String(error)).to.be.instanceOf(ServiceClosedError);

      // The client says HELLO again on the same connection; answering it brings the client back.
      const reconnected = once(client, 'reconnected', 10_000);
      const secondHello = await rawServer.waitFor((f) => isV1(f, T.HELLO), firstHello.index + 1);
      expect(secondHello.frames[0]!.equals(firstHello.frames[0]!), 'the same connection').to.equal(true);
      rawServer.reply(secondHello.frames, T.AUTHENTICATED);
      await reconnected;
      expect(events).to.deep.equal(['disconnected', 'reconnected']);

      // And calls flow again.
      rawServer.respond = (frames) => {
        if (isV1(frames, T.WORK)) rawServer.socket.send([frames[0]!, '', 'v1', frames[3]!, Buffer.from([T.OK]), Buffer.from([0xa2, 0x6f, 0x6b])]).catch(() => {});
      };
      expect(await client.callWith({ timeoutMs: 5000 }).ping()).to.equal('ok');
    });
  });

  describe('aligned heartbeats (a client answers its server\'s HEARTBEAT at once)', () => {
    /** HEARTBEATs among frames a raw server received (routing id first), v1 or compact. */
    const beats = (frames: Buffer[][]): number => frames.filter((f) => isV1(f, T.HEARTBEAT) || isHeartbeat(f.slice(1))).length;

    it('a client answers a HEARTBEAT at once, once per tick of its own: what the server sends next gets no second answer', async () => {
      const rawServer = new RawServer();
      const endpoint = await rawServer.bind();
      rawServer.respond = (frames) => {
        if (isV1(frames, T.HELLO)) rawServer.reply(frames, T.AUTHENTICATED);
      };
      // Its own tick never comes during the test: every HEARTBEAT from it here is an answer.
      const client = await startClientOf(endpoint, { userId: 'answering', heartbeat: { intervalMs: 60_000, timeoutMs: 120_000 }, helloTimeoutMs: 10_000 });
      client.registerRpc('ping', () => 'pong');
      const hello = await rawServer.waitFor((f) => isV1(f, T.HELLO));
      expect(beats(rawServer.received.slice(hello.index + 1)), 'nothing before the server\'s first HEARTBEAT').to.equal(0);

      rawServer.heartbeat(hello.frames);
      const answer = await rawServer.waitFor((f) => isV1(f, T.HEARTBEAT) || isHeartbeat(f.slice(1)), hello.index + 1);
      expect(answer.frames[0]!.equals(hello.frames[0]!), 'from the same client').to.equal(true);

      // Five more, then a call: its answer comes after whatever the client did with the five.
      for (let i = 0; i < 5; i++) rawServer.heartbeat(hello.frames);
      const callId = uuidBytes();
      rawServer.socket.send([hello.frames[0]!, '', 'v1', callId, Buffer.from([T.WORK]), packPlain(['ping', [], {}])]).catch(() => {});
      const ok = await rawServer.waitFor((f) => isV1(f, T.OK) && f[3]!.equals(callId), answer.index + 1);
      expect(beats(rawServer.received.slice(answer.index + 1, ok.index)), 'no second answer before the client\'s next tick').to.equal(0);
      expect(client.connected).to.equal(true);
    });

    it('no ping-pong: with 50 ms heartbeats the HEARTBEATs each way stay within one per interval (plus one), against a zeropeer server and against one that answers every HEARTBEAT', async () => {
      const heartbeat = { intervalMs: 50, timeoutMs: 5000 };
      // A zeropeer server: it sweeps, the client answers; the server never answers back.
      const server = await serverWith(heartbeat);
      const client = track(new Client(server.id, { userId: 'aligned', heartbeat, logger: recordingLogger() }));
      client.connect(server.endpoint);
      const connected = once(client, 'connected', 10_000);
      await client.start();
      await connected;
      await sleep(2 * heartbeat.intervalMs);
      const begin = { at: performance.now(), server: server.stats(), client: client.stats() };
      await sleep(12 * heartbeat.intervalMs);
      const intervals = (performance.now() - begin.at) / heartbeat.intervalMs;
      const serverOut = server.stats().messagesOut - begin.server.messagesOut;
      const clientOut = client.stats().messagesOut - begin.client.messagesOut;
      // A ping-pong would send hundreds here; a slow machine only fires fewer ticks.
      expect(serverOut, `server -> client over ${intervals.toFixed(1)} intervals`).to.be.at.most(Math.ceil(intervals) + 2);
      expect(clientOut, `client -> server over ${intervals.toFixed(1)} intervals`).to.be.at.most(Math.ceil(intervals) + 2);
      // Plus one: a HEARTBEAT the client sent before its snapshot may reach the server after the
      // server's (the two are read one after the other, the message is in flight between them).
      expect(server.stats().messagesIn - begin.server.messagesIn, 'what the server received is what the client sent').to.be.at.most(clientOut + 1);

      // A hand-written server that answers every HEARTBEAT with one: still one per interval from the client.
      const rawServer = new RawServer();
      const endpoint = await rawServer.bind();
      rawServer.respond = (frames) => {
        if (isV1(frames, T.HELLO)) {
          rawServer.reply(frames, T.AUTHENTICATED);
          rawServer.heartbeat(frames);
        }
        if (isV1(frames, T.HEARTBEAT)) rawServer.heartbeat(frames);
      };
      await startClientOf(endpoint, { userId: 'echoed', heartbeat, helloTimeoutMs: 10_000 });
      const hello = await rawServer.waitFor((f) => isV1(f, T.HELLO));
      await rawServer.waitFor((f) => isV1(f, T.HEARTBEAT), hello.index + 1);
      const from = rawServer.received.length;
      const at = performance.now();
      await sleep(12 * heartbeat.intervalMs);
      const rawIntervals = (performance.now() - at) / heartbeat.intervalMs;
      const sent = beats(rawServer.received.slice(from));
      expect(sent, `client -> echoing server over ${rawIntervals.toFixed(1)} intervals`).to.be.at.most(2 * Math.ceil(rawIntervals) + 2);
    });

    it('a client whose server never sends HEARTBEAT (heartbeat: false there) still sends its own on its timer', async () => {
      const server = await serverWith(false);
      const client = track(new Client(server.id, { userId: 'self-timed', heartbeat: { intervalMs: 50, timeoutMs: 5000 }, logger: recordingLogger() }));
      client.connect(server.endpoint);
      const connected = once(client, 'connected', 10_000);
      await client.start();
      await connected;
      const base = { server: server.stats(), client: client.stats() };
      await until(() => server.stats().messagesIn - base.server.messagesIn >= 4, 5000, 'four HEARTBEATs from the client');
      expect(client.stats().messagesIn - base.client.messagesIn, 'nothing from a server with heartbeat: false').to.equal(0);
      expect(client.connected).to.equal(true);
    });

    it('a client with heartbeat: false answers nothing: the server\'s HEARTBEATs arrive and none goes back', async () => {
      const server = await serverWith({ intervalMs: 50, timeoutMs: 60_000 });
      const client = track(new Client(server.id, { userId: 'mute-client', heartbeat: false, logger: recordingLogger() }));
      client.connect(server.endpoint);
      const connected = once(client, 'connected', 10_000);
      await client.start();
      await connected;
      const base = { server: server.stats(), client: client.stats() };
      await until(() => client.stats().messagesIn - base.client.messagesIn >= 4, 5000, 'four HEARTBEATs from the server');
      expect(client.stats().messagesOut - base.client.messagesOut, 'nothing from the client').to.equal(0);
      expect(server.stats().messagesIn - base.server.messagesIn).to.equal(0);
    });

    it('silence still counts both ways: a client that stops answering is gone "timeout"; a server that stops sweeping is left by its client', async () => {
      // The server's side: a raw peer that answered nothing (it never heartbeats) is judged by the timeout, as before.
      const server = await serverWith(HB);
      const gone = goneOf(server, 'stops-answering');
      await silentRawPeer(server, 'stops-answering');
      expect(await gone).to.equal('timeout');

      // The client's side: a server that sent HEARTBEAT once (it speaks them) and then nothing.
      const rawServer = new RawServer();
      const endpoint = await rawServer.bind();
      rawServer.respond = (frames) => {
        if (isV1(frames, T.HELLO) && rawServer.received.filter((f) => isV1(f, T.HELLO)).length === 1) {
          rawServer.reply(frames, T.AUTHENTICATED);
          rawServer.heartbeat(frames);
        }
      };
      const client = await startClientOf(endpoint, { userId: 'left-alone', heartbeat: HB, helloTimeoutMs: 10_000 });
      await once(client, 'disconnected', 10_000);
      expect(client.connected).to.equal(false);
    });
  });
});

/** A started Client of the server at `endpoint` (stopped at cleanup); resolves once 'connected'. */
async function startClientOf(endpoint: string, options: ConstructorParameters<typeof Client>[1]): Promise<Client> {
  const client = new Client('service', { logger: recordingLogger(), drainTimeoutMs: 50, ...options });
  closers.push(() => client.stop());
  client.connect(endpoint);
  const connected = once(client, 'connected', 10_000);
  await client.start();
  await connected;
  return client;
}
