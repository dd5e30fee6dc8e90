/**
 * Heartbeats on the engine side: a HEARTBEAT to every authenticated connection that speaks them
 * each interval, any message as a sign of life, and the backend's verdict on who fell silent.
 * A peer that never showed it speaks heartbeats (a pseud peer) is neither sent them nor judged by
 * them: a REQ socket would read a HEARTBEAT as its answer, and an idle pseud peer is healthy.
 *
 * Aligned heartbeats: a side that `answers` (a client) replies to a HEARTBEAT at once, unless it
 * sent one within half an interval, and its own tick sends one only to a connection it sent none
 * to for a whole interval; each tick is timed from the last HEARTBEAT sent, so no gap between two
 * is longer than one interval (the other side's verdicts are as before). A server then hears from
 * its clients in one burst right after its sweep (its receive loop reads many per wakeup) instead
 * of one wakeup per client spread over the interval. The other side (a server) never answers, so
 * no ping-pong; facing a peer that never sends HEARTBEAT (pseud), a client's own tick sends as before.
 *
 * The sweep does not skip a connection it heard from recently: that tells the peer nothing (its
 * verdict on us needs a message from us), and a client answers only what it is sent, so its
 * heartbeats would fall back to its own spread-out timer. Skipping one it sent anything to would
 * be correct, but costs a timestamp on every send and saves nothing at idle, where the sweep's
 * HEARTBEAT is all that is sent.
 */
import type { HeartbeatBackend } from '../heartbeat.js';
import type { Logger } from '../logger.js';
import type { Connection } from './connection.js';

/** How many silence verdicts are remembered (to log a peer heard from again); older ones are forgotten. */
const MAX_SILENCED = 1024;

/** A timer may fire a millisecond before the clock says it is due: a HEARTBEAT this close to due goes now. */
const TIMER_SLACK_MS = 2;

export interface LivenessSettings {
  readonly peerId: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly backend: HeartbeatBackend;
  readonly logger: Logger;
  /** Reply to a HEARTBEAT at once (a client); the tick then sends only where none went for an interval. */
  readonly answers?: boolean;
}

/** What liveness needs of the session. */
export interface LivenessHost {
  /** The connections to send HEARTBEAT to, and whose silence matters. */
  targets(): Iterable<Connection>;
  /** Whether `connection` is one of the targets now. */
  isTarget(connection: Connection): boolean;
  heartbeat(connection: Connection): void;
  byKey(key: string): Connection | undefined;
  /** A tracked connection was not heard from for `timeoutMs`. */
  silent(connection: Connection): void;
}

export class Liveness {
  readonly #settings: LivenessSettings;
  readonly #host: LivenessHost;
  #timer: NodeJS.Timeout | undefined;
  /**
   * When the next tick is due (performance.now(), as all our own timing here: a wall-clock step
   * must not silence us): a tick much later than that means this process was paused (SIGSTOP, a blocked loop).
   */
  #due = 0;
  readonly #tracked = new WeakSet<Connection>();
  /** A side that answers: when each connection was last sent a HEARTBEAT (by a tick or an answer). */
  readonly #lastBeat = new WeakMap<Connection, number>();
  /** Connections judged silent, by key, until heard from again (bounded: the oldest verdicts go first). */
  readonly #silenced = new Map<string, { routingId: string; identity: string | undefined; at: number }>();

  constructor(settings: LivenessSettings, host: LivenessHost) {
    this.#settings = settings;
    this.#host = host;
  }

  start(): void {
    const { intervalMs, answers } = this.#settings;
    this.#due = performance.now() + intervalMs;
    // A side that answers times each tick from its last HEARTBEAT; the other sweeps on a fixed beat.
    this.#timer = answers ? setTimeout(() => this.#tick(), intervalMs) : setInterval(() => this.#tick(), intervalMs);
    this.#timer.unref(); // heartbeats alone never keep a process alive
  }

  /** A message came from `key`. Runs for every message: the backend's `seen` must be cheap. */
  seen(key: string): void {
    const now = Date.now();
    this.#settings.backend.seen(key, now);
    if (this.#silenced.size > 0) this.#heardAgain(key, now);
  }

  /** Tracks an authenticated connection, if it speaks heartbeats (else only the transport tells). */
  track(connection: Connection): void {
    if (connection.identity === undefined || !connection.heartbeats) return;
    this.#tracked.add(connection);
    void this.#settle(this.#settings.backend.track(this.#peer(connection.key, connection.identity), Date.now()), 'track');
  }

  untrack(connection: Connection, reason: string): void {
    this.#lastBeat.delete(connection); // a client's connection record outlives a reconnect: its next one starts afresh
    if (connection.identity === undefined || !this.#tracked.has(connection)) return;
    this.#tracked.delete(connection);
    void this.#settle(this.#settings.backend.untrack(this.#peer(connection.key, connection.identity), reason), 'untrack');
  }

  /**
   * The peer on `connection` sent HEARTBEAT: it speaks them, so it is held to them from now on.
   * A side that answers sends its own back at once (never a side that does not: no ping-pong).
   */
  heartbeatFrom(connection: Connection): void {
    if (!connection.heartbeats) {
      connection.heartbeats = true;
      if (connection.authenticated) this.track(connection);
    }
    // None within half an interval: a peer that answers every HEARTBEAT with one (not a zeropeer
    // server, but a hand-written one may) gets at most two an interval, not a ping-pong.
    if (!this.#settings.answers || this.#timer === undefined || !this.#host.isTarget(connection)) return;
    const now = performance.now();
    const last = this.#lastBeat.get(connection);
    if (last !== undefined && now - last < this.#settings.intervalMs / 2) return;
    this.#host.heartbeat(connection);
    this.#lastBeat.set(connection, now);
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer); // a timeout or an interval: one kind of handle in Node
    this.#timer = undefined;
    this.#silenced.clear();
    await this.#settle(this.#settings.backend.close?.(), 'close');
  }

  #peer(key: string, identity: string): { key: string; identity: string; owner: string } {
    return { key, identity, owner: this.#settings.peerId };
  }

  #tick(): void {
    const { intervalMs } = this.#settings;
    const at = performance.now();
    const lateMs = at - this.#due;
    const paused = lateMs > intervalMs;
    let next = at + intervalMs;
    try {
      next = this.#beat(at, paused);
    } finally {
      // Re-armed whatever happened: a throwing host or backend must not end the heartbeats.
      this.#due = next;
      if (this.#settings.answers && this.#timer !== undefined) {
        this.#timer = setTimeout(() => this.#tick(), Math.min(intervalMs, Math.max(1, next - at)));
        this.#timer.unref();
      }
    }
    this.#verdicts(paused, lateMs);
  }

  /** Sends the HEARTBEATs that are due; returns when the next tick is (performance.now()). */
  #beat(at: number, paused: boolean): number {
    const { backend, intervalMs } = this.#settings;
    let next = at + intervalMs;
    const now = paused ? Date.now() : 0;
    for (const connection of this.#host.targets()) {
      // This process was paused: what its peers sent meanwhile is not read yet. Their silence is ours; start the count again.
      if (paused) backend.seen(connection.key, now);
      if (this.#settings.answers) {
        // Sent one within the interval (an answer): the next is due an interval after that one.
        const last = this.#lastBeat.get(connection);
        if (last !== undefined && at - last < intervalMs - TIMER_SLACK_MS) {
          next = Math.min(next, last + intervalMs);
          continue;
        }
        this.#lastBeat.set(connection, at);
      }
      this.#host.heartbeat(connection);
    }
    return next;
  }

  /** Judges who fell silent (not after a pause: their silence was ours). */
  #verdicts(paused: boolean, lateMs: number): void {
    const { backend, timeoutMs, logger, peerId } = this.#settings;
    const now = Date.now();
    if (paused) {
      logger.debug('heartbeat tick late (this process was paused): silence verdicts skipped once', { peer: peerId, lateMs });
      return;
    }
    let silent: string[];
    try {
      silent = [...backend.expired(now - timeoutMs)];
    } catch (error) {
      logger.error('heartbeat backend expired() failed', { peer: peerId, error: (error as Error)?.message });
      return;
    }
    for (const key of silent) {
      const connection = this.#host.byKey(key);
      if (connection) {
        logger.info('peer silent for too long', { peer: peerId, routingId: connection.address, identity: connection.identity, timeoutMs });
        this.#silenced.delete(key);
        this.#silenced.set(key, { routingId: connection.address, identity: connection.identity, at: now });
        if (this.#silenced.size > MAX_SILENCED) this.#silenced.delete(this.#silenced.keys().next().value!);
        this.#host.silent(connection);
      } else {
        void this.#settle(backend.untrack(this.#peer(key, ''), 'timeout'), 'untrack');
      }
    }
  }

  /** The heartbeat's verdict on `key` was silence, and a message came from it since: log that it is back. */
  #heardAgain(key: string, now: number): void {
    const verdict = this.#silenced.get(key);
    if (verdict === undefined) return;
    this.#silenced.delete(key);
    this.#settings.logger.debug('peer heard from again after it was judged silent', {
      peer: this.#settings.peerId, routingId: verdict.routingId, identity: verdict.identity, sinceVerdictMs: now - verdict.at,
    });
  }

  /**
   * Logs (never throws) the failure of what the backend returned, once it settles. A plain value
   * (the memory backend) costs no promise: track and untrack run for every client that comes and goes.
   */
  #settle(result: unknown, what: string): Promise<void> | undefined {
    if (typeof (result as PromiseLike<unknown> | undefined)?.then !== 'function') return undefined;
    return Promise.resolve(result).then(
      () => undefined,
      (error: unknown) => this.#settings.logger.error(`heartbeat backend ${what} failed`, { peer: this.#settings.peerId, error: (error as Error)?.message }),
    );
  }
}
