/**
 * The child side of the bench's process protocol (Node children, over the fork IPC channel).
 *
 * The parent sends `{ id, cmd, args }`; the child answers `{ id, ok: true, result }` or
 * `{ id, ok: false, error }`, one command at a time. A child never outlives its parent: it exits
 * when the IPC channel closes, and in any case after a hard timeout (`BENCH_HARD_TIMEOUT_MS`).
 */

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
