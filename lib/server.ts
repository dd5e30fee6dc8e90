/**
 * The server peer: binds, authenticates the clients that connect, keeps the table of who is
 * connected, runs their work and pushes work to them (`sendTo`).
 */
import { restrictClientKeys, z85Decode } from '../security/curve.js';
import type { Authentication, ServerSecurity } from '../security/plugin.js';
import { PeerNotConnectedError, RpcError, ServiceNotFoundError } from './errors.js';
import type { Client } from './client.js';
import { DEFAULTS, positive, type CallOptions, type PeerOptions } from './options.js';
import { Peer, routingKey, type Connection } from './peer.js';
import type { Predicate } from './predicates.js';
import { createCallProxy, type CallProxy, type NotifyProxy, type PublishProxy } from './proxy.js';
import type { FunctionInfo } from './registry.js';
import type { Work } from './work.js';

const MAX_THROTTLE_MS = 10_000;
/** When a new connection's route is checked a second time, in ms. */
const RECHECK_MS = 250;
/** The longest delay setTimeout takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Topics one connection may subscribe to: each costs memory and a comparison in every publish. */
export const MAX_TOPICS_PER_CONNECTION = 1024;
/** sendTo proxies kept for reuse; past that many identities the cache starts over. */
const MAX_CACHED_PROXIES = 4096;

/** Whether a tcp endpoint listens beyond this machine (anything but 127.0.0.0/8 and ::1). */
export function isOpenNetwork(endpoint: string): boolean {
  const match = /^tcp:\/\/(?:\[([^\]]+)\]|([^:]+)):/.exec(endpoint);
  if (!match) return false; // ipc, inproc: local by nature
  const host = match[1] ?? match[2]!;
  return !(host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host));
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
import { EXPIRED, MessageType, REPLACED, isZeropeerId, type Message } from './protocol.js';

/** Why a peer left the table. */
export type GoneReason = 'timeout' | 'disconnect' | 'stopped' | 'replaced' | 'expired';

export interface ServerEvents {
  /** A client proved who it is (or, with noop, declared it). */
  'peer:authenticated': (identity: string) => void;
  /** A client left the table. */
  'peer:gone': (identity: string, reason: GoneReason) => void;
  error: (error: Error) => void;
}

/** Server options: the common ones, plus remote shutdown and proxying. */
export interface ServerOptions extends PeerOptions {
  /**
   * Let clients ask this server to stop (PyMargo's remote shutdown): `true` for any authenticated
   * client, or a predicate on the caller's identity. Default false: the request is answered
   * ServiceNotFoundError, as for any function that does not exist.
   */
  remoteShutdown?: boolean | Predicate;
  /**
   * Where calls go that no registration here serves (pseud's proxy_to): a Client connected to an
   * upstream server. The upstream must list this server's identity there in `trustedProxies`, and
   * then runs the call as the original caller, its predicates applied to that identity.
   */
  proxyTo?: Client;
  /** Identities of proxies whose calls run as the caller they relay for. Default: none. */
  trustedProxies?: string[];
}

/** Options of a call a server makes: a {@link CallOptions} plus the identity it goes to. */
export interface ServerCallOptions extends CallOptions {
  /** The identity of the connected, authenticated client to call. */
  to: string;
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
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export class Server<ClientApi = any> extends Peer<ServerEvents> {
  readonly #auth: ServerSecurity;
  readonly #identities = new Map<string, Connection>();
  readonly #endpoints: string[] = [];
  readonly #maxFailedLogins: number;
  readonly #proxies = new Map<string, unknown>();
  #unrestrict: (() => void) | undefined;
  readonly #failedLoginDelayMs: number;

  /** @param id this server's routing identity: clients name it to reach it. */
  constructor(id: string, options: ServerOptions = {}) {
    super(id, options, { routingId: id });
    try {
      this.#auth = this.security.server(this.securitySettings);
      this.#maxFailedLogins = options.maxFailedLogins ?? DEFAULTS.maxFailedLogins;
      if (!Number.isInteger(this.#maxFailedLogins) || this.#maxFailedLogins < 0) {
        throw new TypeError('options.maxFailedLogins must be a whole number');
      }
      this.#failedLoginDelayMs = positive(options.failedLoginDelayMs, 'failedLoginDelayMs', DEFAULTS.failedLoginDelayMs);
      if (options.curve) {
        const { publicKey, secretKey, allowedClientKeys } = options.curve;
        this.socket.curveServer = true;
        this.socket.curvePublicKey = publicKey;
        this.socket.curveSecretKey = secretKey;
        if (allowedClientKeys !== undefined && !Array.isArray(allowedClientKeys)) {
          throw new TypeError('options.curve.allowedClientKeys must be an array of Z85 public keys');
        }
        allowedClientKeys?.forEach(z85Decode); // a bad key fails here, not at the first handshake
      }
    } catch (error) {
      this.socket.close(); // a refused construction leaves nothing open
      throw error;
    }
  }

  /**
   * Listens on an endpoint: `tcp://127.0.0.1:0` (port 0: the system picks one; read
   * {@link endpoint}), `ipc:///path`, `inproc://name`. May be called more than once.
   */
  async bind(endpoint: string): Promise<void> {
    const allowed = this.options.curve?.allowedClientKeys;
    if (allowed && !this.#unrestrict) this.#unrestrict = await restrictClientKeys(this.socket, allowed);
    await this.socket.bind(endpoint);
    this.#endpoints.push(this.socket.lastEndpoint ?? endpoint);
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
    const now = Date.now();
    const peers: string[] = [];
    for (const [identity, connection] of this.#identities) {
      if (connection.expiresAt === undefined || now < connection.expiresAt) peers.push(identity);
    }
    return peers;
  }

  /**
   * A proxy that calls functions on the client `identity`: `server.sendTo('alice').addition(2, 4)`.
   * Rejects at once with {@link PeerNotConnectedError} when `identity` is not connected.
   */
  sendTo<T = ClientApi>(identity: string, options?: CallOptions): CallProxy<T> {
    if (options) return createCallProxy<T>((name, args) => this.invokeOn(this.#target(identity), name, args, options));
    // `server.sendTo(id).fn()` in a loop is the common form: reuse one proxy per identity.
    let proxy = this.#proxies.get(identity);
    if (!proxy) {
      proxy = createCallProxy((name, args) => this.invokeOn(this.#target(identity), name, args));
      if (this.#proxies.size >= MAX_CACHED_PROXIES) this.#proxies.clear();
      this.#proxies.set(identity, proxy);
    }
    return proxy as CallProxy<T>;
  }

  /** Calls `name` on the client `options.to` with positional `args`. */
  invoke(name: string, args: unknown[], options: ServerCallOptions): Promise<unknown> {
    return this.invokeOn(this.#target(options?.to), name, args, options);
  }

  /** One-way calls to the client `identity`: resolve once handed to the transport; no answer. */
  notifyTo<T = ClientApi>(identity: string, options: CallOptions = {}): NotifyProxy<T> {
    return createCallProxy<T, NotifyProxy<T>>((name, args) => this.invokeOn(this.#target(identity), name, args, options, true));
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
      const sends: Promise<unknown>[] = [];
      for (const connection of this.#identities.values()) {
        if (!connection.up || !connection.topics || !matchesTopic(connection.topics, topic)) continue;
        if (connection.expiresAt !== undefined && Date.now() >= connection.expiresAt) continue;
        sends.push(this.invokeOn(connection, name, args, options, true));
      }
      const outcomes = await Promise.allSettled(sends);
      return outcomes.filter((outcome) => outcome.status === 'fulfilled').length;
    });
  }

  /** The functions the client `identity` lets this server call. */
  inspect(identity: string, options: CallOptions = {}): Promise<FunctionInfo[]> {
    return this.invoke('_zeropeer.inspect', [], { ...options, to: identity }) as Promise<FunctionInfo[]>;
  }

  protected override builtins(): Record<string, (connection: Connection, work: Work) => void> {
    return {
      ...super.builtins(),
      '_zeropeer.subscribe': (connection, work) => {
        const topic = topicArgument(work);
        const topics = (connection.topics ??= new Set());
        if (!topics.has(topic) && topics.size >= MAX_TOPICS_PER_CONNECTION) {
          throw new RpcError(`at most ${MAX_TOPICS_PER_CONNECTION} subscriptions per connection`);
        }
        topics.add(topic);
        work.responder.ok(undefined);
      },
      '_zeropeer.unsubscribe': (connection, work) => {
        connection.topics?.delete(topicArgument(work));
        work.responder.ok(undefined);
      },
      '_zeropeer.shutdown': (connection, work) => this.#remoteShutdown(connection, work),
      '_zeropeer.proxy': (_connection, work) => this.#relayed(work),
    };
  }

  #remoteShutdown(connection: Connection, work: Work): void {
    const allow = (this.options as ServerOptions).remoteShutdown;
    const allowed = allow === true || (typeof allow === 'function' && safePredicate(allow, work.identity));
    if (!allowed) {
      work.responder.fail(new ServiceNotFoundError(`no function "${work.name}" is available`));
      return;
    }
    this.logger.warn('remote shutdown requested', this.context(connection));
    // Stop taking work now; answer once the calls in flight are done; then stop.
    void this.stop({ beforeClose: () => work.responder.ok(undefined) });
  }

  /** A trusted proxy relays a call for the identity it names: run it as that caller. */
  #relayed(work: Work): void {
    const trusted = (this.options as ServerOptions).trustedProxies ?? [];
    const [identity, name, args, kwargs] = work.args as [unknown, unknown, unknown, unknown];
    if (!trusted.includes(work.identity) || typeof identity !== 'string' || typeof name !== 'string' ||
        name.startsWith('_zeropeer.') || !Array.isArray(args) || (kwargs != null && typeof kwargs !== 'object')) {
      work.responder.fail(new ServiceNotFoundError(`no function "${work.name}" is available`));
      return;
    }
    const registration = this.lookup(name, identity);
    if (!registration) {
      work.responder.fail(new ServiceNotFoundError(`no function "${name}" is available`));
      return;
    }
    this.run(registration, { ...work, name, args, kwargs: (kwargs as Record<string, unknown> | null) ?? undefined, identity });
  }

  protected override forward(connection: Connection, work: Work): boolean {
    const upstream = (this.options as ServerOptions).proxyTo;
    if (!upstream) return false;
    this.logger.debug('relaying a call upstream', { ...this.context(connection), name: work.name });
    upstream
      .invoke('_zeropeer.proxy', [work.identity, work.name, work.args, work.kwargs ?? null])
      .then((value) => work.responder.ok(value), (error: unknown) => work.responder.fail(error));
    return true;
  }

  #target(identity: unknown): Connection | Error {
    if (typeof identity !== 'string') return new TypeError('say which client to call: { to: identity }');
    const connection = this.#identities.get(identity);
    if (connection?.expiresAt !== undefined && Date.now() >= connection.expiresAt) this.#forget(connection, 'expired');
    return connection?.up && connection.authenticated
      ? connection
      : new PeerNotConnectedError(`no client "${identity}" is connected to "${this.id}"`);
  }

  protected isReady(connection: Connection): boolean {
    return connection.up;
  }

  protected connectionFor(routingId: Buffer): Connection {
    return this.connections.get(routingKey(routingId)) ?? this.addConnection(routingId, true);
  }

  protected onTransportUp(connection: Connection): void {
    // A peer can send the empty message ROUTER_NOTIFY uses, and so make its real disconnect read
    // as a connect. Knock: if no route answers, that "connect" was a departure; forget the record.
    // libzmq may still hold the departed pipe for a moment, so knock once more a little later,
    // unless the connection has spoken by then (then it is a real one).
    this.#knock(connection);
    const again = setTimeout(() => {
      if (!connection.heard) this.#knock(connection);
    }, RECHECK_MS);
    again.unref();
  }

  #knock(connection: Connection): void {
    if (this.connections.get(connection.key) !== connection || !connection.up || this.state !== 'started') return;
    this.probe(connection).catch(() => {
      if (this.connections.get(connection.key) === connection && connection.up) {
        connection.up = false;
        this.onTransportDown(connection);
      }
    });
  }

  protected onTransportDown(connection: Connection): void {
    this.connections.delete(connection.key);
    clearTimeout(connection.throttle);
    this.dropQueued(connection);
    this.#forget(connection, 'disconnect');
  }

  protected onUnreachable(connection: Connection): void {
    connection.up = false;
    this.onTransportDown(connection);
  }

  /** Takes a connection's identity out of the table, failing the calls made to it. */
  #forget(connection: Connection, reason: GoneReason): void {
    const identity = connection.identity;
    this.rejectAllCalls(connection, (name) => new PeerNotConnectedError(`client "${identity}" went away (${reason}) before "${name}" settled`));
    clearTimeout(connection.expiry);
    connection.expiry = undefined;
    if (identity === undefined || !connection.authenticated) return;
    this.untrack(connection, reason);
    connection.authenticated = false;
    if (this.#identities.get(identity) === connection) {
      this.#identities.delete(identity);
      this.emit('peer:gone', identity, reason);
    }
  }

  #admit(connection: Connection, identity: string): void {
    const previous = this.#identities.get(identity);
    if (previous && previous !== connection) {
      // One identity, one connection: the newest proof wins, the older connection loses the name,
      // and a zeropeer client is told so (else it would authenticate again and take it back).
      this.#forget(previous, 'replaced');
      if (previous.framing === 'compact' && previous.up) this.sendMessage(previous, 'compact', MessageType.UNAUTHORIZED, 0, REPLACED);
    }
    if (connection.authenticated && connection.identity !== identity) this.#forget(connection, 'replaced');
    connection.identity = identity;
    connection.authenticated = true;
    this.#identities.set(identity, connection);
    this.track(connection);
    this.logger.debug('peer authenticated', this.context(connection));
    this.emit('peer:authenticated', identity);
  }

  protected onHello(connection: Connection, message: Message): void {
    const body = message.body;
    if (!Array.isArray(body) || typeof body[0] !== 'string' || (body[1] != null && typeof body[1] !== 'string')) {
      this.logger.warn('bad HELLO body', this.context(connection));
      this.answerHello(connection, message, false, 'a HELLO body must be [login, password]');
      return;
    }
    if (this.state !== 'started') return;
    const login = body[0];
    const failures = connection.failedLogins ?? 0;
    if (failures >= this.#maxFailedLogins) {
      this.#throttle(connection, message, failures);
      return;
    }
    if (connection.verifying) {
      // One check at a time per connection: a burst of HELLOs must not outrun the failure count
      // (nor take every slot of the verifier). The extra one counts as a failure.
      connection.failedLogins = failures + 1;
      this.logger.warn('HELLO while another is being checked: refused', { ...this.context(connection), login });
      this.answerHello(connection, message, false, 'authentication already in progress');
      return;
    }
    // A zeropeer client's HELLO id says it reads compact framing; a pseud client is spoken to in v1.
    const framing = message.framing === 'compact' || isZeropeerId(message.id) ? 'compact' : 'v1';
    const refuse = (error: unknown): void => {
      connection.verifying = false;
      connection.failedLogins = (connection.failedLogins ?? 0) + 1;
      // The reason stays in our log; the peer only learns that it was refused.
      this.logger.warn('authentication refused', {
        ...this.context(connection),
        login,
        failedLogins: connection.failedLogins,
        reason: (error as Error)?.message,
      });
      if (connection.up && this.state === 'started') this.answerHello(connection, message, false, 'authentication failed');
    };
    const accept = (result: Authentication | string): void => {
      connection.verifying = false;
      const { identity, expiresAt } = typeof result === 'string' ? { identity: result, expiresAt: undefined } : (result ?? {});
      if (typeof identity !== 'string' || identity.length === 0) {
        refuse(new TypeError('the security plugin returned no identity'));
        return;
      }
      if (!connection.up || this.state !== 'started') return;
      connection.failedLogins = 0;
      connection.expiresAt = typeof expiresAt === 'number' ? expiresAt : undefined;
      this.#admit(connection, identity);
      connection.framing = framing;
      this.answerHello(connection, message, true);
      this.#watchExpiry(connection);
    };
    let result: Authentication | string | Promise<Authentication | string>;
    try {
      result = this.#auth.authenticate(login, (body[1] as string | undefined) ?? '', { routingId: connection.routingId });
    } catch (error) {
      refuse(error);
      return;
    }
    // A synchronous answer (noop, trusted_peer) is applied at once, before any work that follows the HELLO.
    if (typeof (result as PromiseLike<unknown>)?.then === 'function') {
      connection.verifying = true;
      (result as PromiseLike<Authentication | string>).then(accept, refuse);
    } else {
      accept(result as Authentication | string);
    }
  }

  /**
   * A proof with an end (a token's `exp`): at that moment the peer leaves the table ('expired'),
   * and a zeropeer client is told, so that it authenticates again with a fresh token at once
   * rather than at its next call.
   */
  #watchExpiry(connection: Connection): void {
    clearTimeout(connection.expiry);
    connection.expiry = undefined;
    if (connection.expiresAt === undefined) return;
    const delay = Math.min(Math.max(0, connection.expiresAt - Date.now()), MAX_TIMER_MS);
    connection.expiry = setTimeout(() => {
      connection.expiry = undefined;
      if (!connection.authenticated || connection.expiresAt === undefined) return;
      if (Date.now() < connection.expiresAt) {
        this.#watchExpiry(connection); // a very distant exp: the timer could not reach it at once
        return;
      }
      this.#forget(connection, 'expired');
      if (connection.framing === 'compact' && connection.up) this.sendMessage(connection, 'compact', MessageType.UNAUTHORIZED, 0, EXPIRED);
    }, delay);
    connection.expiry.unref();
  }

  /**
   * A connection over `maxFailedLogins`: its HELLO is not verified at all, and the refusal comes
   * after a delay that doubles with each further failure (up to 10 s). HELLOs that arrive while
   * one is held are dropped, so a flood costs us one timer per connection.
   */
  #throttle(connection: Connection, message: Message, failures: number): void {
    if (connection.throttle) return;
    connection.failedLogins = failures + 1;
    const delay = Math.min(this.#failedLoginDelayMs * 2 ** (failures - this.#maxFailedLogins), MAX_THROTTLE_MS);
    this.logger.warn('too many failed logins: throttled', { ...this.context(connection), failedLogins: failures, delayMs: delay });
    connection.throttle = setTimeout(() => {
      connection.throttle = undefined;
      if (connection.up && this.state === 'started') this.answerHello(connection, message, false, 'too many failed attempts');
    }, delay);
  }

  protected heartbeatTargets(): Iterable<Connection> {
    return this.#identities.values();
  }

  protected goodbyeTargets(): Iterable<Connection> {
    return this.connections.values();
  }

  protected onSilent(connection: Connection): void {
    // Gone as far as we can tell. If it was only hung and speaks again, it is a new, unauthenticated
    // connection that must say HELLO again (a zeropeer client does so by itself).
    this.connections.delete(connection.key);
    clearTimeout(connection.throttle);
    this.dropQueued(connection);
    this.#forget(connection, 'timeout');
  }

  protected onGoodbye(connection: Connection): void {
    // The record stays until the transport says the connection closed.
    this.#forget(connection, 'stopped');
  }

  protected onAuthenticated(connection: Connection): void {
    this.logger.warn('AUTHENTICATED from a client ignored', this.context(connection));
  }

  protected onUnauthorized(connection: Connection): void {
    this.logger.warn('UNAUTHORIZED from a client ignored', this.context(connection));
  }

  protected workIdentity(connection: Connection): string | undefined {
    if (connection.authenticated) {
      if (connection.expiresAt === undefined || Date.now() < connection.expiresAt) return connection.identity;
      // The proof (a token) ran out: no more work until the peer authenticates again.
      this.#forget(connection, 'expired');
      return undefined;
    }
    const identity = this.#auth.anonymousIdentity({ routingId: connection.routingId });
    // A peer that works without HELLO (pseud noop) is reachable by the identity it works as.
    if (identity !== undefined) this.#admit(connection, identity);
    return identity;
  }

  protected override async onStop(): Promise<void> {
    for (const connection of this.connections.values()) {
      clearTimeout(connection.throttle);
      clearTimeout(connection.expiry);
    }
    for (const connection of this.#identities.values()) this.#forget(connection, 'stopped');
    await this.#auth.close?.();
    this.#unrestrict?.();
  }
}

