/**
 * Cluster nodes in child processes (test/fixtures/cluster-node.ts), for the multi-process cluster
 * tests and the cluster bench. Every child is killed when this process exits, whatever happened.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { sleep } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/cluster-node.js', import.meta.url));

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** One node process: `endpoint` is where its clients connect. */
export class NodeProcess {
  readonly exited: Promise<void>;

  private constructor(readonly name: string, readonly child: ChildProcess, readonly endpoint: string) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  /** Starts a node; resolves once it serves. */
  static async start(redisUrl: string, name: string, ttlMs: number): Promise<NodeProcess> {
    // CLUSTER_NODE_ARGV: node options for the node processes (the bench profiles them with --cpu-prof, which NODE_OPTIONS refuses).
    const nodeArgv = process.env.CLUSTER_NODE_ARGV?.split(' ').filter(Boolean) ?? [];
    const child = spawn(process.execPath, [...nodeArgv, FIXTURE, redisUrl, name, String(ttlMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    child.stdin!.on('error', () => {});
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => void (stderr = (stderr + chunk.toString()).slice(-4000)));
    const endpoint = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error(`node ${name} did not say ready within 15 s`)), 15_000);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new Error(`${error.message}; stderr: ${stderr}`));
      };
      const onExit = (code: number | null, signal: string | null): void => fail(new Error(`node ${name} exited (${signal ?? code}) before it was ready`));
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /^ready (\S+)$/m.exec(out);
        if (match) {
          clearTimeout(timer);
          child.off('exit', onExit);
          resolve(match[1]!);
        }
      });
      child.once('exit', onExit);
    });
    child.stdout!.resume();
    return new NodeProcess(name, child, endpoint);
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL: the node dies without a word (its directory entries stay until their TTL). */
  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM: the node leaves the cluster cleanly; SIGKILL if it has not exited within 5 s. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Polls an async check until it passes (bounded). */
export async function eventually(check: () => Promise<unknown>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(20);
    }
  }
}
