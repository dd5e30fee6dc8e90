/**
 * The client peer: connects to one server, proves who it is, calls the server's functions and
 * runs the work the server pushes to it.
 */
import { randomBytes } from 'node:crypto';
import { KeyProver } from './auth/key-proof.js';
import { ClientHandshake } from './auth/client-handshake.js';
import type { Connection } from './engine/connection.js';
import type { RelaySettle } from './engine/caller.js';
import { Session } from './engine/session.js';
import { DEFAULTS, checkClientOptions, positive, rejectUnknownKeys, wholeNumber, type CallOptions, type ClientOptions, type StreamOptions } from './options.js';
import { PeerNotConnectedError, RpcError, ServiceNotFoundError, TimeoutError } from './errors.js';
import { describeRoutingId } from './logger.js';
import { Peer } from './peer.js';
import { CallStream } from './engine/streams.js';
import { createCallProxy, type CallProxy, type NotifyProxy, type StreamProxy } from './proxy.js';
import type { FunctionInfo } from './registry.js';
import { checkPeerId, sessionConfig } from './session-config.js';
import { resolveSecurityPlugin } from '../security/index.js';

/** A routing id of our own: a server never has to generate one for us (see the constructor). */
function newRoutingId(): string {
  return `zp-${randomBytes(12).toString('base64url')}`;
}

/** How many times in a row a client with a fixed routing id dials again for an unanswered probe, before it says HELLO anyway. */
const MAX_REDIALS = 3;
/** The pause before the first of those dials (it doubles): time for the server to let the old connection go. */
const REDIAL_FIRST_MS = 100;

/** The events a Client emits (eventemitter3): `client.on('connected', ...)`. */
export interface ClientEvents {
  /** The connection to the server is up and this client may send work (authenticated, if the plugin asks). */
  connected: () => void;
  /** The connection to the server dropped; calls made now wait for it to come back. */
  disconnected: () => void;
  /** The connection came back after a drop, and this client authenticated again. */
  reconnected: () => void;
  /** An error of the client itself (not of a call): logged too. */
  error: (error: Error) => void;
}

/**
 * A client.
 *
 * @example
 * const client = new Client<ServerApi>('service', { userId: 'alice' });
 * client.connect('tcp://127.0.0.1:5555');
 * client.registerRpc('addition', (a: number, b: number) => a + b);
 * await client.start();
 * await client.call.string.lower('ABC'); // 'abc'
 *
 * @typeParam ServerApi the functions the server registers, for a typed `call` proxy.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- an untyped client calls anything
export class Client<ServerApi = any> extends Peer<ClientEvents> {
  /** Calls the server: `client.call.string.lower('ABC')`. */
  readonly call: CallProxy<ServerApi>;
  /** One-way calls to the server: resolve once handed to the transport; no answer comes back. */
  readonly notify: NotifyProxy<ServerApi>;
  /** Streaming calls to the server: `for await (const x of client.stream.logs.tail(10))`. */
  readonly stream: StreamProxy<ServerApi>;
  /** Topics this client subscribed to; sent again after every reconnection. */
  readonly #topics = new Set<string>();
  readonly #server: Connection;
  readonly #handshake: ClientHandshake;
  #probeTimer: NodeJS.Timeout | undefined;
  /** The routing id is ours to choose (not `options.routingId`): a fresh one after a disconnect. */
  readonly #ownRoutingId: boolean;
  /** The endpoints connected to: for messages that say where we looked; disconnect of the last one takes the server as gone. */
  readonly #endpoints = new Set<string>();
  /** Connected to an inproc endpoint, which has no ROUTER_NOTIFY. */
  #probing = false;
  /** Set when a peer with another id answered at our endpoint: what is wrong, in words. */
  #mismatch: string | undefined;
  /** The ready() calls waiting; told at once of a mismatch. */
  readonly #readyWaiters = new Set<(error?: Error) => void>();
  /** Dialled again for an unanswered probe since this client was last ready (redialStuck). */
  #redials = 0;
  /** Endpoints left by redialStuck, connected again when #redialTimer fires (unless connect or disconnect came first). */
  readonly #redialing = new Set<string>();
  #redialTimer: NodeJS.Timeout | undefined;

  /** @param serverId the routing identity of the server to talk to (the `id` it was made with). */
  constructor(serverId: string, options: ClientOptions = {}) {
    checkClientOptions(options);
    if (options.curve) rejectUnknownKeys(options.curve, ['publicKey', 'secretKey', 'serverPublicKey'], 'options.curve of a Client');
    checkPeerId(serverId);
    // A routing id of our own: a server never has to generate one for us (libzmq 4.3.5 aborts when
    // a generated id collides with one a hostile peer claimed; see README, security).
    // A client answers its server's HEARTBEATs at once (aligned heartbeats: see lib/engine/liveness.ts).
    const config = { ...sessionConfig(serverId, options.routingId ?? newRoutingId(), options), answersHeartbeats: true };
    const security = resolveSecurityPlugin(options.security);
    const settings = { ...options, ...options.securitySettings };
    const helloTimeoutMs = positive(options.helloTimeoutMs, 'helloTimeoutMs', DEFAULTS.helloTimeoutMs);
    const refreshMarginMs = wholeNumber(options.tokenRefreshMarginMs, 'tokenRefreshMarginMs', DEFAULTS.tokenRefreshMarginMs);
    let self: Client<ServerApi> | undefined;
    let made: { handshake: ClientHandshake; server: Connection } | undefined;
    const session = new Session(config, (engine) => {
      const auth = security.client(settings);
      const server = engine.connections.add(Buffer.from(serverId), false);
      engine.socket.handOverRoutes();
      server.identity = serverId;
      const curve = options.curve;
      const keyProver = curve?.serverPublicKey ? new KeyProver(curve, curve.serverPublicKey) : undefined;
      const handshake = new ClientHandshake(engine, server, auth, { helloTimeoutMs, keyProver, refreshMarginMs }, {
        ready: (announce) => self?.onReady(announce),
        disconnected: () => self?.emit('disconnected'),
        probeUnanswered: () => self?.redialStuck() ?? false,
      });
      if (options.curve) {
        const { publicKey, secretKey, serverPublicKey } = options.curve;
        if (!serverPublicKey) throw new TypeError('options.curve.serverPublicKey is required on a client');
        engine.socket.curveClient(publicKey, secretKey, serverPublicKey, {
          refused: (reason) => handshake.curveRefused(reason),
          failed: (reason) => handshake.curveFailed(reason),
        });
      } else {
        engine.socket.plainClient((reason) => handshake.curveFailed(reason));
      }
      made = { handshake, server };
      let lastServerRoute: Buffer | undefined;
      return {
        connectionFor: (routingId) => {
          // The packets of a batch share one routing id Buffer: compare its bytes once, not per packet.
          if (routingId === lastServerRoute) return server;
          if (routingId.equals(server.routingId)) {
            lastServerRoute = routingId;
            return server;
          }
          if (self) self.#otherPeer(routingId);
          return undefined;
        },
        ready: (connection) => connection.up && connection.authenticated,
        workIdentity: (connection) => (connection === server ? serverId : undefined),
        up: () => handshake.up(),
        checksDepartures: false,
        lost: (_connection, reason) => handshake.lost(reason),
        unreachable: (_connection, call) => handshake.unreachable(call),
        answer: (_connection, message) => handshake.answer(message),
        handshake: (_connection, message) => handshake.handshake(message),
        describeWait: () => handshake.describeWait() ?? (self && self.#whyNotReady()),
        builtins: {},
        forward: () => false,
        stop: async () => {
          handshake.stop();
          if (self) {
            clearTimeout(self.#probeTimer);
            clearTimeout(self.#redialTimer);
          }
        },
      };
    });
    super(session, security, options.curve !== undefined);
    self = this;
    this.#ownRoutingId = options.routingId === undefined;
    this.#handshake = made!.handshake;
    this.#server = made!.server;
    this.call = createCallProxy<ServerApi>((name, args) => this.invoke(name, args));
    this.notify = createCallProxy<ServerApi, NotifyProxy<ServerApi>>((name, args) => this.invokeOneWay(name, args));
    this.stream = createCallProxy<ServerApi, StreamProxy<ServerApi>>((name, args) => this.invokeStream(name, args));
  }

  /**
   * A peer other than the server answered at an endpoint of ours: the first argument of `new
   * Client` (the server's id) does not match the server there. Known as soon as the connection
   * comes up, so ready() says so at once and calls that time out say why.
   */
  #otherPeer(routingId: Buffer): void {
    const there = describeRoutingId(routingId);
    this.#mismatch = `connected to ${[...this.#endpoints].join(', ') || 'the endpoint'}, but the peer there is '${there}', not '${this.id}' ` +
      `(the first argument of new Client is the server's id)`;
    this.session.peerWarning(routingId.toString('latin1'), this.#mismatch, { peer: this.id, routingId: there });
    for (const waiter of this.#readyWaiters) waiter(new PeerNotConnectedError(this.#mismatch));
  }

  /** Why the server is not ready yet, for the message of a call that timed out waiting. */
  #whyNotReady(): string {
    if (this.#mismatch) return this.#mismatch;
    if (this.#endpoints.size === 0) return 'client.connect(endpoint) was never called';
    if (!this.#server.up) return `no connection to ${[...this.#endpoints].join(', ')} (is the server running there?)`;
    return 'connected, but the server has not accepted this client yet';
  }

  /**
   * Resolves once this client is connected to its server and may send work (authenticated, when
   * the plugin asks for it); at once when it already is. Rejects with the reason otherwise:
   * `UnauthorizedError` (credentials or CURVE key refused), `PeerNotConnectedError` at once when
   * the peer at the endpoint has another id than the one this client names, `ServiceClosedError`
   * when the client stops, `TimeoutError` (saying what it waited for) after `timeoutMs`.
   *
   * @example
   * client.connect('tcp://127.0.0.1:5555');
   * await client.start();
   * await client.ready(); // or fail fast, with the reason, before the first call
   */
  ready(options: Pick<CallOptions, 'timeoutMs' | 'signal'> = {}): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.#endpoints.size === 0) return Promise.reject(new RpcError(`client of "${this.id}": client.connect(endpoint) was never called`));
    if (!this.session.started) return Promise.reject(new RpcError(`client of "${this.id}" is not started: await client.start() first`));
    if (this.#mismatch) return Promise.reject(new PeerNotConnectedError(this.#mismatch));
    return new Promise<void>((resolve, reject) => {
      const settle = (error?: Error): void => {
        this.#readyWaiters.delete(settle);
        this.off('connected', up).off('reconnected', up);
        if (error) reject(error);
        else resolve();
      };
      const up = (): void => settle();
      this.#readyWaiters.add(settle);
      this.on('connected', up).on('reconnected', up);
      // A call fails the way ready() should: refused credentials, CURVE, stop, or the deadline with its reason.
      // A pseud server has no inspect: its ServiceNotFoundError still proves the connection.
      this.invoke('_zeropeer.inspect', [], options).then(
        () => settle(),
        (error: Error) => settle(error instanceof ServiceNotFoundError ? undefined
          : error instanceof TimeoutError ? new TimeoutError(error.message.replace('"_zeropeer.inspect" got no answer', 'not ready')) : error),
      );
    });
  }

  /**
   * @internal the server did not answer the probe. With a fixed `routingId`, that is most likely
   * libzmq's refusal of a connection whose routing id the server still holds (our previous
   * connection, not yet closed there): it leaves the new one connected but never read. Dial again
   * (a bounded number of times per connection) rather than wait on it; see README, "Fixed routing ids".
   */
  redialStuck(): boolean {
    if (this.#ownRoutingId || this.#probing || this.#redials >= MAX_REDIALS || this.#endpoints.size === 0 || !this.session.started) return false;
    this.#redials++;
    const endpoints = [...this.#endpoints];
    this.logger.warn(`no answer from "${this.id}" to the first message: it may still hold this client's previous connection with ` +
      `routing id "${this.session.config.routingId}" (libzmq ignores a second connection with a routing id in use); connecting again`,
    { ...this.session.context(this.#server), attempt: this.#redials, endpoints });
    for (const endpoint of endpoints) {
      this.session.socket.disconnect(endpoint);
      this.#redialing.add(endpoint);
    }
    this.session.markDown(this.#server);
    // Not at once: the server must first let go of the connection it holds (it would refuse this one too).
    clearTimeout(this.#redialTimer);
    this.#redialTimer = setTimeout(() => {
      this.#redialTimer = undefined;
      if (!this.session.started) return;
      for (const endpoint of this.#redialing) this.session.socket.connect(endpoint);
      this.#redialing.clear();
    }, REDIAL_FIRST_MS * 2 ** (this.#redials - 1));
    this.#redialTimer.unref();
    return true;
  }

  /** @internal the handshake made this client ready. */
  protected onReady(announce: 'connected' | 'reconnected' | undefined): void {
    this.#mismatch = undefined;
    this.#redials = 0;
    // A (re)started server knows nothing of our subscriptions: tell it again.
    for (const topic of this.#topics) {
      this.invoke('_zeropeer.subscribe', [topic]).catch((error: Error) =>
        this.logger.warn('could not subscribe again', { ...this.session.context(this.#server), topic, error: error.message }));
    }
    if (announce) this.emit(announce);
  }

  /** Connects to the server's endpoint (tcp, ipc or inproc). Calls made before the connection is up wait for it. */
  connect(endpoint: string): void {
    this.#redialing.delete(endpoint);
    this.session.socket.connect(endpoint);
    this.#endpoints.add(endpoint);
    this.warnIfClearText(endpoint);
    if (endpoint.startsWith('inproc://')) {
      this.#probing = true;
      if (this.session.started) this.#probe();
    }
  }

  override async start(): Promise<void> {
    await super.start();
    if (this.#probing) this.#probe();
  }

  /**
   * inproc reports no connects: knock until the server's route exists (it does as soon as the
   * server has bound), with a growing pause, for as long as this client runs.
   */
  #probe(delayMs = 1): void {
    if (this.#probeTimer || this.#server.up || !this.session.started) return;
    this.session.probe(this.#server).then(
      () => {
        if (!this.#server.up && this.session.started) this.session.markUp(this.#server);
      },
      () => {
        if (!this.session.started) return;
        this.#probeTimer = setTimeout(() => {
          this.#probeTimer = undefined;
          this.#probe(Math.min(delayMs * 2, 100));
        }, delayMs);
      },
    );
  }

  /**
   * Stops connecting to an endpoint. When it was the last one, the server is gone at once
   * ('disconnected'; calls sent and unanswered reject with ServiceClosedError, new ones wait): libzmq
   * sends no disconnect notice for a disconnect of our own. A later `connect` brings it back.
   */
  disconnect(endpoint: string): void {
    // An endpoint redialStuck left and has not dialled again yet: nothing to disconnect.
    if (!this.#redialing.delete(endpoint)) this.session.socket.disconnect(endpoint);
    this.#endpoints.delete(endpoint);
    if (this.#endpoints.size > 0) return;
    this.session.markDown(this.#server);
    // The server may still hold the old pipe under our routing id when the next connect arrives, and
    // a ROUTER ignores a second connection with an id in use: the next one comes with a new id.
    if (this.#ownRoutingId) this.session.socket.routingId = newRoutingId();
  }

  /** Whether the server is connected and this client may send work now. */
  get connected(): boolean {
    return this.#server.up && this.#handshake.ready;
  }

  /** Calls `name` on the server with positional `args`; the explicit form of `client.call`. */
  invoke(name: string, args: unknown[] = [], options: CallOptions = {}): Promise<unknown> {
    return this.#handshake.afterRefusal(() => this.session.caller.invoke(this.#server, name, args, options));
  }

  /**
   * @internal {@link invoke}, settled through `settle` instead of a promise (Caller.relay): what a
   * cluster node's link calls use. False, with nothing sent, when it cannot be (outgoing
   * interceptors, or a refusal the call must wait out): use invoke then.
   */
  invokeSettled(name: string, args: unknown[], options: CallOptions, settle: RelaySettle): boolean {
    if (this.#handshake.refused) return false;
    return this.session.caller.relay(this.#server, name, args, options, false, settle);
  }

  /** @internal whether outgoing interceptors (user code) see this client's calls, and with them their signal. */
  get interceptsOutgoing(): boolean {
    return this.session.config.interceptors.outgoing.length > 0;
  }

  /**
   * @internal a call a server relays for `identity` (its proxyTo): through `_zeropeer.proxy` to a
   * zeropeer server (which runs it as `identity`, if it trusts this client); to another v1 server
   * (pseud) as a plain call of `name`, which runs as this client (v1 carries no metadata either).
   */
  async relay(identity: string, name: string, args: unknown[], kwargs: Record<string, unknown> | undefined, options: CallOptions): Promise<unknown> {
    // What the server is shows once this client has been ready with it (within the call's own time).
    if (this.#handshake.serverKind === undefined) {
      const { signal, timeoutMs } = options;
      const until = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
      await this.ready({ ...(signal ? { signal } : {}), ...(timeoutMs === undefined ? {} : { timeoutMs }) });
      if (until !== undefined) options = { ...options, timeoutMs: Math.max(1, until - Date.now()) };
    }
    if (this.#handshake.serverKind === 'pseud') return this.invoke(name, args, kwargs ? { ...options, kwargs } : options);
    return this.invoke('_zeropeer.proxy', [identity, name, args, kwargs ?? null], options);
  }

  /**
   * Sends `name` one-way: resolves once the message is handed to the transport (after waiting,
   * bounded by the deadline, for the connection); the server sends no answer.
   */
  invokeOneWay(name: string, args: unknown[] = [], options: CallOptions = {}): Promise<void> {
    return this.#handshake.afterRefusal(() => this.session.caller.invoke(this.#server, name, args, options, true)) as Promise<void>;
  }

  /**
   * Subscribes to a topic: the server's `publish(topic)` calls whose topic starts with it run here
   * (ZeroMQ's prefix matching; '' matches everything). Resolves once the server has it; kept and
   * sent again after a reconnection.
   */
  async subscribe(topic: string): Promise<void> {
    if (typeof topic !== 'string') throw new TypeError('a topic is a string');
    await this.invoke('_zeropeer.subscribe', [topic]);
    this.#topics.add(topic);
  }

  /** Stops receiving a topic's publications. */
  async unsubscribe(topic: string): Promise<void> {
    this.#topics.delete(topic);
    await this.invoke('_zeropeer.unsubscribe', [topic]);
  }

  /** The topics this client is subscribed to. */
  get topics(): string[] {
    return [...this.#topics];
  }

  /** The functions the server lets this client call: name, description, parameter names. */
  inspect(options: CallOptions = {}): Promise<FunctionInfo[]> {
    return this.invoke('_zeropeer.inspect', [], options) as Promise<FunctionInfo[]>;
  }

  /**
   * Asks the server to stop (PyMargo's remote shutdown). The server must allow it
   * (`remoteShutdown`); it finishes the calls in flight, answers, then stops. Refused:
   * ServiceNotFoundError.
   */
  requestShutdown(options: CallOptions = {}): Promise<void> {
    return this.invoke('_zeropeer.shutdown', [], options) as Promise<void>;
  }

  /**
   * Calls `name` on the server for a streamed result (the explicit form of `client.stream`):
   * `timeoutMs` bounds the wait for each item, `deadline` (epoch ms) the whole stream.
   */
  invokeStream<T = unknown>(name: string, args: unknown[] = [], options: StreamOptions = {}): CallStream<T> {
    let stream: CallStream<T> | undefined;
    const refused = this.#handshake.afterRefusal(async () => {
      stream = this.session.caller.stream<T>(this.#server, name, args, options);
    });
    if (stream) return stream;
    // Refused credentials: a stream that ends with the UnauthorizedError at once.
    const failed = new CallStream<T>(name, this.session.config.streamWindow, this.session.config.timeoutMs, { credit() {}, cancel() {} });
    refused.then(undefined, (error: Error) => failed.end(error));
    return failed;
  }

  /** A `stream` proxy whose streams use these options: `client.streamWith({ streamWindow, deadline }).logs.tail()`. */
  streamWith(options: StreamOptions): StreamProxy<ServerApi> {
    return createCallProxy<ServerApi, StreamProxy<ServerApi>>((name, args) => this.invokeStream(name, args, options));
  }

  /** A `call` proxy whose calls use these options: `client.callWith({ timeoutMs: 100, metadata }).slow()`. */
  callWith(options: CallOptions): CallProxy<ServerApi> {
    return createCallProxy<ServerApi>((name, args) => this.invoke(name, args, options));
  }
}
