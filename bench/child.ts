/**
 * The child side of the bench's process protocol (Node children, over the fork IPC channel).
 *
 * The parent sends `{ id, cmd, args }`; the child answers `{ id, ok: true, result }` or
 * `{ id, ok: false, error }`, one command at a time. A child never outlives its parent: it exits
 * when the IPC channel closes, and in any case after a hard timeout (`BENCH_HARD_TIMEOUT_MS`).
 */

import { readFileSync, readdirSync } from 'node:fs';

export type Handler = (args: Record<string, unknown>) => unknown; // a result, or a promise of one

interface Request {
  id: number;
  cmd: string;
  args?: Record<string, unknown>;
}

/** Resource use of this process: CPU time (all threads, µs) and memory. */
export function usage(): { cpuUserUs: number; cpuSystemUs: number; rss: number; heapUsed: number; at: number } {
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  return { cpuUserUs: cpu.user, cpuSystemUs: cpu.system, rss: memory.rss, heapUsed: memory.heapUsed, at: performance.now() };
}

/**
 * Does nothing for `ms` and says what that cost this process: CPU as % of one core (all threads),
 * the same by thread name (from threadTicks), and its usage before and after.
 */
export async function measureIdle(ms: number): Promise<{ cpuPct: number; threads: Record<string, number>; before: ReturnType<typeof usage>; after: ReturnType<typeof usage> }> {
  const threadsBefore = threadTicks();
  const before = usage();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = usage();
  const threadsAfter = threadTicks();
  const wallMs = after.at - before.at;
  // % of one core per thread name (1 tick = 10 ms)
  const threads = Object.fromEntries(
    [...threadsAfter]
      .map(([name, ticks]) => [name, ((ticks - (threadsBefore.get(name) ?? 0)) * 10 / wallMs) * 100] as const)
      .filter(([, pct]) => pct > 0)
      .sort((a, b) => b[1] - a[1]),
  );
  const cpuUs = after.cpuUserUs + after.cpuSystemUs - before.cpuUserUs - before.cpuSystemUs;
  return { cpuPct: (cpuUs / 1000 / wallMs) * 100, threads, before, after };
}

/**
 * CPU time per thread of this process, by thread name (Linux: /proc/self/task/<tid>/stat), in
 * clock ticks (1/100 s): which thread spends it, the JavaScript one ('node') or libzmq's I/O
 * thread ('ZMQbg/IO/0'). Empty elsewhere.
 */
export function threadTicks(): Map<string, number> {
  const byName = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return byName;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
      const ticks = Number(fields[11]) + Number(fields[12]); // utime (14) + stime (15)
      const key = name.replace(/\d+$/, '#');
      byName.set(key, (byName.get(key) ?? 0) + ticks);
    } catch {
      // the thread ended meanwhile
    }
  }
  return byName;
}
/**
 * Serves commands until `stop` (whose handler runs, then the process exits) or the parent leaves.
 * `usage` is always available.
 */
export function serveCommands(handlers: Record<string, Handler>, onStop: () => Promise<void>): void {
  if (!process.send) {
    console.error('this is a child process of the benchmark: run `npm run bench` instead');
    process.exit(2);
  }
  const hardTimeoutMs = Number(process.env.BENCH_HARD_TIMEOUT_MS) || 600_000;
  setTimeout(() => {
    console.error(`[bench child ${process.pid}] hard timeout (${hardTimeoutMs} ms): exiting`);
    process.exit(3);
  }, hardTimeoutMs).unref();
  process.on('disconnect', () => process.exit(0)); // the parent is gone
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    try {
      await onStop();
    } finally {
      process.exit(0);
    }
  };
  const all: Record<string, Handler> = {
    // `{ gc: true }`: collect garbage first (children run with --expose-gc), so that heapUsed shows what is live.
    usage: (args) => {
      if (args.gc) (globalThis as { gc?: () => void }).gc?.();
      return usage();
    },
    ...handlers,
  };
  process.on('message', (raw) => {
    const request = raw as Request;
    if (request.cmd === 'stop') {
      process.send!({ id: request.id, ok: true, result: null }, () => void stop());
      return;
    }
    const handler = all[request.cmd];
    const reply = (body: { ok: boolean; result?: unknown; error?: string }): void => {
      if (process.connected) process.send!({ id: request.id, ...body });
    };
    if (!handler) {
      reply({ ok: false, error: `unknown command ${request.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(request.args ?? {}))
      .then(
        (result) => reply({ ok: true, result }),
        (error: unknown) => reply({ ok: false, error: (error as Error)?.stack ?? String(error) }),
      );
  });
}

/** Runs a scenario alone (`node dist/bench/<scenario>.js run ...`): its result as JSON on stdout, then exits. */
export function runAlone(result: Promise<unknown>): void {
  result.then(
    (value) => {
      console.log(JSON.stringify(value, null, 2));
      process.exit(0);
    },
    (error: unknown) => {
      console.error((error as Error)?.stack ?? String(error));
      process.exit(1);
    },
  );
}
