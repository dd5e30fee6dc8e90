/**
 * The engine both peers are made of (pseud's design): one ROUTER socket, a registry of functions
 * the other side may call, and a table of the calls this side made. A message flows one way:
 * socket -> frames -> decode -> auth gate -> dispatch (registry or pending call) -> handler ->
 * encode -> socket. {@link Server} and {@link Client} only configure it: who they accept work from,
 * how they prove who they are.
 */
import { EventEmitter } from 'eventemitter3';
import * as zmq from 'zeromq';
import { registerTranslator } from './codec.js';
import {
  EncodingError,
  MessageTooLargeError,
  ProtocolError,
  RpcError,
  ServiceClosedError,
  ServiceNotFoundError,
  TimeoutError,
  UnauthorizedError,
  errorFromWire,
  errorToWire,
  isWireError,
  type ErrorClass,
} from './errors.js';
import { consoleLogger, describeRoutingId, type LogContext, type Logger } from './logger.js';
import { resolveHeartbeat, type HeartbeatBackend } from './heartbeat.js';
import { DEFAULTS, positive, type CallOptions, type PeerOptions } from './options.js';
import { Outbox, type OutgoingHooks } from './outbox.js';
import { PendingCall, PendingCalls, type PendingCallsOwner } from './pending-calls.js';
import {
  COMPACT_CAPABILITY,
  MessageIds,
  MessageType,
  decodeFrames,
  isOneWayId,
  encodeMessage,
  typeName,
  type Framing,
  type Inbound,
  type Message,
  type MessageId,
  type MessageTypeCode,
} from './protocol.js';
import { domainAllows } from './predicates.js';
import { RESERVED_PREFIX, Registry, createLocalRegistry, type FunctionInfo, type Handler, type Registration, type RegistrationOptions } from './registry.js';
import { registerService } from './service.js';
import { runWork, type Responder, type Work, type WorkHooks } from './work.js';
import { resolveSecurityPlugin, type SecurityPlugin, type SecuritySettings } from '../security/plugin.js';

/** One ZeroMQ connection to another peer, by routing id. */
export interface Connection {
  readonly key: string;
  readonly routingId: Buffer;
  /** Framing to use when this side starts a message on the connection. */
  framing: Framing;
  /** The routing id as logs and reply channels show it (text, or `0x` and hex). */
  readonly address: string;
  /** Transport connected (ROUTER_NOTIFY). */
  up: boolean;
  /** A message came on this connection (it is a live peer, not a misread departure). */
  heard?: boolean;
  /**
   * Bumped each time the transport comes up: an answer is only sent on the same connection, in
   * the same epoch, as the work it answers (a routing id can be reused by somebody else).
   */
  epoch: number;
  /** Who is at the other end: a verified identity on a server, the server's id on a client. */
  identity: string | undefined;
  authenticated: boolean;
  /** Server: epoch ms when the peer's proof (a token) expires. */
  expiresAt?: number | undefined;
  /** Server: failed HELLOs on this connection since its last success. */
  failedLogins?: number;
  /** Server: the delayed answer of a throttled HELLO. */
  throttle?: NodeJS.Timeout | undefined;
  /** Server: a HELLO of this connection is being checked (one at a time). */
  verifying?: boolean;
  /** Server: fires when the peer's proof expires. */
  expiry?: NodeJS.Timeout | undefined;
  /** Server: the topic prefixes this client subscribed to. */
  topics?: Set<string>;
  /** What the outbox tells about a failed answer on this connection (made once, not per message). */
  sendHooks?: OutgoingHooks;
}

type PeerState = 'idle' | 'started' | 'stopping' | 'stopped';

const ROUTER_NOTIFY = 97;
const NOTIFY_CONNECT_AND_DISCONNECT = 3;

/** The events both peers emit. Server and Client add their own. */
export interface PeerEvents {
  error: (error: Error) => void;
}


/** The engine. Not constructed directly: use {@link Server} or {@link Client}. */
export abstract class Peer<Events extends EventEmitter.ValidEventTypes = PeerEvents> extends EventEmitter<Events> {
  /** The server's routing identity (a client: the server it talks to). */
  readonly id: string;
  readonly registry: Registry;
  protected readonly logger: Logger;
  protected readonly options: Readonly<PeerOptions>;
  protected readonly security: SecurityPlugin;
  /** What the plugin reads: the options, with `securitySettings` spread over them. */
  protected readonly securitySettings: SecuritySettings;
  protected readonly socket: zmq.Router;
  protected readonly connections = new Map<string, Connection>();
  protected state: PeerState = 'idle';

  readonly #timeoutMs: number;
  readonly #maxMessageBytes: number;
  readonly #drainTimeoutMs: number;
  readonly #ids = new MessageIds();
  readonly #pending: PendingCalls;
  readonly #outbox: Outbox;
  readonly #heartbeat: { intervalMs: number; timeoutMs: number; backend: HeartbeatBackend } | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  readonly #excludeLog: ErrorClass[];
  #runningHandlers = 0;
  #drained: (() => void) | undefined;
  #receiving: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  protected constructor(id: string, options: PeerOptions, socketOptions: { routingId?: string }) {
    super();
    if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id) > 255) {
      throw new TypeError('a peer id must be a string of 1 to 255 bytes');
    }
    this.id = id;
    this.options = options;
    this.logger = options.logger ?? consoleLogger;
    this.security = resolveSecurityPlugin(options.security);
    this.securitySettings = { ...options, ...options.securitySettings };
    this.registry = options.registry ?? createLocalRegistry(id);
    this.#timeoutMs = positive(options.timeoutMs, 'timeoutMs', DEFAULTS.timeoutMs);
    this.#maxMessageBytes = positive(options.maxMessageBytes, 'maxMessageBytes', DEFAULTS.maxMessageBytes);
    this.#drainTimeoutMs = options.drainTimeoutMs === 0 ? 0 : positive(options.drainTimeoutMs, 'drainTimeoutMs', DEFAULTS.drainTimeoutMs);
    this.#pending = new PendingCalls(positive(options.maxPendingCalls, 'maxPendingCalls', DEFAULTS.maxPendingCalls), this.#pendingOwner);
    this.#excludeLog = options.excludeLogExceptions ?? [];
    this.#heartbeat = resolveHeartbeat(options.heartbeat);
    this.#workHooks = {
      running: () => {
        this.#runningHandlers++;
        return () => this.#handlerDone();
      },
      rawReplyTimeoutMs: this.#timeoutMs,
      logFailure: (name, error) =>
        this.logger.error(`one-way "${name}" failed`, { peer: this.id, name, error: error instanceof Error ? error.stack : String(error) }),
    };
    for (const translator of options.translators ?? []) registerTranslator(translator);

    this.socket = new zmq.Router({
      ...(options.context ? { context: options.context } : {}),
      ...(socketOptions.routingId ? { routingId: socketOptions.routingId } : {}),
      mandatory: true, // an unroutable message fails its call instead of vanishing
      sendHighWaterMark: positive(options.sendHighWaterMark, 'sendHighWaterMark', DEFAULTS.sendHighWaterMark),
      sendTimeout: 0, // never block the whole peer on one slow reader: fail that message instead
      linger: 200,
      // Hard cap in libzmq (drops the connection); the soft cap below it answers with an ERROR.
      maxMessageSize: this.#maxMessageBytes * 2 + 65536,
    });
    // ROUTER_NOTIFY (draft): an empty message per peer connect and disconnect.
    (this.socket as unknown as { setInt32Option(option: number, value: number): void })
      .setInt32Option(ROUTER_NOTIFY, NOTIFY_CONNECT_AND_DISCONNECT);
    this.#outbox = new Outbox(this.socket, positive(options.maxSendQueue, 'maxSendQueue', DEFAULTS.maxSendQueue));
    // No ZMTP heartbeats: libzmq's heartbeat timer can abort the process when the JavaScript thread
    // stalls while a peer resets its connection (libzmq #3937, #4229). zeropeer's own heartbeats
    // cover liveness; kernel TCP keepalive covers peers that never send ours.
    this.socket.tcpKeepalive = 1;
    this.socket.tcpKeepaliveIdle = DEFAULTS.tcpKeepaliveIdleSec;
    this.socket.tcpKeepaliveInterval = DEFAULTS.tcpKeepaliveIntervalSec;
    this.socket.tcpKeepaliveCount = DEFAULTS.tcpKeepaliveCount;
  }

  /** Emits to the listeners; one that throws is logged, never let out into the engine. */
  override emit<T extends EventEmitter.EventNames<Events>>(event: T, ...args: EventEmitter.EventArgs<Events, T>): boolean {
    try {
      return super.emit(event, ...args);
    } catch (error) {
      this.logger.error(`a "${String(event)}" listener threw`, { peer: this.id, error: error instanceof Error ? error.stack : String(error) });
      return true;
    }
  }

  // ---- registration -------------------------------------------------------------------------

  /** Registers a function on this peer only (see {@link Registry.registerRpc}). */
  registerRpc<F extends Handler>(fn: F, options?: RegistrationOptions): F;
  registerRpc<F extends Handler>(name: string, fn: F, options?: RegistrationOptions): F;
  registerRpc<F extends Handler>(a: string | F, b?: F | RegistrationOptions, c?: RegistrationOptions): F {
    return (this.registry.registerRpc as (a: unknown, b?: unknown, c?: unknown) => F)(a, b, c);
  }

  /**
   * Exposes the methods of `service` marked with `rpcMethod` as `namespace.method` (nested objects
   * as deeper names). Returns the names registered.
   */
  registerService(namespace: string, service: object, options?: Omit<RegistrationOptions, 'name'>): string[] {
    return registerService(this.registry, namespace, service, options);
  }

  // ---- life cycle ---------------------------------------------------------------------------

  /** Starts serving: work that arrives is dispatched from now on. Idempotent. */
  async start(): Promise<void> {
    if (this.state === 'started') return;
    if (this.state !== 'idle') throw new ServiceClosedError(`peer "${this.id}" is stopped; create a new one`);
    this.state = 'started';
    this.#receiving = this.#receiveLoop();
    if (this.#heartbeat) {
      this.#heartbeatTimer = setInterval(() => this.#heartbeatTick(), this.#heartbeat.intervalMs);
      this.#heartbeatTimer.unref(); // heartbeats alone never keep a process alive
    }
    await this.onStart();
  }

  /**
   * Stops: calls in flight reject with {@link ServiceClosedError}, handlers still running get
   * `drainTimeoutMs` to answer, then the socket closes. Idempotent; resolves when stopped.
   */
  stop(options: { beforeClose?: () => void } = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.beforeClose);
    return this.#stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #stop(beforeClose?: () => void): Promise<void> {
    const wasStarted = this.state === 'started';
    this.state = 'stopping';
    this.#pending.rejectWhere(() => true, (call) => new ServiceClosedError(`peer "${this.id}" stopped before "${call.name}" settled`));
    if (this.#runningHandlers > 0 && this.#drainTimeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#drainTimeoutMs);
        this.#drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    clearInterval(this.#heartbeatTimer);
    // Last words while the socket is open (the answer to a remote shutdown, say).
    try {
      beforeClose?.();
    } catch (error) {
      this.logger.error('beforeClose failed', { peer: this.id, error: (error as Error)?.message });
    }
    await this.#outbox.drained();
    await this.onStop();
    await this.#sayGoodbye();
    await this.#settle(this.#heartbeat?.backend.close?.(), 'heartbeat backend close');
    this.state = 'stopped';
    this.#outbox.close();
    this.socket.close();
    if (wasStarted) await this.#receiving;
  }

  /** Hook: after the receive loop started. */
  protected async onStart(): Promise<void> {}
  /** Hook: before the socket closes. */
  protected async onStop(): Promise<void> {}

  // ---- calls --------------------------------------------------------------------------------

  /**
   * Calls `name` on the peer `target` designates, with positional `args`. Rejects, never hangs:
   * {@link TimeoutError} after the deadline, {@link ServiceClosedError} when this peer stops.
   */
  protected invokeOn(target: Connection | Error, name: string, args: unknown[], options: CallOptions = {}, oneWay = false): Promise<unknown> {
    if (this.state === 'stopping' || this.state === 'stopped') {
      return Promise.reject(new ServiceClosedError(`peer "${this.id}" is stopped; "${name}" was not sent`));
    }
    if (target instanceof Error) return Promise.reject(target);
    if (typeof name !== 'string' || name.length === 0) return Promise.reject(new TypeError('a call needs a function name'));
    if (!Array.isArray(args)) return Promise.reject(new TypeError('args must be an array'));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#pending.full) {
      return Promise.reject(new RpcError(`too many calls in flight (maxPendingCalls = ${this.#pending.limit}); "${name}" was not sent`));
    }
    let timeoutMs: number;
    try {
      timeoutMs = positive(options.timeoutMs, 'timeoutMs', this.#timeoutMs);
    } catch (error) {
      return Promise.reject(error);
    }
    const id = this.#ids.next();
    const kwargs = options.kwargs && Object.keys(options.kwargs).length > 0 ? options.kwargs : undefined;
    const errorTable = options.errorTable ? { ...this.options.errorTable, ...options.errorTable } : this.options.errorTable;

    // Encode now, so that a value that cannot be sent fails here and nothing is queued.
    let frames: Buffer[];
    try {
      frames = this.#encodeWork(target, oneWay ? 0 : id, name, args, kwargs);
    } catch (error) {
      return Promise.reject(error);
    }

    const call = new PendingCall(this.#pending, id, target.key, name, args, kwargs, errorTable, timeoutMs, oneWay);
    const promise = new Promise<unknown>((resolve, reject) => call.bind(resolve, reject, signal));
    this.#pending.add(call);
    if (this.isReady(target)) this.#sendCall(target, call, frames);
    return promise;
  }

  /** The pending table's view of this peer: how a call expires, what a failed send means. */
  readonly #pendingOwner: PendingCallsOwner = {
    expire: (call) => {
      const why = call.sent ? undefined : this.describeWait(this.connections.get(call.connectionKey));
      const waited = call.sent ? '' : ' (it was never sent: the connection was not ready)';
      this.#pending.reject(call.id, new TimeoutError(`"${call.name}" got no answer within ${call.timeoutMs} ms${why ? `: ${why}` : waited}`));
    },
    sendFailed: (call, error) => {
      const connection = this.connections.get(call.connectionKey);
      if (connection && isUnreachable(error)) {
        // The route vanished between our bookkeeping and the send.
        this.onUnreachable(connection, call);
      } else {
        this.#pending.reject(call.id, new RpcError(`"${call.name}" could not be sent: ${error.message}`));
      }
    },
  };

  #encodeWork(target: Connection, id: number, name: string, args: unknown[], kwargs: Record<string, unknown> | undefined): Buffer[] {
    // pseud v1 expects [name, args, kwargs]; compact drops an empty kwargs. Id 0: one-way.
    const body = kwargs ? [name, args, kwargs] : target.framing === 'v1' ? [name, args, {}] : [name, args];
    const wireId = id === 0 ? (target.framing === 'v1' ? Buffer.alloc(0) : 0) : id;
    const frames = encodeMessage(target.framing, target.routingId, MessageType.WORK, wireId, body, this.#ids);
    this.#checkSize(frames, `call "${name}"`);
    return frames;
  }

  #checkSize(frames: Buffer[], what: string): void {
    let size = 0;
    for (let i = 1; i < frames.length; i++) size += frames[i]!.length;
    if (size > this.#maxMessageBytes) {
      throw new MessageTooLargeError(`${what} is ${size} bytes, over maxMessageBytes (${this.#maxMessageBytes}); nothing was sent`);
    }
  }

  #sendCall(connection: Connection, call: PendingCall, frames: Buffer[]): void {
    call.sent = true;
    this.#outbox.sendNow(connection.key, frames, call);
  }

  /** Sends calls that waited for `connection` to become ready, re-encoding them for its framing now. */
  protected flushWaitingCalls(connection: Connection): void {
    for (const call of this.#pending.unsent(connection.key)) {
      let frames: Buffer[];
      try {
        frames = this.#encodeWork(connection, call.oneWay ? 0 : call.id, call.name, call.args, call.kwargs);
      } catch (error) {
        this.#pending.reject(call.id, error as Error);
        continue;
      }
      this.#sendCall(connection, call, frames);
    }
  }

  /** Rejects the calls sent on `connection` (not the ones still waiting to be sent). */
  protected rejectSentCalls(connection: Connection, makeError: (name: string) => Error): void {
    this.#pending.rejectWhere((call) => call.connectionKey === connection.key && call.sent, (call) => makeError(call.name));
  }

  /** Rejects every call for `connection`, sent or waiting. */
  protected rejectAllCalls(connection: Connection, makeError: (name: string) => Error): void {
    this.#pending.rejectWhere((call) => call.connectionKey === connection.key, (call) => makeError(call.name));
  }

  /** Why calls to `connection` are still waiting to be sent, if this side knows. */
  protected describeWait(_connection: Connection | undefined): string | undefined {
    return undefined;
  }

  /** What a send that found no route means for a call; the server and the client differ. */
  protected abstract onUnreachable(connection: Connection, call: PendingCall): void;

  /** Whether calls to `connection` may be sent now (else they wait, bounded by their deadline). */
  protected abstract isReady(connection: Connection): boolean;

  /** Number of calls in flight or waiting. */
  get pendingCalls(): number {
    return this.#pending.size;
  }

  // ---- sending ------------------------------------------------------------------------------

  /** Hands frames to the outbox; a failure is logged (answers have nobody else to tell). */
  #send(connection: Connection, frames: Buffer[]): void {
    connection.sendHooks ??= {
      onError: (error) => {
        // An answer to a peer that has just left is routine; anything else deserves a warning.
        const level = isUnreachable(error) ? 'debug' : 'warn';
        this.logger[level]('could not send', { ...this.context(connection), error: error.message });
      },
    };
    this.#outbox.sendNow(connection.key, frames, connection.sendHooks);
  }

  /** Forgets what waits to be sent on a connection that is gone. */
  protected dropQueued(connection: Connection): void {
    this.#outbox.drop(connection.key);
  }

  /** Encodes and sends one message; returns false (and logs) when it cannot be encoded. */
  protected sendMessage(connection: Connection, framing: Framing, type: MessageTypeCode, id: MessageId | null, body: unknown): boolean {
    let frames: Buffer[];
    try {
      frames = encodeMessage(framing, connection.routingId, type, id, body, this.#ids);
    } catch (error) {
      this.logger.error('could not encode a message', { ...this.context(connection), type: typeName(type), error: (error as Error).message });
      return false;
    }
    this.#send(connection, frames);
    return true;
  }

  #sendError(connection: Connection, framing: Framing, id: MessageId, error: unknown): void {
    this.sendMessage(connection, framing, MessageType.ERROR, id, errorToWire(error, this.options.sendStacks ?? true));
  }

  // ---- receiving ----------------------------------------------------------------------------

  async #receiveLoop(): Promise<void> {
    while (this.state !== 'stopped') {
      let frames: Buffer[];
      try {
        frames = await this.socket.receive();
      } catch (error) {
        if ((this.state as PeerState) === 'stopped' || this.socket.closed) return;
        this.logger.error('receive failed', { peer: this.id, error: (error as Error).message });
        continue;
      }
      try {
        this.#onFrames(frames);
      } catch (error) {
        // Nothing a peer sends may stop the loop: log and go on serving everyone else.
        this.logger.error('failed to process a message', { peer: this.id, routingId: describeRoutingId(frames[0]), error: (error as Error).stack });
      }
    }
  }

  #onFrames(frames: Buffer[]): void {
    // Any message is a sign of life.
    if (this.#heartbeat && frames[0]) this.#heartbeat.backend.seen(routingKey(frames[0]), Date.now());
    const inbound = decodeFrames(frames, this.#maxMessageBytes, this.#ids);
    switch (inbound.kind) {
      case 'notify':
        this.#onNotify(inbound.routingId);
        return;
      case 'malformed':
        this.#onMalformed(inbound);
        return;
      case 'message':
        this.#onMessage(inbound.message);
    }
  }

  #onNotify(routingId: Buffer): void {
    // ROUTER_NOTIFY sends the same empty message for a connect and a disconnect: the state says which.
    const known = this.connections.get(routingKey(routingId));
    if (known?.up) {
      known.up = false;
      this.onTransportDown(known);
      return;
    }
    const connection = known ?? this.connectionFor(routingId);
    if (connection) this.markUp(connection);
  }

  /** Records that the transport to `connection` is up (from ROUTER_NOTIFY, or a probe that got through). */
  protected markUp(connection: Connection): void {
    connection.up = true;
    connection.epoch++;
    this.onTransportUp(connection);
  }

  /**
   * Sends a HEARTBEAT straight to the socket, bypassing the queue: resolves if a route to
   * `connection` exists, rejects (EHOSTUNREACH) if not. inproc has no ROUTER_NOTIFY; this is how a
   * client learns there that its server is reachable.
   */
  protected probe(connection: Connection): Promise<void> {
    return this.socket.send(encodeMessage('v1', connection.routingId, MessageType.HEARTBEAT, null, '', this.#ids));
  }

  /** Creates and keeps the record of a connection. */
  protected addConnection(routingId: Buffer, up: boolean): Connection {
    const connection: Connection = {
      key: routingId.toString('latin1'),
      routingId,
      address: describeRoutingId(routingId),
      framing: 'v1',
      up,
      epoch: 0,
      identity: undefined,
      authenticated: false,
    };
    this.connections.set(connection.key, connection);
    return connection;
  }

  protected abstract onTransportUp(connection: Connection): void;
  protected abstract onTransportDown(connection: Connection): void;

  #onMalformed(inbound: Extract<Inbound, { kind: 'malformed' }>): void {
    const { routingId, error, replyTo } = inbound;
    const connection = routingId && this.connections.get(routingKey(routingId));
    this.logger.warn(`bad message: ${error.message}`, {
      peer: this.id,
      routingId: describeRoutingId(routingId),
      identity: connection ? connection.identity : undefined,
      ...(replyTo ? { type: typeName(replyTo.type) } : {}),
    });
    if (!connection || !replyTo) return;
    if (replyTo.type === MessageType.OK || replyTo.type === MessageType.ERROR) {
      // A broken answer to one of our calls: fail that call now rather than at its deadline.
      const call = this.#pending.get(replyTo.id);
      if (call && call.connectionKey === connection.key) this.#pending.reject(call.id, error);
      return;
    }
    if (replyTo.type === MessageType.HEARTBEAT || replyTo.type === MessageType.AUTHENTICATED ||
        replyTo.type === MessageType.UNAUTHORIZED || replyTo.type === MessageType.GOODBYE) return; // answers are never answered
    this.#sendError(connection, replyTo.framing, replyTo.id, error);
  }

  #onMessage(message: Message): void {
    const connection = this.connectionFor(message.routingId);
    if (!connection) {
      this.logger.warn('message from an unknown peer dropped', { peer: this.id, routingId: describeRoutingId(message.routingId), type: typeName(message.type) });
      return;
    }
    connection.heard = true;
    switch (message.type) {
      case MessageType.WORK:
        this.#onWork(connection, message);
        return;
      case MessageType.OK:
        this.#onReply(connection, message, true);
        return;
      case MessageType.ERROR:
        this.#onReply(connection, message, false);
        return;
      case MessageType.HELLO:
        this.onHello(connection, message);
        return;
      case MessageType.AUTHENTICATED:
        this.onAuthenticated(connection, message);
        return;
      case MessageType.UNAUTHORIZED:
        this.onUnauthorized(connection, message);
        return;
      case MessageType.HEARTBEAT:
        return; // counted as a sign of life on receipt
      case MessageType.GOODBYE:
        this.onGoodbye(connection);
        return;
    }
  }

  /**
   * The connection a message or notification came on, created when new; undefined for a peer this
   * side does not talk to (a client talks to its server only).
   */
  protected abstract connectionFor(routingId: Buffer): Connection | undefined;
  protected abstract onHello(connection: Connection, message: Message): void;
  protected abstract onAuthenticated(connection: Connection, message: Message): void;
  protected abstract onUnauthorized(connection: Connection, message: Message): void;
  /** The other side said it is stopping. */
  protected abstract onGoodbye(connection: Connection): void;
  /** The identity work from `connection` runs as, or undefined when it must be refused (UNAUTHORIZED). */
  protected abstract workIdentity(connection: Connection): string | undefined;
  /** Whether a registration's domain is open to `identity` (see predicates). */
  #allowsDomain(domain: string, identity: string): boolean {
    return domainAllows(domain, identity, this.options.predicates, (error) =>
      this.logger.error(`predicate of domain "${domain}" threw`, { peer: this.id, identity, error: (error as Error)?.message }));
  }

  #onReply(connection: Connection, message: Message, ok: boolean): void {
    const call = this.#pending.get(message.id);
    if (!call || call.connectionKey !== connection.key) {
      // Late (after a deadline), duplicated, or not ours: never let one peer settle another's call.
      this.logger.debug('answer to no pending call dropped', { ...this.context(connection), type: typeName(message.type) });
      return;
    }
    if (ok) {
      this.#pending.resolve(call.id, message.body);
    } else if (isWireError(message.body)) {
      this.#pending.reject(call.id, errorFromWire(message.body, call.errorTable));
    } else {
      this.#pending.reject(call.id, new ProtocolError('the ERROR answer was not [class name, message, stack]'));
    }
  }

  #onWork(connection: Connection, message: Message): void {
    const { framing, id, body } = message;
    const identity = this.workIdentity(connection);
    const oneWay = isOneWayId(id);
    if (identity === undefined) {
      if (!oneWay) this.sendMessage(connection, framing, MessageType.UNAUTHORIZED, id, 'authentication required');
      else this.logger.warn('one-way work from an unauthenticated peer dropped', this.context(connection));
      return;
    }
    if (!Array.isArray(body) || body.length < 2 || body.length > 3 || typeof body[0] !== 'string' || !Array.isArray(body[1]) ||
        (body[2] != null && (typeof body[2] !== 'object' || Array.isArray(body[2]) || body[2] instanceof Map))) {
      this.logger.warn('bad WORK body', this.context(connection));
      const error = new ProtocolError('a WORK body must be [name, args, kwargs?]');
      if (!oneWay) this.#sendError(connection, framing, id, error);
      return;
    }
    const [name, args, kwargs] = body as [string, unknown[], Record<string, unknown> | undefined];
    const responder = oneWay ? this.#oneWayResponder(connection, name) : this.#responder(connection, framing, id, name);
    if (this.state !== 'started') {
      responder.fail(new ServiceClosedError(`peer "${this.id}" is stopping`));
      return;
    }
    const work: Work = { name, args, kwargs: kwargs ?? undefined, identity, address: connection.address, responder };
    if (name.startsWith(RESERVED_PREFIX)) {
      this.#runBuiltin(connection, work);
      return;
    }
    const registration = this.lookup(name, identity);
    if (registration) {
      this.run(registration, work);
    } else if (!this.forward(connection, work)) {
      responder.fail(new ServiceNotFoundError(`no function "${name}" is available`));
    }
  }

  /** Runs one unit of work with a registration. */
  protected run(registration: Registration, work: Work): void {
    runWork(registration, work, this.#workHooks);
  }

  /** The registration `identity` gets for `name`, predicates applied. */
  protected lookup(name: string, identity: string): Registration | undefined {
    return this.registry.lookup(name, (domain) => this.#allowsDomain(domain, identity));
  }

  /** Work no registration here serves: a server may pass it on (proxyTo). Returns whether it did. */
  protected forward(_connection: Connection, _work: Work): boolean {
    return false;
  }

  readonly #workHooks: WorkHooks;

  /** The answer of a normal call: OK or ERROR, once, in the framing the call came in. */
  #responder(connection: Connection, framing: Framing, id: MessageId, name: string): Responder {
    return new CallResponder(this.#answers, connection, connection.epoch, framing, id, name);
  }

  /** What every CallResponder of this peer calls: one pair of functions, not two closures per call. */
  readonly #answers: Answers = {
    ok: (r, value) => {
      if (this.#stillThere(r)) this.#workDone(r.connection, r.framing, r.id, r.name, value);
    },
    fail: (r, error) => {
      if (this.#stillThere(r)) this.#workFailed(r.connection, r.framing, r.id, r.name, error);
      else this.#logFailure(r.connection, r.name, error);
    },
  };

  /**
   * Whether the connection that asked is the one that would receive the answer: not gone, not
   * replaced by a new connection that took its routing id, not reconnected since (a new server).
   */
  #stillThere(r: CallResponder): boolean {
    const { connection } = r;
    if (connection.up && connection.epoch === r.epoch && this.connections.get(connection.key) === connection) return true;
    this.logger.debug('answer dropped: the connection that asked is gone', { ...this.context(connection), name: r.name });
    return false;
  }

  /** One-way work answers nobody: a failure is logged, a result dropped. */
  #oneWayResponder(connection: Connection, name: string): Responder {
    let sent = false;
    return {
      get sent() {
        return sent;
      },
      ok: () => {
        sent = true;
      },
      fail: (error) => {
        if (sent) return;
        sent = true;
        this.logger.error(`one-way "${name}" failed`, { ...this.context(connection), name, error: error instanceof Error ? error.stack : String(error) });
      },
    };
  }

  /** zeropeer's own functions, under `_zeropeer.`; a subclass adds to them. */
  protected builtins(): Record<string, (connection: Connection, work: Work) => void> {
    return {
      '_zeropeer.inspect': (_connection, work) => work.responder.ok(this.#inspectFor(work.identity)),
    };
  }

  #builtins: Record<string, (connection: Connection, work: Work) => void> | undefined;

  #runBuiltin(connection: Connection, work: Work): void {
    this.#builtins ??= this.builtins();
    const builtin = Object.hasOwn(this.#builtins, work.name) ? this.#builtins[work.name] : undefined;
    if (!builtin) {
      work.responder.fail(new ServiceNotFoundError(`no function "${work.name}" is available`));
      return;
    }
    try {
      builtin(connection, work);
    } catch (error) {
      work.responder.fail(error);
    }
  }

  /** What `identity` may call here: one entry per name (the version its rights give it). */
  #inspectFor(identity: string): FunctionInfo[] {
    const names = new Set<string>();
    for (const registration of this.registry.registrations()) names.add(registration.name);
    const visible: FunctionInfo[] = [];
    for (const name of [...names].sort()) {
      const registration = this.lookup(name, identity);
      if (!registration) continue;
      visible.push({
        name,
        ...(registration.description !== undefined ? { description: registration.description } : {}),
        params: [...registration.paramNames],
      });
    }
    return visible;
  }

  #handlerDone(): void {
    this.#runningHandlers--;
    if (this.#runningHandlers === 0 && this.#drained) {
      this.#drained();
      this.#drained = undefined;
    }
  }

  /** Handlers still running (counted by stop()'s drain, and by remote shutdown). */
  protected get runningHandlers(): number {
    return this.#runningHandlers;
  }

  #workDone(connection: Connection, framing: Framing, id: MessageId, name: string, value: unknown): void {
    if (this.state === 'stopped') return;
    let frames: Buffer[];
    try {
      frames = encodeMessage(framing, connection.routingId, MessageType.OK, id, value, this.#ids);
      this.#checkSize(frames, `the result of "${name}"`);
    } catch (error) {
      const reason = error instanceof EncodingError ? new EncodingError(`the result of "${name}" cannot be sent: ${error.message}`) : error;
      this.logger.warn('a result could not be sent', { ...this.context(connection), name, error: (reason as Error).message });
      this.#sendError(connection, framing, id, reason);
      return;
    }
    this.#send(connection, frames);
  }

  #logFailure(connection: Connection, name: string, error: unknown): void {
    if (this.options.logExceptions && !this.#excludeLog.some((Class) => error instanceof Class)) {
      this.logger.error(`handler "${name}" threw`, { ...this.context(connection), name, error: error instanceof Error ? error.stack : String(error) });
    }
  }

  #workFailed(connection: Connection, framing: Framing, id: MessageId, name: string, error: unknown): void {
    this.#logFailure(connection, name, error);
    if (this.state === 'stopped') return;
    this.#sendError(connection, framing, id, error);
  }

  /** Log context for a connection: never credentials. */
  protected context(connection: Connection): LogContext {
    return { peer: this.id, routingId: connection.address, identity: connection.identity };
  }

  // ---- heartbeats --------------------------------------------------------------------------

  /** Starts watching a peer's heartbeats. */
  protected track(connection: Connection): void {
    if (!this.#heartbeat || connection.identity === undefined) return;
    const peer = { key: connection.key, identity: connection.identity, owner: this.id };
    void this.#settle(this.#heartbeat.backend.track(peer, Date.now()), 'heartbeat backend track');
  }

  /** Stops watching a peer's heartbeats. */
  protected untrack(connection: Connection, reason: string): void {
    if (!this.#heartbeat || connection.identity === undefined) return;
    const peer = { key: connection.key, identity: connection.identity, owner: this.id };
    void this.#settle(this.#heartbeat.backend.untrack(peer, reason), 'heartbeat backend untrack');
  }

  /** Awaits what a plugin returned, logging (never throwing) its failure. */
  async #settle(result: unknown, what: string): Promise<void> {
    try {
      await result;
    } catch (error) {
      this.logger.error(`${what} failed`, { peer: this.id, error: (error as Error)?.message });
    }
  }

  #heartbeatTick(): void {
    const heartbeat = this.#heartbeat!;
    if (this.state !== 'started') return;
    for (const connection of this.heartbeatTargets()) {
      this.sendMessage(connection, connection.framing, MessageType.HEARTBEAT, null, '');
    }
    let silent: string[];
    try {
      silent = [...heartbeat.backend.expired(Date.now() - heartbeat.timeoutMs)];
    } catch (error) {
      this.logger.error('heartbeat backend expired() failed', { peer: this.id, error: (error as Error)?.message });
      return;
    }
    for (const key of silent) {
      const connection = this.connections.get(key);
      if (connection) {
        this.logger.info('peer silent for too long', { ...this.context(connection), timeoutMs: heartbeat.timeoutMs });
        this.onSilent(connection);
      } else {
        void this.#settle(heartbeat.backend.untrack({ key, identity: '', owner: this.id }, 'timeout'), 'heartbeat backend untrack');
      }
    }
  }

  /** The connections a HEARTBEAT goes to at each interval. */
  protected abstract heartbeatTargets(): Iterable<Connection>;
  /** A tracked peer was not heard from for `heartbeat.timeoutMs`. */
  protected abstract onSilent(connection: Connection): void;
  /** The connections to say GOODBYE to when this peer stops (zeropeer peers only: pseud does not know the type). */
  protected abstract goodbyeTargets(): Iterable<Connection>;

  /** Tells zeropeer peers that this one stops, so they need not wait for a transport timeout. */
  async #sayGoodbye(): Promise<void> {
    const sends: Promise<void>[] = [];
    for (const connection of this.goodbyeTargets()) {
      if (connection.framing !== 'compact' || !connection.up) continue;
      try {
        const frames = encodeMessage('compact', connection.routingId, MessageType.GOODBYE, null, 'stopping', this.#ids);
        sends.push(this.socket.send(frames).catch(() => {}));
      } catch {
        // cannot happen for a string body; nothing to undo
      }
    }
    await Promise.all(sends);
  }

  #warnedClearText = false;

  /** Warns once when a plugin's secrets would cross tcp without CURVE. */
  protected warnIfClearText(endpoint: string): void {
    if (this.#warnedClearText || !this.security.secretCredentials || this.options.curve || !endpoint.startsWith('tcp://')) return;
    this.#warnedClearText = true;
    this.logger.warn(`security "${this.security.name}" over tcp without CURVE: credentials travel in clear; set options.curve`, { peer: this.id, endpoint });
  }

  /** Sends HELLO on `connection` (client side of the handshake); returns its message id. */
  protected sendHello(connection: Connection, login: string, password: string): number {
    const id = this.#ids.next();
    this.sendMessage(connection, 'v1', MessageType.HELLO, id, [login, password]);
    return id;
  }

  /**
   * The server refused a call as unauthorized (an expired proof): put it back to wait for the next
   * authentication, once; a second refusal rejects it with {@link UnauthorizedError}. Returns false
   * when the id names no call of ours on that connection.
   */
  protected requeueUnauthorized(connection: Connection, id: MessageId, reason: string): boolean {
    const call = this.#pending.get(id);
    if (!call || call.connectionKey !== connection.key) return false;
    if (call.retried) {
      this.#pending.reject(call.id, new UnauthorizedError(`"${this.id}" refused "${call.name}": ${reason}`));
    } else {
      call.retried = true;
      call.sent = false;
    }
    return true;
  }

  /** Answers a HELLO; a zeropeer server announces compact framing in the AUTHENTICATED body. */
  protected answerHello(connection: Connection, message: Message, accepted: boolean, reason = ''): void {
    this.sendMessage(
      connection,
      message.framing,
      accepted ? MessageType.AUTHENTICATED : MessageType.UNAUTHORIZED,
      message.id,
      accepted ? COMPACT_CAPABILITY : reason,
    );
  }
}

interface Answers {
  ok(responder: CallResponder, value: unknown): void;
  fail(responder: CallResponder, error: unknown): void;
}

/** The answer of a normal call: OK or ERROR, once, in the framing the call came in. */
class CallResponder implements Responder {
  sent = false;

  constructor(
    readonly answers: Answers,
    readonly connection: Connection,
    readonly epoch: number,
    readonly framing: Framing,
    readonly id: MessageId,
    readonly name: string,
  ) {}

  ok(value: unknown): void {
    if (this.sent) return;
    this.sent = true;
    this.answers.ok(this, value);
  }

  fail(error: unknown): void {
    if (this.sent) return;
    this.sent = true;
    this.answers.fail(this, error);
  }
}

/** The key of a routing id in the connection maps; the last one is remembered, as runs of messages share it. */
let lastRoutingId: Buffer | undefined;
let lastRoutingKey = '';
export function routingKey(routingId: Buffer): string {
  if (routingId !== lastRoutingId) {
    lastRoutingKey = routingId.toString('latin1');
    lastRoutingId = routingId;
  }
  return lastRoutingKey;
}

function isUnreachable(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === 'EHOSTUNREACH';
}

