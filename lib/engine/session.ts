/**
 * The engine both peers are made of: one ROUTER socket, the connections on it, the calls this side
 * made (caller) and the work the other side sent (dispatcher), heartbeats (liveness). A message
 * flows one way: socket -> framing -> route by type -> handshake / caller / dispatcher -> socket.
 * What makes it a server or a client is a {@link Role} handed to it.
 */
import { PeerCounters } from './counters.js';
import type * as zmq from 'zeromq';
import { ServiceClosedError, type ErrorClass, type ErrorTable } from '../errors.js';
import type { HeartbeatBackend } from '../heartbeat.js';
import { LogThrottle, describeRoutingId, type LogContext, type Logger } from '../logger.js';
import type { Predicate } from '../predicates.js';
import type { Registry } from '../registry.js';
import { Outbox, type BatchLimits } from '../transport/outbox.js';
import { RouterSocket } from '../transport/router-socket.js';
import type { Codec } from '../wire/codec.js';
import { decodeBatched, decodeFrames, encodeMessage, payloadBytes, type FramingContext, type Inbound } from '../wire/framing.js';
import { MessageIds } from '../wire/message-ids.js';
import { MESSAGES, MessageType, PROBE, typeName, workBody, type Framing, type Message, type MessageId, type MessageTypeCode } from '../wire/messages.js';
import { Caller } from './caller.js';
import { Connections, routingKey, type Connection } from './connection.js';
import { Departures } from './departures.js';
import { Dispatcher } from './dispatcher.js';
import type { InterceptorChains } from './interceptors.js';
import { Liveness } from './liveness.js';
import type { RateLimit } from './rate-limit.js';
import type { Role } from './role.js';
import { Sending } from './sending.js';
import { RESULT_SLOT, type StreamWindow } from './streams.js';

/** Everything a session is made from, validated (see options.ts). */
export interface SessionConfig {
  /** The server's routing identity (a client: the server it talks to). */
  readonly id: string;
  /** This socket's own routing id. */
  readonly routingId: string;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly predicates: Readonly<Record<string, Predicate>> | undefined;
  readonly codec: Codec;
  readonly timeoutMs: number;
  readonly maxMessageBytes: number;
  readonly maxPendingCalls: number;
  readonly drainTimeoutMs: number;
  readonly maxSendQueue: number;
  readonly maxSendQueueBytes: number;
  readonly maxSendQueueTotalBytes: number;
  readonly maxRunningPerConnection: number;
  readonly maxRunning: number;
  readonly rateLimit: RateLimit | undefined;
  readonly batch: BatchLimits;
  readonly sendHighWaterMark: number;
  readonly heartbeat: { intervalMs: number; timeoutMs: number; backend: HeartbeatBackend } | undefined;
  /** Reply to each HEARTBEAT at once (a client: aligned heartbeats); a server never does. */
  readonly answersHeartbeats?: boolean;
  readonly errorTable: ErrorTable | undefined;
  readonly logExceptions: boolean;
  readonly excludeLogExceptions: readonly ErrorClass[];
  readonly sendStacks: boolean;
  readonly callSites: boolean;
  /** The window this peer grants the producers of the streams it consumes. */
  readonly streamWindow: StreamWindow;
  readonly context: zmq.Context | undefined;
  readonly interceptors: InterceptorChains;
}

type State = 'idle' | 'started' | 'stopping' | 'stopped';

export class Session {
  readonly config: SessionConfig;
  readonly socket: RouterSocket;
  /** What `peer.stats()` reports. */
  readonly counters = new PeerCounters();
  readonly connections = new Connections();
  readonly caller: Caller;
  readonly dispatcher: Dispatcher;
  readonly liveness: Liveness | undefined;
  readonly #framing: FramingContext;
  readonly #outbox: Outbox;
  readonly #stopping = new AbortController();
  readonly #departures: Departures;
  readonly #sending: Sending;
  /** One line per peer per interval for what a peer can make us log at will. */
  readonly #logThrottle = new LogThrottle();
  #role!: Role;
  #state: State = 'idle';
  #receiving: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;

  constructor(config: SessionConfig, makeRole: (session: Session) => Role) {
    this.config = config;
    const { logger, id: peerId } = config;
    // Hard cap in libzmq (drops the connection); the soft cap below it answers with an ERROR.
    this.socket = new RouterSocket({ routingId: config.routingId, context: config.context, sendHighWaterMark: config.sendHighWaterMark, maxMessageBytes: config.maxMessageBytes * 2 + 65536 });
    this.#framing = { codec: config.codec, ids: new MessageIds(), maxMessageBytes: config.maxMessageBytes };
    const counted = {
      send: (frames: Buffer[], messages: number): Promise<void> => {
        // The socket's own promise goes back (a wrapper would delay a full pipe's EAGAIN by a
        // microtask, and the next message could overtake the one being queued); counted once sent.
        const sent = this.socket.send(frames);
        sent.then(() => this.counters.sent(frames, messages), () => {});
        return sent;
      },
    };
    this.#outbox = new Outbox(counted, { messages: config.maxSendQueue, bytes: config.maxSendQueueBytes, totalBytes: config.maxSendQueueTotalBytes }, config.batch);
    this.#sending = new Sending({
      framing: this.#framing, outbox: this.#outbox, socket: this.socket, counters: this.counters, logger,
      stopped: () => this.#state === 'stopped',
      context: (connection) => this.context(connection),
      peerWarning: (key, message, context) => this.peerWarning(key, message, context),
    });
    this.caller = new Caller(
      { peerId, timeoutMs: config.timeoutMs, maxPendingCalls: config.maxPendingCalls, errorTable: config.errorTable, outgoing: config.interceptors.outgoing, logger, callSites: config.callSites, streamWindow: config.streamWindow, counters: this.counters },
      this.#framing, this.#outbox, this.connections,
    );
    this.dispatcher = new Dispatcher(
      {
        peerId, registry: config.registry, predicates: config.predicates, logger, logExceptions: config.logExceptions,
        excludeLogExceptions: config.excludeLogExceptions, sendStacks: config.sendStacks, rawReplyTimeoutMs: config.timeoutMs,
        incoming: config.interceptors.incoming, maxRunning: config.maxRunning, maxRunningPerConnection: config.maxRunningPerConnection,
        counters: this.counters,
        streamWindow: config.streamWindow,
        rateLimit: config.rateLimit,
      },
      {
        serving: () => this.#state === 'started',
        send: (connection, framing, type, id, body, what) => this.#sending.checked(connection, framing, type, id, body, what),
        sendSized: (connection, framing, type, id, body, what) => this.#sending.sized(connection, framing, type, id, body, what),
        sizeOf: (value, framing) => config.codec.encode(value, framing === 'v1' ? 'plain' : 'rich').length,
        maxMessageBytes: config.maxMessageBytes,
        stillThere: (connection, epoch) => this.#stillThere(connection, epoch),
        stopping: this.#stopping.signal,
        context: (connection) => this.context(connection),
        warn: (connection, message) => this.peerWarning(connection.key, message, this.context(connection)),
      },
    );
    this.liveness = config.heartbeat && new Liveness({ peerId, logger, ...config.heartbeat, answers: config.answersHeartbeats }, {
      targets: () => this.#heartbeatTargets(),
      isTarget: (connection) => this.#isHeartbeatTarget(connection),
      heartbeat: (connection) => this.#sending.heartbeat(connection),
      byKey: (key) => this.connections.byKey(key),
      silent: (connection) => this.#role.lost(connection, 'silent'),
    });
    this.#departures = new Departures({
      logger,
      connections: this.connections,
      stopping: this.#stopping.signal,
      checksDepartures: () => this.#role.checksDepartures,
      connectionFor: (routingId) => this.#role.connectionFor(routingId),
      up: (connection) => this.markUp(connection),
      down: (connection) => this.#role.lost(connection, 'down'),
      probe: (connection) => this.probe(connection),
      context: (connection) => this.context(connection),
      warn: (connection, message) => this.peerWarning(connection.key, message, this.context(connection)),
    });
    try {
      this.#role = makeRole(this);
    } catch (error) {
      this.socket.close(); // a refused construction leaves nothing open
      throw error;
    }
    this.caller.role = this.#role;
    this.dispatcher.role = this.#role;
    // The calls of a connection that is gone fail; the work it sent (and its streams) ends too.
    this.caller.onLost = (connection) => this.dispatcher.connectionLost(connection);
  }

  get state(): State {
    return this.#state;
  }

  get started(): boolean {
    return this.#state === 'started';
  }

  /** Starts serving: work that arrives is dispatched from now on. Idempotent. */
  start(): boolean {
    if (this.#state === 'started') return false;
    if (this.#state !== 'idle') throw new ServiceClosedError(`peer "${this.config.id}" is stopped; create a new one`);
    this.#state = 'started';
    this.#receiving = this.socket.receiveLoop(
      (frames) => this.#onFrames(frames),
      (error, frames) => this.#failed(error, frames),
    );
    this.liveness?.start();
    return true;
  }

  /**
   * Stops: calls in flight reject with ServiceClosedError, handlers still running get
   * `drainTimeoutMs` to answer, then the socket closes. Idempotent; resolves when stopped.
   */
  stop(beforeClose?: () => void): Promise<void> {
    this.#stopped ??= this.#stop(beforeClose);
    return this.#stopped;
  }

  async #stop(beforeClose?: () => void): Promise<void> {
    const wasStarted = this.#state === 'started';
    this.#state = 'stopping';
    this.caller.close();
    await this.dispatcher.drain(this.config.drainTimeoutMs);
    this.#stopping.abort(new ServiceClosedError(`peer "${this.config.id}" stopped`));
    // Last words while the socket is open (the answer to a remote shutdown, say).
    try {
      beforeClose?.();
    } catch (error) {
      this.config.logger.error('beforeClose failed', { peer: this.config.id, error: (error as Error)?.message });
    }
    await this.#outbox.drained();
    await this.#role.stop();
    this.#outbox.flushHeld(); // GOODBYE goes straight to the socket: what is held goes before it
    await this.#sayGoodbye();
    await this.liveness?.stop();
    this.#state = 'stopped';
    this.#outbox.close();
    this.socket.close();
    if (wasStarted) await this.#receiving;
  }

  /**
   * A warning a peer can cause at will (garbage, floods, a reader that never reads): at most one
   * line per peer and kind per interval, saying how many were left out since the last.
   */
  peerWarning(peerKey: string, message: string, context: LogContext, kind = message): void {
    const suppressed = this.#logThrottle.take(`${kind}\0${peerKey}`);
    if (suppressed !== undefined) this.config.logger.warn(message, suppressed > 0 ? { ...context, suppressed } : context);
  }

  /** Log context for a connection: never credentials. */
  context(connection: Connection): LogContext {
    return { peer: this.config.id, routingId: connection.address, identity: connection.identity };
  }

  // ---- sending ------------------------------------------------------------------------------

  /** Encodes and sends one message in the connection's framing (or the one given); false when it cannot be encoded. */
  send(connection: Connection, type: MessageTypeCode, id: MessageId | null, body: unknown, framing: Framing = connection.framing): boolean {
    return this.#sending.send(connection, type, id, body, framing);
  }

  /** Forgets what waits to be sent on a connection that is gone. */
  dropQueued(connection: Connection): void {
    this.#outbox.drop(connection.key);
  }

  /** Sends HELLO (the client's side of the handshake); returns its message id. */
  sendHello(connection: Connection, login: string, password: string, keyProof?: { key: string; proof: Buffer }): number {
    const id = this.#framing.ids.next();
    this.send(connection, MessageType.HELLO, id, keyProof ? [login, password, { k: keyProof.key, p: keyProof.proof }] : [login, password], 'v1');
    return id;
  }

  /** Sends the client's first message, {@link PROBE} (v1 WORK); returns its message id. */
  sendProbe(connection: Connection): number {
    const id = this.#framing.ids.next();
    this.send(connection, MessageType.WORK, id, workBody('v1', PROBE, [], undefined, undefined), 'v1');
    return id;
  }

  /**
   * A compact HEARTBEAT straight to the socket, past the queue: resolves if a route to `connection`
   * exists, rejects (EHOSTUNREACH) if not. It is how a peer checks a route (inproc has no ROUTER_NOTIFY).
   * Compact on purpose: a pseud REQ socket drops a message that does not start with an empty frame,
   * and pseud's ROUTER peers ignore two-frame messages (probes), so it never reads as an answer.
   */
  probe(connection: Connection): Promise<void> {
    return this.socket.send(encodeMessage(this.#framing, 'compact', connection.routingId, MessageType.HEARTBEAT, null, ''));
  }

  /** What waits in the send queues now, for peers that read too slowly. */
  get queued(): { messages: number; bytes: number } {
    return { messages: this.#outbox.queuedMessages, bytes: this.#outbox.queuedBytes };
  }

  /** Records that the transport to `connection` is up. */
  markUp(connection: Connection): void {
    connection.up = true;
    connection.epoch++;
    this.config.logger.debug('connection up', this.context(connection));
    this.#role.up(connection);
  }

  /** Records that the transport to `connection` is down, as a disconnect notification would (libzmq sends none for our own `disconnect`). */
  markDown(connection: Connection): void {
    if (connection.up) this.#departures.departed(connection);
  }

  /** Whether the connection that asked is the one that would receive the answer. */
  #stillThere(connection: Connection, epoch: number): boolean {
    if (connection.up && connection.epoch === epoch && this.connections.holds(connection)) return true;
    this.config.logger.debug('answer dropped: the connection that asked is gone', this.context(connection));
    return false;
  }

  #heartbeatTargets(): Connection[] {
    const targets: Connection[] = [];
    if (this.#state !== 'started') return targets;
    for (const connection of this.connections.values()) if (connection.up && connection.authenticated && connection.heartbeats) targets.push(connection);
    return targets;
  }

  #isHeartbeatTarget(connection: Connection): boolean {
    return this.#state === 'started' && connection.up && connection.authenticated && connection.heartbeats && this.connections.holds(connection);
  }

  /** Tells zeropeer peers that this one stops, so they need not wait for a transport timeout. */
  async #sayGoodbye(): Promise<void> {
    const sends: Promise<void>[] = [];
    for (const connection of this.connections.values()) {
      if (connection.framing !== 'compact' || !connection.up) continue;
      const frames = encodeMessage(this.#framing, 'compact', connection.routingId, MessageType.GOODBYE, null, 'stopping');
      sends.push(this.socket.send(frames).catch(() => {}));
    }
    await Promise.all(sends);
  }

  // ---- receiving ----------------------------------------------------------------------------

  /** A receive that failed, or a message whose handling threw: logged, and the loop goes on. */
  #failed(error: unknown, frames: Buffer[] | undefined): void {
    this.config.logger.error(frames ? 'failed to process a message' : 'receive failed', {
      peer: this.config.id, routingId: describeRoutingId(frames?.[0]), error: (error as Error)?.stack ?? String(error),
    });
  }

  /** One receive; returns how many messages it carried (a batch carries several). */
  #onFrames(frames: Buffer[]): number {
    // Any message is a sign of life.
    if (this.liveness && frames[0]) this.liveness.seen(routingKey(frames[0]));
    const inbound = decodeFrames(frames, this.#framing);
    if (inbound.kind !== 'batch') {
      this.counters.received(frames);
      this.#onInbound(inbound, payloadBytes(frames));
      return 1;
    }
    // In order, each as if it had come alone (a packet of a batch is never a batch itself), each
    // read where it lies in the frame (no view of its own: see MsgpackCodec.decodeRange).
    const { routingId, frame, bounds } = inbound;
    const count = bounds.length / 2;
    this.counters.received(frames, count);
    for (let i = 0; i < bounds.length; i += 2) {
      const start = bounds[i]!;
      const end = bounds[i + 1]!;
      // What one message throws must not cost the messages after it in the batch.
      try {
        this.#onInbound(decodeBatched(routingId, frame, start, end, this.#framing), end - start);
      } catch (error) {
        this.#failed(error, [routingId]);
      }
    }
    return count;
  }

  /** One message (or what it turned out to be); `size`: its bytes, routing id left out. */
  #onInbound(inbound: Exclude<Inbound, { kind: 'batch' }>, size: number): void {
    switch (inbound.kind) {
      case 'notify':
        this.#departures.notify(inbound.routingId);
        return;
      case 'malformed':
        this.#onMalformed(inbound);
        return;
      case 'message':
        this.#onMessage(inbound.message, size);
    }
  }

  #onMalformed(inbound: Extract<Inbound, { kind: 'malformed' }>): void {
    const { routingId, error, replyTo } = inbound;
    const connection = routingId && this.connections.get(routingId);
    // One line per peer per interval whatever the reason: a flood of varied garbage is still one flood.
    this.peerWarning(routingId ? routingKey(routingId) : '', `bad message: ${error.message}`, {
      peer: this.config.id,
      routingId: describeRoutingId(routingId),
      identity: connection ? connection.identity : undefined,
      ...(replyTo ? { type: typeName(replyTo.type) } : {}),
    }, 'bad message');
    if (!connection || !replyTo) return;
    if (replyTo.type === MessageType.OK || replyTo.type === MessageType.ERROR) {
      this.caller.answerBroken(connection, replyTo.id, error);
    } else if (!MESSAGES.get(replyTo.type)?.answer) {
      this.dispatcher.refuse(connection, replyTo.framing, replyTo.id, error);
    }
  }

  #onMessage(message: Message, size: number): void {
    const connection = this.#role.connectionFor(message.routingId);
    if (!connection) {
      this.peerWarning(routingKey(message.routingId), 'message from an unknown peer dropped', { peer: this.config.id, routingId: describeRoutingId(message.routingId), type: typeName(message.type) });
      return;
    }
    connection.heard = true;
    switch (message.type) {
      case MessageType.WORK:
        this.dispatcher.work(connection, message);
        return;
      case MessageType.OK:
      case MessageType.ERROR:
        if (this.#role.answer?.(connection, message)) return;
        this.caller.answer(connection, message);
        return;
      case MessageType.HELLO:
      case MessageType.AUTHENTICATED:
      case MessageType.UNAUTHORIZED:
        this.#role.handshake(connection, message);
        return;
      case MessageType.HEARTBEAT:
        this.liveness?.heartbeatFrom(connection); // a sign of life was counted on receipt; now it is also expected
        return;
      case MessageType.GOODBYE:
        this.config.logger.debug('the peer says goodbye', this.context(connection));
        this.#role.lost(connection, 'goodbye');
        return;
      case MessageType.CANCEL:
        this.dispatcher.cancel(connection, message.id, message.body);
        return;
      // The slot says the direction: a result (-1) flows to the caller and its credit back to the
      // handler's side; an argument (0, 1, ...) flows to the handler and its credit back to the caller.
      case MessageType.STREAM_ITEM: {
        const { slot, value } = message.body;
        if (slot === RESULT_SLOT) this.caller.streamItem(connection, message.id, value, size);
        else this.dispatcher.argItem(connection, message.id, slot, value, size);
        return;
      }
      case MessageType.STREAM_END:
        if (message.body.slot === RESULT_SLOT) this.caller.streamEnd(connection, message.id, message.body);
        else this.dispatcher.argEnd(connection, message.id, message.body.slot, message.body.error);
        return;
      case MessageType.STREAM_CREDIT: {
        const { slot, items, bytes } = message.body;
        if (slot === RESULT_SLOT) this.dispatcher.credit(connection, message.id, items, bytes);
        else this.caller.argCredit(connection, message.id, slot, items, bytes);
      }
    }
  }
}

