/**
 * zeropeer's benchmark: `npm run bench` (build, then `node dist/bench/run.js`).
 *
 * Every system runs in the same run, each role (caller, responder) in a process of its own, on
 * 127.0.0.1 only. The round scenarios alternate systems (A B C A B C ...) so that machine noise
 * hits all alike; the report gives the median of the rounds, and ratios against raw zeromq.js
 * measured in the same run. Then, on zeropeer alone: a long run of calls with RSS sampled (leak
 * check), N idle clients with heartbeats (server CPU and RSS, then one push to each), and the scale
 * scenario (bench/scale.ts: 10,000 clients on one server, over 4 child processes; --quick: 200).
 *
 *   node dist/bench/run.js [--quick] [--json] [--only raw,zeropeer,...] [--scenarios ...] [--rounds N] [--profile DIR]
 *
 * --quick   a ~30-second smoke version (short cells, 50 idle clients for 3 s, 200 clients at scale, 20k calls)
 * --json    JSON on stdout; the table and progress go to stderr
 * --only    systems to run, comma-separated: raw, zeropeer, zeropeer-s2c, zeropeer-curve, grpc, aiozmq
 *           (and raw-router, a diagnostic: zeropeer's ROUTER<->ROUTER pattern without zeropeer)
 * --scenarios  scenarios to run (default all): sequential, in-flight-64, payload-64KiB, million-calls, idle-clients, scale, cluster
 * --rounds  measured rounds (default 5, quick 3)
 * --profile write a CPU profile (node --cpu-prof) of every Node process into DIR/<system>-<role>
 *           (summarize one with `node dist/bench/profile-summary.js FILE`)
 */
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';
import { ROUND_SCENARIOS, SCENARIO_TITLES, makePlan, type DriveResult, type Plan, type RoundScenario, type ScenarioKey } from './scenarios.js';
import { fmt, fmtRatio, halfSpread, median, mib, ratio, round, table } from './stats.js';
import { runScale, type ScaleResult } from './scale.js';
import { aiozmqWorker, probeAiozmq, type PythonProbe } from './systems/aiozmq.js';
import { BINDERS } from './systems/index.js';
import type { Rendezvous } from './systems/types.js';
import { Worker, killAllChildren } from './workers.js';

const here = dirname(fileURLToPath(import.meta.url));
const WORKER_SCRIPT = resolve(here, 'worker.js');
const IDLE_SCRIPT = resolve(here, 'idle-clients.js');

// ---- systems --------------------------------------------------------------------------------

interface SystemSpec {
  key: string;
  label: string;
  kind: 'node' | 'python';
  /** Diagnostic systems run only when named in --only. */
  diagnostic?: boolean;
}

const SYSTEMS: readonly SystemSpec[] = [
  { key: 'raw', label: 'raw zeromq.js (DEALER->ROUTER, msgpackr)', kind: 'node' },
  { key: 'zeropeer', label: 'zeropeer client->server (trusted_peer, heartbeats)', kind: 'node' },
  { key: 'zeropeer-s2c', label: 'zeropeer server->client (sendTo)', kind: 'node' },
  { key: 'zeropeer-curve', label: 'zeropeer plain over CURVE', kind: 'node' },
  { key: 'grpc', label: '@grpc/grpc-js unary, insecure', kind: 'node' },
  { key: 'aiozmq', label: 'aiozmq.rpc (Python)', kind: 'python' },
  { key: 'raw-batched', label: 'raw zeromq.js, calls of one microtask as one frame (batching ceiling)', kind: 'node' },
  { key: 'raw-router', label: 'diagnostic: raw zeromq.js ROUTER<->ROUTER, 2 frames', kind: 'node', diagnostic: true },
  { key: 'zeropeer-unbatched', label: 'diagnostic: zeropeer client->server, batch: false', kind: 'node', diagnostic: true },
];
const SYSTEM_KEYS = SYSTEMS.map((s) => s.key);

type Status = 'ok' | 'failed' | 'skipped' | 'not selected';

interface CellResult extends DriveResult {
  /** The measured round (1..rounds) this cell belongs to: ratios pair cells of the same round. */
  round: number;
  cpuPct: number;
  rss: number;
  responderCpuPct: number;
}

interface SystemRun {
  spec: SystemSpec;
  status: Status;
  note?: string;
  caller?: Worker;
  responder?: Worker;
  cells: Record<string, CellResult[]>;
  /** Calls made in the warm-up round (not reported; counted to turn a profile into time per call). */
  warmupCalls: number;
}

// ---- command line ---------------------------------------------------------------------------

interface Args {
  quick: boolean;
  json: boolean;
  only: string[];
  scenarios: ScenarioKey[];
  rounds?: number;
  profileDir?: string;
}

const ALL_SCENARIOS = Object.keys(SCENARIO_TITLES) as ScenarioKey[];

const USAGE = `usage: node dist/bench/run.js [--quick] [--json] [--only SYSTEMS] [--scenarios SCENARIOS] [--rounds N] [--profile DIR]

  --quick      a ~30-second smoke version (short cells, 50 idle clients for 3 s, 200 clients at scale, 20k calls)
  --json       JSON on stdout; the table and progress go to stderr
  --only       systems to run, comma-separated: ${SYSTEM_KEYS.join(', ')}
               (raw-router, zeropeer's socket pattern without zeropeer, is a diagnostic run only when named)
  --scenarios  scenarios to run, comma-separated (default all): ${ALL_SCENARIOS.join(', ')}
  --rounds     measured rounds (default 5; --quick 3)
  --profile    write a CPU profile (node --cpu-prof) of every Node process into DIR/<system>-<role>
               (summarize one: node dist/bench/profile-summary.js FILE.cpuprofile)`;

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, json: false, only: SYSTEMS.filter((s) => !s.diagnostic).map((s) => s.key), scenarios: [...ALL_SCENARIOS] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === '--quick') args.quick = true;
    else if (arg === '--json') args.json = true;
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const list = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : value();
      args.only = list.split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = args.only.filter((k) => !SYSTEM_KEYS.includes(k));
      if (unknown.length || args.only.length === 0) throw new Error(`--only: unknown system(s) ${unknown.join(', ')}; known: ${SYSTEM_KEYS.join(', ')}`);
    } else if (arg === '--scenarios' || arg.startsWith('--scenarios=')) {
      const list = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : value();
      args.scenarios = list.split(',').map((s) => s.trim()).filter(Boolean) as ScenarioKey[];
      const unknown = args.scenarios.filter((k) => !ALL_SCENARIOS.includes(k));
      if (unknown.length || args.scenarios.length === 0) throw new Error(`--scenarios: unknown scenario(s) ${unknown.join(', ')}; known: ${ALL_SCENARIOS.join(', ')}`);
    } else if (arg === '--rounds') {
      args.rounds = Number(value());
      if (!Number.isInteger(args.rounds) || args.rounds < 1 || args.rounds > 50) throw new Error('--rounds takes 1 to 50');
    } else if (arg === '--profile') args.profileDir = resolve(value());
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${arg} (try --help)`);
  }
  return args;
}

// ---- output ---------------------------------------------------------------------------------

let toStdout = true;
/** Progress and notes: always stderr. */
const log = (line: string): void => void process.stderr.write(`${line}\n`);
/** The report: stdout, or stderr when stdout carries the JSON. */
const report = (line: string): void => void (toStdout ? process.stdout : process.stderr).write(`${line}\n`);

// ---- machine --------------------------------------------------------------------------------

function machine(probe: PythonProbe | undefined) {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux
  }
  const require = createRequire(import.meta.url);
  /** A dependency's version: from its package.json, found upwards of its entry point (some packages do not export it). */
  const versionOf = (name: string): string => {
    try {
      let dir = dirname(require.resolve(name));
      for (let i = 0; i < 6; i++, dir = dirname(dir)) {
        try {
          const json = JSON.parse(readFileSync(resolve(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
          if (json.name === name && json.version) return json.version;
        } catch {
          // no package.json here: one level up
        }
      }
    } catch {
      // not installed
    }
    return 'unknown';
  };
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpuModel,
    ramGiB: round(os.totalmem() / 1024 ** 3, 1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    libzmq: zmq.version,
    zeromqJs: versionOf('zeromq'),
    grpcJs: versionOf('@grpc/grpc-js'),
    msgpackr: versionOf('msgpackr'),
    python: probe?.versions ?? probe?.skipped ?? 'not used',
  };
}

// ---- systems: start, cells, stop ------------------------------------------------------------

function startWorkers(spec: SystemSpec, plan: Plan, args: Args, probe: PythonProbe | undefined): { caller: Worker; responder: Worker } {
  if (spec.kind === 'python') {
    return {
      caller: aiozmqWorker(probe!.python!, 'caller', plan.childHardTimeoutMs),
      responder: aiozmqWorker(probe!.python!, 'responder', plan.childHardTimeoutMs),
    };
  }
  const make = (role: 'caller' | 'responder'): Worker => {
    const execArgv = args.profileDir
      ? ['--cpu-prof', `--cpu-prof-dir=${resolve(args.profileDir, `${spec.key}-${role}`)}`]
      : [];
    return Worker.node(`${spec.key} ${role}`, WORKER_SCRIPT, [spec.key, role], { hardTimeoutMs: plan.childHardTimeoutMs, execArgv });
  };
  return { caller: make('caller'), responder: make('responder') };
}

async function startSystem(run: SystemRun, plan: Plan, args: Args, probe: PythonProbe | undefined): Promise<void> {
  const { caller, responder } = startWorkers(run.spec, plan, args, probe);
  run.caller = caller;
  run.responder = responder;
  const binder = run.spec.kind === 'python' ? 'responder' : BINDERS[run.spec.key]!;
  const [first, second] = binder === 'caller' ? [caller, responder] : [responder, caller];
  const started = await first.request<{ rendezvous: Rendezvous | null }>('start', {}, 30_000);
  await second.request('start', { rendezvous: started.rendezvous }, 30_000);
  await caller.request('ready', { timeoutMs: 20_000 }, 30_000);
}

async function stopSystem(run: SystemRun): Promise<void> {
  await Promise.all([run.caller?.stop(), run.responder?.stop()]);
}

async function runCell(run: SystemRun, scenario: RoundScenario, durationMs: number, plan: Plan): Promise<Omit<CellResult, 'round'>> {
  type Usage = { cpuUserUs: number; cpuSystemUs: number; at: number };
  const before = await run.responder!.request<Usage>('usage');
  const result = await run.caller!.request<DriveResult & { cpuPct: number; rss: number }>(
    'run',
    { concurrency: scenario.concurrency, payloadBytes: scenario.payloadBytes, durationMs, maxCalls: plan.maxCallsPerCell, latency: scenario.latency },
    durationMs + 60_000,
  );
  const after = await run.responder!.request<Usage>('usage');
  const responderCpuPct = ((after.cpuUserUs + after.cpuSystemUs - before.cpuUserUs - before.cpuSystemUs) / 1000 / (after.at - before.at)) * 100;
  if (result.calls === 0) throw new Error(`no call succeeded (${result.firstError ?? 'no error'})`);
  return { ...result, responderCpuPct };
}

function fail(run: SystemRun, error: unknown): void {
  run.status = 'failed';
  run.note = (error as Error)?.message?.split('\n').slice(0, 3).join(' ') ?? String(error);
  log(`!! ${run.spec.key} failed: ${run.note}`);
  run.caller?.kill();
  run.responder?.kill();
}

// ---- the long run (leak check) --------------------------------------------------------------

interface RssSample {
  calls: number;
  callerRss: number;
  responderRss: number;
  /** V8 heap in use right after a full GC: what is really live (a leak grows it). */
  callerHeap: number;
  responderHeap: number;
}

interface LongRun {
  calls: number;
  target: number;
  errors: number;
  elapsedMs: number;
  callsPerSec: number;
  samples: RssSample[];
  start: RssSample;
  middle: RssSample;
  end: RssSample;
  callerGrowthPct: number;
  responderGrowthPct: number;
  callerHeapGrowthPct: number;
  responderHeapGrowthPct: number;
}

async function runLong(run: SystemRun, plan: Plan): Promise<LongRun> {
  const samples: RssSample[] = [];
  const sample = async (calls: number): Promise<void> => {
    type Usage = { rss: number; heapUsed: number };
    const [c, r] = await Promise.all([run.caller!.request<Usage>('usage', { gc: true }), run.responder!.request<Usage>('usage', { gc: true })]);
    samples.push({ calls, callerRss: c.rss, responderRss: r.rss, callerHeap: c.heapUsed, responderHeap: r.heapUsed });
  };
  await sample(0);
  const perPhase = Math.ceil(plan.millionCalls / plan.millionPhases);
  let calls = 0;
  let errors = 0;
  let elapsedMs = 0;
  for (let phase = 0; phase < plan.millionPhases; phase++) {
    const result = await run.caller!.request<DriveResult>(
      'run',
      { concurrency: 64, payloadBytes: 16, durationMs: plan.millionPhaseCapMs, maxCalls: perPhase, latency: false },
      plan.millionPhaseCapMs + 60_000,
    );
    calls += result.calls;
    errors += result.errors;
    elapsedMs += result.elapsedMs;
    await sample(calls);
    log(`   long run: ${fmt(calls)} calls, ${fmt((result.calls / result.elapsedMs) * 1000)} calls/s, caller RSS ${mib(samples.at(-1)!.callerRss)}, server RSS ${mib(samples.at(-1)!.responderRss)}`);
  }
  // RSS swings by several percent from one sample to the next (V8 semi-spaces, malloc arenas),
  // so 'middle' and 'end' are each the median of three samples: around the middle, and the last three.
  const mid = Math.floor(plan.millionPhases / 2);
  const smooth = (from: number): RssSample => {
    const window = samples.slice(Math.max(0, from), from + 3);
    const pick = (get: (s: RssSample) => number): number => median(window.map(get));
    return {
      calls: window[Math.floor(window.length / 2)]!.calls,
      callerRss: pick((s) => s.callerRss),
      responderRss: pick((s) => s.responderRss),
      callerHeap: pick((s) => s.callerHeap),
      responderHeap: pick((s) => s.responderHeap),
    };
  };
  const start = samples[0]!;
  const middle = smooth(mid - 1);
  const end = smooth(samples.length - 3);
  return {
    calls,
    target: plan.millionCalls,
    errors,
    elapsedMs,
    callsPerSec: (calls / elapsedMs) * 1000,
    samples,
    start,
    middle,
    end,
    callerGrowthPct: (end.callerRss / middle.callerRss - 1) * 100,
    responderGrowthPct: (end.responderRss / middle.responderRss - 1) * 100,
    callerHeapGrowthPct: (end.callerHeap / middle.callerHeap - 1) * 100,
    responderHeapGrowthPct: (end.responderHeap / middle.responderHeap - 1) * 100,
  };
}

// ---- idle clients ---------------------------------------------------------------------------

interface IdleResult {
  clients: number;
  connected: number;
  connectMs: number;
  idleMs: number;
  serverCpuPct: number;
  /** The server's CPU by thread name, % of one core (Linux). */
  serverThreads: Record<string, number>;
  serverRssEmpty: number;
  serverRssBefore: number;
  serverRssAfter: number;
  clientsCpuPct: number;
  clientsRss: number;
  push: { clients: number; answered: number; failed: number; ms: number; firstError?: string };
}

async function runIdle(plan: Plan, profileDir: string | undefined): Promise<IdleResult> {
  const execArgv = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(profileDir, 'idle-server')}`] : [];
  const server = Worker.node('idle server', IDLE_SCRIPT, ['server'], { hardTimeoutMs: plan.childHardTimeoutMs, execArgv });
  const clients = Worker.node('idle clients', IDLE_SCRIPT, ['clients'], { hardTimeoutMs: plan.childHardTimeoutMs });
  type Usage = { cpuUserUs: number; cpuSystemUs: number; rss: number; at: number };
  try {
    const { endpoint } = await server.request<{ endpoint: string }>('start', {}, 30_000);
    const empty = await server.request<Usage>('usage');
    const begin = performance.now();
    await clients.request('start', { endpoint, count: plan.idleClients }, 120_000);
    const waited = await server.request<{ connected: number }>('waitPeers', { count: plan.idleClients, timeoutMs: 60_000 }, 70_000);
    const connectMs = performance.now() - begin;
    log(`   ${waited.connected}/${plan.idleClients} clients connected and authenticated in ${fmt(connectMs)} ms; idle for ${plan.idleMs / 1000} s`);
    await new Promise((r) => setTimeout(r, Math.min(1000, plan.idleMs / 3))); // let the connection storm settle
    const clientsBefore = await clients.request<Usage>('usage');
    const idle = await server.request<{ cpuPct: number; threads: Record<string, number>; rssBefore: number; rssAfter: number; connected: number }>('idle', { ms: plan.idleMs }, plan.idleMs + 30_000);
    const clientsAfter = await clients.request<Usage>('usage');
    const push = await server.request<IdleResult['push']>('pushAll', { timeoutMs: 10_000 }, 30_000);
    return {
      clients: plan.idleClients,
      connected: idle.connected,
      connectMs,
      idleMs: plan.idleMs,
      serverCpuPct: idle.cpuPct,
      serverThreads: idle.threads,
      serverRssEmpty: empty.rss,
      serverRssBefore: idle.rssBefore,
      serverRssAfter: idle.rssAfter,
      clientsCpuPct:
        ((clientsAfter.cpuUserUs + clientsAfter.cpuSystemUs - clientsBefore.cpuUserUs - clientsBefore.cpuSystemUs) / 1000 /
          (clientsAfter.at - clientsBefore.at)) * 100,
      clientsRss: clientsAfter.rss,
      push,
    };
  } finally {
    await Promise.all([clients.stop(15_000), server.stop(15_000)]);
  }
}

// ---- report ---------------------------------------------------------------------------------

interface Medians {
  p50Us: number;
  p99Us: number;
  seqCallsPerSec: number;
  inflightCallsPerSec: number;
  mbPerSec: number;
  inflightCallerCpuPct: number;
  inflightResponderCpuPct: number;
}

function mediansOf(run: SystemRun): Medians {
  const of = (key: string, pick: (c: CellResult) => number | undefined): number =>
    median((run.cells[key] ?? []).map(pick).filter((v): v is number => v !== undefined));
  return {
    p50Us: of('sequential', (c) => c.p50Us),
    p99Us: of('sequential', (c) => c.p99Us),
    seqCallsPerSec: of('sequential', (c) => c.callsPerSec),
    inflightCallsPerSec: of('in-flight-64', (c) => c.callsPerSec),
    mbPerSec: of('payload-64KiB', (c) => c.mbPerSec),
    inflightCallerCpuPct: of('in-flight-64', (c) => c.cpuPct),
    inflightResponderCpuPct: of('in-flight-64', (c) => c.responderCpuPct),
  };
}

/** The three compared metrics: the scenario each comes from and how to read it off a cell. */
const METRICS = {
  p50: { scenario: 'sequential', pick: (c: CellResult) => c.p50Us },
  inflight: { scenario: 'in-flight-64', pick: (c: CellResult) => c.callsPerSec },
  mb: { scenario: 'payload-64KiB', pick: (c: CellResult) => c.mbPerSec },
} as const;
type Metric = keyof typeof METRICS;

/**
 * `a` relative to `b` on a metric: the median, over the rounds both measured, of the ratio within
 * each round. Cells of one round ran back to back, so noise that hits a round hits both alike and
 * cancels in its ratio; a ratio of two medians could pair a quiet round of one with a noisy one of
 * the other.
 */
function paired(a: SystemRun | undefined, b: SystemRun | undefined, metric: Metric): number {
  return median(roundRatios(a, b, metric));
}

/** The ratio of `a` to `b` within each round both measured. */
function roundRatios(a: SystemRun | undefined, b: SystemRun | undefined, metric: Metric): number[] {
  if (!a || !b || a.status !== 'ok' || b.status !== 'ok') return [];
  const { scenario, pick } = METRICS[metric];
  const base = new Map((b.cells[scenario] ?? []).map((c) => [c.round, pick(c)]));
  return (a.cells[scenario] ?? []).map((c) => ratio(pick(c), base.get(c.round)));
}

interface Target {
  name: string;
  value: string;
  met: boolean | null;
  note?: string;
}

/**
 * Sequential p50 within 1.15x raw, as the median of the rounds' ratios, with how stable it is: half
 * the interquartile range of those ratios. A spread over 0.05 is said, as the figure is then a guess.
 */
function sequentialTarget(ratios: number[]): Target {
  const name = 'sequential p50 latency: zeropeer <= 1.15x raw zeromq.js (stable to +-0.05)';
  const value = median(ratios);
  if (!Number.isFinite(value)) return { name, value: 'n/a', met: null, note: 'not measured (system or scenario not selected, or failed)' };
  const spread = halfSpread(ratios);
  const shown = `${fmtRatio(value)} +-${Number.isFinite(spread) ? spread.toFixed(2) : '?'} (${ratios.length} rounds)`;
  const stable = Number.isFinite(spread) && spread <= 0.05;
  return stable
    ? { name, value: shown, met: value <= 1.15 }
    : { name, value: shown, met: null, note: 'the rounds disagree by more than +-0.05: run more rounds (--rounds) on a quieter machine' };
}

function evaluateTargets(runs: SystemRun[], long: LongRun | undefined, idle: IdleResult | undefined, scale: ScaleResult | undefined, plan: Plan): Target[] {
  const by = (key: string): SystemRun | undefined => runs.find((r) => r.spec.key === key);
  const zp = by('zeropeer');
  const raw = by('raw');
  const grpc = by('grpc');
  const s2c = by('zeropeer-s2c');
  const check = (name: string, value: number, ok: (v: number) => boolean, show: (v: number) => string, note?: string): Target =>
    Number.isFinite(value)
      ? { name, value: show(value), met: ok(value), ...(note ? { note } : {}) }
      : { name, value: 'n/a', met: null, note: note ?? 'not measured (system or scenario not selected, or failed)' };
  const targets: Target[] = [
    check('64 in flight: zeropeer >= 1.5x raw zeromq.js (one message per call)', paired(zp, raw, 'inflight'), (v) => v >= 1.5, fmtRatio),
    check('64 in flight: zeropeer >= 0.8x raw zeromq.js batched', paired(zp, by('raw-batched'), 'inflight'), (v) => v >= 0.8, fmtRatio),
    check('64 in flight: zeropeer >= 5x grpc-js', paired(zp, grpc, 'inflight'), (v) => v >= 5, fmtRatio),
    check('64 in flight: plain over CURVE >= 0.65x raw zeromq.js', paired(by('zeropeer-curve'), raw, 'inflight'), (v) => v >= 0.65, fmtRatio),
    sequentialTarget(roundRatios(zp, raw, 'p50')),
    check('64 KiB x16: zeropeer MB/s >= 0.9x raw zeromq.js', paired(zp, raw, 'mb'), (v) => v >= 0.9, fmtRatio),
  ];
  // server -> client within 5% of client -> server, in each round scenario.
  const parts = s2c && zp
    ? [
        ['p50', paired(s2c, zp, 'p50')],
        ['64 in flight', paired(s2c, zp, 'inflight')],
        ['64 KiB', paired(s2c, zp, 'mb')],
      ] as const
    : [];
  targets.push(
    parts.length && parts.every(([, v]) => Number.isFinite(v))
      ? {
          name: 'server->client within 5% of client->server (p50, 64 in flight, 64 KiB)',
          value: parts.map(([k, v]) => `${k} ${fmtRatio(v)}`).join(', '),
          met: parts.every(([, v]) => Math.abs(v - 1) <= 0.05),
        }
      : { name: 'server->client within 5% of client->server (p50, 64 in flight, 64 KiB)', value: 'n/a', met: null, note: 'not measured' },
  );
  const idleNote = idle && plan.mode === 'quick' ? `--quick: ${idle.clients} clients, ${idle.idleMs / 1000} s` : undefined;
  targets.push(
    check(
      `${fmt(plan.idleClients)} idle clients: server < 5% of one core`,
      idle && idle.connected === idle.clients ? idle.serverCpuPct : Number.NaN,
      (v) => v < 5,
      (v) => `${v.toFixed(2)}%`,
      idleNote ?? (idle && idle.connected !== idle.clients ? `only ${idle.connected} of ${idle.clients} connected` : undefined),
    ),
  );
  targets.push(...scaleTargets(scale, plan));
  const growth = long ? Math.max(long.callerGrowthPct, long.responderGrowthPct) : Number.NaN;
  targets.push(
    check(
      `RSS growth < 5% between middle and end of ${fmt(plan.millionCalls)} calls`,
      long && long.errors === 0 && long.calls === long.target ? growth : Number.NaN,
      (v) => v < 5,
      () => `client ${long!.callerGrowthPct.toFixed(1)}%, server ${long!.responderGrowthPct.toFixed(1)}%`,
      long && (long.errors > 0 || long.calls !== long.target) ? `${long.errors} errors, ${long.calls} of ${long.target} calls` : undefined,
    ),
  );
  return targets;
}

/** The scale targets (issue 14): 10,000 clients; --quick measures fewer and says so. */
function scaleTargets(scale: ScaleResult | undefined, plan: Plan): Target[] {
  const n = fmt(plan.scale.clients);
  const all = scale !== undefined && scale.connected === scale.clients;
  const note = scale && plan.mode === 'quick' ? `--quick: ${scale.clients} clients (the target is for 10,000)` : undefined;
  const missing = scale && !all ? `only ${scale.connected} of ${scale.clients} connected` : undefined;
  const check = (name: string, value: number, ok: (v: number) => boolean, show: (v: number) => string, extra?: string): Target =>
    Number.isFinite(value)
      ? { name, value: show(value), met: ok(value), ...(note || extra ? { note: [note, extra].filter(Boolean).join('; ') } : {}) }
      : { name, value: 'n/a', met: null, note: missing ?? extra ?? 'not measured (scenario not selected, or failed)' };
  const pushOk = scale?.pushes.length && scale.pushes.every((p) => p.failed === 0);
  const restartOk = scale && scale.restart.reconnected >= scale.clients && scale.restart.pushAfter.failed === 0;
  return [
    check(`${n} clients at scale: server idle < 5% of one core`, all ? scale.serverCpuPct : Number.NaN, (v) => v < 5, (v) => `${v.toFixed(2)}%`),
    check(`${n} clients at scale: server RSS < 20 KiB per client`, all ? scale.rssPerClient / 1024 : Number.NaN, (v) => v < 20, (v) => `${v.toFixed(1)} KiB`),
    check(`${n} clients at scale: one push to all answered < 1 s`, all && pushOk ? scale.pushMedianMs : Number.NaN, (v) => v < 1000,
      (v) => `${fmt(v)} ms (median of ${scale!.pushes.length})`, scale && !pushOk ? `push failures: ${scale.pushes.map((p) => p.firstError).filter(Boolean)[0]}` : undefined),
    check(`${n} clients at scale: all re-authenticated < 10 s after a server restart`, restartOk ? scale.restart.reconnectMs : Number.NaN, (v) => v < 10_000,
      (v) => `${fmt(v / 1000, 1)} s`, scale && !restartOk ? `${scale.restart.reconnected} of ${scale.clients} back; push after: ${scale.restart.pushAfter.answered} answered` : undefined),
  ];
}

function renderScale(scale: ScaleResult): string[] {
  const out: string[] = [];
  out.push(`${SCENARIO_TITLES['scale']}: ${fmt(scale.clients)} clients over ${scale.processes} processes, trusted_peer, default heartbeats, idle ${scale.idleMs / 1000} s`);
  out.push(table(
    ['', 'value'],
    [
      ['connected and authenticated', `${fmt(scale.connected)} in ${fmt(scale.connectMs)} ms`],
      ['server CPU at idle, % of one core (its own process)', `${scale.serverCpuPct.toFixed(2)}%`],
      ...(Object.keys(scale.serverThreads).length
        ? [['  by thread (from /proc, 10 ms ticks)', Object.entries(scale.serverThreads).map(([name, pct]) => `${name} ${pct.toFixed(2)}%`).join(', ')]]
        : []),
      ['server RSS: no clients / idle (after GC) / per client', `${mib(scale.serverRssEmpty)} / ${mib(scale.serverRssIdle)} / ${(scale.rssPerClient / 1024).toFixed(1)} KiB`],
      ['server V8 heap after GC: no clients / idle / per client', `${mib(scale.serverHeapEmpty)} / ${mib(scale.serverHeapIdle)} / ${((scale.serverHeapIdle - scale.serverHeapEmpty) / scale.clients / 1024).toFixed(1)} KiB`],
      ['clients processes CPU (all) / RSS (all)', `${scale.clientsCpuPct.toFixed(2)}% / ${mib(scale.clientsRss)}`],
      ['one push to each, all answered in', scale.pushes.map((p) => `${fmt(p.ms)} ms (${p.answered}/${p.clients})`).join(', ')],
      ['restart: old server stopped (GOODBYE to each) in', `${fmt(scale.restart.stopMs)} ms`],
      ['restart: all re-authenticated, after the old exited / after the new bound', `${fmt(scale.restart.reconnectMs)} ms / ${fmt(scale.restart.fromBindMs)} ms (${fmt(scale.restart.reconnected)})`],
      ['restart: then one push to each', `${fmt(scale.restart.pushAfter.ms)} ms (${scale.restart.pushAfter.answered}/${scale.restart.pushAfter.clients})`],
    ],
  ));
  out.push(...renderRawFloor(scale));
  out.push('');
  return out;
}

/** The raw floor next to zeropeer: what N idle connections cost in raw zeromq.js, and zeropeer as a multiple of it. */
function renderRawFloor(scale: ScaleResult): string[] {
  const raw = scale.raw;
  if (!raw) return scale.rawError ? [`raw floor failed: ${scale.rawError}`] : [];
  const threads = (t: Record<string, number>): string => Object.entries(t).map(([name, pct]) => `${name} ${pct.toFixed(2)}%`).join(', ');
  const rows: string[][] = [];
  for (const mode of ['spread', 'answer'] as const) {
    const idle = raw.idle[mode];
    if (!idle) continue;
    const what = mode === 'spread' ? 'clients on their own timers, phases spread' : 'clients answer the server\'s sweep';
    rows.push([`server CPU at idle, ${what}`, `${idle.cpuPct.toFixed(2)}% (${threads(idle.threads)}; ${fmt(idle.received)} received)`, `${(scale.serverCpuPct / idle.cpuPct).toFixed(2)}x`]);
  }
  rows.push(['server RSS per connection (after GC)', `${(raw.rssPerClient / 1024).toFixed(1)} KiB (V8 heap ${((raw.serverHeapIdle - raw.serverHeapEmpty) / raw.clients / 1024).toFixed(1)} KiB of it)`, `${(scale.rssPerClient / raw.rssPerClient).toFixed(2)}x`]);
  return [
    `raw floor: a ROUTER and ${fmt(raw.connected)} raw DEALERs over the same processes, one 1-byte message each way per connection per 3 s, idle ${raw.idleMs / 1000} s`,
    table(['', 'raw zeromq.js', 'zeropeer / raw'], rows),
  ];
}

function render(runs: SystemRun[], medians: Record<string, Medians | undefined>, long: LongRun | undefined, idle: IdleResult | undefined,
  scale: ScaleResult | undefined, targets: Target[], plan: Plan, info: ReturnType<typeof machine>, notes: string[]): string {
  const out: string[] = [];
  out.push(`zeropeer benchmark (${plan.mode}): ${info.nproc} cores, ${info.cpuModel}, node ${info.node}, libzmq ${info.libzmq}`);
  out.push(`median of ${plan.rounds} rounds of ${plan.cellMs} ms per system and scenario, systems alternating; loopback 127.0.0.1`);
  out.push('');
  const rawRun = runs.find((r) => r.spec.key === 'raw');
  const rows = runs.filter((run) => run.status !== 'not selected').map((run) => {
    const m = medians[run.spec.key];
    if (run.status !== 'ok' || !m) return [run.spec.label, run.status, '', '', '', '', '', ''];
    return [
      run.spec.label,
      fmt(m.p50Us),
      fmt(m.p99Us),
      fmt(m.seqCallsPerSec),
      fmt(m.inflightCallsPerSec),
      fmt(m.mbPerSec, 1),
      `${fmt(m.inflightCallerCpuPct)}/${fmt(m.inflightResponderCpuPct)}`,
    ];
  });
  out.push(table(['system', 'seq p50 µs', 'seq p99 µs', 'seq calls/s', '64 in flight calls/s', '64 KiB x16 MB/s', 'CPU% @64 caller/resp'], rows));
  out.push('');
  out.push('ratios against raw zeromq.js: median over rounds of the ratio within each round (latency: lower is better; throughput: higher is better)');
  const ratioRows = runs
    .filter((run) => run.status === 'ok' && run.spec.key !== 'raw')
    .map((run) => {
      return [run.spec.label, fmtRatio(paired(run, rawRun, 'p50')), fmtRatio(paired(run, rawRun, 'inflight')), fmtRatio(paired(run, rawRun, 'mb'))];
    });
  out.push(table(['system', 'seq p50', '64 in flight', '64 KiB MB/s'], ratioRows));
  out.push('(MB/s counts the 64 KiB argument and the 64 KiB result: bytes both ways per second / 10^6)');
  out.push('');
  if (long) {
    out.push(`${SCENARIO_TITLES['million-calls']}: zeropeer client->server`);
    const pct = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(1)}%`;
    out.push(table(
      ['', 'calls', 'client RSS', 'server RSS', 'client heap after GC', 'server heap after GC'],
      [
        ...(['start', 'middle', 'end'] as const).map((at) => [
          at === 'start' ? at : `${at} (median of 3 samples)`,
          fmt(long[at].calls), mib(long[at].callerRss), mib(long[at].responderRss), mib(long[at].callerHeap), mib(long[at].responderHeap),
        ]),
        ['growth middle->end', '', pct(long.callerGrowthPct), pct(long.responderGrowthPct), pct(long.callerHeapGrowthPct), pct(long.responderHeapGrowthPct)],
      ],
    ));
    out.push(`RSS (MiB) every ${fmt(long.samples[1]?.calls ?? 0)} calls, client: ${long.samples.map((s) => (s.callerRss / 1048576).toFixed(0)).join(' ')}; server: ${long.samples.map((s) => (s.responderRss / 1048576).toFixed(0)).join(' ')}`);
    out.push(`${fmt(long.calls)} calls (${long.errors} errors) in ${fmt(long.elapsedMs / 1000, 1)} s: ${fmt(long.callsPerSec)} calls/s`);
    out.push('');
  }
  if (idle) {
    out.push(`${SCENARIO_TITLES['idle-clients']}: ${fmt(idle.clients)} clients, default heartbeats, idle ${idle.idleMs / 1000} s`);
    out.push(table(
      ['', 'value'],
      [
        ['connected and authenticated', `${fmt(idle.connected)} in ${fmt(idle.connectMs)} ms`],
        ['server CPU, % of one core (its own process)', `${idle.serverCpuPct.toFixed(2)}%`],
        ...(Object.keys(idle.serverThreads).length
          ? [['  by thread (from /proc, 10 ms ticks)', Object.entries(idle.serverThreads).map(([name, pct]) => `${name} ${pct.toFixed(2)}%`).join(', ')]]
          : []),
        ['server RSS: no clients / idle start / idle end', `${mib(idle.serverRssEmpty)} / ${mib(idle.serverRssBefore)} / ${mib(idle.serverRssAfter)}`],
        ['clients process CPU (all clients) / RSS', `${idle.clientsCpuPct.toFixed(2)}% / ${mib(idle.clientsRss)}`],
        ['server pushes one call to each: all answered in', `${fmt(idle.push.ms, 1)} ms (${idle.push.answered}/${idle.push.clients} ok)`],
      ],
    ));
    out.push('');
  }
  if (scale) out.push(...renderScale(scale));
  out.push('targets');
  out.push(table(
    ['target', 'measured', 'result'],
    targets.map((t) => [t.name, t.value, t.met === null ? 'n/a' : t.met ? 'met' : 'NOT MET']),
  ));
  for (const t of targets) if (t.note) out.push(`  note: ${t.name}: ${t.note}`);
  for (const run of runs) if (run.note) out.push(`note: ${run.spec.key}: ${run.status}: ${run.note}`);
  for (const note of notes) out.push(`note: ${note}`);
  return out.join('\n');
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    log((error as Error).message);
    return 2;
  }
  toStdout = !args.json;
  const plan = makePlan(args.quick, args.rounds);
  const watchdog = setTimeout(() => {
    log(`!! the bench did not finish within ${plan.benchHardTimeoutMs / 1000} s: killing every child and exiting`);
    killAllChildren();
    process.exit(1);
  }, plan.benchHardTimeoutMs);
  watchdog.unref();
  const began = performance.now();
  const notes: string[] = [];

  const runs: SystemRun[] = SYSTEMS.filter((spec) => !spec.diagnostic || args.only.includes(spec.key))
    .map((spec) => ({ spec, status: args.only.includes(spec.key) ? 'ok' : 'not selected', cells: {}, warmupCalls: 0 }));
  let probe: PythonProbe | undefined;
  const aiozmq = runs.find((r) => r.spec.key === 'aiozmq')!;
  if (aiozmq.status === 'ok') {
    probe = probeAiozmq();
    if (probe.skipped) {
      aiozmq.status = 'skipped';
      aiozmq.note = probe.skipped;
      log(probe.skipped);
    }
  }
  const info = machine(probe);
  log(`zeropeer bench (${plan.mode}): ${info.nproc} cores, ${info.cpuModel}, node ${info.node}, libzmq ${info.libzmq}; systems: ${runs.filter((r) => r.status === 'ok').map((r) => r.spec.key).join(', ')}`);

  // Start every selected system (each role in its own process) and check one call works.
  const active = (): SystemRun[] => runs.filter((r) => r.status === 'ok');
  await Promise.all(active().map((run) => startSystem(run, plan, args, probe).catch((error) => fail(run, error))));

  // Warm-up round (not counted), then the measured rounds: for each scenario, each system in turn.
  for (let round = 0; round <= plan.rounds; round++) {
    const warmup = round === 0;
    for (const scenario of ROUND_SCENARIOS.filter((s) => args.scenarios.includes(s.key))) {
      const parts: string[] = [];
      for (const run of active()) {
        try {
          const cell = { ...(await runCell(run, scenario, warmup ? plan.warmupMs : plan.cellMs, plan)), round };
          if (warmup) run.warmupCalls += cell.calls;
          else (run.cells[scenario.key] ??= []).push(cell);
          const shown = scenario.key === 'sequential' ? `${fmt(cell.p50Us)} µs` : scenario.key === 'payload-64KiB' ? `${fmt(cell.mbPerSec)} MB/s` : `${fmt(cell.callsPerSec)}/s`;
          parts.push(`${run.spec.key} ${shown}${cell.errors ? ` (${cell.errors} errors: ${cell.firstError})` : ''}`);
        } catch (error) {
          fail(run, error);
        }
      }
      log(`${warmup ? 'warm-up' : `round ${round}/${plan.rounds}`} ${scenario.key}: ${parts.join(', ')}`);
    }
  }

  // The long run and the idle clients concern zeropeer only.
  const zeropeer = runs.find((r) => r.spec.key === 'zeropeer')!;
  await Promise.all(active().filter((r) => r !== zeropeer).map((run) => stopSystem(run)));
  let long: LongRun | undefined;
  let idle: IdleResult | undefined;
  if (args.scenarios.includes('million-calls')) {
    if (zeropeer.status === 'ok') {
      log(`long run: ${fmt(plan.millionCalls)} calls, 64 in flight, zeropeer client->server`);
      try {
        long = await runLong(zeropeer, plan);
      } catch (error) {
        notes.push(`million-calls failed: ${(error as Error).message}`);
        log(`!! long run failed: ${(error as Error).message}`);
      }
    } else {
      notes.push('million-calls runs on zeropeer client->server, which was not run');
    }
  }
  await stopSystem(zeropeer);
  if (args.scenarios.includes('idle-clients')) {
    if (args.only.includes('zeropeer')) {
      log(`idle clients: ${fmt(plan.idleClients)} zeropeer clients, server and clients in separate processes`);
      try {
        idle = await runIdle(plan, args.profileDir);
      } catch (error) {
        notes.push(`idle-clients failed: ${(error as Error).message}`);
        log(`!! idle clients failed: ${(error as Error).message}`);
      }
    } else {
      notes.push('idle-clients runs zeropeer clients, and zeropeer was not selected');
    }
  }

  let scale: ScaleResult | undefined;
  if (args.scenarios.includes('scale')) {
    if (args.only.includes('zeropeer')) {
      log(`scale: ${fmt(plan.scale.clients)} zeropeer clients over ${plan.scale.processes} processes on one server`);
      try {
        scale = await runScale({ ...plan.scale, childHardTimeoutMs: plan.childHardTimeoutMs, rawFloor: true }, log, args.profileDir);
      } catch (error) {
        notes.push(`scale failed: ${(error as Error).message}`);
        log(`!! scale failed: ${(error as Error).message}`);
      }
    } else {
      notes.push('scale runs zeropeer clients, and zeropeer was not selected');
    }
  }

  // Streams (bench/streams.ts): 1 KiB items through client.stream against raw zeromq.js, and a slow
  // consumer's RSS, in a process of its own (so that the RSS is the stream's alone).
  let streams: Record<string, unknown> | undefined;
  if (args.scenarios.includes('streams')) {
    try {
      log('streams: 1 KiB items, zeropeer client.stream vs raw ROUTER -> DEALER, then a slow consumer');
      const streamsJs = fileURLToPath(new URL('./streams.js', import.meta.url));
      streams = await new Promise<Record<string, unknown>>((done, fail) => {
        execFile(process.execPath, ['--expose-gc', streamsJs, '--json', ...(plan.mode === 'quick' ? ['--quick'] : [])], { timeout: 250_000 },
          (error, stdout) => (error ? fail(new Error(error.message)) : done(JSON.parse(stdout) as Record<string, unknown>)));
      });
      const slow = streams['slowConsumer'] as { consumed: number; seconds: number; baselineMb: number; peakMb: number };
      notes.push(`streams: raw ${fmt(streams['rawItemsPerSec'] as number)} items/s, zeropeer ${fmt(streams['zeropeerItemsPerSec'] as number)} items/s ` +
        `(${String(streams['ratio'])}x raw, target >= 0.8x); slow consumer: ${fmt(slow.consumed)} of 10^6 in ${slow.seconds} s, RSS ${slow.baselineMb} -> peak ${slow.peakMb} MB`);
    } catch (error) {
      notes.push(`streams failed: ${(error as Error).message}`);
    }
  }

  // Cluster mode: its own script and processes (a redis-server, node processes); its report follows ours.
  let clusterReport = '';
  if (args.scenarios.includes('cluster')) {
    const cluster = spawnSync(process.execPath, [resolve(here, 'cluster.js'), ...(args.quick ? ['--quick'] : [])], { stdio: ['ignore', 'pipe', 'inherit'], timeout: plan.benchHardTimeoutMs, encoding: 'utf8' });
    clusterReport = cluster.stdout ?? '';
    if (cluster.status !== 0) notes.push(`cluster failed (exit ${cluster.status ?? cluster.signal})`);
  }

  const medians: Record<string, Medians | undefined> = {};
  for (const run of runs) if (run.status === 'ok') medians[run.spec.key] = mediansOf(run);
  const targets = evaluateTargets(runs, long, idle, scale, plan);
  const elapsedS = (performance.now() - began) / 1000;
  notes.push(`the whole bench took ${elapsedS.toFixed(1)} s`);
  report(render(runs, medians, long, idle, scale, targets, plan, info, notes));
  if (clusterReport) report(clusterReport.trimEnd());

  if (args.json) {
    const rawRun = runs.find((r) => r.spec.key === 'raw');
    const json = {
      bench: 'zeropeer',
      mode: plan.mode,
      command: `node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trim(),
      elapsedS: round(elapsedS, 1),
      machine: info,
      plan,
      scenarios: (Object.keys(SCENARIO_TITLES) as ScenarioKey[]).map((key) => ({ key, title: SCENARIO_TITLES[key] })),
      systems: runs.map((run) => ({ key: run.spec.key, label: run.spec.label, status: run.status, ...(run.note ? { note: run.note } : {}) })),
      results: Object.fromEntries(
        runs
          .filter((run) => run.status === 'ok')
          .map((run) => {
            const m = medians[run.spec.key]!;
            return [
              run.spec.key,
              {
                calls: Object.values(run.cells).flat().reduce((sum, c) => sum + c.calls, 0) + run.warmupCalls,
                median: Object.fromEntries((Object.entries(m) as [string, number][]).map(([k, v]) => [k, round(v)])),
                vsRaw: {
                  p50: round(paired(run, rawRun, 'p50'), 3),
                  inflight: round(paired(run, rawRun, 'inflight'), 3),
                  mbPerSec: round(paired(run, rawRun, 'mb'), 3),
                },
                rounds: Object.fromEntries(ROUND_SCENARIOS.map((s) => [s.key, (run.cells[s.key] ?? []).map((c) => ({
                  calls: c.calls,
                  errors: c.errors,
                  callsPerSec: round(c.callsPerSec),
                  mbPerSec: round(c.mbPerSec),
                  p50Us: c.p50Us === undefined ? undefined : round(c.p50Us),
                  p99Us: c.p99Us === undefined ? undefined : round(c.p99Us),
                  callerCpuPct: round(c.cpuPct),
                  responderCpuPct: round(c.responderCpuPct),
                }))])),
              },
            ];
          }),
      ),
      'million-calls': long ?? null,
      'idle-clients': idle ?? null,
      scale: scale ?? null,
      streams: streams ?? null,
      targets,
      notes,
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  }
  const failed = runs.filter((r) => r.status === 'failed');
  return failed.length > 0 || notes.some((n) => n.includes('failed')) ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}
process.on('exit', () => killAllChildren());

main().then(
  (code) => {
    killAllChildren();
    process.exitCode = code;
    // Everything is stopped; do not wait on stray handles (a zeromq context, a grpc timer).
    setTimeout(() => process.exit(code), 200).unref();
  },
  (error: unknown) => {
    log(`!! ${(error as Error)?.stack ?? String(error)}`);
    killAllChildren();
    process.exit(1);
  },
);
