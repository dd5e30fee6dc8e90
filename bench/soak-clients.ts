/**
 * The soak's legitimate load (a child process of bench/soak.ts, over the bench's command protocol):
 * a few zeropeer Clients, each with its own user, each keeping a few `work` calls in flight in a
 * bounded loop. Every call has a unique id (`<generation>:<client>:<seq>`) that the server records,
 * and must settle with its own payload back or with a typed error (an RpcError with a `code`).
 *
 * `start { endpoint, generation, users, inflight, timeoutMs, maxCallsPerClient }` starts the loops
 * and returns at once; `report` tells the counts so far; `drain { graceMs }` stops starting calls,
 * waits up to `graceMs` for those in flight to settle, and tells the final counts (`inflight` then
 * is the number of calls that never settled). A SIGKILL from the parent may end it at any time.
 */
import { Client, RpcError, type Logger } from '../lib/index.js';
import { serveCommands } from './child.js';

interface UserCredentials {
  userId: string;
  password: string;
}

const logged = new Map<string, number>();
const count = (level: string) => (message: string): void => {
  const key = `${level} ${message}`;
  logged.set(key, (logged.get(key) ?? 0) + 1);
};
const logger: Logger = { debug: () => {}, info: () => {}, warn: count('warn'), error: count('error') };

const clients: Client[] = [];
const loops: Promise<void>[] = [];
let draining = false;
let started = 0;
let ok = 0;
let inflight = 0;
/** Settled with a result that is not what was sent. */
let mismatched = 0;
const errorsByCode = new Map<string, number>();
/** ms from start() to 'connected', per client; ms from 'disconnected' to 'reconnected', per reconnection. */
const loginMs: number[] = [];
const reconnectMs: number[] = [];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function report(): Record<string, unknown> {
  return {
    started, ok, inflight, mismatched,
    errorsByCode: Object.fromEntries(errorsByCode),
    loginMs, reconnectMs,
    logged: Object.fromEntries(logged),
  };
}

/** One client's share of the load: `inflight` loops of sequential calls, until drained or `maxCalls`. */
async function callLoop(client: Client<{ work(id: string, payload: { n: number; s: string }): { n: number; s: string } }>,
  generation: string, index: number, next: { seq: number }, maxCalls: number): Promise<void> {
  while (!draining && next.seq < maxCalls) {
    const seq = next.seq++;
    const payload = { n: seq, s: 'x'.repeat(seq % 64) };
    started++;
    inflight++;
    let failed = false;
    try {
      const result = await client.call.work(`${generation}:${index}:${seq}`, payload);
      if (result?.n === payload.n && result.s === payload.s) ok++;
      else mismatched++;
    } catch (error) {
      failed = true;
      const code = error instanceof RpcError && typeof error.code === 'string' ? error.code : `untyped ${(error as Error)?.name ?? typeof error}`;
      errorsByCode.set(code, (errorsByCode.get(code) ?? 0) + 1);
    } finally {
      inflight--;
    }
    if (failed) await sleep(20); // an error that comes at once (a refusal) must not spin the loop
  }
}

serveCommands(
  {
    async start(args) {
      const generation = String(args.generation);
      const users = args.users as UserCredentials[];
      const perClient = Number(args.inflight) || 2;
      const maxCalls = Number(args.maxCallsPerClient) || 10_000_000;
      users.forEach((user, index) => {
        const client = new Client<{ work(id: string, payload: { n: number; s: string }): { n: number; s: string } }>('service', {
          security: 'plain', userId: user.userId, password: user.password, timeoutMs: Number(args.timeoutMs) || 5000, logger, drainTimeoutMs: 200,
        });
        clients.push(client);
        const t0 = performance.now();
        let lostAt = 0;
        client.once('connected', () => loginMs.push(Math.round(performance.now() - t0)));
        client.on('disconnected', () => (lostAt = performance.now()));
        client.on('reconnected', () => reconnectMs.push(Math.round(performance.now() - lostAt)));
        client.connect(String(args.endpoint));
        const next = { seq: 0 };
        loops.push(client.start()
          .then(() => Promise.all(Array.from({ length: perClient }, () => callLoop(client, generation, index, next, maxCalls))))
          .then(() => {}, (error: unknown) => {
            // A client that cannot even start is a failure the parent sees in the counts.
            errorsByCode.set(`start failed: ${(error as Error)?.message}`, 1);
          }));
      });
      return { pid: process.pid };
    },
    report,
    async drain(args) {
      draining = true;
      const graceMs = Number(args.graceMs) || 10_000;
      const deadline = performance.now() + graceMs;
      while (inflight > 0 && performance.now() < deadline) await sleep(50);
      return report();
    },
  },
  async () => {
    draining = true;
    await Promise.all(clients.map((client) => client.stop()));
  },
);
