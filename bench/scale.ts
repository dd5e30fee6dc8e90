/**
 * The scale scenario: N connected, authenticated clients on one server (10,000 in the full bench),
 * the clients spread over a few child processes, the server in a process of its own so that its
 * CPU and memory are its own. Measured:
 *
 *   - the server's CPU at idle, default heartbeats (% of one core)
 *   - the server's RSS per client (after a GC, against the same process with no client)
 *   - one call pushed to every client (`server.sendTo(id).upper(id)`), until the last answer
 *   - a server restart: the server process stops (gracefully) and a new one binds the same
 *     endpoint; the time until every client has reconnected and authenticated again
 *
 * Each Client has three ZeroMQ sockets (its ROUTER; for the monitor of its handshakes, the PAIR
 * libzmq makes and the PAIR zeromq.js reads it with), so each clients process sizes its context for
 * 3 per client. File descriptors: a clients process holds about 4 per client (a mailbox per socket,
 * the TCP connection) and the server 1 per client; the limit here (`ulimit -n` 20000) is enough
 * for 2,500 clients per process, so the bench does not raise it.
 *
 * The parent side is `runScale` (called by run.ts); the child side is this file run as
 * `node dist/bench/scale.js <server|clients>`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';
import { Client, Server, silentLogger } from '../lib/index.js';
import { measureIdle, runAlone, serveCommands } from './child.js';
import { runRawFloor, type RawFloor } from './scale-raw.js';
import { upper } from './systems/types.js';
import { Worker, spreadClients } from './workers.js';

const SERVICE = 'bench-scale';
const SELF = fileURLToPath(import.meta.url);
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

export interface ScalePlan {
  clients: number;
  /** Child processes the clients are spread over. */
  processes: number;
  idleMs: number;
  pushes: number;
  childHardTimeoutMs: number;
  /** Also measure the raw floor (bench/scale-raw.ts) first, with the same clients, processes and idle window. */
  rawFloor?: boolean;
}

export interface PushResult {
  clients: number;
  answered: number;
  failed: number;
  ms: number;
  firstError?: string | undefined;
}

export interface ScaleResult {
  clients: number;
  processes: number;
  connected: number;
  connectMs: number;
  idleMs: number;
  serverCpuPct: number;
  /** The server's CPU by thread name, % of one core (Linux). */
  serverThreads: Record<string, number>;
  serverRssEmpty: number;
  serverRssIdle: number;
  rssPerClient: number;
  serverHeapEmpty: number;
  serverHeapIdle: number;
  clientsCpuPct: number;
  clientsRss: number;
  /** The same idle traffic in raw zeromq.js, measured just before (undefined: not asked, or it failed). */
  raw?: RawFloor | undefined;
  rawError?: string | undefined;
  pushes: PushResult[];
  pushMedianMs: number;
  restart: {
    /** Stop asked -> old process gone (a graceful stop: GOODBYE to every client). */
    stopMs: number;
    /** Old process gone -> every client authenticated on the new one: the restart's outage. */
    reconnectMs: number;
    /** New server bound -> every client authenticated. */
    fromBindMs: number;
    reconnected: number;
    pushAfter: PushResult;
  };
}

// ---- child side -----------------------------------------------------------------------------

/** Runs `work`; with a path, under the V8 CPU profiler, the profile written there (one window, not the whole process). */
async function profiled<T>(path: unknown, work: () => Promise<T>): Promise<T> {
  if (typeof path !== 'string') return work();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await work();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, JSON.stringify(profile));
    session.disconnect();
  }
}

function serveServer(): void {
  const server = new Server(SERVICE, { security: 'trusted_peer', logger: silentLogger });
  let authenticated = 0;
  let goal = Number.POSITIVE_INFINITY;
  let reachedAt: number | undefined;
  server.on('peer:authenticated', () => {
    authenticated++;
    if (authenticated >= goal && reachedAt === undefined) reachedAt = Date.now();
  });
  server.on('peer:gone', () => void authenticated--);
  let boundAt = 0;
  serveCommands(
    {
      async start(args) {
        await server.bind(typeof args.endpoint === 'string' ? args.endpoint : 'tcp://127.0.0.1:0');
        await server.start();
        boundAt = Date.now();
        return { endpoint: server.endpoint, boundAt };
      },
      /** Resolves once `count` clients are authenticated (or at `timeoutMs`); `doneAt` is when the last one was (epoch ms). */
      waitPeers: (args) => profiled(args.profile, async () => {
        goal = Number(args.count);
        const timeoutMs = Number(args.timeoutMs) || 120_000;
        if (authenticated >= goal) reachedAt ??= Date.now();
        const begin = Date.now();
        while (reachedAt === undefined && Date.now() - begin < timeoutMs) await sleep(20);
        return { connected: authenticated, doneAt: reachedAt ?? Number.NaN, boundAt };
      }),
      /** Does nothing for `ms` and reports what that cost this process (all threads, and by thread). */
      idle: (args) => profiled(args.profile, async () => {
        const { cpuPct, threads } = await measureIdle(Number(args.ms));
        return { cpuPct, threads, connected: authenticated };
      }),
      /** One call to each connected client, all at once (`sendTo(id).upper(id)`); the time until the last answer. */
      pushAll: (args) => profiled(args.profile, async () => {
        const identities = server.connectedPeers();
        const begin = performance.now();
        const results = await Promise.allSettled(identities.map((identity) => server.sendTo(identity).upper(identity) as Promise<string>));
        const ms = performance.now() - begin;
        let failed = 0;
        let firstError: string | undefined;
        results.forEach((result, i) => {
          if (result.status === 'fulfilled' && result.value === identities[i]!.toUpperCase()) return;
          failed++;
          firstError ??= result.status === 'rejected' ? String((result.reason as Error)?.message ?? result.reason) : 'wrong answer';
        });
        return { clients: identities.length, answered: identities.length - failed, failed, ms, firstError };
      }),
    },
    () => server.stop(),
  );
}

function serveClients(): void {
  const clients: Client[] = [];
  serveCommands(
    {
      /** Starts `count` clients (identities `scale-<first + i>`) connecting to `endpoint`. */
      async start(args) {
        const count = Number(args.count);
        const first = Number(args.first);
        const endpoint = String(args.endpoint);
        // One context for this process, room for three sockets per Client (libzmq's default is 1023): its
        // ROUTER, and for the monitor of its handshakes the PAIR libzmq makes and the PAIR that reads it.
        const context = new zmq.Context({ maxSockets: count * 3 + 64 });
        for (let i = 0; i < count; i += 100) {
          const batch: Promise<void>[] = [];
          for (let j = i; j < Math.min(count, i + 100); j++) {
            const client = new Client(SERVICE, { security: 'trusted_peer', userId: `scale-${first + j}`, logger: silentLogger, context });
            client.registerRpc('upper', upper);
            client.connect(endpoint);
            clients.push(client);
            batch.push(client.start());
          }
          await Promise.all(batch);
        }
        return { started: clients.length };
      },
    },
    async () => {
      await Promise.all(clients.map((client) => client.stop()));
    },
  );
}

// ---- parent side ----------------------------------------------------------------------------

type Usage = { cpuUserUs: number; cpuSystemUs: number; rss: number; heapUsed: number; at: number };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)]! : Number.NaN;
}

/** Runs the scenario; every process it starts is stopped (or killed) before it returns. */
export async function runScale(plan: ScalePlan, log: (line: string) => void, profileDir?: string): Promise<ScaleResult> {
  // With a profile directory: the server's CPU profile of each window (connect, idle, push, reconnect), one file each.
  let raw: RawFloor | undefined;
  let rawError: string | undefined;
  if (plan.rawFloor) {
    try {
      raw = await runRawFloor(plan, log);
    } catch (error) {
      rawError = (error as Error).message;
      log(`   raw floor failed: ${rawError}`);
    }
  }
  const profile = (name: string): string | undefined => (profileDir ? resolve(profileDir, `scale-server-${name}.cpuprofile`) : undefined);
  const startServer = (name: string): Worker => Worker.node(name, SELF, ['server'], { hardTimeoutMs: plan.childHardTimeoutMs });
  let server = startServer('scale-server');
  const clientWorkers: Worker[] = [];
  const n = plan.clients;
  try {
    const { endpoint } = await server.request<{ endpoint: string }>('start', {}, 30_000);
    const empty = await server.request<Usage>('usage', { gc: true });
    const begin = performance.now();
    const started = spreadClients('scale clients', SELF, ['clients'], endpoint, plan, clientWorkers);
    const waitMs = 60_000 + n * 20;
    const [waited] = await Promise.all([
      server.request<{ connected: number; doneAt: number }>('waitPeers', { count: n, timeoutMs: waitMs, profile: profile('connect') }, waitMs + 10_000),
      started,
    ]);
    const connectMs = performance.now() - begin;
    log(`   ${waited.connected}/${n} clients connected and authenticated in ${Math.round(connectMs)} ms; idle for ${plan.idleMs / 1000} s`);
    await sleep(Math.min(3000, plan.idleMs / 3)); // let the connection storm settle

    const clientsBefore = await Promise.all(clientWorkers.map((w) => w.request<Usage>('usage')));
    const idle = await server.request<{ cpuPct: number; threads: Record<string, number>; connected: number }>('idle', { ms: plan.idleMs, profile: profile('idle') }, plan.idleMs + 30_000);
    const clientsAfter = await Promise.all(clientWorkers.map((w) => w.request<Usage>('usage')));
    const atIdle = await server.request<Usage>('usage', { gc: true });
    log(`   idle: server ${idle.cpuPct.toFixed(2)}% of one core, RSS ${((atIdle.rss - empty.rss) / n / 1024).toFixed(1)} KiB per client`);

    const pushes: PushResult[] = [];
    for (let i = 0; i < plan.pushes; i++) {
      pushes.push(await server.request<PushResult>('pushAll', { profile: profile(`push-${i + 1}`) }, 60_000));
      log(`   push ${i + 1}/${plan.pushes}: ${pushes.at(-1)!.answered}/${pushes.at(-1)!.clients} answered in ${Math.round(pushes.at(-1)!.ms)} ms`);
    }

    // The restart: the old process stops (GOODBYE to each client) and exits; a new one binds the same endpoint.
    log('   restart: the server process stops, a new one binds the same endpoint');
    const stopAsked = Date.now();
    await server.stop(30_000);
    const stoppedAt = Date.now();
    server = startServer('scale-server-restarted');
    const restarted = await server.request<{ boundAt: number }>('start', { endpoint }, 30_000);
    const back = await server.request<{ connected: number; doneAt: number }>('waitPeers', { count: n, timeoutMs: waitMs, profile: profile('reconnect') }, waitMs + 10_000);
    const reconnectMs = back.doneAt - stoppedAt;
    log(`   ${back.connected}/${n} reconnected and authenticated ${Math.round(reconnectMs)} ms after the old server exited (${Math.round(back.doneAt - restarted.boundAt)} ms after the new one bound)`);
    const pushAfter = await server.request<PushResult>('pushAll', {}, 60_000);

    const clientsCpuUs = clientsAfter.reduce((sum, after, i) =>
      sum + after.cpuUserUs + after.cpuSystemUs - clientsBefore[i]!.cpuUserUs - clientsBefore[i]!.cpuSystemUs, 0);
    const clientsWallMs = median(clientsAfter.map((after, i) => after.at - clientsBefore[i]!.at));
    return {
      clients: n,
      processes: clientWorkers.length,
      connected: idle.connected,
      connectMs,
      idleMs: plan.idleMs,
      serverCpuPct: idle.cpuPct,
      serverThreads: idle.threads,
      serverRssEmpty: empty.rss,
      serverRssIdle: atIdle.rss,
      rssPerClient: (atIdle.rss - empty.rss) / n,
      serverHeapEmpty: empty.heapUsed,
      serverHeapIdle: atIdle.heapUsed,
      clientsCpuPct: (clientsCpuUs / 1000 / clientsWallMs) * 100,
      clientsRss: clientsAfter.reduce((sum, u) => sum + u.rss, 0),
      raw,
      rawError,
      pushes,
      pushMedianMs: median(pushes.map((p) => p.ms)),
      restart: {
        stopMs: stoppedAt - stopAsked,
        reconnectMs: back.connected >= n ? reconnectMs : Number.NaN,
        fromBindMs: back.doneAt - restarted.boundAt,
        reconnected: back.connected,
        pushAfter,
      },
    };
  } finally {
    await Promise.all([...clientWorkers.map((w) => w.stop(30_000)), server.stop(30_000)]);
  }
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === SELF;
if (isMain) {
  const role = process.argv[2];
  if (role === 'server') serveServer();
  else if (role === 'clients') serveClients();
  else if (role === 'run') {
    // Alone, for profiling and sizing: node dist/bench/scale.js run [clients] [processes] [idleMs] [profileDir]
    // (the raw floor first, unless SCALE_RAW=0)
    const [clients, processes, idleMs, profileDir] = process.argv.slice(3);
    const plan = { clients: Number(clients) || 1000, processes: Number(processes) || 2, idleMs: Number(idleMs) || 10_000, pushes: 3, childHardTimeoutMs: 600_000, rawFloor: process.env.SCALE_RAW !== '0' };
    runAlone(runScale(plan, (line) => console.error(line), profileDir ? resolve(profileDir) : undefined));
  } else {
    console.error(`usage: ${dirname(SELF)}/scale.js <server|clients|run> (server and clients are children of the bench: run \`npm run bench\`)`);
    process.exit(2);
  }
}
