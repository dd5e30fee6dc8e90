/**
 * Crash tests: a zeropeer Server runs in a child process (test/fixtures/crash-server.ts, `plain`
 * security, alice's argon2 hash made at start) and this process attacks it through real sockets
 * with raw ZeroMQ frames, without any account. After each attack the child must still be alive,
 * answer a legitimate authenticated call, and its RSS must have stayed bounded.
 *
 * The child runs with a 256 MiB V8 heap: a body that makes msgpackr allocate without bound kills
 * it in about a second (instead of twenty seconds and 4 GiB of the machine with the default heap).
 */
import { MessageType } from '../lib/index.js';
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encode as packPlain } from 'msgpackr';
import * as zmq from 'zeromq';
import { Client, TimeoutError, UnauthorizedError } from '../lib/index.js';
import { cleanup, RawPeer, recordingLogger, sleep, uuidBytes } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/crash-server.js', import.meta.url));
const ALICE_PASSWORD = 'correct horse battery staple';
/** Message types, from the exported table (never copied constants). */
const T = MessageType;
const MiB = 1024 * 1024;
/** How much the child's RSS may grow over one attack. A leak per message, or one decoded bomb, is far more. */
const RSS_HEADROOM = 150 * MiB;
/** How long a correct login may take after the HELLO flood (CRASH_LOGIN_BOUND_MS overrides it, to measure). */
const LOGIN_BOUND_MS = Number(process.env.CRASH_LOGIN_BOUND_MS) || 20_000;

interface ServerStats {
  pid: number;
  rss: number;
  heapUsed: number;
  external: number;
  hellos: number;
  verifyCalls: number;
  logged: Record<string, number>;
}

/** Every child this file started: killed when the test process exits, whatever happened. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** The crash-server fixture in a child process. */
class ChildServer {
  #stderr = '';
  #stdout = '';
  readonly #lineWaiters: Array<{ prefix: string; resolve: (line: string) => void }> = [];
  readonly exited: Promise<void>;

  private constructor(readonly child: ChildProcess, readonly endpoint: string) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  static async start(): Promise<ChildServer> {
    const child = spawn(process.execPath, ['--max-old-space-size=256', FIXTURE, ALICE_PASSWORD], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    child.stdin!.on('error', () => {}); // a child that died: its exit says so
    let stderr = '';
    const early = (chunk: Buffer): void => void (stderr += chunk.toString());
    child.stderr!.on('data', early);
    const endpoint = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error('the crash server did not say ready within 15 s')), 15_000);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new Error(`${error.message}; stderr: ${stderr.slice(-2000)}`));
      };
      const onData = (chunk: Buffer): void => {
        out += chunk.toString();
        const match = /^ready (\S+)$/m.exec(out);
        if (match) {
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          child.off('exit', onExit);
          resolve(match[1]!);
        }
      };
      const onExit = (code: number | null, signal: string | null): void => fail(new Error(`the crash server exited (${signal ?? code}) before it was ready`));
      child.stdout!.on('data', onData);
      child.once('exit', onExit);
    });
    const server = new ChildServer(child, endpoint);
    child.stderr!.off('data', early);
    server.#stderr = stderr;
    child.stderr!.on('data', (chunk: Buffer) => (server.#stderr = (server.#stderr + chunk.toString()).slice(-4000)));
    child.stdout!.on('data', (chunk: Buffer) => server.#onStdout(chunk));
    return server;
  }

  #onStdout(chunk: Buffer): void {
    this.#stdout += chunk.toString();
    let newline: number;
    while ((newline = this.#stdout.indexOf('\n')) >= 0) {
      const line = this.#stdout.slice(0, newline);
      this.#stdout = this.#stdout.slice(newline + 1);
      const index = this.#lineWaiters.findIndex((w) => line.startsWith(w.prefix));
      if (index >= 0) this.#lineWaiters.splice(index, 1)[0]!.resolve(line);
    }
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** How the child ended (or that it runs), and the end of its stderr: for failure messages. */
  describe(): string {
    const state = this.alive ? 'running' : `exited (${this.child.signalCode ?? this.child.exitCode})`;
    const tail = this.#stderr.trim().split('\n').slice(-8).join('\n  ');
    return `crash server pid ${this.child.pid} ${state}${tail ? `; stderr:\n  ${tail}` : ''}`;
  }

  /** Stats over stdin: no login needed. */
  async stdinStats(timeoutMs = 5000): Promise<ServerStats> {
    expect(this.alive, this.describe()).to.equal(true);
    const line = new Promise<string>((resolve, reject) => {
      const waiter = { prefix: 'stats ', resolve: (l: string) => { clearTimeout(timer); resolve(l); } };
      const timer = setTimeout(() => {
        this.#lineWaiters.splice(this.#lineWaiters.indexOf(waiter), 1);
        reject(new Error(`no stats within ${timeoutMs} ms; ${this.describe()}`));
      }, timeoutMs);
      this.#lineWaiters.push(waiter);
    });
    this.child.stdin!.write('stats\n');
    return JSON.parse((await line).slice('stats '.length)) as ServerStats;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** alice logs in with a fresh zeropeer Client, calls echo, and reads the server's stats. */
async function authenticatedStats(endpoint: string, timeoutMs = 10_000): Promise<ServerStats> {
  const client = new Client<{ echo(value: string): string; stats(): ServerStats }>('service', {
    security: 'plain', userId: 'alice', password: ALICE_PASSWORD, timeoutMs, logger: recordingLogger(), drainTimeoutMs: 50,
  });
  client.connect(endpoint);
  try {
    await client.start();
    expect(await client.call.echo('still here')).to.equal('still here');
    return await client.call.stats();
  } finally {
    await client.stop();
  }
}

/** `count` copies of `header`: containers nested `count` deep, each declaring a length the body does not have. */
function nested(header: number[], count = 1000): Buffer {
  return Buffer.concat(Array.from({ length: count }, () => Buffer.from(header)));
}

/** Length bombs: 5,000 bytes each. The second is the one that exhausts msgpackr's heap when decoded. */
const BOMBS: ReadonlyArray<[string, Buffer]> = [
  ['array32 of 0xffffffff items, 1,000 deep', nested([0xdd, 0xff, 0xff, 0xff, 0xff])],
  ['array32 of 1,000,000 items, 1,000 deep', nested([0xdd, 0x00, 0x0f, 0x42, 0x40])],
  ['map32 of 0xffffffff entries, 1,000 deep', nested([0xdf, 0xff, 0xff, 0xff, 0xff])],
  ['map32 of 1,000,000 entries, 1,000 deep', nested([0xdf, 0x00, 0x0f, 0x42, 0x40])],
];

/** A compact packet written by hand: fixarray 3, the type, a fixint id, then `body` as the body. */
function compactPacket(type: number, id: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x93, type, id]), body]);
}

/**
 * Sends an unauthenticated v1 WORK and waits for its answer (UNAUTHORIZED): the server reads one
 * connection's messages in order, so everything sent before on `raw` has been dealt with.
 */
async function sync(raw: RawPeer, server: ChildServer, timeoutMs = 10_000): Promise<void> {
  const id = uuidBytes();
  await raw.sendV1(id, T.WORK, ['echo', ['sync'], {}]);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let frames: Buffer[];
    try {
      // A child that dies fails the test at once, not at the deadline.
      frames = await Promise.race([raw.next(Math.max(1, deadline - Date.now())),
        server.exited.then(() => { throw new Error('the server died'); })]);
    } catch (error) {
      throw new Error(`${(error as Error).message}; ${server.describe()}`, { cause: error });
    }
    if (frames.length === 5 && frames[2]!.equals(id)) {
      expect([...frames[3]!], 'the sync WORK is answered UNAUTHORIZED').to.deep.equal([T.UNAUTHORIZED]);
      return;
    }
  }
}

/**
 * The child is alive, serves alice, and its RSS grew by less than the headroom since `before`.
 * `answered` is what a legitimate call made since the attack already returned (else one is made here).
 */
async function expectSurvived(server: ChildServer, before: ServerStats, what: string, answered?: ServerStats): Promise<ServerStats> {
  expect(server.alive, `${what}: ${server.describe()}`).to.equal(true);
  let after: ServerStats;
  try {
    after = answered ?? await authenticatedStats(server.endpoint);
  } catch (error) {
    throw new Error(`${what}: a legitimate call failed: ${(error as Error).message}; ${server.describe()}`, { cause: error });
  }
  expect(after.pid).to.equal(before.pid);
  const grew = after.rss - before.rss;
  expect(grew, `${what}: RSS grew from ${(before.rss / MiB).toFixed(0)} to ${(after.rss / MiB).toFixed(0)} MiB`).to.be.below(RSS_HEADROOM);
  return after;
}

describe('crash tests: a server in a child process survives attacks through real sockets', function () {
  this.timeout(60_000);
  this.slow(5_000);
  let server: ChildServer | undefined;

  beforeEach(async () => {
    server = await ChildServer.start();
  });

  afterEach(async () => {
    await cleanup();
    await server?.stop();
    server = undefined;
  });

  for (const framing of ['v1', 'compact'] as const) {
    it(`MessagePack length bombs before authentication, ${framing} framing: refused, no crash, RSS bounded`, async () => {
      const before = await authenticatedStats(server!.endpoint);
      const raw = new RawPeer('service');
      await raw.connect(server!.endpoint);
      for (let round = 0; round < 10; round++) {
        for (const [, bomb] of BOMBS) {
          for (const type of [T.WORK, T.HELLO]) {
            if (framing === 'v1') await raw.sendV1(uuidBytes(), type, bomb, { raw: true });
            else await raw.sendFrames(compactPacket(type, 1 + round, bomb));
          }
        }
      }
      await sync(raw, server!);
      // One bomb more, and its answer: the refusal is a ProtocolError naming the guard, not a decode.
      const id = uuidBytes();
      if (framing === 'v1') await raw.sendV1(id, T.WORK, BOMBS[1]![1], { raw: true });
      else await raw.sendFrames(compactPacket(T.WORK, 99, BOMBS[1]![1]));
      for (;;) {
        const frames = await raw.next(10_000).catch((error: Error) => { throw new Error(`${error.message}; ${server!.describe()}`); });
        if (framing === 'v1' && frames.length === 5 && frames[2]!.equals(id)) {
          expect([...frames[3]!]).to.deep.equal([T.ERROR]);
          break;
        }
        if (framing === 'compact' && frames.length === 1 && frames[0]![0] === 0x93 && frames[0]![1] === T.ERROR) break;
      }
      await expectSurvived(server!, before, `${BOMBS.length * 2 * 10 + 1} length bombs in ${framing} framing`);
    });
  }

  it('a HELLO whose password is 15 MiB is refused before the password check runs', async () => {
    const before = await authenticatedStats(server!.endpoint);
    const checks = (await server!.stdinStats()).verifyCalls;
    const raw = new RawPeer('service');
    await raw.connect(server!.endpoint);
    const password = 'p'.repeat(15 * MiB);
    await raw.sendV1(uuidBytes(), T.HELLO, ['alice', password]);
    await raw.sendFrames(Buffer.concat([Buffer.from([0x93, T.HELLO, 0x01]), packPlain(['alice', password])]));
    await sync(raw, server!, 20_000);
    const after = await server!.stdinStats();
    expect(after.verifyCalls, `password checks before ${checks}, after ${after.verifyCalls}`).to.equal(checks);
    await expectSurvived(server!, before, 'two HELLOs of 15 MiB');
  });

  it('a flood of 2,000 connect-HELLO(wrong password)-close loops: a correct login still succeeds within the bound', async function () {
    this.timeout(LOGIN_BOUND_MS + 90_000);
    const before = await authenticatedStats(server!.endpoint);
    const hellosBefore = (await server!.stdinStats()).hellos;
    const hello = packPlain(['alice', 'wrong password']);
    // A context of its own: closed sockets linger until their HELLO is out, past libzmq's default 1023 sockets.
    const context = new zmq.Context({ maxSockets: 4096, blocky: false });
    const started = Date.now();
    for (let i = 0; i < 2000; i++) {
      const socket = new zmq.Dealer({ context, linger: 2000, sendTimeout: 2000 });
      try {
        socket.connect(server!.endpoint);
        await socket.send(['', 'v1', uuidBytes(), Buffer.from([T.HELLO]), hello]);
      } finally {
        socket.close();
      }
    }
    const floodMs = Date.now() - started;
    // The sockets deliver after close (linger): the login is timed from when the server has them all,
    // or they stopped coming (checked over stdin, no login needed).
    let delivered = 0;
    for (let stable = 0, last = -1; stable < 5 && Date.now() - started < 20_000; await sleep(200)) {
      delivered = (await server!.stdinStats()).hellos - hellosBefore;
      if (delivered >= 2000) break;
      stable = delivered === last ? stable + 1 : 0;
      last = delivered;
    }
    const deliveredMs = Date.now() - started;
    expect(server!.alive, `after the flood: ${server!.describe()}`).to.equal(true);

    // A correct login, retried with a fresh client while it is refused or times out, until the bound.
    const loginStarted = Date.now();
    let attempts = 0;
    const failures: string[] = [];
    let stats: ServerStats | undefined;
    while (stats === undefined && Date.now() - loginStarted < LOGIN_BOUND_MS) {
      attempts++;
      try {
        stats = await authenticatedStats(server!.endpoint, Math.max(500, LOGIN_BOUND_MS - (Date.now() - loginStarted)));
      } catch (error) {
        if (!(error instanceof UnauthorizedError) && !(error instanceof TimeoutError)) throw error;
        failures.push(error.constructor.name);
        await sleep(250);
      }
    }
    const loginMs = Date.now() - loginStarted;
    const diagnosis = server!.alive ? await server!.stdinStats().catch(() => undefined) : undefined;
    const refusals = Object.entries(diagnosis?.logged ?? {}).filter(([line]) => /refused|throttled|too many/.test(line))
      .map(([line, n]) => `${n} × "${line}"`).join(', ');
    const summary = `2,000 HELLOs sent in ${floodMs} ms, ${delivered} reached the plugin within ${deliveredMs} ms; ` +
      `correct login ${stats ? 'succeeded' : 'still failing'} ${loginMs} ms after that ` +
      `(${attempts} attempt(s)${failures.length ? `: ${failures.join(', ')}` : ''}); password checks run so far: ${diagnosis?.verifyCalls ?? '?'}; ` +
      `log: ${refusals || 'no refusals'}; ${server!.describe()}`;
    console.log(`      ${summary}`);
    expect(stats, `login lockout: ${summary}`).to.not.equal(undefined);
    expect(loginMs).to.be.at.most(LOGIN_BOUND_MS);
    await expectSurvived(server!, before, 'the HELLO flood', stats);
  });
});
