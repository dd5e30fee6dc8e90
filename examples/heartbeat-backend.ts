/**
 * A heartbeat backend of your own: the shape of one that keeps the peer table outside the process
 * (Redis, a database), shared by several servers. Here the "outside" is a Map standing in for the
 * store, so the example runs anywhere. Liveness (`seen` / `expired`) stays in memory: it runs for
 * every message and must be cheap; only joins and departures go to the shared store.
 * Run: `node dist/examples/heartbeat-backend.js`.
 */
import { Client, MemoryHeartbeatBackend, Server, registerHeartbeatBackend, type HeartbeatBackend, type TrackedPeer } from '../lib/index.js';

/** Where each identity is connected, as every server of the fleet sees it. */
export class SharedPeerTable {
  readonly #rows = new Map<string, { server: string; since: number }>();
  async put(identity: string, server: string): Promise<void> {
    this.#rows.set(identity, { server, since: Date.now() });
  }
  async remove(identity: string, server: string): Promise<void> {
    // Only the server that holds the row may drop it: the peer may have moved on already.
    if (this.#rows.get(identity)?.server === server) this.#rows.delete(identity);
  }
  async lookup(identity: string): Promise<string | undefined> {
    return this.#rows.get(identity)?.server;
  }
}

/** Liveness in memory, membership in the shared table. */
export function sharedTableBackend(table: SharedPeerTable): HeartbeatBackend {
  const liveness = new MemoryHeartbeatBackend();
  return {
    async track(peer: TrackedPeer, now: number) {
      liveness.track(peer, now);
      await table.put(peer.identity, peer.owner);
    },
    async untrack(peer: TrackedPeer, reason: string) {
      liveness.untrack(peer);
      if (peer.identity) await table.remove(peer.identity, peer.owner);
      void reason; // a real store might keep it for an audit trail
    },
    seen: (key, now) => liveness.seen(key, now),
    expired: (silentSince) => liveness.expired(silentSince),
  };
}

export async function runSharedTable(log: (line: string) => void = console.log): Promise<void> {
  const table = new SharedPeerTable();
  registerHeartbeatBackend('shared-table', () => sharedTableBackend(table), { replace: true });

  const servers = ['eu', 'us'].map((id) => new Server(id, { heartbeat: { intervalMs: 200, timeoutMs: 1000, backend: 'shared-table' } }));
  for (const server of servers) {
    await server.bind('tcp://127.0.0.1:0');
    await server.start();
  }
  const alice = new Client('eu', { userId: 'alice' });
  const bob = new Client('us', { userId: 'bob' });
  alice.connect(servers[0]!.endpoint);
  bob.connect(servers[1]!.endpoint);
  try {
    await Promise.all([alice.start(), bob.start()]);
    await waitFor(async () => (await table.lookup('bob')) !== undefined && (await table.lookup('alice')) !== undefined);
    log(`alice is on ${await table.lookup('alice')}, bob is on ${await table.lookup('bob')}`);
    await bob.stop();
    await waitFor(async () => (await table.lookup('bob')) === undefined);
    log(`after bob stops: bob is on ${(await table.lookup('bob')) ?? 'no server'}`);
  } finally {
    await Promise.all([alice.stop(), bob.stop(), ...servers.map((server) => server.stop())]);
  }
}

async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300 && !(await condition()); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

if (import.meta.url === `file://${process.argv[1]}`) await runSharedTable();
