/**
 * zeropeer peers in child processes (test/fixtures/peer-process.ts), for tests that kill, stop
 * (SIGSTOP) or restart the other side. Every child is ended by {@link killChildren} (call it in
 * afterEach); the fixture also ends itself when stdin closes and after a safety timeout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sleep } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/peer-process.js', import.meta.url));

export interface PeerChild {
  readonly proc: ChildProcess;
  readonly lines: string[];
  /** What the child wrote on stderr so far (for failure messages). */
  stderr(): string;
  /** Resolves with the first line (already printed or to come) that `match` accepts. */
  line(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
}

const children: ChildProcess[] = [];

export function spawnPeer(...args: string[]): PeerChild {
  const proc = spawn(process.execPath, [FIXTURE, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(proc);
  const lines: string[] = [];
  let err = '';
  let partial = '';
  const watchers: Array<() => void> = [];
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    for (const watcher of [...watchers]) watcher();
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => {
    err += chunk;
  });
  proc.stdin!.on('error', () => {}); // EPIPE once the child is gone
  const exited = new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('exit', () => resolve());
  });
  return {
    proc,
    lines,
    stderr: () => err,
    exited,
    line(match, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const found = lines.find(match);
          if (found === undefined) return false;
          finish();
          resolve(found);
          return true;
        };
        const finish = (): void => {
          clearTimeout(timer);
          const at = watchers.indexOf(watcher);
          if (at >= 0) watchers.splice(at, 1);
          proc.off('exit', onExit);
        };
        const watcher = (): void => void check();
        const onExit = (): void => {
          if (check()) return;
          finish();
          reject(new Error(`child exited (${proc.exitCode ?? proc.signalCode}) before the line; stdout:\n${lines.join('\n')}\nstderr:\n${err}`));
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`no matching line from the child within ${timeoutMs} ms; stdout:\n${lines.join('\n')}\nstderr:\n${err}`));
        }, timeoutMs);
        watchers.push(watcher);
        proc.once('exit', onExit);
        check();
      });
    },
  };
}

/** Ends every child this file started: SIGCONT (in case it was stopped), SIGKILL, and waits for the exit. */
export async function killChildren(): Promise<void> {
  await Promise.all(
    children.splice(0).map(async (proc) => {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
        try {
          proc.kill('SIGCONT');
          proc.kill('SIGKILL');
        } catch {
          // already gone
        }
        await Promise.race([exited, sleep(5000)]);
      }
      proc.stdin?.destroy();
      proc.stdout?.destroy();
      proc.stderr?.destroy();
    }),
  );
}
