/**
 * Heartbeats: who is still there (pseud's heartbeat backends).
 *
 * Every `intervalMs` a peer sends HEARTBEAT to each peer it tracks; any message from a peer counts
 * as a sign of life. A tracked peer not heard from for `timeoutMs` is gone. Only peers that have
 * shown they speak heartbeats are tracked: a zeropeer peer (compact framing), or one that sent a
 * HEARTBEAT. Others (pseud) are never sent one; their departure is told by the transport (the
 * disconnect notification, TCP keepalive). The backend is the policy and the store of that table:
 * the in-memory one ships; one of your own (a table in Redis shared by several server processes,
 * say) plugs in by name or as an object.
 */
import { MAX_OPTION_VALUE, rejectUnknownKeys } from './option-checks.js';

/** Heartbeat settings. */
export interface HeartbeatOptions {
  /** How often a HEARTBEAT goes to each tracked peer, in ms. Default 3000. */
  intervalMs?: number;
  /** Silence after which a tracked peer is gone, in ms. Default 10000. */
  timeoutMs?: number;
  /** A backend name (`'memory'`, the default) or a backend object. */
  backend?: string | HeartbeatBackend;
}

/** The defaults, chosen for real networks: a lost peer is noticed within 13 s, at one small message per peer every 3 s. */
export const HEARTBEAT_DEFAULTS: {
  /** How often a HEARTBEAT goes to each peer, in ms. */
  readonly intervalMs: 3000;
  /** Silence after which a peer is gone, in ms. */
  readonly timeoutMs: 10_000;
} = { intervalMs: 3000, timeoutMs: 10_000 } as const;

/** What a backend is told about a tracked peer. */
export interface TrackedPeer {
  /** The connection's key (its routing id, as latin1): unique while it is connected. */
  readonly key: string;
  /** Its identity: a verified client identity on a server; the server's id on a client. */
  readonly identity: string;
  /** The id of the peer that tracks it (this server's id, or the client's server id). */
  readonly owner: string;
}

/**
 * The policy and the store of the peer table. `seen` runs for every message received, so it must
 * be cheap and synchronous; the others may return promises (errors are logged, never thrown).
 */
export interface HeartbeatBackend {
  /** Starts tracking a peer (a server: once it authenticated; a client: its server, once connected). */
  track(peer: TrackedPeer, now: number): void | Promise<void>;
  /** Stops tracking a peer, for `reason` ('timeout', 'disconnect', 'stopped', 'replaced', 'expired'). */
  untrack(peer: TrackedPeer, reason: string): void | Promise<void>;
  /** A message came from the peer with this key. */
  seen(key: string, now: number): void;
  /** Keys of the tracked peers not heard from since `silentSince` (epoch ms). */
  expired(silentSince: number): Iterable<string>;
  /** Releases what the backend holds, when the peer stops. */
  close?(): void | Promise<void>;
}

/** Makes a backend for one peer. */
export type HeartbeatBackendFactory = (options: Required<Omit<HeartbeatOptions, 'backend'>>) => HeartbeatBackend;

/** The in-memory backend: a map of key -> last sign of life. */
export class MemoryHeartbeatBackend implements HeartbeatBackend {
  readonly #lastSeen = new Map<string, number>();

  track(peer: TrackedPeer, now: number): void {
    this.#lastSeen.set(peer.key, now);
  }

  untrack(peer: TrackedPeer): void {
    this.#lastSeen.delete(peer.key);
  }

  seen(key: string, now: number): void {
    if (this.#lastSeen.has(key)) this.#lastSeen.set(key, now);
  }

  *expired(silentSince: number): Iterable<string> {
    for (const [key, last] of this.#lastSeen) if (last < silentSince) yield key;
  }

  /** Keys tracked now (for tests and examples). */
  get size(): number {
    return this.#lastSeen.size;
  }
}

const backends = new Map<string, HeartbeatBackendFactory>([['memory', () => new MemoryHeartbeatBackend()]]);

/** Makes a backend available by name (`heartbeat: { backend: name }`) to every peer of the process. */
export function registerHeartbeatBackend(name: string, factory: HeartbeatBackendFactory, options: { replace?: boolean } = {}): void {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('a heartbeat backend needs a name');
  if (typeof factory !== 'function') throw new TypeError('a heartbeat backend factory must be a function');
  if (backends.has(name) && !options.replace) {
    throw new TypeError(`a heartbeat backend named "${name}" is already registered; pass { replace: true } to replace it`);
  }
  backends.set(name, factory);
}

/** The settings of a peer's heartbeats, or undefined when they are off (`heartbeat: false`). */
export function resolveHeartbeat(option: HeartbeatOptions | false | undefined):
  | { intervalMs: number; timeoutMs: number; backend: HeartbeatBackend }
  | undefined {
  if (option === false) return undefined;
  if (option) rejectUnknownKeys(option, ['intervalMs', 'timeoutMs', 'backend'], 'options.heartbeat');
  const intervalMs = option?.intervalMs ?? HEARTBEAT_DEFAULTS.intervalMs;
  const timeoutMs = option?.timeoutMs ?? HEARTBEAT_DEFAULTS.timeoutMs;
  if (!(intervalMs > 0) || !(timeoutMs > 0) || !(timeoutMs <= MAX_OPTION_VALUE)) {
    throw new TypeError(`heartbeat.intervalMs and heartbeat.timeoutMs must be positive, at most ${MAX_OPTION_VALUE}`);
  }
  if (timeoutMs <= intervalMs) throw new TypeError('heartbeat.timeoutMs must be longer than heartbeat.intervalMs');
  const chosen = option?.backend ?? 'memory';
  let backend: HeartbeatBackend;
  if (typeof chosen === 'string') {
    const factory = backends.get(chosen);
    if (!factory) throw new TypeError(`unknown heartbeat backend "${chosen}"; registered: ${[...backends.keys()].join(', ')}`);
    backend = factory({ intervalMs, timeoutMs });
  } else {
    backend = chosen;
  }
  for (const method of ['track', 'untrack', 'seen', 'expired'] as const) {
    if (typeof backend?.[method] !== 'function') throw new TypeError(`a heartbeat backend needs ${method}()`);
  }
  return { intervalMs, timeoutMs, backend };
}
