/**
 * The raw floor of the scale scenario: what N idle connections cost a server in raw zeromq.js, with
 * the same idle traffic as zeropeer's heartbeats and nothing else. A ROUTER (the socket options of
 * zeropeer's that matter at idle: mandatory, non-blocking sends, the listen backlog, TCP keepalive)
 * with N DEALER connections spread over child processes like the zeropeer clients; one small
 * message each way per connection per interval:
 *
 *   - the server sends one to every connection it knows in one sweep per interval (zeropeer's tick);
 *   - each client sends one per interval on its own timer, the timers' phases spread over the
 *     interval ('spread': zeropeer's clients before aligned heartbeats), or answers each message of
 *     the server at once and sends on its own timer only when it sent nothing within the interval
 *     ('answer': aligned heartbeats).
 *
 * Measured as for zeropeer: the server's CPU (all threads, by thread) over an idle window, and its
 * RSS after a GC against the same process before any connection, per connection. Both modes run
 * on the same connections, one idle window each. Child side: `node dist/bench/scale-raw.js <server|clients>`.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';
import { measureIdle, runAlone, serveCommands } from './child.js';
import { Worker, spreadClients } from './workers.js';

const SELF = fileURLToPath(import.meta.url);
const BEAT = Buffer.from([0x06]);
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

export type RawMode = 'spread' | 'answer';

export interface RawIdle {
  cpuPct: number;
  threads: Record<string, number>;
  /** Messages the server received during the window. */
  received: number;
}

export interface RawFloor {
  clients: number;
  connected: number;
  connectMs: number;
  idleMs: number;
  idle: Partial<Record<RawMode, RawIdle>>;
  serverRssEmpty: number;
  serverRssIdle: number;
  rssPerClient: number;
  serverHeapEmpty: number;
  serverHeapIdle: number;
}

// ---- child side -----------------------------------------------------------------------------

function serveServer(intervalMs: number): void {
  const router = new zmq.Router({
    mandatory: true, sendTimeout: 0, linger: 0, backlog: 4096,
    tcpKeepalive: 1, tcpKeepaliveIdle: 30, tcpKeepaliveInterval: 10, tcpKeepaliveCount: 3,
  });
  // For RSS experiments only (BENCHMARKS.md): SCALE_RAW_BATCH=<bytes> sets libzmq's draft
  // ZMQ_IN_BATCH_SIZE and ZMQ_OUT_BATCH_SIZE (8192 by default: each connection's decoder and encoder buffer).
  const batch = Number(process.env.SCALE_RAW_BATCH);
  if (batch > 0) {
    const set = (router as unknown as { setInt32Option(option: number, value: number): void }).setInt32Option.bind(router);
    set(101, batch); // ZMQ_IN_BATCH_SIZE
    set(102, batch); // ZMQ_OUT_BATCH_SIZE
  }
  const peers = new Map<string, Buffer>();
  let received = 0;
  const loop = (async () => {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await router.receive();
      } catch {
        return;
      }
      received++;
      const id = frames[0]!;
      const key = id.toString('latin1');
      if (!peers.has(key)) peers.set(key, Buffer.from(id));
    }
  })();
  const sweep = setInterval(() => {
    for (const id of peers.values()) router.send([id, BEAT]).catch(() => {});
  }, intervalMs);
  serveCommands(
    {
      async start() {
        await router.bind('tcp://127.0.0.1:0');
        return { endpoint: router.lastEndpoint };
      },
      async waitPeers(args) {
        const count = Number(args.count);
        const begin = Date.now();
        while (peers.size < count && Date.now() - begin < Number(args.timeoutMs)) await sleep(20);
        return { connected: peers.size };
      },
      async idle(args) {
        const r0 = received;
        const { cpuPct, threads } = await measureIdle(Number(args.ms));
        return { cpuPct, threads, received: received - r0 };
      },
    },
    async () => {
      clearInterval(sweep);
      router.close();
      await loop;
    },
  );
}

function serveClients(intervalMs: number): void {
  const dealers: zmq.Dealer[] = [];
  const timers: NodeJS.Timeout[] = [];
  let mode: RawMode = 'spread';
  serveCommands(
    {
      async start(args) {
        const count = Number(args.count);
        const first = Number(args.first);
        const context = new zmq.Context({ maxSockets: count + 64 });
        for (let i = 0; i < count; i++) {
          const dealer = new zmq.Dealer({ context, routingId: `raw-${first + i}`, sendTimeout: 0, linger: 0, reconnectMaxInterval: 1000 });
          dealer.connect(String(args.endpoint));
          dealers.push(dealer);
          let answered = false;
          const beat = (): void => void dealer.send(BEAT).catch(() => {});
          beat(); // the server learns this connection
          void (async () => {
            for (;;) {
              try {
                await dealer.receive();
              } catch {
                return;
              }
              if (mode === 'answer') {
                beat();
                answered = true;
              }
            }
          })();
          // Its own timer, its phase spread over the interval (as clients that started at different
          // times); in 'answer' mode it skips a tick after which it answered (zeropeer's rule).
          const phase = setTimeout(() => {
            timers.push(setInterval(() => {
              if (answered) answered = false;
              else beat();
            }, intervalMs));
          }, Math.random() * intervalMs);
          timers.push(phase);
        }
        return { started: dealers.length };
      },
      mode(args) {
        mode = args.mode === 'answer' ? 'answer' : 'spread';
        return { mode };
      },
    },
    async () => {
      for (const timer of timers) clearTimeout(timer);
      for (const dealer of dealers) dealer.close();
    },
  );
}

// ---- parent side ----------------------------------------------------------------------------

type Usage = { rss: number; heapUsed: number };

/** Runs the raw floor: every process it starts is stopped (or killed) before it returns. */
export async function runRawFloor(
  plan: { clients: number; processes: number; idleMs: number; intervalMs?: number; childHardTimeoutMs: number },
  log: (line: string) => void,
): Promise<RawFloor> {
  const intervalMs = String(plan.intervalMs ?? 3000);
  const server = Worker.node('scale-raw-server', SELF, ['server', intervalMs], { hardTimeoutMs: plan.childHardTimeoutMs });
  const clientWorkers: Worker[] = [];
  const n = plan.clients;
  try {
    const { endpoint } = await server.request<{ endpoint: string }>('start', {}, 30_000);
    const empty = await server.request<Usage>('usage', { gc: true });
    const begin = performance.now();
    const started = spreadClients('scale-raw clients', SELF, ['clients', intervalMs], endpoint, plan, clientWorkers);
    const waitMs = 60_000 + n * 20;
    const [waited] = await Promise.all([server.request<{ connected: number }>('waitPeers', { count: n, timeoutMs: waitMs }, waitMs + 10_000), started]);
    const connectMs = performance.now() - begin;
    log(`   raw floor: ${waited.connected}/${n} DEALERs connected in ${Math.round(connectMs)} ms`);
    await sleep(Math.min(3000, plan.idleMs / 3));
    const idle: Partial<Record<RawMode, RawIdle>> = {};
    for (const mode of ['spread', 'answer'] as const) {
      await Promise.all(clientWorkers.map((w) => w.request('mode', { mode })));
      await sleep(Number(intervalMs) + 200); // one interval in the new mode before the window
      idle[mode] = await server.request<RawIdle>('idle', { ms: plan.idleMs }, plan.idleMs + 30_000);
      log(`   raw floor, clients ${mode}: server ${idle[mode]!.cpuPct.toFixed(2)}% of one core (${idle[mode]!.received} messages received)`);
    }
    const atIdle = await server.request<Usage>('usage', { gc: true });
    log(`   raw floor: RSS ${((atIdle.rss - empty.rss) / n / 1024).toFixed(1)} KiB per connection`);
    return {
      clients: n, connected: waited.connected, connectMs, idleMs: plan.idleMs, idle,
      serverRssEmpty: empty.rss, serverRssIdle: atIdle.rss, rssPerClient: (atIdle.rss - empty.rss) / n, serverHeapEmpty: empty.heapUsed, serverHeapIdle: atIdle.heapUsed,
    };
  } finally {
    await Promise.all([...clientWorkers.map((w) => w.stop(30_000)), server.stop(30_000)]);
  }
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === SELF;
if (isMain) {
  const [role, interval] = process.argv.slice(2);
  const intervalMs = role === 'run' ? 3000 : Number(interval) || 3000;
  if (role === 'server') serveServer(intervalMs);
  else if (role === 'clients') serveClients(intervalMs);
  else if (role === 'run') {
    // Alone (the raw floor only): node dist/bench/scale-raw.js run [clients] [processes] [idleMs]
    const [clients, processes, idleMs] = process.argv.slice(3);
    const plan = { clients: Number(clients) || 1000, processes: Number(processes) || 2, idleMs: Number(idleMs) || 10_000, childHardTimeoutMs: 600_000 };
    runAlone(runRawFloor(plan, (line) => console.error(line)));
  } else {
    console.error('scale-raw.js <server|clients> [intervalMs] (children of the scale scenario: run `npm run bench`), or scale-raw.js run [clients] [processes] [idleMs]');
    process.exit(2);
  }
}
