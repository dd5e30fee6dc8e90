/**
 * Shared test fixtures: real peers on loopback (port 0), ipc paths in a temp dir, inproc names,
 * a logger that records, and raw ZeroMQ sockets that speak pseud v1 by hand.
 */
import argon2 from 'argon2';
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode as packPlain, decode as unpackPlain } from 'msgpackr';
import * as zmq from 'zeromq';
import { Client, Server, type ClientOptions, type Logger, type PeerOptions } from '../lib/index.js';
import { PROBE } from '../lib/wire/messages.js';

export type Transport = 'tcp' | 'ipc' | 'inproc';

/** A fresh endpoint to bind: port 0 for tcp, a unique path or name otherwise. */
export function endpointFor(transport: Transport): string {
  switch (transport) {
    case 'tcp':
      return 'tcp://127.0.0.1:0';
    case 'ipc':
      return `ipc://${join(tmpdir(), `zeropeer-test-${randomUUID()}.sock`)}`;
    case 'inproc':
      return `inproc://zeropeer-test-${randomUUID()}`;
  }
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  context: Record<string, unknown> | undefined;
}

/** A logger that keeps what it is told, for assertions (and keeps test output quiet). */
export function recordingLogger(): Logger & { entries: LogEntry[]; text(): string } {
  const entries: LogEntry[] = [];
  const at = (level: LogEntry['level']) => (message: string, context?: Record<string, unknown>) => {
    entries.push({ level, message, context });
  };
  return {
    entries,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    text: () => entries.map((e) => `${e.level} ${e.message} ${JSON.stringify(e.context ?? {})}`).join('\n'),
  };
}

/** Peers made by a test, stopped by {@link cleanup} whatever happened. */
const live: Array<{ stop(): Promise<void> } | { close(): void }> = [];

/** Stops every peer and closes every raw socket made since the last cleanup (call in afterEach). */
export async function cleanup(): Promise<void> {
  const all = live.splice(0);
  await Promise.all(all.map(async (thing) => ('stop' in thing ? thing.stop() : thing.close())));
}

/** Registers a peer or socket made by hand, so that cleanup() stops or closes it. */
export function track<T extends { stop(): Promise<void> } | { close(): void }>(thing: T): T {
  live.push(thing);
  return thing;
}

/** A started server bound on `transport`, stopped at cleanup. */
export async function startServer(options: PeerOptions = {}, transport: Transport = 'tcp', id = 'service'): Promise<Server> {
  const server = new Server(id, { logger: recordingLogger(), drainTimeoutMs: 50, ...options });
  live.push(server);
  await server.bind(endpointFor(transport));
  await server.start();
  return server;
}

/** A started client of `server`, stopped at cleanup; `connected` resolves once it may call. */
export async function startClient(server: Server, options: ClientOptions = {}): Promise<Client> {
  const client = new Client(server.id, { logger: recordingLogger(), drainTimeoutMs: 50, ...options });
  live.push(client);
  client.connect(server.endpoint);
  const ready = once(client, 'connected');
  await client.start();
  await ready;
  return client;
}

/** Resolves with the arguments of the next `event`, or rejects after `timeoutMs`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any of the peers' typed emitters, whatever its event map
type AnyEmitter = { once(event: any, fn: (...args: any[]) => void): unknown; off(event: any, fn: (...args: any[]) => void): unknown };

export function once(emitter: AnyEmitter, event: string, timeoutMs = 3000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no "${event}" event within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args);
    };
    emitter.once(event, listener);
  });
}

/** Polls `condition` every few ms until it holds, or rejects after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The rejection of `promise`; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    const value = await promise;
    expect.fail(`expected a rejection, got ${String(value)}`);
  } catch (error) {
    if ((error as Error).name === 'AssertionError') throw error;
    return error as Error;
  }
}

/**
 * An argon2id hash of `password` for a `users` map, at argon2's lowest cost (1 MiB, one pass, one
 * lane): a login checks it exactly as it checks {@link hashPassword}'s (argon2.verify reads the cost
 * from the hash), in a few ms instead of a few hundred with 64 MiB on 4 lanes. The suite logs in
 * hundreds of times; hashPassword's own hashes are tested where they are the subject
 * (security-plugins.spec.ts, logging.spec.ts, the CLI's hash-password).
 */
export function quickHash(password: string): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id, memoryCost: 1024, timeCost: 1, parallelism: 1 });
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What a raw socket received, handed out in order to whoever asks next. */
class Inbox {
  readonly #queue: Buffer[][] = [];
  #waiters: Array<(frames: Buffer[]) => void> = [];

  /** `intercept` sees each message first; true keeps it from the queue (answered already). */
  constructor(socket: zmq.Router, readonly intercept?: (frames: Buffer[]) => boolean) {
    void this.#receive(socket);
  }

  async #receive(socket: zmq.Router): Promise<void> {
    try {
      for await (const frames of socket) {
        if (this.intercept?.(frames)) continue;
        const waiter = this.#waiters.shift();
        if (waiter) waiter(frames);
        else this.#queue.push(frames);
      }
    } catch {
      // closed
    }
  }

  /** The next message, routing id included, or rejects after `timeoutMs`. */
  next(timeoutMs: number, from: string): Promise<Buffer[]> {
    const ready = this.#queue.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const waiter = (frames: Buffer[]): void => {
        clearTimeout(timer);
        resolve(frames);
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no message from the ${from} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }
}

/**
 * A raw ROUTER socket that talks to a server the way a pseud v1 client does, frame by frame.
 * Closed at cleanup.
 */
export class RawPeer {
  readonly socket: zmq.Router;
  readonly serverId: Buffer;
  readonly #inbox: Inbox;
  #waitForRoute = false;

  constructor(serverId: string, options: { routingId?: string } = {}) {
    this.socket = new zmq.Router({ mandatory: true, ...(options.routingId ? { routingId: options.routingId } : {}) });
    this.serverId = Buffer.from(serverId);
    live.push(this.socket);
    this.#inbox = new Inbox(this.socket);
  }

  /**
   * Connects and waits until the route to the server exists, by sending a HEARTBEAT (which makes
   * this peer one that speaks heartbeats). With `heartbeat: false` it sends nothing, as a pseud
   * client does: the first message sent is then retried until the route exists.
   */
  async connect(endpoint: string, { heartbeat = true } = {}): Promise<void> {
    this.socket.connect(endpoint);
    if (!heartbeat) {
      this.#waitForRoute = true;
      return;
    }
    const deadline = Date.now() + 3000;
    for (;;) {
      try {
        // An empty-bodied heartbeat: harmless, and it proves the route.
        await this.socket.send([this.serverId, '', 'v1', '', Buffer.from([0x06]), '']);
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== 'EHOSTUNREACH' || Date.now() > deadline) throw error;
        await sleep(5);
      }
    }
  }

  /** Sends raw frames after the server's routing id (retried while the route does not exist yet, after a silent connect). */
  async sendFrames(...frames: Array<Buffer | string>): Promise<void> {
    const deadline = Date.now() + 3000;
    for (;;) {
      try {
        await this.socket.send([this.serverId, ...frames]);
        this.#waitForRoute = false;
        return;
      } catch (error) {
        if (!this.#waitForRoute || (error as { code?: string }).code !== 'EHOSTUNREACH' || Date.now() > deadline) throw error;
        await sleep(5);
      }
    }
  }

  /** Sends a pseud v1 message: `['', 'v1', id, type, body]`, the body MessagePack unless a Buffer/string is given. */
  async sendV1(id: Buffer, type: number, body: unknown, { raw = false } = {}): Promise<void> {
    const bodyFrame = raw ? (body as Buffer | string) : packPlain(body);
    await this.sendFrames('', 'v1', id, Buffer.from([type]), bodyFrame);
  }

  /**
   * The next message from the server (frames after the routing id), or rejects after `timeoutMs`.
   * HEARTBEATs (which a server sends on its own) are skipped unless `heartbeats` is set.
   */
  async next(timeoutMs = 3000, { heartbeats = false } = {}): Promise<Buffer[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frames = (await this.#inbox.next(Math.max(1, deadline - Date.now()), 'server')).slice(1);
      if (heartbeats || !isHeartbeat(frames)) return frames;
    }
  }

  close(): void {
    this.socket.close();
  }
}

/**
 * How a raw server answers a zeropeer client's first message (the probe, a v1 WORK): as a pseud
 * server with authentication (UNAUTHORIZED: the client says HELLO next), as one without
 * (ERROR ServiceNotFoundError: the client is ready at once), or not at all (it is handed to next()).
 */
export type ProbeAnswer = 'unauthorized' | 'error' | 'none';

/** Whether frames (routing id first) are a zeropeer client's probe. */
export function isProbe(frames: Buffer[]): boolean {
  if (frames.length !== 6 || frames[4]?.length !== 1 || frames[4][0] !== 0x03) return false;
  try {
    return (unpackPlain(frames[5]!) as unknown[])[0] === PROBE;
  } catch {
    return false;
  }
}

/** A raw ROUTER bound with routing id 'service', playing a server by hand (pseud v1). Closed at cleanup. */
export class RawServer {
  readonly socket = new zmq.Router({ routingId: 'service', mandatory: true, linger: 0 });
  readonly #inbox: Inbox;
  /** Probes answered so far. */
  probes = 0;

  constructor({ probe = 'unauthorized' }: { probe?: ProbeAnswer } = {}) {
    live.push(this.socket);
    this.#inbox = new Inbox(this.socket, (frames) => {
      if (probe === 'none' || !isProbe(frames)) return false;
      this.probes++;
      const [type, body] = probe === 'unauthorized'
        ? [0x11, 'Authentication Required']
        : [0x10, packPlain(['ServiceNotFoundError', `${PROBE}`, 'Traceback ...'])];
      this.socket.send([frames[0]!, '', 'v1', frames[3]!, Buffer.from([type]), body]).catch(() => {});
      return true;
    });
  }

  async bind(): Promise<string> {
    await this.socket.bind('tcp://127.0.0.1:0');
    return this.socket.lastEndpoint!;
  }

  /** The next message, routing id included. */
  next(timeoutMs = 5000): Promise<Buffer[]> {
    return this.#inbox.next(timeoutMs, 'client');
  }

  async send(frames: Array<Buffer | string>): Promise<void> {
    await this.socket.send(frames);
  }

  close(): void {
    this.socket.close();
  }
}

/** A RawServer (a pseud v1 noop server) and a zeropeer Client connected to it, past its HELLO (read, never answered). */
export async function clientOnRawServer(): Promise<{ rawServer: RawServer; client: Client }> {
  const rawServer = new RawServer();
  const endpoint = await rawServer.bind();
  const client = track(new Client('service', { logger: recordingLogger(), helloTimeoutMs: 100, drainTimeoutMs: 50 }));
  const connected = once(client, 'connected', 5000);
  client.connect(endpoint);
  await client.start();
  await rawServer.next(); // HELLO, which a pseud noop server ignores
  await connected;
  return { rawServer, client };
}

/** Whether frames (after the routing id) are a HEARTBEAT, in v1 or compact framing. */
export function isHeartbeat(frames: Buffer[]): boolean {
  if (frames.length === 5) return frames[3]?.length === 1 && frames[3][0] === 0x06;
  return frames.length === 1 && frames[0]!.length >= 2 && frames[0]![0] === 0x93 && frames[0]![1] === 0x06;
}

/** A fresh 16-byte message id, as pseud makes them (uuid4). */
export function uuidBytes(): Buffer {
  return Buffer.from(randomUUID().replace(/-/g, ''), 'hex');
}

/** A peer's connection records (internal: for tests of leaks and identity binding). */
export interface ConnectionRecord {
  routingId: Buffer;
  identity: string | undefined;
  authenticated: boolean;
  up: boolean;
}
export function connectionRecords(peer: Server | Client): { byKey(key: string): ConnectionRecord | undefined; values(): Iterable<ConnectionRecord> } {
  return (peer as unknown as { session: { connections: { byKey(key: string): ConnectionRecord | undefined; values(): Iterable<ConnectionRecord> } } }).session.connections;
}
