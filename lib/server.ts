/**
 * The server peer: binds, authenticates the clients that connect, keeps the table of who is
 * connected, runs their work and pushes work to them (`sendTo`).
 */
import { z85Decode } from './transport/curve.js';
import { KeyBinding } from './auth/key-proof.js';
import { ServerHandshake, type GoneReason } from './auth/server-handshake.js';
import { relayOptions } from './engine/call-scope.js';
import type { Connection } from './engine/connection.js';
import type { Role } from './engine/role.js';
import { Session } from './engine/session.js';
import type { Work } from './engine/work.js';
import { ClusterNode } from './cluster/node.js';
import type { ClusterPeer } from './cluster/directory.js';
import { RpcError, ServiceNotFoundError } from './errors.js';
import { DEFAULTS, checkServerOptions, positive, rejectUnknownKeys, wholeNumber, type CallOptions, type ServerCurveOptions, type ServerOptions, type StreamOptions } from './options.js';
import { Peer } from './peer.js';
import { ProxyCache } from './proxy-cache.js';
import type { Predicate } from './predicates.js';
import type { CallStream } from './engine/streams.js';
import { createCallProxy, type CallProxy, type NotifyProxy, type PublishProxy, type StreamProxy } from './proxy.js';
import { RESERVED_PREFIX, type FunctionInfo } from './registry.js';
import { checkPeerId, sessionConfig } from './session-config.js';
import { isOpenNetwork } from './transport/router-socket.js';
import { MessageType, REPLACED } from './wire/messages.js';
import { resolveSecurityPlugin } from '../security/index.js';

export type { GoneReason } from './auth/server-handshake.js';

/** How long the record of a new connection that says nothing is kept, in ms. */
const UNHEARD_MS = 1000;
/** Topics one connection may subscribe to: each costs memory and a comparison in every publish. */
export const MAX_TOPICS_PER_CONNECTION = 1024;
/** sendTo proxies kept for reuse, at least (twice the clients connected when that is more); past it the cache starts over. */
const MAX_CACHED_PROXIES = 4096;

export interface ServerEvents {
  /** A client proved who it is (or, with noop, declared it). */
  'peer:authenticated': (identity: string) => void;
  /** A client left the table. */
  'peer:gone': (identity: string, reason: GoneReason) => void;
  /** A client still in the table proved the same identity again on its connection (a fresh token before `exp`). */
  'peer:reauthenticated': (identity: string) => void;
  /** An error of the server itself (not of a call): logged too. */
  error: (error: Error) => void;
}

/** Options of a call a server makes: a {@link CallOptions} plus the identity it goes to. */
export interface ServerCallOptions extends CallOptions {
  /** The identity of the connected, authenticated client to call. */
  to: string;
}

/** ZeroMQ's rule: a subscription matches every topic it is a prefix of. */
function matchesTopic(subscriptions: ReadonlySet<string>, topic: string): boolean {
  for (const prefix of subscriptions) if (topic.startsWith(prefix)) return true;
  return false;
}

function topicArgument(work: Work): string {
  const [topic] = work.args;
  if (typeof topic !== 'string' || topic.length > 1024) throw new TypeError('a topic is a string of at most 1024 characters');
  return topic;
}

function safePredicate(predicate: Predicate, identity: string): boolean {
  try {
    return predicate(identity) === true;
  } catch {
    return false;
  }
}

/**
 * A server.
 *
 * @example
 * const server = new Server('service');
 * await server.bind('tcp://127.0.0.1:0');
 * server.registerRpc('string.lower', (s: string) => s.toLowerCase());
 * await server.start();
 * const sum = await server.sendTo('alice').addition(2, 4);
 *
 * @typeParam ClientApi the functions clients register, for typed `sendTo` proxies.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- an untyped server calls anything
export class Server<ClientApi = any> extends Peer<ServerEvents> {
  readonly #options: ServerOptions;
  readonly #endpoints: string[] = [];
  readonly #proxies: ProxyCache<unknown>;
  readonly #topics = new WeakMap<Connection, Set<string>>();
  readonly #handshake: ServerHandshake;
  /** Cluster mode (options.cluster): the directory and the links to the other nodes. */
  readonly #cluster: ClusterNode | undefined;

  /** @param id this server's routing identity: clients name it to reach it. */
  constructor(id: string, options: ServerOptions = {}) {
    checkServerOptions(options);
    if (options.curve) rejectUnknownKeys(options.curve, ['publicKey', 'secretKey', 'allowedClientKeys'], 'options.curve of a Server');
    checkPeerId(id);
    const config = sessionConfig(id, id, options);
    const security = resolveSecurityPlugin(options.security);
    const settings = { ...options, ...options.securitySettings };
    const handshakeSettings = {
      maxFailedLogins: wholeNumber(options.maxFailedLogins, 'maxFailedLogins', DEFAULTS.maxFailedLogins),
      failedLoginDelayMs: positive(options.failedLoginDelayMs, 'failedLoginDelayMs', DEFAULTS.failedLoginDelayMs),
      keyBinding: keyBindingOf(options.curve, security.name),
    };
    let self: Server<ClientApi> | undefined;
    let made: ServerHandshake | undefined;
    const session = new Session(config, (engine) => {
      if (options.curve) {
        const { publicKey, secretKey } = options.curve;
        engine.socket.curveServer(publicKey, secretKey);
      }
      const handshake = (made = new ServerHandshake(engine, security.server(settings), handshakeSettings, {
        authenticated: (identity) => {
          if (self) self.#cluster?.authenticated(identity);
          self?.emit('peer:authenticated', identity);
        },
        gone: (identity, reason) => {
          if (self) self.#cluster?.gone(identity);
          self?.emit('peer:gone', identity, reason);
        },
        reauthenticated: (identity) => self?.emit('peer:reauthenticated', identity),
      }));
      return serverRole(engine, handshake, () => self!);
    });
    super(session, security, options.curve !== undefined);
    self = this;
    this.#options = options;
    this.#handshake = made!;
    this.#proxies = new ProxyCache(MAX_CACHED_PROXIES, () => this.#handshake.size);
    this.#cluster = options.cluster && this.#joinCluster(options);
  }

  #joinCluster(options: ServerOptions): ClusterNode {
    return new ClusterNode(options.cluster!, {
      id: this.id,
      logger: this.logger,
      timeoutMs: this.session.config.timeoutMs,
      localInvoke: (identity, name, args, callOptions, oneWay) => this.session.caller.invoke(this.#target(identity), name, args, callOptions, oneWay),
      localRelay: (identity, name, args, callOptions, oneWay, settle) => this.session.caller.relay(this.#target(identity), name, args, callOptions, oneWay, settle),
      localStream: (identity, name, args, streamOptions) => this.session.caller.stream(this.#target(identity), name, args, streamOptions),
      streamWindow: this.session.config.streamWindow,
      localPublish: (topic, name, args, callOptions) => this.#publishHere(topic, name, args, callOptions),
      holds: (identity) => this.#handshake.has(identity),
      evict: (identity) => this.#evict(identity),
      interceptsOutgoing: () => this.session.config.interceptors.outgoing.length > 0,
      makeLinkServer: (id, linkOptions) => new Server(id, linkOptions),
    });
  }

  /** A newer connection proved `identity` on another node: this one loses the name (and a zeropeer client is told). */
  #evict(identity: string): void {
    const connection = this.#target(identity);
    if (connection instanceof Error) return;
    this.#handshake.forget(connection, 'replaced');
    if (connection.framing === 'compact' && connection.up) this.session.send(connection, MessageType.UNAUTHORIZED, 0, REPLACED);
  }

  /** A call to `identity`: here when it is connected here, else (cluster mode) on the node that holds it. */
  #call(identity: unknown, name: string, args: unknown[], options: CallOptions | undefined, oneWay = false): Promise<unknown> {
    // Not here (checked without making an error: a stack costs microseconds): the node that holds it.
    if (this.#cluster && typeof identity === 'string' && !this.#handshake.has(identity)) {
      return this.#cluster.invoke(identity, name, args, options ?? {}, oneWay);
    }
    return this.session.caller.invoke(this.#target(identity), name, args, options, oneWay);
  }

  /**
   * Starts serving; in cluster mode, first binds the link and joins the directory (so that every
   * client that authenticates from now on is published).
   */
  override async start(): Promise<void> {
    await this.#cluster?.start();
    await super.start();
  }

  /** Stops; in cluster mode, leaves the directory first (this node's entries removed). */
  override async stop(): Promise<void> {
    await this.#cluster?.stop();
    await super.stop();
  }

  /**
   * Identities connected, with the node each is on: every node's in cluster mode, else this
   * server's (node `'local'`).
   */
  async clusterPeers(): Promise<ClusterPeer[]> {
    if (this.#cluster) return this.#cluster.peers();
    return this.connectedPeers().sort().map((identity) => ({ identity, node: 'local' }));
  }

  /**
   * Listens on an endpoint: `tcp://127.0.0.1:0` (port 0: the system picks one; read
   * `server.endpoint`), `ipc:///path`, `inproc://name`. May be called more than once.
   */
  async bind(endpoint: string): Promise<void> {
    const allowed = allowedKeys(this.#options.curve);
    this.#endpoints.push(await this.session.socket.bind(endpoint, allowed));
    this.warnIfClearText(endpoint);
    if (!allowed && isOpenNetwork(endpoint)) {
      this.logger.warn('bound on a network address without curve.allowedClientKeys: any host that reaches it can connect, ' +
        'and libzmq 4.3.5 can be crashed by a peer that claims routing ids (see README, security)', { peer: this.id, endpoint });
    }
  }

  /** The endpoint bound last, with the real port when port 0 was asked for. */
  get endpoint(): string {
    const last = this.#endpoints.at(-1);
    if (!last) throw new RpcError(`server "${this.id}" is not bound yet: await server.bind(...) first`);
    return last;
  }

  /** Every endpoint this server listens on. */
  get endpoints(): readonly string[] {
    return [...this.#endpoints];
  }

  /** Identities currently connected and authenticated. */
  connectedPeers(): string[] {
    return [...this.#handshake.identities()].map(([identity]) => identity);
  }

  #target(identity: unknown): Connection | Error {
    return this.#handshake.target(identity, this.id);
  }

  /**
   * A proxy that calls functions on the client `identity`: `server.sendTo('alice').addition(2, 4)`.
   * Rejects at once with PeerNotConnectedError when `identity` is not connected.
   */
  sendTo<T = ClientApi>(identity: string, options?: CallOptions): CallProxy<T> {
    if (options) return createCallProxy<T>((name, args) => this.#call(identity, name, args, options));
    // `server.sendTo(id).fn()` in a loop is the common form: reuse one proxy per identity.
    return this.#proxies.get(identity, () => createCallProxy((name, args) => this.#call(identity, name, args, undefined))) as CallProxy<T>;
  }

  /**
   * Streaming calls to the client `identity`: `for await (const x of server.streamTo('alice').feed.items())`.
   * `timeoutMs` bounds the wait for each item, `deadline` (epoch ms) the whole stream.
   */
  streamTo<T = ClientApi>(identity: string, options: StreamOptions = {}): StreamProxy<T> {
    return createCallProxy<T, StreamProxy<T>>((name, args) => this.#stream(identity, name, args, options));
  }

  /** Calls `name` on the client `options.to` for a streamed result (the explicit form of `streamTo`). */
  invokeStream<T = unknown>(name: string, args: unknown[], options: StreamOptions & { to: string }): CallStream<T> {
    return this.#stream<T>(options?.to, name, args, options);
  }

  /** A streaming call to `identity`: here when it is connected here, else (cluster mode) on the node that holds it. */
  #stream<T>(identity: unknown, name: string, args: unknown[], options: StreamOptions): CallStream<T> {
    if (this.#cluster && typeof identity === 'string' && !this.#handshake.has(identity)) return this.#cluster.stream<T>(identity, name, args, options);
    return this.session.caller.stream<T>(this.#target(identity), name, args, options);
  }

  /** Calls `name` on the client `options.to` with positional `args`. */
  invoke(name: string, args: unknown[], options: ServerCallOptions): Promise<unknown> {
    return this.#call(options?.to, name, args, options);
  }

  /** One-way calls to the client `identity`: resolve once handed to the transport; no answer. */
  notifyTo<T = ClientApi>(identity: string, options: CallOptions = {}): NotifyProxy<T> {
    return createCallProxy<T, NotifyProxy<T>>((name, args) => this.#call(identity, name, args, options, true) as Promise<void>);
  }

  /**
   * Runs a call on every authenticated client subscribed to a prefix of `topic` (ZeroMQ's prefix
   * matching), one-way. Each function resolves to the number of clients it was sent to.
   *
   * @example
   * await server.publish('prices.eur').update({ bid: 1.08 }); // clients subscribed to 'prices' or 'prices.eur'
   */
  publish<T = ClientApi>(topic: string, options: CallOptions = {}): PublishProxy<T> {
    if (typeof topic !== 'string') throw new TypeError('a topic is a string');
    return createCallProxy<T, PublishProxy<T>>(async (name, args) => {
      const [here, elsewhere] = await Promise.all([this.#publishHere(topic, name, args, options), this.#cluster?.publish(topic, name, args, options) ?? 0]);
      return here + elsewhere;
    });
  }

  async #publishHere(topic: string, name: string, args: unknown[], options: CallOptions): Promise<number> {
    const sends: Promise<unknown>[] = [];
    for (const [, connection] of this.#handshake.identities()) {
      const topics = this.#topics.get(connection);
      if (!connection.up || !topics || !matchesTopic(topics, topic)) continue;
      sends.push(this.session.caller.invoke(connection, name, args, options, true));
    }
    const outcomes = await Promise.allSettled(sends);
    return outcomes.filter((outcome) => outcome.status === 'fulfilled').length;
  }

  /** The functions the client `identity` lets this server call. */
  inspect(identity: string, options: CallOptions = {}): Promise<FunctionInfo[]> {
    return this.invoke('_zeropeer.inspect', [], { ...options, to: identity }) as Promise<FunctionInfo[]>;
  }

  /** @internal the builtins of a server: pub/sub, remote shutdown, relayed calls. */
  builtins(): Record<string, (connection: Connection, work: Work) => void> {
    return {
      '_zeropeer.subscribe': (connection, work) => {
        const topic = topicArgument(work);
        let topics = this.#topics.get(connection);
        if (!topics) this.#topics.set(connection, (topics = new Set()));
        if (!topics.has(topic) && topics.size >= MAX_TOPICS_PER_CONNECTION) {
          throw new RpcError(`at most ${MAX_TOPICS_PER_CONNECTION} subscriptions per connection`);
        }
        topics.add(topic);
        work.responder.ok(undefined);
      },
      '_zeropeer.unsubscribe': (connection, work) => {
        this.#topics.get(connection)?.delete(topicArgument(work));
        work.responder.ok(undefined);
      },
      '_zeropeer.shutdown': (connection, work) => this.#remoteShutdown(connection, work),
      '_zeropeer.proxy': (_connection, work) => this.#relayed(work),
    };
  }

  #remoteShutdown(connection: Connection, work: Work): void {
    const allow = this.#options.remoteShutdown;
    const allowed = allow === true || (typeof allow === 'function' && safePredicate(allow, work.identity));
    if (!allowed) {
      work.responder.fail(new ServiceNotFoundError(`no function "${work.name}" is available`));
      return;
    }
    this.logger.warn('remote shutdown requested', this.session.context(connection));
    // Stop taking work now; answer once the calls in flight are done; then stop.
    void this.#cluster?.stop();
    void this.session.stop(() => work.responder.ok(undefined));
  }

  /** A trusted proxy relays a call for the identity it names: run it as that caller. */
  #relayed(work: Work): void {
    const trusted = this.#options.trustedProxies ?? [];
    const [identity, name, args, kwargs] = work.args as [unknown, unknown, unknown, unknown];
    if (!trusted.includes(work.identity) || typeof identity !== 'string' || typeof name !== 'string' ||
        name.startsWith(RESERVED_PREFIX) || !Array.isArray(args) || (kwargs != null && typeof kwargs !== 'object')) {
      work.responder.fail(new ServiceNotFoundError(`no function "${work.name}" is available`));
      return;
    }
    const registration = this.session.dispatcher.lookup(name, identity);
    if (!registration) {
      work.responder.fail(new ServiceNotFoundError(`no function "${name}" is available`));
      return;
    }
    this.session.dispatcher.run(registration, { ...work, name, args, kwargs: (kwargs as Record<string, unknown> | null) ?? undefined, identity });
  }

  /** @internal work no registration here serves goes upstream (proxyTo). */
  forward(connection: Connection, work: Work): boolean {
    const upstream = this.#options.proxyTo;
    if (!upstream) return false;
    this.logger.debug('relaying a call upstream', { ...this.session.context(connection), name: work.name });
    // Metadata (trace context, say) goes along: the upstream trusts this proxy with the caller's
    // identity already. So do the caller's cancel and deadline: as the relay signal (cancel and stop,
    // no AbortController or deadline timer) and a timeout within the deadline, unless outgoing
    // interceptors (user code) will see the signal: they get the handler's own, which carries both.
    // A pseud upstream gets a plain v1 call, made as this proxy (see Client.relay).
    let options: CallOptions;
    try {
      options = relayOptions(work.scope, upstream.interceptsOutgoing, work.name);
    } catch (error) {
      work.responder.fail(error); // its deadline passed: nothing goes upstream
      return true;
    }
    if (work.metadata) options.metadata = { ...work.metadata };
    upstream
      .relay(work.identity, work.name, work.args, work.kwargs, options)
      .then((value) => work.responder.ok(value), (error: unknown) => work.responder.fail(error));
    return true;
  }
}

/** The client keys a server lets connect, from `curve.allowedClientKeys` as a list or as a map. */
function allowedKeys(curve: ServerCurveOptions | undefined): string[] | undefined {
  const allowed = curve?.allowedClientKeys;
  return allowed === undefined || Array.isArray(allowed) ? allowed : Object.keys(allowed);
}

/**
 * Checks `curve.allowedClientKeys` (a bad key fails here, not at the first handshake) and, when it
 * maps keys to identities, makes the binding the handshake checks logins against.
 */
function keyBindingOf(curve: ServerCurveOptions | undefined, security: string): KeyBinding | undefined {
  const allowed = curve?.allowedClientKeys;
  if (allowed === undefined) return undefined;
  if (Array.isArray(allowed)) {
    allowed.forEach(z85Decode);
    return undefined;
  }
  if (typeof allowed !== 'object' || allowed === null) {
    throw new TypeError('options.curve.allowedClientKeys must be an array of Z85 public keys, or a map of Z85 public key -> identities');
  }
  for (const [key, identities] of Object.entries(allowed)) {
    z85Decode(key);
    if (!Array.isArray(identities) || identities.length === 0 || !identities.every((identity) => typeof identity === 'string' && identity.length > 0)) {
      throw new TypeError(`options.curve.allowedClientKeys[${JSON.stringify(key)}] must be a non-empty array of identities`);
    }
  }
  if (security === 'noop') {
    throw new TypeError("options.curve.allowedClientKeys binds identities to keys, which needs a security plugin that authenticates (trusted_peer, plain, jwt), not 'noop'");
  }
  return new KeyBinding(curve!, allowed);
}

/** The server's policy: strangers welcome (they must authenticate), a silent newcomer's record not kept. */
function serverRole(session: Session, handshake: ServerHandshake, server: () => Server): Role {
  const forgetIfUnheard = (connection: Connection): void => {
    if (connection.heard || !session.connections.holds(connection) || !connection.up) return;
    connection.up = false;
    handshake.lost(connection, 'disconnect');
  };
  let builtins: Record<string, (connection: Connection, work: Work) => void> | undefined;
  return {
    connectionFor: (routingId) => session.connections.get(routingId) ?? session.connections.add(routingId, true),
    ready: (connection) => connection.up,
    checksDepartures: true,
    workIdentity: (connection) => handshake.workIdentity(connection),
    up(connection) {
      // A peer can send the empty message ROUTER_NOTIFY uses, and so make its real disconnect read
      // as a connect. Nothing is sent to check (a pseud REQ socket reads anything it did not ask
      // for as its answer): a record that has heard nothing after a while is dropped; a peer that
      // speaks later gets a new one.
      const check = setTimeout(() => forgetIfUnheard(connection), UNHEARD_MS);
      check.unref();
    },
    lost: (connection, reason) => handshake.lost(connection, reason === 'down' ? 'disconnect' : reason === 'silent' ? 'timeout' : 'stopped'),
    unreachable(connection) {
      connection.up = false;
      handshake.lost(connection, 'disconnect');
    },
    handshake: (connection, message) => handshake.handshake(connection, message),
    describeWait: () => undefined,
    get builtins() {
      return (builtins ??= server().builtins());
    },
    forward: (connection, work) => server().forward(connection, work),
    stop: () => handshake.stop(),
  };
}
