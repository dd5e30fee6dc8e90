/**
 * What a session sends: each message encoded in its framing (answers and stream items held to the
 * size limit) and handed to the outbox, HEARTBEATs past it when nothing waits, and a failed send
 * logged at the level it deserves.
 */
import { EncodingError } from '../errors.js';
import type { LogContext, Logger } from '../logger.js';
import type { Outbox, OutgoingHooks } from '../transport/outbox.js';
import { isUnreachable } from '../transport/router-socket.js';
import { encodeMessage, encodeWithin, payloadBytes, type FramingContext } from '../wire/framing.js';
import { MessageType, typeName, type Framing, type MessageId, type MessageTypeCode } from '../wire/messages.js';
import type { Connection } from './connection.js';
import type { PeerCounters } from './counters.js';

/** What sending needs of the session. */
export interface SendingHost {
  readonly framing: FramingContext;
  readonly outbox: Outbox;
  readonly socket: { send(frames: Buffer[]): Promise<void> };
  readonly counters: PeerCounters;
  readonly logger: Logger;
  /** Whether the session has stopped (an answer then goes nowhere). */
  stopped(): boolean;
  context(connection: Connection): LogContext;
  /** A warning a peer can cause at will (rate-limited). */
  peerWarning(peerKey: string, message: string, context: LogContext): void;
}

export class Sending {
  readonly #host: SendingHost;
  /** The compact HEARTBEAT's one frame, encoded once (every heartbeat is the same bytes). */
  #heartbeatPacket: Buffer | undefined;

  constructor(host: SendingHost) {
    this.#host = host;
  }

  /** Encodes and sends one message in the connection's framing (or the one given); false when it cannot be encoded. */
  send(connection: Connection, type: MessageTypeCode, id: MessageId | null, body: unknown, framing: Framing = connection.framing): boolean {
    let frames: Buffer[];
    try {
      frames = encodeMessage(this.#host.framing, framing, connection.routingId, type, id, body);
    } catch (error) {
      this.#host.logger.error('could not encode a message', { ...this.#host.context(connection), type: typeName(type), error: (error as Error).message });
      return false;
    }
    this.#hand(connection, frames);
    return true;
  }

  /** Sends an answer; returns why it could not be encoded (too large, not encodable), else undefined. */
  checked(connection: Connection, framing: Framing, type: MessageTypeCode, id: MessageId, body: unknown, what: string): Error | undefined {
    if (this.#host.stopped()) return undefined;
    let frames: Buffer[];
    try {
      frames = encodeWithin(this.#host.framing, framing, connection.routingId, type, id, body, what);
    } catch (error) {
      const reason = error instanceof EncodingError ? new EncodingError(`${what} cannot be sent: ${error.message}`) : (error as Error);
      this.#host.logger.warn(`${what} could not be sent`, { ...this.#host.context(connection), error: reason.message });
      if (type === MessageType.ERROR) return undefined; // nothing left to say
      return reason;
    }
    this.#hand(connection, frames);
    return undefined;
  }

  /** Sends one message of a stream; returns its size in bytes, or why it could not be sent. */
  sized(connection: Connection, framing: Framing, type: MessageTypeCode, id: MessageId, body: unknown, what: string): number | Error {
    let frames: Buffer[];
    try {
      frames = encodeWithin(this.#host.framing, framing, connection.routingId, type, id, body, what);
    } catch (error) {
      return error instanceof EncodingError ? new EncodingError(`${what} cannot be sent: ${error.message}`) : (error as Error);
    }
    this.#hand(connection, frames);
    return payloadBytes(frames);
  }

  /**
   * A HEARTBEAT. In compact framing, when nothing waits for the connection, straight to the socket
   * with no queue, batch or retry: thousands go out in one sweep, and the outbox's bookkeeping per
   * message was most of the sweep's JavaScript time (BENCHMARKS.md, 10,000 clients). A full pipe
   * (EAGAIN) drops it: the peer is not reading, and what waits in the pipe shows we live once it does.
   */
  heartbeat(connection: Connection): void {
    if (connection.framing !== 'compact' || !this.#host.outbox.idle(connection.key)) {
      this.send(connection, MessageType.HEARTBEAT, null, '');
      return;
    }
    let packet = this.#heartbeatPacket;
    if (packet === undefined) {
      try {
        // A copy of our own: a codec may hand back a view of a buffer it reuses for the next message.
        packet = this.#heartbeatPacket = Buffer.from(encodeMessage(this.#host.framing, 'compact', connection.routingId, MessageType.HEARTBEAT, null, '')[1]!);
      } catch (error) {
        this.#host.logger.error('could not encode a message', { ...this.#host.context(connection), type: 'HEARTBEAT', error: (error as Error).message });
        return;
      }
    }
    const frames = [connection.routingId, packet];
    this.#host.socket.send(frames).then(
      () => this.#host.counters.sent(frames),
      (error: { code?: string }) => {
        if (error?.code !== 'EAGAIN') this.#sendHooks(connection).onError!(error as Error);
      },
    );
  }

  /** Hands frames to the outbox; a failure is logged (answers have nobody else to tell). */
  #hand(connection: Connection, frames: Buffer[]): void {
    this.#host.outbox.sendNow(connection.key, frames, this.#sendHooks(connection));
  }

  /** What the outbox tells about a failed send on `connection`: logged, at the level it deserves (made once per connection). */
  #sendHooks(connection: Connection): OutgoingHooks {
    return connection.sendHooks ??= {
      onError: (error) => {
        // An answer to a peer that has just left is routine; anything else deserves a warning, once per interval.
        if (isUnreachable(error)) {
          this.#host.logger.debug('could not send', { ...this.#host.context(connection), error: error.message });
          return;
        }
        this.#host.peerWarning(connection.key, 'could not send', { ...this.#host.context(connection), error: error.message });
      },
    };
  }
}
