/**
 * One node of the cluster example: a Server 'jobs' in cluster mode. Workers connect to any node;
 * `jobs.dispatch(job)` (called by the producer) picks a worker anywhere in the cluster and runs the
 * job there with `sendTo`, wherever that worker is connected.
 * Run: `node dist/examples/cluster/node.js <redis url> <node name>` (prints `ready <endpoint>`);
 * every node needs the same CLUSTER_SECRET (at least 32 characters) in its environment.
 */
import { Server } from '../../lib/index.js';

export async function startNode(redis: string, node: string, secret: string): Promise<Server> {
  const server = new Server('jobs', {
    // advertise: where the other nodes reach this one (a real deployment names its own address).
    cluster: { redis, node, advertise: 'tcp://127.0.0.1:0', secret, ttlMs: 3000 },
  });
  let next = 0;
  server.registerRpc('jobs.dispatch', async (job: string) => {
    const workers = (await server.clusterPeers()).filter((peer) => peer.identity.startsWith('worker-'));
    if (workers.length === 0) throw new Error('no worker connected to any node');
    const { identity } = workers[next++ % workers.length]!;
    const result = (await server.sendTo(identity).run(job)) as string;
    return `${result} (dispatched by node ${node})`;
  });
  await server.bind('tcp://127.0.0.1:0');
  await server.start();
  return server;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [redis, node] = process.argv.slice(2);
  const secret = process.env.CLUSTER_SECRET ?? '';
  const server = await startNode(redis!, node!, secret);
  process.stdout.write(`ready ${server.endpoint}\n`);
  const stop = (): void => void server.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop); // the parent is gone
  process.stdin.resume();
}
