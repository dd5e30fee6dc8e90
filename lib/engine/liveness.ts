/**
 * Heartbeats on the engine side: a HEARTBEAT to every authenticated connection each interval, any
 * message as a sign of life, and the backend's verdict on who fell silent.
 */
import type { HeartbeatBackend } from '../heartbeat.js';
import type { Logger } from '../logger.js';
import type { Connection } from './connection.js';

export interface LivenessSettings {
  readonly peerId: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly backend: HeartbeatBackend;
  readonly logger: Logger;
}

/** What liveness needs of the session. */
export interface LivenessHost {
  /** The connections to send HEARTBEAT to, and whose silence matters. */
  targets(): Iterable<Connection>;
  heartbeat(connection: Connection): void;
  byKey(key: string): Connection | undefined;
  /** A tracked connection was not heard from for `timeoutMs`. */
  silent(connection: Connection): void;
}

export class Liveness {
  readonly #settings: LivenessSettings;
  readonly #host: LivenessHost;
  #timer: NodeJS.Timeout | undefined;

  constructor(settings: LivenessSettings, host: LivenessHost) {
    this.#settings = settings;
    this.#host = host;
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), this.#settings.intervalMs);
    this.#timer.unref(); // heartbeats alone never keep a process alive
  }

  /** A message came from `key`. Runs for every message: the backend's `seen` must be cheap. */
  seen(key: string): void {
    this.#settings.backend.seen(key, Date.now());
  }

  track(connection: Connection): void {
    if (connection.identity === undefined) return;
    void this.#settle(this.#settings.backend.track(this.#peer(connection.key, connection.identity), Date.now()), 'track');
  }

  untrack(connection: Connection, reason: string): void {
    if (connection.identity === undefined) return;
    void this.#settle(this.#settings.backend.untrack(this.#peer(connection.key, connection.identity), reason), 'untrack');
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#settle(this.#settings.backend.close?.(), 'close');
  }

  #peer(key: string, identity: string): { key: string; identity: string; owner: string } {
    return { key, identity, owner: this.#settings.peerId };
  }

  #tick(): void {
    const { backend, timeoutMs, logger, peerId } = this.#settings;
    for (const connection of this.#host.targets()) this.#host.heartbeat(connection);
    let silent: string[];
    try {
      silent = [...backend.expired(Date.now() - timeoutMs)];
    } catch (error) {
      logger.error('heartbeat backend expired() failed', { peer: peerId, error: (error as Error)?.message });
      return;
    }
    for (const key of silent) {
      const connection = this.#host.byKey(key);
      if (connection) {
        logger.info('peer silent for too long', { peer: peerId, routingId: connection.address, identity: connection.identity, timeoutMs });
        this.#host.silent(connection);
      } else {
        void this.#settle(backend.untrack(this.#peer(key, ''), 'timeout'), 'untrack');
      }
    }
  }

  /** Awaits what the backend returned, logging (never throwing) its failure. */
  async #settle(result: unknown, what: string): Promise<void> {
    try {
      await result;
    } catch (error) {
      this.#settings.logger.error(`heartbeat backend ${what} failed`, { peer: this.#settings.peerId, error: (error as Error)?.message });
    }
  }
}
