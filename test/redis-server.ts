/**
 * A private redis-server for tests: a free loopback port, persistence off, a temp dir; stopped by
 * the test (and killed when the test process exits, whatever happened). Without redis-server on
 * the PATH, {@link redisAvailable} is false and {@link skipWithoutRedis} prints one line saying so.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether `redis-server` can be run here. */
export const redisAvailable = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

let skipAnnounced = false;

/**
 * In a mocha `before`: skips the suite when redis-server is missing, saying so once per run.
 * Returns whether the suite runs.
 */
export function skipWithoutRedis(context: Mocha.Context): boolean {
  if (redisAvailable) return true;
  if (!skipAnnounced) {
    skipAnnounced = true;
    console.log('    (cluster tests skipped: redis-server not found; install it with `apt-get install -y redis-server` to run them)');
  }
  context.skip();
  return false;
}

/**
 * A redis-server for the suite it is called in: started before its tests (which are skipped, with
 * one line said, when there is none) and stopped after. Read `.redis` (or `.url`) in the tests.
 */
export function suiteRedis(): { readonly redis: TestRedis; readonly url: string } {
  let redis: TestRedis | undefined;
  before(async function () {
    if (!skipWithoutRedis(this)) return;
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis?.close();
  });
  return {
    get redis(): TestRedis {
      return redis!;
    },
    get url(): string {
      return redis!.url;
    },
  };
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (asked of the system, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Waits (at most `timeoutMs`) until `port` on 127.0.0.1 can be listened on again: a ZeroMQ socket
 * closes its listener on its I/O thread, a little after `stop()` resolved.
 */
export async function portReleased(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (free) return;
    if (Date.now() > deadline) throw new Error(`port ${port} still in use after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One redis-server process; `stop()` then `start()` again restarts it, empty, on the same port. */
export class TestRedis {
  #child: ChildProcess | undefined;
  readonly #dir = mkdtempSync(join(tmpdir(), 'zeropeer-redis-'));

  private constructor(readonly port: number) {}

  /** The running redis-server's process id. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<TestRedis> {
    const redis = new TestRedis(await freePort());
    await redis.start();
    return redis;
  }

  /** Starts (again); resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.#child) return;
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.#dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    running.add(child);
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 10_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}): ${output}`));
      });
    });
    child.stdout!.resume();
    child.removeAllListeners('exit');
  }

  /** Stops it (SIGKILL: as abrupt as a crash); resolves once it exited. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    child.kill('SIGKILL');
    await exited;
    running.delete(child);
  }

  /** Stops it and removes its directory. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
