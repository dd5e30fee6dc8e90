/**
 * Connect and departure notices (ROUTER_NOTIFY): libzmq sends the same empty message when a peer
 * connects and when it leaves, and a peer can send one itself. The connection's state says which
 * it is; on the bound side a departure is believed only once a probe finds the route gone.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { LogContext, Logger } from '../logger.js';
import { isUnreachable } from '../transport/router-socket.js';
import type { Connection, Connections } from './connection.js';

/** When a departure notice is checked against the route: at once, then with growing waits (~2.6 s in all). */
export const DEPARTURE_PROBES_MS = [0, 5, 20, 100, 500, 2000] as const;

/** What departures need of the session. */
export interface DepartureHost {
  readonly logger: Logger;
  readonly connections: Pick<Connections, 'get' | 'holds'>;
  /** Aborts every check when the session stops. */
  readonly stopping: AbortSignal;
  /** Whether a departure notice is checked against the route (the role's `checksDepartures`). */
  checksDepartures(): boolean;
  /** The connection a notice from `routingId` belongs to (the role's `connectionFor`). */
  connectionFor(routingId: Buffer): Connection | undefined;
  /** Records that the transport to `connection` is up. */
  up(connection: Connection): void;
  /** `connection` is gone (the role's `lost(connection, 'down')`). */
  down(connection: Connection): void;
  /** Resolves if a route to `connection` exists, rejects (EHOSTUNREACH) if not. */
  probe(connection: Connection): Promise<void>;
  context(connection: Connection): LogContext;
  /** A warning a peer can cause at will (rate-limited). */
  warn(connection: Connection, message: string): void;
}

export class Departures {
  readonly #host: DepartureHost;
  /** The checks running now: one listener on the stopping signal aborts them all (AbortSignal.any per check left a record on it for good). */
  readonly #checks = new Set<AbortController>();

  constructor(host: DepartureHost) {
    this.#host = host;
    host.stopping.addEventListener('abort', () => {
      for (const check of this.#checks) check.abort();
    }, { once: true });
  }

  /** The empty message of ROUTER_NOTIFY (or one a peer sent) came from `routingId`. */
  notify(routingId: Buffer): void {
    const host = this.#host;
    // ROUTER_NOTIFY sends the same empty message for a connect and a disconnect: the state says which.
    const known = host.connections.get(routingId);
    if (known?.up) {
      if (known.departure) {
        // A second one while the first is checked: a departure and a new connection on the same
        // routing id (or a peer that sends empty messages: then it only resets its own record).
        this.departed(known);
        const fresh = host.connectionFor(routingId);
        if (fresh) host.up(fresh);
        return;
      }
      const checks = host.checksDepartures();
      if (!known.heard && checks) {
        // Nothing heard yet: pseud's Client announces itself with this very message (PROBE_ROUTER).
        // Nothing is sent to check; a record that hears nothing is dropped by the role after a while.
        host.logger.debug('an empty message from a connection that has not spoken: ignored', host.context(known));
        return;
      }
      if (checks) void this.#confirm(known);
      else this.departed(known);
      return;
    }
    const connection = known ?? host.connectionFor(routingId);
    if (connection) host.up(connection);
  }

  /** The transport to `connection` is down: any check of it ends, and the role is told. */
  departed(connection: Connection): void {
    connection.departure?.abort();
    connection.departure = undefined;
    connection.up = false;
    this.#host.logger.debug('connection down', this.#host.context(connection));
    this.#host.down(connection);
  }

  /**
   * A peer can send the empty message libzmq uses to say it left. Believe it only when the route
   * is gone: libzmq drops the pipe a few milliseconds after the notification, so probe until a
   * send fails (a departure) or ~2.5 s have passed with the route still there (a message from the
   * peer: ignored, its record and its login throttle kept).
   */
  async #confirm(connection: Connection): Promise<void> {
    const host = this.#host;
    if (host.stopping.aborted) return;
    const check = new AbortController();
    connection.departure = check;
    this.#checks.add(check);
    const { signal } = check;
    const epoch = connection.epoch;
    const current = (): boolean => !signal.aborted && connection.up && connection.epoch === epoch && host.connections.holds(connection);
    try {
      for (const waitMs of DEPARTURE_PROBES_MS) {
        if (waitMs > 0) await delay(waitMs, undefined, { signal });
        if (!current()) return;
        try {
          await host.probe(connection);
        } catch (error) {
          if (!isUnreachable(error)) continue; // a full pipe is still a pipe
          if (current()) this.departed(connection);
          return;
        }
      }
      host.warn(connection, 'an empty message from a connected peer was ignored');
    } catch {
      // aborted: stopping, or a second notification settled it
    } finally {
      this.#checks.delete(check);
      if (connection.departure === check) connection.departure = undefined;
    }
  }
}
