/**
 * System 6: aiozmq.rpc (Python), when installed. The Python side is aiozmq_bench.py (both roles);
 * this module finds an interpreter that can `import aiozmq.rpc` (/usr/bin/python3 first, then
 * `python3` on PATH) and starts the roles. Without one, the system is skipped with a note.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from '../workers.js';

/** The script lives beside this file's source (bench/systems/), also when run from dist/. */
export function aiozmqScript(): string {
  const candidates = [
    fileURLToPath(new URL('../../../bench/systems/aiozmq_bench.py', import.meta.url)),
    fileURLToPath(new URL('./aiozmq_bench.py', import.meta.url)),
  ];
  return candidates.find((path) => existsSync(path)) ?? candidates[0]!;
}

export interface PythonProbe {
  python?: string;
  versions?: string;
  /** Why aiozmq is skipped, when it is. */
  skipped?: string;
}

/** Finds a Python that imports aiozmq.rpc (each try bounded by 20 s). */
export function probeAiozmq(): PythonProbe {
  const tried: string[] = [];
  for (const python of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(
      python,
      ['-c', 'import sys, zmq, aiozmq, aiozmq.rpc; print("python %s, aiozmq %s, pyzmq %s, libzmq %s" % (sys.version.split()[0], aiozmq.__version__, zmq.__version__, zmq.zmq_version()))'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    if (probe.status === 0) return { python, versions: probe.stdout.trim() };
    const reason = probe.error ? probe.error.message : (probe.stderr || '').trim().split('\n').at(-1) ?? `exit ${probe.status}`;
    tried.push(`${python}: ${reason}`);
  }
  return { skipped: `aiozmq skipped: no Python here can import aiozmq.rpc (${tried.join('; ')})` };
}

/** Starts one role of the aiozmq system in its own Python process. */
export function aiozmqWorker(python: string, role: 'caller' | 'responder', hardTimeoutMs: number): Worker {
  return Worker.lines(`aiozmq ${role}`, python, [aiozmqScript(), role, String(Math.ceil(hardTimeoutMs / 1000))]);
}
