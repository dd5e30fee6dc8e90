/**
 * Child process entry for the idle-clients scenario, in two roles so that the server's CPU and
 * memory are measured in its own process:
 *
 *   node dist/bench/idle-clients.js server    a zeropeer Server (trusted_peer, default heartbeats)
 *   node dist/bench/idle-clients.js clients   N zeropeer Clients, each registering `upper`
 *
 * Driven by run.ts over IPC: start, waitPeers, idle, pushAll, usage, stop.
 */
import * as zmq from 'zeromq';
import { Client, Server, silentLogger } from '../lib/index.js';
import { measureIdle, serveCommands } from './child.js';
import { upper } from './systems/types.js';

const SERVICE = 'bench-idle';

const role = process.argv[2];
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

if (role === 'server') {
  const server = new Server(SERVICE, { security: 'trusted_peer', logger: silentLogger });
  serveCommands(
    {
      async start() {
        await server.bind('tcp://127.0.0.1:0');
        await server.start();
        return { endpoint: server.endpoint };
      },
      /** Resolves once `count` clients are connected and authenticated (or at `timeoutMs`). */
      async waitPeers(args) {
        const count = Number(args.count);
        const timeoutMs = Number(args.timeoutMs) || 60_000;
        const begin = performance.now();
        while (server.connectedPeers().length < count && performance.now() - begin < timeoutMs) await sleep(25);
        return { connected: server.connectedPeers().length, ms: performance.now() - begin };
      },
      /** Does nothing for `ms` and reports what that cost this process (all threads). */
      async idle(args) {
        const { cpuPct, threads, before, after } = await measureIdle(Number(args.ms));
        return {
          cpuPct,
          threads,
          rssBefore: before.rss,
          rssAfter: after.rss,
          heapUsed: after.heapUsed,
          connected: server.connectedPeers().length,
        };
      },
      /** One call to each connected client, all at once; the time until the last answer. */
      async pushAll(args) {
        const timeoutMs = Number(args.timeoutMs) || 10_000;
        const identities = server.connectedPeers();
        const begin = performance.now();
        const results = await Promise.allSettled(identities.map((identity) => server.sendTo(identity, { timeoutMs }).upper(identity)));
        const ms = performance.now() - begin;
        const failed = results.filter((r, i) => r.status === 'rejected' || r.value !== identities[i]!.toUpperCase());
        const firstFailure = failed.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
        return {
          clients: identities.length,
          answered: identities.length - failed.length,
          failed: failed.length,
          ms,
          firstError: firstFailure ? String((firstFailure.reason as Error)?.message ?? firstFailure.reason) : undefined,
        };
      },
    },
    () => server.stop(),
  );
} else if (role === 'clients') {
  const clients: Client[] = [];
  let context: zmq.Context | undefined;
  serveCommands(
    {
      /** Starts `count` clients (in batches, bounded) connecting to `endpoint`. */
      async start(args) {
        const count = Number(args.count);
        const endpoint = String(args.endpoint);
        // One context of our own, sized for the sockets of this process (libzmq's default is 1023):
        // a Client has three (its ROUTER; for the monitor that names failed handshakes, the PAIR
        // libzmq makes and the PAIR zeromq.js reads it with).
        context = new zmq.Context({ maxSockets: count * 3 + 64 });
        const begin = performance.now();
        for (let i = 0; i < count; i += 100) {
          const batch: Promise<void>[] = [];
          for (let j = i; j < Math.min(count, i + 100); j++) {
            const client = new Client(SERVICE, { security: 'trusted_peer', userId: `idle-${j}`, logger: silentLogger, context });
            client.registerRpc('upper', upper);
            client.connect(endpoint);
            clients.push(client);
            batch.push(client.start());
          }
          await Promise.all(batch);
        }
        return { started: clients.length, ms: performance.now() - begin };
      },
    },
    async () => {
      await Promise.all(clients.map((client) => client.stop()));
    },
  );
} else {
  console.error('usage: idle-clients.js <server|clients>');
  process.exit(2);
}
