/**
 * The scenarios, their sizes (full and --quick), and the closed-loop load generator the Node
 * callers use (aiozmq_bench.py has the same loop in Python).
 */
import { summarize } from './stats.js';

/** Scenarios run in alternating rounds on every system. */
export type RoundScenarioKey = 'sequential' | 'in-flight-64' | 'payload-64KiB';
/** Scenarios run once, on zeropeer only. */
export type ZeropeerScenarioKey = 'idle-clients' | 'million-calls' | 'scale' | 'streams' | 'cluster';
export type ScenarioKey = RoundScenarioKey | ZeropeerScenarioKey;

export interface RoundScenario {
  key: RoundScenarioKey;
  title: string;
  /** Calls in flight at once (closed loop: each lane sends its next call when the last one answered). */
  concurrency: number;
  /** Length of the string argument (ASCII: bytes = characters). */
  payloadBytes: number;
  /** Record each call's latency (sequential only: it costs a little). */
  latency: boolean;
}

export const ROUND_SCENARIOS: readonly RoundScenario[] = [
  { key: 'sequential', title: 'sequential calls (1 in flight)', concurrency: 1, payloadBytes: 16, latency: true },
  { key: 'in-flight-64', title: '64 calls in flight', concurrency: 64, payloadBytes: 16, latency: false },
  { key: 'payload-64KiB', title: '64 KiB payloads, 16 in flight', concurrency: 16, payloadBytes: 64 * 1024, latency: false },
];

export const SCENARIO_TITLES: Record<ScenarioKey, string> = {
  'sequential': ROUND_SCENARIOS[0]!.title,
  'in-flight-64': ROUND_SCENARIOS[1]!.title,
  'payload-64KiB': ROUND_SCENARIOS[2]!.title,
  'idle-clients': 'idle zeropeer clients with heartbeats, then one server push to each',
  'million-calls': 'a long run of calls, 64 in flight, RSS sampled (leak check)',
  'scale': 'N connected clients on one server (bench/scale.ts): idle CPU, RSS per client, a push to all, a server restart',
  'streams': 'streams (bench/streams.ts): 1 KiB items through client.stream against raw zeromq.js, a slow consumer\'s RSS',
  'cluster': 'cluster mode (needs redis-server): cross-node sendTo against local, 3 nodes x N idle clients (bench/cluster.ts)',
};

export interface Plan {
  mode: 'full' | 'quick';
  /** Measured rounds (their median is reported), after one warm-up round. */
  rounds: number;
  /** Length of one measured cell (one system x one scenario x one round), in ms. */
  cellMs: number;
  /** Length of a warm-up cell, in ms. */
  warmupMs: number;
  /** Upper bound on the calls of one cell (sizes the latency buffer). */
  maxCallsPerCell: number;
  idleClients: number;
  idleMs: number;
  /** The scale scenario: clients on one server, the child processes they are spread over, its idle window, pushes to all. */
  scale: { clients: number; processes: number; idleMs: number; pushes: number };
  millionCalls: number;
  /** The long run is made of this many phases; RSS is sampled between them. */
  millionPhases: number;
  /** Bound on one phase of the long run, in ms. */
  millionPhaseCapMs: number;
  /** No child process lives longer than this. */
  childHardTimeoutMs: number;
  /** The whole bench is aborted (children killed) after this. */
  benchHardTimeoutMs: number;
}

export function makePlan(quick: boolean, rounds?: number): Plan {
  return quick
    ? {
        mode: 'quick',
        rounds: rounds ?? 3,
        cellMs: 250,
        warmupMs: 150,
        maxCallsPerCell: 200_000,
        idleClients: 50,
        idleMs: 3000,
        scale: { clients: 200, processes: 2, idleMs: 3000, pushes: 2 },
        millionCalls: 20_000,
        millionPhases: 10,
        millionPhaseCapMs: 10_000,
        childHardTimeoutMs: 180_000,
        benchHardTimeoutMs: 170_000,
      }
    : {
        mode: 'full',
        rounds: rounds ?? 7,
        cellMs: 1000,
        warmupMs: 500,
        maxCallsPerCell: 500_000,
        idleClients: 1000,
        idleMs: 30_000,
        scale: { clients: 10_000, processes: 4, idleMs: 30_000, pushes: 3 },
        millionCalls: 1_000_000,
        millionPhases: 10,
        millionPhaseCapMs: 20_000,
        childHardTimeoutMs: 800_000,
        benchHardTimeoutMs: 790_000,
      };
}

/** A lowercase ASCII string of `bytes` characters (the argument of `upper`). */
export function payloadOf(bytes: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz';
  return alphabet.repeat(Math.ceil(bytes / alphabet.length)).slice(0, bytes);
}

export interface DriveOptions {
  concurrency: number;
  payloadBytes: number;
  durationMs: number;
  maxCalls: number;
  latency: boolean;
}

export interface DriveResult {
  calls: number;
  errors: number;
  firstError?: string;
  elapsedMs: number;
  callsPerSec: number;
  /** Payload bytes moved per second, both ways (argument + result), in MB (10^6 bytes). */
  mbPerSec: number;
  p50Us?: number;
  p99Us?: number;
  meanUs?: number;
}

/**
 * Closed loop: `concurrency` lanes, each calling as soon as its previous call answered, until
 * `durationMs` has passed or `maxCalls` were started. An answer of the wrong length counts as an error.
 */
export async function drive(call: (payload: string) => Promise<string>, options: DriveOptions): Promise<DriveResult> {
  const payload = payloadOf(options.payloadBytes);
  const latencies = options.latency ? new Float64Array(options.maxCalls) : undefined;
  let started = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const begin = performance.now();
  const deadline = begin + options.durationMs;
  const lane = async (): Promise<void> => {
    while (started < options.maxCalls && performance.now() < deadline && errors < 100) {
      started++;
      const t0 = performance.now();
      try {
        const answer = await call(payload);
        if (typeof answer !== 'string' || answer.length !== payload.length) throw new Error('wrong answer');
      } catch (error) {
        errors++;
        firstError ??= (error as Error)?.message ?? String(error);
        continue;
      }
      if (latencies) latencies[done] = performance.now() - t0;
      done++;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, lane));
  const elapsedMs = performance.now() - begin;
  const result: DriveResult = {
    calls: done,
    errors,
    elapsedMs,
    callsPerSec: (done / elapsedMs) * 1000,
    mbPerSec: (done * options.payloadBytes * 2) / (elapsedMs * 1000),
  };
  if (firstError !== undefined) result.firstError = firstError;
  if (latencies && done > 0) {
    const s = summarize(latencies.subarray(0, done));
    result.p50Us = s.p50 * 1000;
    result.p99Us = s.p99 * 1000;
    result.meanUs = s.mean * 1000;
  }
  return result;
}
