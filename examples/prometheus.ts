/**
 * `peer.stats()` scraped by Prometheus through prom-client: gauges and counters read from the peer
 * at each scrape (a collect() callback), no interceptor on the call path. Serve `registry.metrics()`
 * on your /metrics endpoint.
 * Run: `node dist/examples/prometheus.js`.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { Client, Server, type PeerStats } from '../lib/index.js';

type Peers = Readonly<Record<string, { stats(): PeerStats }>>;

/** Registers the metrics of `peers` (labelled `peer="<name>"`) in `registry`, read at each scrape. */
export function exposeStats(registry: Registry, peers: Peers): void {
  const gauge = (name: string, help: string, read: (stats: PeerStats) => number): void => {
    new Gauge({ name, help, labelNames: ['peer'], registers: [registry], collect() {
      for (const [peer, of] of Object.entries(peers)) this.set({ peer }, read(of.stats()));
    } });
  };
  // prom-client counters only grow by inc(): each scrape adds what the peer counted since the last.
  const counter = (name: string, help: string, labelNames: string[], read: (stats: PeerStats) => Array<[Record<string, string>, number]>): void => {
    const last = new Map<string, number>();
    new Counter({ name, help, labelNames, registers: [registry], collect() {
      for (const [peer, of] of Object.entries(peers)) {
        for (const [labels, now] of read(of.stats())) {
          const key = JSON.stringify({ peer, ...labels });
          this.inc({ peer, ...labels }, now - (last.get(key) ?? 0));
          last.set(key, now);
        }
      }
    } });
  };
  gauge('zeropeer_connected_peers', 'Connections up and authenticated', (s) => s.connectedPeers);
  gauge('zeropeer_pending_calls', 'Calls made and not settled', (s) => s.pendingCalls);
  gauge('zeropeer_running_handlers', 'Handlers running', (s) => s.runningHandlers);
  gauge('zeropeer_queued_bytes', 'Bytes waiting for peers that read slowly', (s) => s.queuedBytes);
  counter('zeropeer_calls_total', 'Calls made (out) and work accepted (in)', ['peer', 'direction'], (s) => [[{ direction: 'out' }, s.callsOut], [{ direction: 'in' }, s.callsIn]]);
  counter('zeropeer_calls_failed_total', 'Failed calls by direction and error code', ['peer', 'direction', 'code'], (s) => [
    ...Object.entries(s.failedOut).map(([code, n]): [Record<string, string>, number] => [{ direction: 'out', code }, n]),
    ...Object.entries(s.failedIn).map(([code, n]): [Record<string, string>, number] => [{ direction: 'in', code }, n]),
  ]);
  counter('zeropeer_bytes_total', 'Bytes through the socket', ['peer', 'direction'], (s) => [[{ direction: 'out' }, s.bytesOut], [{ direction: 'in' }, s.bytesIn]]);
}

/** A server and a client, a few calls (one unknown), then the lines of one scrape that mention zeropeer. */
export async function runPrometheus(log: (line: string) => void = console.log): Promise<void> {
  const server = new Server('service');
  await server.bind('tcp://127.0.0.1:0');
  server.registerRpc('add', (a: number, b: number) => a + b);
  await server.start();
  const client = new Client('service');
  client.connect(server.endpoint);
  await client.start();
  const registry = new Registry();
  exposeStats(registry, { server, client });
  try {
    for (let i = 0; i < 3; i++) await client.call.add(i, 1);
    await client.call.subtract(3, 1).catch(() => undefined); // not registered: service_not_found
    const text = await registry.metrics();
    for (const line of text.split('\n')) if (line.startsWith('zeropeer_') && !line.includes('bytes')) log(line);
    const bytes = /zeropeer_bytes_total\{peer="client",direction="out"\} (\d+)/.exec(text);
    log(`client sent bytes: ${Number(bytes?.[1]) > 0 ? 'some' : 'none'}`);
  } finally {
    await client.stop();
    await server.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runPrometheus();
