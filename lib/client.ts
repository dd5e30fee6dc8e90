/**
 * The client peer: connects to one server, proves who it is, calls the server's functions and
 * runs the work the server pushes to it.
 */
import { randomBytes } from 'node:crypto';
import type { ClientSecurity } from '../security/plugin.js';
import { ServiceClosedError, UnauthorizedError } from './errors.js';
import type { PendingCall } from './pending-calls.js';
import { DEFAULTS, positive, type CallOptions, type PeerOptions } from './options.js';
import { Peer, type Connection } from './peer.js';
import { COMPACT_CAPABILITY, EXPIRED, REPLACED, type Message } from './protocol.js';
import { createCallProxy, type CallProxy, type NotifyProxy } from './proxy.js';
import type { FunctionInfo } from './registry.js';

export interface ClientEvents {
  /** The connection to the server is up and this client may send work (authenticated, if the plugin asks). */
  connected: () => void;
  /** The connection to the server dropped; calls made now wait for it to come back. */
  disconnected: () => void;
  /** The connection came back after a drop, and this client authenticated again. */
  reconnected: () => void;
  error: (error: Error) => void;
}

/** Client options: the common ones, plus this client's own routing id if it wants a fixed one. */
export interface ClientOptions extends PeerOptions {
  /** A routing id for this client's socket (1-255 bytes). Default: `zp-` and 16 random characters. */
  routingId?: string;
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
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export class Client<ServerApi = any> extends Peer<ClientEvents> {
  /** Calls the server: `client.call.string.lower('ABC')`. */
  readonly call: CallProxy<ServerApi>;
  /** One-way calls to the server: resolve once handed to the transport; no answer comes back. */
  readonly notify: NotifyProxy<ServerApi>;
  /** Topics this client subscribed to; sent again after every reconnection. */
  readonly #topics = new Set<string>();
  readonly #auth: ClientSecurity;
  readonly #server: Connection;
  readonly #helloTimeoutMs: number;
  #helloTimer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  /** Connected to an inproc endpoint, which has no ROUTER_NOTIFY. */
  #probing = false;
  #wasReady = false;
  /** The next time this client becomes ready, it says so ('connected' / 'reconnected'). */
  #announce = false;
  /** Bumped at every (re)connection and re-authentication, so that a stale one is dropped. */
  #generation = 0;
  /** Id of the HELLO awaiting an answer. */
  #helloId: number | undefined;
  /** Why the server refused our credentials (or CURVE key); calls fail at once while set. */
  #refusal: string | undefined;
  /** Whether the next call may try again with fresh credentials after a refusal. */
  #retryRefusal = false;
  /** The last reason the connection could not be made, for the TimeoutError of calls that waited. */
  #transportError: string | undefined;

  /** @param serverId the routing identity of the server to talk to. */
  constructor(serverId: string, options: ClientOptions = {}) {
    // A routing id of our own: a server never has to generate one for us (libzmq 4.3.5 aborts when a
    // generated id collides with one a hostile peer claimed; see README, security).
    super(serverId, options, { routingId: options.routingId ?? `zp-${randomBytes(12).toString('base64url')}` });
    try {
      this.#auth = this.security.client(this.securitySettings);
      this.#helloTimeoutMs = positive(options.helloTimeoutMs, 'helloTimeoutMs', DEFAULTS.helloTimeoutMs);
      if (options.curve) {
        const { publicKey, secretKey, serverPublicKey } = options.curve;
        if (!serverPublicKey) throw new TypeError('options.curve.serverPublicKey is required on a client');
        this.socket.curveServerKey = serverPublicKey;
        this.socket.curvePublicKey = publicKey;
        this.socket.curveSecretKey = secretKey;
        this.#watchHandshakes();
      }
    } catch (error) {
      this.socket.close(); // a refused construction leaves nothing open
      throw error;
    }
    this.#server = this.addConnection(Buffer.from(serverId), false);
    this.#server.identity = serverId;
    this.call = createCallProxy<ServerApi>((name, args) => this.invoke(name, args));
    this.notify = createCallProxy<ServerApi, NotifyProxy<ServerApi>>((name, args) => this.invokeOneWay(name, args));
  }

  /** Connects to the server's endpoint (tcp, ipc or inproc). Calls made before the connection is up wait for it. */
  connect(endpoint: string): void {
    this.socket.connect(endpoint);
    this.warnIfClearText(endpoint);
    if (endpoint.startsWith('inproc://')) {
      this.#probing = true;
      if (this.state === 'started') this.#probe();
    }
  }

  /**
   * inproc reports no connects: knock until the server's route exists (it does as soon as the
   * server has bound), with a growing pause, for as long as this client runs.
   */
  #probe(delayMs = 1): void {
    if (this.#probeTimer || this.#server.up || this.state !== 'started') return;
    this.probe(this.#server).then(
      () => {
        if (!this.#server.up && this.state === 'started') this.markUp(this.#server);
      },
      () => {
        this.#probeTimer = setTimeout(() => {
          this.#probeTimer = undefined;
          this.#probe(Math.min(delayMs * 2, 100));
        }, delayMs);
      },
    );
  }

  protected override async onStart(): Promise<void> {
    if (this.#probing) this.#probe();
  }

  /** Stops connecting to an endpoint. */
  disconnect(endpoint: string): void {
    this.socket.disconnect(endpoint);
  }

  /** Whether the server is connected and this client may send work now. */
  get connected(): boolean {
    return this.isReady(this.#server);
  }

  /**
   * A CURVE handshake that fails is otherwise silent: the connection just never comes up. A key the
   * server's allow-list refuses fails the calls waiting at once; any other failure (most often a
   * wrong serverPublicKey) is named in the TimeoutError of the calls it held up.
   */
  #watchHandshakes(): void {
    const events = this.socket.events;
    events.on('handshake:error:auth', ({ error }) => {
      const reason = `CURVE: the server refused this client's key (${error.status ?? error.message})`;
      this.#transportError = reason;
      if (this.#server.up) return;
      this.#refusal = reason;
      this.rejectAllCalls(this.#server, (name) => new UnauthorizedError(`"${name}" not sent: ${reason}`));
    });
    const failed = ({ error }: { error: Error }): void => {
      this.#transportError = `CURVE handshake failed (${error.message}): is curve.serverPublicKey right?`;
    };
    events.on('handshake:error:protocol', failed);
    events.on('handshake:error:other', failed);
  }

  protected override describeWait(): string | undefined {
    return this.#transportError;
  }

  /** Calls `name` on the server with positional `args`; the explicit form of `client.call`. */
  invoke(name: string, args: unknown[] = [], options: CallOptions = {}): Promise<unknown> {
    return this.#afterRefusal(() => this.invokeOn(this.#server, name, args, options));
  }

  /**
   * Makes a call, minding an earlier refusal of our credentials: fails it at once, unless the
   * credentials can change (a token function), in which case fresh ones are asked for and the
   * call waits for the answer.
   */
  #afterRefusal(call: () => Promise<unknown>): Promise<unknown> {
    if (this.#refusal === undefined) return call();
    if (!this.#retryRefusal || !this.#server.up) {
      return Promise.reject(new UnauthorizedError(`"${this.id}" refused this client's credentials: ${this.#refusal}`));
    }
    this.#refusal = undefined;
    const pending = call();
    this.#authenticate(this.#server);
    return pending;
  }

  /**
   * Sends `name` one-way: resolves once the message is handed to the transport (after waiting,
   * bounded by the deadline, for the connection); the server sends no answer.
   */
  invokeOneWay(name: string, args: unknown[] = [], options: CallOptions = {}): Promise<void> {
    return this.#afterRefusal(() => this.invokeOn(this.#server, name, args, options, true)) as Promise<void>;
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

  /** A `call` proxy whose calls use these options: `client.callWith({ timeoutMs: 100 }).slow()`. */
  callWith(options: CallOptions): CallProxy<ServerApi> {
    return createCallProxy<ServerApi>((name, args) => this.invoke(name, args, options));
  }

  protected isReady(connection: Connection): boolean {
    return connection.up && connection.authenticated;
  }

  protected connectionFor(routingId: Buffer): Connection | undefined {
    return routingId.equals(this.#server.routingId) ? this.#server : undefined;
  }

  protected onTransportUp(connection: Connection): void {
    connection.framing = 'v1'; // until this server says it reads compact
    connection.authenticated = false;
    this.#refusal = undefined;
    this.#transportError = undefined;
    this.#announce = true;
    this.#authenticate(connection);
  }

  /** Sends HELLO with fresh credentials; calls wait until the server answers. */
  #authenticate(connection: Connection): void {
    const generation = ++this.#generation;
    const send = ([login, password]: [string, string]): void => {
      if (generation !== this.#generation || !connection.up || this.state !== 'started') return;
      this.#helloId = this.sendHello(connection, login, password);
      if (!this.#auth.requiresAuthentication) this.#armHelloFallback(connection, generation);
    };
    let credentials: [string, string] | Promise<[string, string]>;
    try {
      credentials = this.#auth.credentials();
    } catch (error) {
      this.#credentialsFailed(error);
      return;
    }
    if (Array.isArray(credentials)) send(credentials);
    else Promise.resolve(credentials).then(send, (error: unknown) => this.#credentialsFailed(error));
  }

  /** pseud's noop server never answers HELLO: after a while, talk to it in plain v1. */
  #armHelloFallback(connection: Connection, generation: number): void {
    clearTimeout(this.#helloTimer);
    this.#helloTimer = setTimeout(() => {
      this.#helloTimer = undefined;
      if (generation !== this.#generation || connection.authenticated || !connection.up) return;
      this.logger.warn(`no answer to HELLO within ${this.#helloTimeoutMs} ms: assuming a pseud v1 server without authentication`, this.context(connection));
      connection.authenticated = true;
      this.#becameReady(connection);
    }, this.#helloTimeoutMs);
  }

  #credentialsFailed(error: unknown): void {
    const reason = `no credentials: ${(error as Error)?.message}`;
    this.logger.error('could not get credentials', { peer: this.id, error: (error as Error)?.message });
    this.#refusal = reason;
    this.#retryRefusal = true; // the next call asks again
    this.rejectAllCalls(this.#server, (name) => new UnauthorizedError(`"${name}" not sent: ${reason}`));
  }

  #becameReady(connection: Connection): void {
    this.track(connection);
    this.flushWaitingCalls(connection);
    // A (re)started server knows nothing of our subscriptions: tell it again.
    for (const topic of this.#topics) {
      this.invoke('_zeropeer.subscribe', [topic]).catch((error: Error) =>
        this.logger.warn('could not subscribe again', { ...this.context(connection), topic, error: error.message }));
    }
    if (!this.#announce) return; // a re-authentication on a live connection is not news
    this.#announce = false;
    if (this.#wasReady) {
      this.emit('reconnected');
    } else {
      this.#wasReady = true;
      this.emit('connected');
    }
  }

  protected onTransportDown(connection: Connection): void {
    const wasReady = connection.authenticated; // `up` is already false here
    this.untrack(connection, 'disconnect');
    clearTimeout(this.#helloTimer);
    connection.authenticated = false;
    connection.framing = 'v1';
    this.#generation++;
    this.dropQueued(connection);
    this.rejectSentCalls(connection, (name) => new ServiceClosedError(`connection to "${this.id}" lost before "${name}" settled`));
    if (wasReady) this.emit('disconnected');
  }

  protected heartbeatTargets(): Iterable<Connection> {
    return this.isReady(this.#server) ? [this.#server] : [];
  }

  protected goodbyeTargets(): Iterable<Connection> {
    return [this.#server];
  }

  /**
   * The server went quiet (hung, or a network that drops packets without closing the connection):
   * the calls sent to it fail now, and HELLO goes out again; when the server answers, calls flow
   * again and 'reconnected' is emitted.
   */
  protected onSilent(connection: Connection): void {
    this.#lost(connection, 'silent');
    if (connection.up && this.#refusal === undefined) this.#authenticate(connection);
  }

  /** The server is stopping: fail what was sent to it; a restarted server is met with a new HELLO. */
  protected onGoodbye(connection: Connection): void {
    this.#lost(connection, 'stopped');
  }

  #lost(connection: Connection, reason: string): void {
    if (!connection.authenticated) return;
    this.untrack(connection, reason);
    connection.authenticated = false;
    this.#announce = true;
    this.rejectSentCalls(connection, (name) => new ServiceClosedError(`"${this.id}" ${reason === 'stopped' ? 'stopped' : 'went silent'} before "${name}" settled`));
    this.emit('disconnected');
  }

  protected onUnreachable(_connection: Connection, call: PendingCall): void {
    // Not routable (any more): the call waits for the connection, bounded by its deadline.
    call.sent = false;
  }

  protected onHello(connection: Connection): void {
    this.logger.warn('HELLO from the server ignored', this.context(connection));
  }

  protected onAuthenticated(connection: Connection, message: Message): void {
    if (connection.authenticated || message.id !== this.#helloId) return;
    this.#helloId = undefined;
    clearTimeout(this.#helloTimer);
    connection.authenticated = true;
    if (typeof message.body === 'string' && message.body.includes(COMPACT_CAPABILITY)) connection.framing = 'compact';
    this.#becameReady(connection);
  }

  protected onUnauthorized(connection: Connection, message: Message): void {
    const reason = typeof message.body === 'string' && message.body ? message.body : 'unauthorized';
    if (message.id === this.#helloId) {
      // Our credentials were refused: every call waiting for this server fails now, not at its deadline.
      this.logger.warn('the server refused our credentials', { ...this.context(connection), reason });
      clearTimeout(this.#helloTimer);
      this.#helloId = undefined;
      this.#refusal = reason;
      this.#retryRefusal = this.#auth.refreshable === true;
      this.rejectAllCalls(connection, (name) => new UnauthorizedError(`"${this.id}" refused "${name}": ${reason}`));
      return;
    }
    if (message.id === 0 && reason === EXPIRED) {
      // Our proof (a token) ran out: fetch fresh credentials now; calls wait for the answer.
      if (connection.authenticated) {
        this.untrack(connection, 'expired');
        connection.authenticated = false;
        this.#authenticate(connection);
      }
      return;
    }
    if (message.id === 0 && reason === REPLACED) {
      // Another connection proved our identity since: it is the one the server talks to now.
      this.logger.warn('replaced by a newer connection with the same identity', this.context(connection));
      this.#lost(connection, 'replaced');
      this.#refusal = 'replaced by a newer connection with the same identity';
      this.#retryRefusal = false;
      this.rejectAllCalls(connection, (name) => new UnauthorizedError(`"${name}" not sent: ${this.#refusal}`));
      return;
    }
    if (!this.requeueUnauthorized(connection, message.id, reason)) {
      this.logger.debug('UNAUTHORIZED for no pending call', this.context(connection));
      return;
    }
    // The server stopped accepting our work (an expired token): prove who we are again, with
    // fresh credentials, and the call goes out again once that is done.
    if (connection.authenticated) {
      connection.authenticated = false;
      this.#authenticate(connection);
    }
  }

  protected workIdentity(connection: Connection): string | undefined {
    return connection === this.#server ? this.id : undefined;
  }

  protected override async onStop(): Promise<void> {
    clearTimeout(this.#helloTimer);
    clearTimeout(this.#probeTimer);
  }
}
