/**
 * Cluster nodes in this process, on a real redis-server: what the in-process cluster specs share
 * (cluster.spec, cluster-calls.spec, cluster-links.spec).
 */
import { expect } from 'chai';
import { Client, Server, type CallContext, type ClusterOptions } from '../lib/index.js';
import { eventually } from './cluster-nodes.js';
import { once, recordingLogger, track } from './helpers.js';

/** The cluster secret of the in-process specs. */
export const CLUSTER_SECRET = 'a shared secret of at least thirty-two characters';

/** A started Server `svc` in cluster mode as node `name`, on redis `redisUrl`; tracked (stopped at cleanup). */
export async function startNode(redisUrl: string, name: string, extra: Partial<ClusterOptions> = {}, logger = recordingLogger()): Promise<Server> {
  const server = track(new Server('svc', {
    logger, drainTimeoutMs: 50, timeoutMs: 3000,
    cluster: { redis: redisUrl, node: name, advertise: 'tcp://127.0.0.1:0', secret: CLUSTER_SECRET, ttlMs: 1500, ...extra },
  }));
  await server.bind('tcp://127.0.0.1:0');
  await server.start();
  return server;
}

/** A started, authenticated Client `identity` of `server`, set up by `prepare` before it connects; tracked. */
export async function startNodeClient(server: Server, identity: string, prepare: (client: Client) => void = () => {}): Promise<Client> {
  const made = track(new Client('svc', { userId: identity, logger: recordingLogger(), drainTimeoutMs: 50 }));
  prepare(made);
  made.connect(server.endpoint);
  const ready = once(made, 'connected');
  await made.start();
  await ready;
  return made;
}

/** Waits until `server`'s view of the cluster has `identity` on node `where`. */
export async function listedOn(server: Server, identity: string, where: string): Promise<void> {
  await eventually(async () => expect((await server.clusterPeers()).find((p) => p.identity === identity)?.node).to.equal(where));
}

/** A client `identity` of `server` whose `wait` handler records its context and holds until its signal aborts; tracked. */
export async function waiter(server: Server, identity: string): Promise<{ client: Client; seen: CallContext[] }> {
  const seen: CallContext[] = [];
  const client = await startNodeClient(server, identity, (made) => {
    made.registerRpc('wait', (ctx: CallContext) => {
      seen.push(ctx);
      return new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve('stopped'), { once: true }));
    }, { withContext: true });
  });
  return { client, seen };
}
