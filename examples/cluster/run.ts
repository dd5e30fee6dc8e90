/**
 * The cluster example: three node processes (node.ts) sharing one Redis, a worker connected to each
 * node, and a producer connected to node a only. The producer's jobs reach all three workers: node a
 * finds each worker in the directory and sends the job over the link to the node that holds it.
 * Run: `node dist/examples/cluster/run.js [redis url]` (default redis://127.0.0.1:6379).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client } from '../../lib/index.js';

const NODE = fileURLToPath(new URL('./node.js', import.meta.url));

function startNodeProcess(redis: string, name: string, secret: string): Promise<{ child: ChildProcess; endpoint: string }> {
  const child = spawn(process.execPath, [NODE, redis, name], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, CLUSTER_SECRET: secret } });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${name} did not start`));
    }, 15_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /^ready (\S+)$/m.exec((out += chunk.toString()));
      if (match) {
        clearTimeout(timer);
        resolve({ child, endpoint: match[1]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node ${name} exited (${code})`));
    });
  });
}

/** Starts a client; resolves once it is connected and authenticated. */
function connected(client: Client): Promise<void> {
  const ready = new Promise<void>((resolve) => client.once('connected', () => resolve()));
  return client.start().then(() => ready);
}

export async function runCluster(redis = 'redis://127.0.0.1:6379', log: (line: string) => void = console.log): Promise<void> {
  const secret = randomBytes(32).toString('hex'); // every node gets the same one
  const nodes = await Promise.all(['a', 'b', 'c'].map((name) => startNodeProcess(redis, name, secret)));
  const peers: Client[] = [];
  try {
    for (const [i, { endpoint }] of nodes.entries()) {
      const name = `worker-${'abc'[i]}`;
      const worker = new Client('jobs', { userId: name });
      worker.registerRpc('run', (job: string) => `${job} done by ${name}`);
      worker.connect(endpoint);
      peers.push(worker);
      await connected(worker);
    }
    const producer = new Client('jobs', { userId: 'producer' });
    producer.connect(nodes[0]!.endpoint);
    peers.push(producer);
    await connected(producer);
    // Workers are listed once their node has written them to Redis: wait until all three are there.
    for (let tries = 0; tries < 100; tries++) {
      const seen = new Set<string>();
      for (let i = 0; i < 3; i++) seen.add(String(await producer.call.jobs.dispatch('probe')).split(' ')[3]!);
      if (seen.size === 3) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const results = await Promise.all(['build', 'test', 'deploy'].map((job) => producer.call.jobs.dispatch(job) as Promise<string>));
    for (const result of results.sort()) log(result);
  } finally {
    await Promise.all(peers.map((peer) => peer.stop()));
    for (const { child } of nodes) {
      child.removeAllListeners('exit');
      child.kill('SIGTERM');
    }
    await Promise.all(nodes.map(({ child }) => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)))));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runCluster(process.argv[2]);
