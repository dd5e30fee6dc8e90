/**
 * Soak: a zeropeer server (a child process) under a legitimate load (clients in other child
 * processes) while this process fuzzes it with raw frames, floods it with HELLOs and length bombs,
 * SIGKILLs client processes (and starts them again), and restarts the server once in the middle.
 *
 *   npm run soak -- --short      # what CI runs: about 75 s, at least 100,000 fuzzed frames
 *   npm run soak                 # about 5 minutes
 *   options: --seed=N (the fuzzer's random source; printed), --during=S (seconds of attack)
 *
 * Timeline: warm-up, `before` (load only), `during` (load + attack; the server restart halfway),
 * `after` (load only), then the clients drain: no new calls, and a grace period for those in flight.
 *
 * It prints legitimate calls/s before/during/after, errors by code, the server's RSS and heap over
 * time, and exits non-zero if: the server died (other than the planned restart); a legitimate call
 * never settled (every call must end with its result or a typed error) or settled with an untyped
 * error or someone else's result; a call ran twice (every call has a unique id, which the server
 * writes to a file before it answers); memory grew without bound (RSS of the last third against the
 * first third after warm-up, generous headroom); or the fuzzer sent fewer frames than the minimum.
 *
 * Loopback only; every loop is bounded; every child is killed when this process exits, whatever
 * the reason (bench/workers.ts), and a hard deadline ends a run that hangs.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';
import { hashPassword } from '../lib/index.js';
import { MsgpackCodec } from '../lib/wire/codec.js';
import { FuzzSocket, Random, authenticatedSeeds, bombFrames, helloFrames, makeSeeds, mutate } from './soak-fuzz.js';
import { Worker, killAllChildren } from './workers.js';

// ---------------------------------------------------------------------------------------------
// Plan

const argv = process.argv.slice(2);
function option(name: string): string | undefined {
  return argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}
const SHORT = argv.includes('--short');
const SEED = Number(option('seed')) || (Date.now() % 2 ** 31);

interface Plan {
  warmupS: number;
  beforeS: number;
  duringS: number;
  afterS: number;
  /** The fuzzer sends at least this many frames; `during` goes on (at most twice as long) until it has. */
  minFrames: number;
  /** Fuzzed frames per second the fuzzer aims at. */
  fuzzRate: number;
  floodEveryS: number;
  /** Fresh connections per HELLO flood, each one HELLO with a wrong password. */
  floodConnections: number;
  killEveryS: number;
  clientProcesses: number;
  clientsPerProcess: number;
  inflightPerClient: number;
  timeoutMs: number;
}

const PLAN: Plan = {
  warmupS: SHORT ? 5 : 10,
  beforeS: SHORT ? 10 : 30,
  duringS: Number(option('during')) || (SHORT ? 40 : 200),
  afterS: SHORT ? 10 : 40,
  minFrames: 100_000,
  fuzzRate: 3500,
  floodEveryS: SHORT ? 10 : 20,
  floodConnections: 20,
  killEveryS: SHORT ? 12 : 25,
  clientProcesses: 2,
  clientsPerProcess: 3,
  inflightPerClient: 2,
  timeoutMs: 5000,
};

const MiB = 1024 * 1024;
const PLANNED_S = PLAN.warmupS + PLAN.beforeS + PLAN.duringS * 2 + PLAN.afterS + 60;
/** A run that hangs ends here, children killed, with failure. */
const HARD_DEADLINE_MS = (PLANNED_S + 120) * 1000;

const script = (name: string): string => fileURLToPath(new URL(`./${name}`, import.meta.url));
const started = performance.now();
const now = (): number => (performance.now() - started) / 1000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)}`;

function log(line: string): void {
  console.log(`[soak ${now().toFixed(1).padStart(6)}s] ${line}`);
}

// ---------------------------------------------------------------------------------------------
// Children

const workDir = mkdtempSync(join(tmpdir(), 'zeropeer-soak-'));
const codec = new MsgpackCodec();
const FUZZ_USER = { userId: 'fuzz', password: 'fuzz password' };
const slotUsers = (slot: number): Array<{ userId: string; password: string }> =>
  Array.from({ length: PLAN.clientsPerProcess }, (_, k) => ({ userId: `p${slot}c${k}`, password: `password of p${slot}c${k}` }));

let hashes: Record<string, string> = {};
let decoy = '';

interface ServerIncarnation {
  readonly number: number;
  readonly worker: Worker;
  readonly idsFile: string;
  readonly startedAt: number;
  planned: boolean;
}

const incarnations: ServerIncarnation[] = [];
let server: ServerIncarnation | undefined;
let endpoint = 'tcp://127.0.0.1:0';
/** Set when a server ends other than by the planned restart or the final stop. */
let serverDeath: string | undefined;

async function startServer(): Promise<void> {
  const number = incarnations.length + 1;
  const worker = Worker.node(`server#${number}`, script('soak-server.js'), [], {
    hardTimeoutMs: HARD_DEADLINE_MS,
    execArgv: ['--max-old-space-size=512'],
  });
  const incarnation: ServerIncarnation = { number, worker, idsFile: join(workDir, `ids-${number}.txt`), startedAt: now(), planned: false };
  incarnations.push(incarnation);
  server = incarnation;
  void worker.exited.then(() => {
    if (!incarnation.planned) serverDeath ??= `server#${number} (pid ${worker.pid}) ${worker.exitReason} at ${now().toFixed(1)} s`;
  });
  const answer = await worker.request<{ endpoint: string }>('start', { endpoint, idsFile: incarnation.idsFile, users: hashes, decoy }, 30_000);
  endpoint = answer.endpoint;
}

async function stopServer(): Promise<void> {
  const current = server;
  if (!current) return;
  current.planned = true;
  server = undefined;
  await current.worker.stop(8000);
}

interface Report {
  started: number;
  ok: number;
  inflight: number;
  mismatched: number;
  errorsByCode: Record<string, number>;
  loginMs: number[];
  reconnectMs: number[];
  logged: Record<string, number>;
}

interface Generation {
  readonly id: number;
  readonly slot: number;
  readonly worker: Worker;
  report: Report | undefined;
  killed: boolean;
  final: boolean;
}

const generations: Generation[] = [];
const slots: Generation[] = [];

async function startClients(slot: number): Promise<void> {
  const id = generations.length + 1;
  const worker = Worker.node(`clients#${slot}.g${id}`, script('soak-clients.js'), [], { hardTimeoutMs: HARD_DEADLINE_MS });
  const generation: Generation = { id, slot, worker, report: undefined, killed: false, final: false };
  generations.push(generation);
  slots[slot] = generation;
  await worker.request('start', {
    endpoint, generation: `g${id}`, users: slotUsers(slot), inflight: PLAN.inflightPerClient, timeoutMs: PLAN.timeoutMs,
    maxCallsPerClient: 10_000_000,
  }, 10_000);
}

async function killClients(slot: number): Promise<void> {
  const generation = slots[slot]!;
  generation.killed = true;
  generation.worker.kill();
  await generation.worker.exited;
  await startClients(slot);
}

// ---------------------------------------------------------------------------------------------
// Measurements

interface MemorySample {
  t: number;
  incarnation: number;
  rss: number;
  heapUsed: number;
  external: number;
  gc: boolean;
}

const memory: MemorySample[] = [];
let samples = 0;

async function sample(): Promise<void> {
  const gc = samples++ % 5 === 0;
  const current = server;
  const tasks: Promise<unknown>[] = generations.filter((g) => !g.killed && !g.final && !g.worker.exitReason).map(async (g) => {
    try {
      g.report = await g.worker.request<Report>('report', {}, 3000);
    } catch {
      // killed meanwhile, or busy: the last report stands
    }
  });
  if (current && !current.worker.exitReason) {
    tasks.push(current.worker.request<NodeJS.MemoryUsage>('memory', { gc }, 3000).then(
      (usage) => void memory.push({ t: now(), incarnation: current.number, rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external, gc }),
      () => {},
    ));
  }
  await Promise.all(tasks);
}

function totals(): { started: number; ok: number; inflight: number; mismatched: number; errors: Map<string, number> } {
  const errors = new Map<string, number>();
  let startedCalls = 0;
  let ok = 0;
  let inflight = 0;
  let mismatched = 0;
  for (const g of generations) {
    if (!g.report) continue;
    startedCalls += g.report.started;
    ok += g.report.ok;
    mismatched += g.report.mismatched;
    if (!g.killed) inflight += g.report.inflight;
    for (const [code, n] of Object.entries(g.report.errorsByCode)) errors.set(code, (errors.get(code) ?? 0) + n);
  }
  return { started: startedCalls, ok, inflight, mismatched, errors };
}

interface Mark {
  name: string;
  t: number;
  ok: number;
}
const marks: Mark[] = [];

async function mark(name: string): Promise<void> {
  await sample();
  marks.push({ name, t: now(), ok: totals().ok });
}

/** Samples every second (and prints a line every five) until `stop()` is called. */
function monitor(): { stop(): Promise<void> } {
  let running = true;
  let lastOk = 0;
  let lastT = now();
  const loop = (async () => {
    for (let tick = 1; running && now() < PLANNED_S * 2; tick++) {
      await sleep(1000);
      if (!running) break;
      await sample();
      if (tick % 5 === 0) {
        const { ok } = totals();
        const last = memory.at(-1);
        const t = now();
        log(`${phase.padEnd(7)} calls/s ${fmt((ok - lastOk) / (t - lastT)).padStart(6)} | fuzzed ${fmt(fuzz.frames).padStart(7)} frames, ` +
          `${fmt(fuzz.bombs)} bombs, ${fmt(fuzz.hellos)} flood HELLOs | server#${last?.incarnation ?? '?'} rss ${last ? mib(last.rss) : '?'} MiB ` +
          `heap ${last ? mib(last.heapUsed) : '?'} MiB`);
        lastOk = ok;
        lastT = t;
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The attack

const fuzz = { frames: 0, refused: 0, bombs: 0, hellos: 0, floods: 0, bigHellos: 0, authAttempts: 0, authenticated: 0, received: 0 };
let phase = 'start';

/** Fuzzes until `until()` says stop: mutated and valid frames, on unauthenticated and authenticated connections, and length bombs. */
async function fuzzLoop(random: Random, until: () => boolean): Promise<void> {
  const seeds = makeSeeds();
  const provenSeeds = authenticatedSeeds(seeds);
  const context = new zmq.Context({ maxSockets: 4096, blocky: false });
  const anonymous = Array.from({ length: 6 }, () => new FuzzSocket(endpoint, context));
  /** Connections that proved the fuzz user's password: their work runs. Replaced every few seconds (a restart forgets them). */
  let authenticated: FuzzSocket[] = [];
  let refreshing: Promise<void> | undefined;
  let refreshedAt = -Infinity;
  const refresh = async (): Promise<void> => {
    const fresh = [new FuzzSocket(endpoint, context), new FuzzSocket(endpoint, context)];
    fuzz.authAttempts += fresh.length;
    const proven = await Promise.all(fresh.map((s) => s.authenticate(codec, FUZZ_USER.userId, FUZZ_USER.password, 8000)));
    fuzz.authenticated += proven.filter(Boolean).length;
    const old = authenticated;
    authenticated = fresh;
    for (const s of old) fuzz.received += s.received;
    await Promise.all(old.map((s) => s.close()));
  };
  const tickMs = 20;
  let lastBomb = 0;
  try {
    while (!until()) {
      const tickStart = performance.now();
      if (!refreshing && now() - refreshedAt > 5) {
        refreshedAt = now();
        refreshing = refresh().finally(() => (refreshing = undefined));
      }
      const quota = Math.ceil((PLAN.fuzzRate * tickMs) / 1000);
      const sockets = [...anonymous, ...authenticated];
      for (let i = 0; i < quota; i++) {
        const socket = random.pick(sockets);
        const pool = authenticated.includes(socket) ? provenSeeds : seeds;
        const seed = random.pick(pool);
        // One in ten as it is (valid), the rest mutated.
        const frames = random.int(10) === 0 ? seed.frames.map((f) => Buffer.from(f)) : mutate(random, seed, pool);
        if (!(await socket.send(frames))) {
          fuzz.refused++;
          break; // a full pipe, or the server away: try again next tick
        }
        fuzz.frames++;
      }
      if (performance.now() - lastBomb >= 50) {
        lastBomb = performance.now();
        if (await random.pick(sockets).send(bombFrames(random))) fuzz.bombs++;
      }
      const left = tickMs - (performance.now() - tickStart);
      if (left > 0) await sleep(left);
    }
  } finally {
    await refreshing?.catch(() => {});
    for (const s of [...anonymous, ...authenticated]) fuzz.received += s.received;
    await Promise.all([...anonymous, ...authenticated].map((s) => s.close()));
  }
}

let bigHello: Buffer | undefined;

/**
 * A HELLO flood: fresh connections each saying one HELLO with a wrong password and closing; 200
 * HELLOs in a row on one connection; and one HELLO of 15 MiB.
 */
async function helloFlood(random: Random): Promise<void> {
  fuzz.floods++;
  const context = new zmq.Context({ maxSockets: 4096, blocky: false });
  const logins = ['alice', 'nobody', FUZZ_USER.userId, ...slotUsers(0).map((u) => u.userId)];
  for (let i = 0; i < PLAN.floodConnections; i++) {
    const socket = new zmq.Dealer({ context, linger: 1000, sendTimeout: 100 });
    try {
      socket.connect(endpoint);
      await socket.send(helloFrames(codec, random.pick(logins), `wrong ${i}`));
      fuzz.hellos++;
    } catch {
      // the server is away: this one is lost
    } finally {
      socket.close();
    }
  }
  const one = new FuzzSocket(endpoint, context);
  try {
    for (let i = 0; i < 200; i++) if (await one.send(helloFrames(codec, random.pick(logins), `wrong again ${i}`))) fuzz.hellos++;
    bigHello ??= Buffer.concat([Buffer.from([0x92, 0xa5]), Buffer.from('alice'), Buffer.from([0xdb]), Buffer.from([0, 0xf0, 0, 0]), Buffer.alloc(15 * MiB, 0x70)]);
    const big = [Buffer.alloc(0), Buffer.from('v1'), Buffer.from(random.bytes(16)), Buffer.from([0x02]), bigHello];
    if (await one.send(big)) fuzz.bigHellos++;
    await sleep(500); // let it go out before the socket closes (linger 0)
  } finally {
    fuzz.received += one.received;
    await one.close();
  }
}

/** The attack phase: fuzzing all along; floods, client kills and the server restart on a schedule. */
async function during(random: Random): Promise<{ restartDowntimeS: number; kills: number }> {
  const start = now();
  const minEnd = start + PLAN.duringS;
  const maxEnd = start + PLAN.duringS * 2;
  const done = (): boolean => (now() >= minEnd && fuzz.frames >= PLAN.minFrames) || now() >= maxEnd || serverDeath !== undefined;
  const fuzzing = fuzzLoop(random, done);
  const events: Array<{ at: number; what: 'flood' | 'kill' | 'restart' }> = [];
  for (let at = PLAN.floodEveryS / 2; at < PLAN.duringS; at += PLAN.floodEveryS) events.push({ at, what: 'flood' });
  for (let at = PLAN.killEveryS * 0.6; at < PLAN.duringS; at += PLAN.killEveryS) events.push({ at: at + random.next() * 2 - 1, what: 'kill' });
  events.push({ at: PLAN.duringS / 2, what: 'restart' });
  events.sort((a, b) => a.at - b.at);
  let restartDowntimeS = 0;
  let kills = 0;
  for (const event of events) {
    while (now() < start + event.at && !done()) await sleep(100);
    if (done()) break;
    if (event.what === 'flood') {
      log(`HELLO flood: ${PLAN.floodConnections} fresh connections, 200 HELLOs on one, one of 15 MiB`);
      await helloFlood(random);
    } else if (event.what === 'kill') {
      const slot = random.int(slots.length);
      log(`SIGKILL clients#${slot}.g${slots[slot]!.id} (pid ${slots[slot]!.worker.pid}), starting it again`);
      await killClients(slot);
      kills++;
    } else {
      const t0 = now();
      log(`restarting the server on ${endpoint}`);
      await stopServer();
      await startServer();
      restartDowntimeS = now() - t0;
      log(`server#${server!.number} (pid ${server!.worker.pid}) up again after ${restartDowntimeS.toFixed(2)} s`);
    }
  }
  await fuzzing;
  return { restartDowntimeS, kills };
}

// ---------------------------------------------------------------------------------------------
// Verdicts

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)]! : 0;
}

/**
 * Memory that a server under this attack holds at its high-water mark and may keep (glibc keeps
 * freed chunks mapped): two argon2 verifications at once (64 MiB each), and buffers of messages of
 * up to 16 MiB (the 15 MiB HELLOs).
 */
const RSS_FIXED_HEADROOM = 192 * MiB;

/**
 * Memory growth: the median of the last third of the samples against the first third, after
 * warm-up. RSS may grow by half plus the fixed headroom; the heap after a forced GC (the sharper
 * sign of a leak in JavaScript) may double plus 32 MiB.
 */
function memoryVerdicts(series: MemorySample[], label: string): Array<{ line: string; failed: boolean }> {
  const verdicts: Array<{ line: string; failed: boolean }> = [];
  const check = (values: number[], what: string, allowedFor: (first: number) => number): void => {
    if (values.length < 6) return;
    const third = Math.floor(values.length / 3);
    const first = median(values.slice(0, third));
    const last = median(values.slice(-third));
    const allowed = allowedFor(first);
    const failed = last > allowed;
    verdicts.push({
      line: `${label}: ${what} median ${mib(first)} MiB (first third) -> ${mib(last)} MiB (last third), allowed up to ${mib(allowed)} MiB: ${failed ? 'GREW WITHOUT BOUND' : 'ok'}`,
      failed,
    });
  };
  check(series.map((s) => s.rss), 'RSS', (first) => first * 1.5 + RSS_FIXED_HEADROOM);
  check(series.filter((s) => s.gc).map((s) => s.heapUsed), 'heap after GC', (first) => first * 2 + 32 * MiB);
  return verdicts;
}

/**
 * Reads the ids the server incarnations ran (`g<generation>:<client>:<seq>` a line) and finds those
 * that ran more than once: a bitmap of seqs per generation and client, so that millions of ids cost
 * a few MiB, parsed from bytes (no giant string).
 */
function countIds(): { ran: number; duplicates: string[]; duplicateCount: number; malformed: number; byGeneration: Map<number, number> } {
  const seen = new Map<string, Uint8Array>();
  const byGeneration = new Map<number, number>();
  const duplicates: string[] = [];
  let duplicateCount = 0;
  let ran = 0;
  let malformed = 0;
  for (const incarnation of incarnations) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(incarnation.idsFile);
    } catch {
      continue;
    }
    let lineStart = 0;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] !== 0x0a) continue;
      const line = bytes.toString('latin1', lineStart, i);
      lineStart = i + 1;
      const match = /^g(\d+):(\d+):(\d+)$/.exec(line);
      if (!match) {
        malformed++;
        continue;
      }
      ran++;
      const generation = Number(match[1]);
      byGeneration.set(generation, (byGeneration.get(generation) ?? 0) + 1);
      const key = `${match[1]}:${match[2]}`;
      const seq = Number(match[3]);
      let bits = seen.get(key);
      if (!bits || bits.length * 8 <= seq) {
        const grown = new Uint8Array(Math.max(1024, (seq >> 3) * 2 + 1));
        if (bits) grown.set(bits);
        seen.set(key, (bits = grown));
      }
      const mask = 1 << (seq & 7);
      if (bits[seq >> 3]! & mask) {
        duplicateCount++;
        if (duplicates.length < 10) duplicates.push(line);
      } else {
        bits[seq >> 3] = bits[seq >> 3]! | mask;
      }
    }
    if (lineStart < bytes.length) malformed++; // a last line cut short
  }
  return { ran, duplicates, duplicateCount, malformed, byGeneration };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const random = new Random(SEED);
  log(`${SHORT ? 'short' : 'full'} soak, seed ${SEED}: warm-up ${PLAN.warmupS} s, before ${PLAN.beforeS} s, during ${PLAN.duringS} s ` +
    `(>= ${fmt(PLAN.minFrames)} fuzzed frames), after ${PLAN.afterS} s; ${PLAN.clientProcesses} client processes x ${PLAN.clientsPerProcess} clients ` +
    `x ${PLAN.inflightPerClient} calls in flight`);
  const users = [FUZZ_USER, ...Array.from({ length: PLAN.clientProcesses }, (_, slot) => slotUsers(slot)).flat()];
  const made = await Promise.all(users.map(async (u) => [u.userId, await hashPassword(u.password)] as const));
  hashes = Object.fromEntries(made);
  decoy = await hashPassword('a decoy that never matches');

  await startServer();
  log(`server#1 (pid ${server!.worker.pid}) on ${endpoint}`);
  for (let slot = 0; slot < PLAN.clientProcesses; slot++) await startClients(slot);
  const monitoring = monitor();
  let restart = { restartDowntimeS: 0, kills: 0 };
  try {
    phase = 'warm-up';
    await sleep(PLAN.warmupS * 1000);
    phase = 'before';
    await mark('before');
    await sleep(PLAN.beforeS * 1000);
    phase = 'during';
    await mark('during');
    if (!serverDeath) restart = await during(random);
    phase = 'after';
    await mark('after');
    if (!serverDeath) await sleep(PLAN.afterS * 1000);
    await mark('end');
  } finally {
    await monitoring.stop();
  }

  // Drain: no new calls; those in flight get their deadline and a grace period to settle.
  phase = 'drain';
  const graceMs = PLAN.timeoutMs + 3000;
  log(`draining: no new calls, up to ${graceMs} ms for those in flight`);
  await Promise.all(generations.filter((g) => !g.killed).map(async (g) => {
    try {
      g.report = await g.worker.request<Report>('drain', { graceMs }, graceMs + 10_000);
      g.final = true;
    } catch (error) {
      log(`clients#${g.slot}.g${g.id}: no final report (${(error as Error).message})`);
    }
  }));
  const serverStats = server && !server.worker.exitReason
    ? await server.worker.request<Record<string, unknown>>('stats', {}, 5000).catch(() => undefined)
    : undefined;
  await Promise.all(generations.map((g) => g.worker.stop(3000)));
  if (!serverDeath) await stopServer();

  // ---- Report
  const failures: string[] = [];
  const total = totals();
  console.log('\n=== zeropeer soak: results ===');
  console.log(`seed ${SEED}; ${now().toFixed(0)} s in all; ${incarnations.length} server incarnations; ${generations.length} client processes started ` +
    `(${restart.kills} SIGKILLed); ${incarnations.length > 1 ? `the planned restart took ${restart.restartDowntimeS.toFixed(2)} s` : 'no restart'}`);

  console.log('\nlegitimate calls/s:');
  for (let i = 0; i + 1 < marks.length; i++) {
    const from = marks[i]!;
    const to = marks[i + 1]!;
    console.log(`  ${from.name.padEnd(7)} ${fmt((to.ok - from.ok) / Math.max(0.001, to.t - from.t)).padStart(7)} calls/s over ${(to.t - from.t).toFixed(1)} s`);
  }

  const errorTotal = [...total.errors.values()].reduce((a, b) => a + b, 0);
  console.log(`\nlegitimate calls: ${fmt(total.started)} started, ${fmt(total.ok)} answered with their own payload, ${fmt(errorTotal)} typed or untyped errors, ` +
    `${fmt(total.mismatched)} wrong results, ${fmt(total.inflight)} unsettled after the grace period`);
  const killedInflight = generations.filter((g) => g.killed).reduce((n, g) => n + (g.report?.inflight ?? 0), 0);
  console.log(`  (in flight in SIGKILLed client processes when last seen: ${killedInflight}; they ended with their process and are not counted)`);
  console.log('errors by code:');
  if (total.errors.size === 0) console.log('  none');
  for (const [code, n] of [...total.errors].sort((a, b) => b[1] - a[1])) console.log(`  ${code.padEnd(24)} ${fmt(n)}`);
  const logins = generations.flatMap((g) => g.report?.loginMs ?? []);
  const reconnects = generations.flatMap((g) => g.report?.reconnectMs ?? []);
  console.log(`client logins: ${logins.length}, median ${median(logins)} ms, max ${Math.max(0, ...logins)} ms; ` +
    `reconnections: ${reconnects.length}, median ${median(reconnects)} ms, max ${Math.max(0, ...reconnects)} ms`);

  console.log(`\nfuzzer: ${fmt(fuzz.frames)} mutated/valid frames sent (${fmt(fuzz.refused)} sends refused by a full pipe or an absent server), ` +
    `${fmt(fuzz.bombs)} length bombs, ${fuzz.floods} HELLO floods (${fmt(fuzz.hellos)} HELLOs, ${fuzz.bigHellos} of 15 MiB), ` +
    `${fuzz.authenticated} of ${fuzz.authAttempts} fuzz connections authenticated within 8 s, ${fmt(fuzz.received)} messages received back`);
  if (serverStats) {
    const { logged, ...rest } = serverStats as { logged: Record<string, number> };
    console.log(`server#${incarnations.length} at the end: ${JSON.stringify(rest)}`);
    const top = Object.entries(logged).sort((a, b) => b[1] - a[1]).slice(0, 12);
    console.log('  its log, by message:');
    for (const [line, n] of top) console.log(`    ${fmt(n).padStart(8)}  ${line}`);
  }

  console.log('\nserver memory (MiB; every 5th sample, taken after a forced GC):');
  const series = memory.filter((s) => s.gc);
  const step = Math.max(1, Math.ceil(series.length / 16));
  series.forEach((s, i) => {
    if (i % step !== 0 && i !== series.length - 1) return;
    console.log(`  t=${s.t.toFixed(0).padStart(4)} s  server#${s.incarnation}  rss ${mib(s.rss).padStart(6)}  heap ${mib(s.heapUsed).padStart(6)}  external ${mib(s.external).padStart(6)}`);
  });
  const peak = memory.reduce((m, s) => Math.max(m, s.rss), 0);
  console.log(`  peak RSS ${mib(peak)} MiB over ${memory.length} samples`);
  const warm = memory.filter((s) => {
    const inc = incarnations[s.incarnation - 1]!;
    return s.t >= inc.startedAt + (s.incarnation === 1 ? PLAN.warmupS : 5);
  });
  const verdicts = memoryVerdicts(warm, 'whole run');
  for (const inc of incarnations) verdicts.push(...memoryVerdicts(warm.filter((s) => s.incarnation === inc.number), `server#${inc.number}`));
  for (const verdict of verdicts) {
    console.log(`  ${verdict.line}`);
    if (verdict.failed) failures.push(`memory: ${verdict.line}`);
  }

  const ids = countIds();
  console.log(`\nserver-side ids: ${fmt(ids.ran)} calls ran, ${fmt(ids.duplicateCount)} of them a second time${ids.malformed ? `, ${ids.malformed} unreadable lines` : ''}`);
  for (const g of generations) {
    const ranOf = ids.byGeneration.get(g.id) ?? 0;
    if (g.final && g.report && g.report.ok > ranOf) failures.push(`clients#${g.slot}.g${g.id}: ${g.report.ok} calls answered but only ${ranOf} ran`);
  }

  if (serverDeath) failures.push(`the server died: ${serverDeath}`);
  if (total.inflight > 0) failures.push(`${total.inflight} legitimate calls never settled (lost)`);
  if (generations.some((g) => !g.killed && !g.final)) failures.push('a client process gave no final report (its calls cannot be accounted for)');
  if (total.mismatched > 0) failures.push(`${total.mismatched} calls settled with a result that was not theirs`);
  const untyped = [...total.errors].filter(([code]) => code.startsWith('untyped') || code.startsWith('start failed'));
  if (untyped.length) failures.push(`calls settled with untyped errors: ${untyped.map(([c, n]) => `${c} x${n}`).join(', ')}`);
  const finalStarted = generations.filter((g) => g.final).reduce((n, g) => n + (g.report?.started ?? 0), 0);
  const finalAccounted = generations.filter((g) => g.final).reduce((n, g) => n + (g.report ? g.report.ok + g.report.mismatched + g.report.inflight +
    Object.values(g.report.errorsByCode).reduce((a, b) => a + b, 0) : 0), 0);
  if (finalStarted !== finalAccounted) failures.push(`bookkeeping: ${finalStarted} calls started but ${finalAccounted} accounted for`);
  if (ids.duplicateCount > 0) failures.push(`${ids.duplicateCount} calls ran more than once, e.g. ${ids.duplicates.slice(0, 5).join(', ')}`);
  if (ids.malformed > 0) failures.push(`${ids.malformed} lines of the servers' id files unreadable`);
  if (fuzz.frames < PLAN.minFrames) failures.push(`the fuzzer sent only ${fmt(fuzz.frames)} frames (at least ${fmt(PLAN.minFrames)} wanted)`);

  console.log('');
  if (failures.length === 0) {
    console.log('SOAK PASSED');
    return 0;
  }
  console.log('SOAK FAILED:');
  for (const failure of failures) console.log(`  - ${failure}`);
  return 1;
}

// Every child dies with us, however we end.
process.on('exit', () => killAllChildren());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.log(`soak: ${signal}, killing the children`);
    killAllChildren();
    process.exit(130);
  });
}
const deadline = setTimeout(() => {
  console.log(`soak: hard deadline (${HARD_DEADLINE_MS / 1000} s) reached: killing the children, failing`);
  killAllChildren();
  process.exit(2);
}, HARD_DEADLINE_MS);
deadline.unref();

let code: number;
try {
  code = await main();
} catch (error) {
  console.log(`soak: ${(error as Error)?.stack ?? String(error)}`);
  code = 1;
} finally {
  killAllChildren();
  try {
    rmSync(workDir, { recursive: true, force: true });
  } catch {
    // a temp dir left behind
  }
}
process.exit(code);
