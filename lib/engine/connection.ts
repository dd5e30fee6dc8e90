/**
 * One ZeroMQ connection to another peer, by routing id: the fields every role shares. Role state
 * (a server's login throttle, a client's handshake) lives with the role, keyed by the connection.
 */
import { describeRoutingId } from '../logger.js';
import type { OutgoingHooks } from '../transport/outbox.js';
import type { Framing } from '../wire/messages.js';

export interface Connection {
  readonly key: string;
  readonly routingId: Buffer;
  /** The routing id as logs and reply channels show it (text, or `0x` and hex). */
  readonly address: string;
  /** Framing to use when this side starts a message on the connection. */
  framing: Framing;
  /** Transport connected (ROUTER_NOTIFY, or a probe that got through). */
  up: boolean;
  /** A message came on this connection (it is a live peer, not a misread departure). */
  heard: boolean;
  /**
   * The peer has shown it speaks heartbeats (compact framing, or it sent HEARTBEAT): only then is it
   * sent HEARTBEATs and held to the heartbeat timeout. Others (pseud) rely on the transport.
   */
  heartbeats: boolean;
  /**
   * Bumped each time the transport comes up: an answer is only sent on the same connection, in
   * the same epoch, as the work it answers (a routing id can be reused by somebody else).
   */
  epoch: number;
  /** Who is at the other end: a verified identity on a server, the server's id on a client. */
  identity: string | undefined;
  authenticated: boolean;
  /** What the outbox tells about a failed answer on this connection (made once, not per message). */
  sendHooks?: OutgoingHooks;
  /** Set while an empty message that reads as a departure is being checked against the route. */
  departure?: AbortController | undefined;
}

/** The key of a routing id in the connection table; the last one is remembered, as runs of messages share it. */
let lastRoutingId: Buffer | undefined;
let lastRoutingKey = '';
export function routingKey(routingId: Buffer): string {
  if (routingId !== lastRoutingId) {
    lastRoutingKey = routingId.toString('latin1');
    lastRoutingId = routingId;
  }
  return lastRoutingKey;
}

/** The connections of one peer, by routing id. */
export class Connections {
  readonly #byKey = new Map<string, Connection>();

  get(routingId: Buffer): Connection | undefined {
    return this.#byKey.get(routingKey(routingId));
  }

  byKey(key: string): Connection | undefined {
    return this.#byKey.get(key);
  }

  /** Whether `connection` is still the one the table holds for its routing id. */
  holds(connection: Connection): boolean {
    return this.#byKey.get(connection.key) === connection;
  }

  add(routingId: Buffer, up: boolean): Connection {
    const connection: Connection = {
      key: routingId.toString('latin1'),
      routingId,
      address: describeRoutingId(routingId),
      framing: 'v1',
      up,
      heard: false,
      heartbeats: false,
      epoch: 0,
      identity: undefined,
      authenticated: false,
    };
    this.#byKey.set(connection.key, connection);
    return connection;
  }

  delete(connection: Connection): void {
    if (this.holds(connection)) this.#byKey.delete(connection.key);
  }

  get size(): number {
    return this.#byKey.size;
  }

  values(): IterableIterator<Connection> {
    return this.#byKey.values();
  }
}
