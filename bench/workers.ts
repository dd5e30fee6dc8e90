/**
 * The parent side of the bench's process protocol: start a child (Node over fork IPC, or Python
 * over JSON lines on stdin/stdout), send it commands, await its answers (each bounded by a
 * timeout), and stop or kill it. Every child started here is killed when the bench exits.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

/** Kills (by pid, SIGKILL) every child this process started that is still running. */
export function killAllChildren(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

interface Waiter {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class Worker {
  readonly #child: ChildProcess;
  readonly #waiters = new Map<number, Waiter>();
  readonly #send: (message: object) => void;
  #nextId = 1;
  #exited: string | undefined;
  #stderrTail = '';
  readonly #exit: Promise<void>;

  private constructor(readonly name: string, child: ChildProcess, kind: 'node' | 'lines') {
    this.#child = child;
    live.add(child);
    this.#exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const forward = (chunk: Buffer): void => {
      const text = chunk.toString();
      this.#stderrTail = (this.#stderrTail + text).slice(-2000);
      process.stderr.write(text.replace(/^(?=.)/gm, `[${name}] `));
    };
    child.stderr?.on('data', forward);
    if (kind === 'node') {
      child.stdout?.on('data', forward); // a child's stray output never mixes into our stdout (JSON)
      child.on('message', (message) => this.#onReply(message as { id: number; ok: boolean; result?: unknown; error?: string }));
      this.#send = (message) => child.send(message);
    } else {
      let buffered = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (!line) continue;
          try {
            this.#onReply(JSON.parse(line) as { id: number; ok: boolean; result?: unknown; error?: string });
          } catch {
            forward(Buffer.from(`${line}\n`));
          }
        }
      });
      this.#send = (message) => child.stdin!.write(`${JSON.stringify(message)}\n`);
    }
    child.on('error', (error) => this.#onExit(`failed: ${error.message}`));
    child.on('exit', (code, signal) => this.#onExit(`exited (${signal ?? code})`));
  }

  /** A Node child: `script` must call serveCommands (bench/child.ts). */
  static node(name: string, script: string, args: string[], options: { hardTimeoutMs: number; execArgv?: string[] }): Worker {
    const child = fork(script, args, {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv: ['--expose-gc', ...(options.execArgv ?? [])],
      env: { ...process.env, BENCH_HARD_TIMEOUT_MS: String(options.hardTimeoutMs) },
    });
    return new Worker(name, child, 'node');
  }

  /** Any other program that speaks the protocol as JSON lines on stdin/stdout (aiozmq_bench.py). */
  static lines(name: string, command: string, args: string[]): Worker {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin!.on('error', () => {}); // a child that died: its exit says so
    return new Worker(name, child, 'lines');
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** How the child ended (`exited (SIGKILL)`, `exited (0)`, `failed: ...`), or undefined while it runs. */
  get exitReason(): string | undefined {
    return this.#exited;
  }

  /** Resolves once the child has exited. */
  get exited(): Promise<void> {
    return this.#exit;
  }

  /** Sends a command and awaits its answer; rejects after `timeoutMs` or if the child dies. */
  request<T = unknown>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    if (this.#exited) return Promise.reject(new Error(`${this.name} ${this.#exited}${this.#tail()}`));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        reject(new Error(`${this.name}: no answer to "${cmd}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      try {
        this.#send({ id, cmd, args });
      } catch (error) {
        clearTimeout(timer);
        this.#waiters.delete(id);
        reject(error as Error);
      }
    });
  }

  /** Asks the child to stop; kills it if it has not exited within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.#exited) return;
    this.request('stop', {}, graceMs).catch(() => {});
    const timer = setTimeout(() => this.kill(), graceMs);
    await this.#exit;
    clearTimeout(timer);
  }

  kill(): void {
    if (!this.#exited) this.#child.kill('SIGKILL');
  }

  #tail(): string {
    const tail = this.#stderrTail.trim().split('\n').slice(-3).join(' | ');
    return tail ? `: ${tail}` : '';
  }

  #onReply(message: { id: number; ok: boolean; result?: unknown; error?: string }): void {
    const waiter = this.#waiters.get(message?.id);
    if (!waiter) return;
    this.#waiters.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.ok) waiter.resolve(message.result);
    else waiter.reject(new Error(`${this.name}: ${message.error}`));
  }

  #onExit(reason: string): void {
    if (this.#exited) return;
    this.#exited = reason;
    live.delete(this.#child);
    for (const [id, waiter] of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`${this.name} ${reason}${this.#tail()}`));
      this.#waiters.delete(id);
    }
  }
}

/**
 * Starts `plan.clients` clients spread over `plan.processes` children running `script args`, each
 * told to connect its share to `endpoint`; the children go into `workers` (to be stopped by the
 * caller), the promise resolves once every child said it started.
 */
export function spreadClients(
  label: string, script: string, args: string[], endpoint: string,
  plan: { clients: number; processes: number; childHardTimeoutMs: number }, workers: Worker[],
): Promise<unknown[]> {
  const n = plan.clients;
  const per = Math.ceil(n / plan.processes);
  const starts: Promise<unknown>[] = [];
  for (let p = 0, first = 0; first < n; p++, first += per) {
    const worker = Worker.node(`${label} ${p}`, script, args, { hardTimeoutMs: plan.childHardTimeoutMs });
    workers.push(worker);
    starts.push(worker.request('start', { endpoint, count: Math.min(per, n - first), first }, 300_000));
  }
  return Promise.all(starts);
}
