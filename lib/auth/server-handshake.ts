/**
 * The server's side of authentication: HELLO checked by the security plugin (one at a time per
 * connection, throttled after failures), the table of who is connected as whom (one identity, one
 * connection: the newest proof wins), and proofs that expire.
 */
import { BusyError, PeerNotConnectedError, UnauthorizedError } from '../errors.js';
import { MAX_OPTION_VALUE } from '../option-checks.js';
import type { Connection } from '../engine/connection.js';
import type { HandshakeMessage } from '../engine/role.js';
import type { Session } from '../engine/session.js';
import type { Authentication, ServerSecurity } from '../../security/plugin.js';
import { isZeropeerId } from '../wire/message-ids.js';
import { keyChallenge, type KeyBinding } from './key-proof.js';
import { BUSY, COMPACT_CAPABILITY, EXPIRED, MessageType, REPLACED, type Framing, type Message } from '../wire/messages.js';

/** Why a peer left the table. */
export type GoneReason = 'timeout' | 'disconnect' | 'stopped' | 'replaced' | 'expired';

/** The longest throttle delay, in ms. */
const MAX_THROTTLE_MS = 10_000;
/** Logins whose failures are remembered (across connections); past it, the oldest are forgotten. */
const MAX_TRACKED_LOGINS = 10_000;
/** How long a login's failures count against it. */
const LOGIN_FAILURE_WINDOW_MS = 60_000;
/** The longest a login with many recent failures waits before its check: short, so that nobody can lock its owner out. */
const MAX_LOGIN_DELAY_MS = 2000;

/** Where one connection stands in the login exchange: one state at a time, not loose flags. */
type Login =
  | { readonly state: 'open'; readonly failures: number }
  | { readonly state: 'verifying'; readonly failures: number }
  | { readonly state: 'throttled'; readonly failures: number; readonly timer: NodeJS.Timeout };

/** An admitted connection's proof: until when it holds, and the timer that ends it. */
interface Proof {
  readonly expiresAt: number;
  readonly expiry: NodeJS.Timeout;
}

export interface ServerHandshakeSettings {
  readonly maxFailedLogins: number;
  readonly failedLoginDelayMs: number;
  /** Identities bound to CURVE keys (`curve.allowedClientKeys` as a map): every login proves its key. */
  readonly keyBinding?: KeyBinding | undefined;
}

/** What the server facade hears from the handshake. */
export interface ServerHandshakeEvents {
  authenticated(identity: string): void;
  /** The connection proved the same identity again (a fresh token) while still authenticated: not news for the table. */
  reauthenticated(identity: string): void;
  gone(identity: string, reason: GoneReason): void;
}

type Hello = Extract<Message, { type: 0x02 }>;

export class ServerHandshake {
  readonly #session: Session;
  readonly #auth: ServerSecurity;
  readonly #settings: ServerHandshakeSettings;
  readonly #events: ServerHandshakeEvents;
  readonly #identities = new Map<string, Connection>();
  readonly #logins = new WeakMap<Connection, Login>();
  readonly #proofs = new WeakMap<Connection, Proof>();
  /** The check in progress per connection: aborted when the connection goes or the server stops. */
  readonly #checks = new Map<Connection, AbortController>();
  /** Recent failures per login, across connections (a reconnect does not reset them). */
  readonly #loginFailures = new Map<string, { count: number; last: number }>();
  /** The key challenge each connection was sent last: used once. */
  readonly #nonces = new WeakMap<Connection, Buffer>();

  constructor(session: Session, auth: ServerSecurity, settings: ServerHandshakeSettings, events: ServerHandshakeEvents) {
    this.#session = session;
    this.#auth = auth;
    this.#settings = settings;
    this.#events = events;
  }

  #login(connection: Connection): Login {
    return this.#logins.get(connection) ?? { state: 'open', failures: 0 };
  }

  /** The identities connected, authenticated, and whose proof has not expired. */
  *identities(): IterableIterator<[string, Connection]> {
    const now = Date.now();
    for (const entry of this.#identities) if (!this.#expired(entry[1], now)) yield entry;
  }

  /** The clock is read only for a proof that ends (a token): most have none, and this runs for every incoming call. */
  #expired(connection: Connection, now?: number): boolean {
    const proof = this.#proofs.get(connection);
    return proof !== undefined && (now ?? Date.now()) >= proof.expiresAt;
  }

  /** How many identities the table holds (connected and authenticated, expired proofs included until noticed). */
  get size(): number {
    return this.#identities.size;
  }

  /** Whether `identity` is connected here and may be called now (cheap: makes no error). */
  has(identity: string): boolean {
    const connection = this.#identities.get(identity);
    return connection !== undefined && connection.up && connection.authenticated && !this.#expired(connection);
  }

  /** The connection of `identity`, or the error a call to it rejects with. */
  target(identity: unknown, serverId: string): Connection | Error {
    if (typeof identity !== 'string') return new TypeError('say which client to call: { to: identity }');
    const connection = this.#identities.get(identity);
    if (connection && this.#expired(connection)) this.forget(connection, 'expired');
    return connection?.up && connection.authenticated ? connection : new PeerNotConnectedError(`no client "${identity}" is connected to "${serverId}"`);
  }

  /** The identity work from `connection` runs as; undefined refuses it. */
  workIdentity(connection: Connection): string | undefined {
    if (connection.authenticated) {
      if (!this.#expired(connection)) return connection.identity;
      // The proof (a token) ran out: no more work until the peer authenticates again.
      this.forget(connection, 'expired');
      return undefined;
    }
    // Identities bound to keys: only a HELLO with a proof can name one.
    const identity = this.#settings.keyBinding ? undefined : this.#auth.anonymousIdentity({ routingId: connection.routingId });
    // A peer that works without HELLO (pseud noop) is reachable by the identity it works as.
    if (identity !== undefined) this.#admit(connection, identity, undefined);
    return identity;
  }

  /** The connection closed, fell silent, or said GOODBYE. */
  lost(connection: Connection, reason: GoneReason): void {
    if (reason !== 'stopped') {
      this.#checks.get(connection)?.abort(new BusyError('the connection closed'));
      this.#checks.delete(connection);
      this.#session.connections.delete(connection);
      this.#session.dropQueued(connection);
      const login = this.#logins.get(connection);
      if (login?.state === 'throttled') clearTimeout(login.timer);
    }
    this.forget(connection, reason);
  }

  /** Takes a connection's identity out of the table, failing the calls made to it. */
  forget(connection: Connection, reason: GoneReason): void {
    const identity = connection.identity;
    // An expired proof ends the client's right to send work, not its connection: the calls made to
    // it run on (their answers come on the same connection) and settle, or reach their deadline.
    if (reason !== 'expired') {
      this.#session.caller.rejectAll(connection, (name) => new PeerNotConnectedError(`client "${identity}" went away (${reason}) before "${name}" settled`));
    }
    this.#endProof(connection);
    if (identity === undefined || !connection.authenticated) return;
    this.#session.liveness?.untrack(connection, reason);
    connection.authenticated = false;
    if (this.#identities.get(identity) === connection) {
      this.#identities.delete(identity);
      this.#events.gone(identity, reason);
    }
  }

  #admit(connection: Connection, identity: string, expiresAt: number | undefined): void {
    const previous = this.#identities.get(identity);
    if (previous && previous !== connection) {
      // One identity, one connection: the newest proof wins, the older connection loses the name,
      // and a zeropeer client is told so (else it would authenticate again and take it back).
      this.forget(previous, 'replaced');
      if (previous.framing === 'compact' && previous.up) this.#session.send(previous, MessageType.UNAUTHORIZED, 0, REPLACED);
    }
    if (connection.authenticated && connection.identity !== identity) this.forget(connection, 'replaced');
    const again = connection.authenticated && connection.identity === identity && this.#identities.get(identity) === connection;
    connection.identity = identity;
    connection.authenticated = true;
    this.#identities.set(identity, connection);
    this.#logins.set(connection, { state: 'open', failures: 0 });
    this.#endProof(connection);
    if (expiresAt !== undefined) this.#watchExpiry(connection, expiresAt);
    if (again) {
      this.#session.config.logger.debug('peer authenticated again', this.#session.context(connection));
      this.#events.reauthenticated(identity);
      return;
    }
    this.#session.liveness?.track(connection);
    this.#session.config.logger.debug('peer authenticated', this.#session.context(connection));
    this.#events.authenticated(identity);
  }

  /** HELLO from a client; AUTHENTICATED and UNAUTHORIZED from a client are ignored. */
  handshake(connection: Connection, message: HandshakeMessage): void {
    if (message.type !== MessageType.HELLO) {
      this.#session.peerWarning(connection.key, `${message.type === MessageType.AUTHENTICATED ? 'AUTHENTICATED' : 'UNAUTHORIZED'} from a client ignored`, this.#session.context(connection));
      return;
    }
    if (!this.#session.started) return;
    const { login, password } = message.body;
    const current = this.#login(connection);
    const failures = current.failures;
    if (current.state === 'throttled') return; // one held refusal per connection: a flood costs one timer
    if (failures >= this.#settings.maxFailedLogins) {
      this.#throttle(connection, message, failures);
      return;
    }
    if (current.state === 'verifying') {
      // One check at a time per connection: a burst of HELLOs must not outrun the failure count.
      this.#logins.set(connection, { state: 'verifying', failures: failures + 1 });
      this.#session.peerWarning(connection.key, 'HELLO while another is being checked: refused', { ...this.#session.context(connection), login });
      this.#answer(connection, message, false, 'authentication already in progress');
      return;
    }
    // A zeropeer client's HELLO id says it reads compact framing; a pseud client is spoken to in v1.
    const framing: Framing = message.framing === 'compact' || isZeropeerId(message.id) ? 'compact' : 'v1';
    this.#session.config.logger.debug('HELLO received', { ...this.#session.context(connection), login, framing });
    const key = this.#settings.keyBinding ? this.#provenKey(connection, message, framing) : undefined;
    if (key === null) return;
    // The check's signal is made when it is needed (a delay, an asynchronous check, a plugin that
    // reads it): a synchronous check, the common case, makes none (a reconnection storm is 10^4 HELLOs).
    let made: AbortController | undefined;
    const checkOf = (): AbortController => (made ??= new AbortController());
    const info = { routingId: connection.routingId, get signal(): AbortSignal { return checkOf().signal; } };
    let result: Authentication | string | Promise<Authentication | string>;
    const delay = this.#loginDelay(login);
    try {
      result = delay > 0
        ? this.#after(delay, checkOf().signal).then(() => this.#auth.authenticate(login, password, info))
        : this.#auth.authenticate(login, password, info);
    } catch (error) {
      this.#refuse(connection, message, login, error);
      return;
    }
    // A synchronous answer (noop, trusted_peer) is applied at once, before any work that follows the HELLO.
    if (typeof (result as PromiseLike<unknown>)?.then === 'function') {
      const check = checkOf();
      this.#logins.set(connection, { state: 'verifying', failures });
      this.#checks.set(connection, check);
      (result as PromiseLike<Authentication | string>).then(
        (value) => {
          if (this.#checks.get(connection) === check) this.#checks.delete(connection);
          this.#accept(connection, message, framing, login, value, key);
        },
        (error: unknown) => {
          if (this.#checks.get(connection) === check) this.#checks.delete(connection);
          this.#refuse(connection, message, login, error);
        },
      );
    } else {
      this.#accept(connection, message, framing, login, result as Authentication | string, key);
    }
  }

  /**
   * With identities bound to keys: the key this HELLO proved, or null when it proved none (a
   * challenge went out, or the HELLO was refused). A zeropeer client without a proof is sent a
   * fresh challenge (not a failure); a proof answers the connection's last challenge, once.
   */
  #provenKey(connection: Connection, message: Hello, framing: Framing): string | null {
    const { login, keyProof } = message.body;
    if (!keyProof) {
      if (framing !== 'compact') {
        this.#refuse(connection, message, login, new UnauthorizedError('identities are bound to CURVE keys here, and only a zeropeer client can prove its key'));
        return null;
      }
      const challenge = keyChallenge();
      this.#nonces.set(connection, challenge.nonce);
      this.#answer(connection, message, false, challenge.body);
      return null;
    }
    const nonce = this.#nonces.get(connection);
    this.#nonces.delete(connection);
    if (nonce === undefined || !this.#settings.keyBinding!.verify(keyProof, nonce, login)) {
      this.#refuse(connection, message, login, new UnauthorizedError(`no valid proof of a listed CURVE key (${keyProof.key})`));
      return null;
    }
    return keyProof.key;
  }

  #accept(connection: Connection, message: Hello, framing: Framing, login: string, result: Authentication | string, key: string | undefined): void {
    const { identity, expiresAt } = typeof result === 'string' ? { identity: result, expiresAt: undefined } : (result ?? {});
    if (typeof identity !== 'string' || identity.length === 0) {
      this.#refuse(connection, message, login, new TypeError('the security plugin returned no identity'));
      return;
    }
    if (key !== undefined && !this.#settings.keyBinding!.allows(key, identity)) {
      this.#refuse(connection, message, login, new UnauthorizedError(`the CURVE key ${key} may not authenticate as "${identity}"`));
      return;
    }
    if (!connection.up || !this.#session.started) return;
    this.#loginFailures.delete(login);
    connection.framing = framing;
    if (framing === 'compact') connection.heartbeats = true; // a zeropeer peer: held to heartbeats
    this.#admit(connection, identity, typeof expiresAt === 'number' ? expiresAt : undefined);
    this.#answer(connection, message, true);
  }

  #refuse(connection: Connection, message: Hello, login: string, error: unknown): void {
    if (error instanceof BusyError) {
      // Not a verdict on the credentials: not counted, and the client is told to come back.
      this.#logins.set(connection, { state: 'open', failures: this.#login(connection).failures });
      this.#session.config.logger.debug('HELLO not checked now', { ...this.#session.context(connection), login, reason: error.message });
      if (connection.up && this.#session.started) this.#answer(connection, message, false, BUSY);
      return;
    }
    this.#countLoginFailure(login);
    const failures = this.#login(connection).failures + 1;
    this.#logins.set(connection, { state: 'open', failures });
    // The reason stays in our log; the peer only learns that it was refused.
    this.#session.config.logger.warn('authentication refused', { ...this.#session.context(connection), login, failedLogins: failures, reason: (error as Error)?.message });
    if (connection.up && this.#session.started) this.#answer(connection, message, false, 'authentication failed');
  }

  /** How long a HELLO for `login` waits before its check: it doubles with the login's recent failures, capped low. */
  #loginDelay(login: string): number {
    const entry = this.#loginFailures.get(login);
    if (!entry || Date.now() - entry.last > LOGIN_FAILURE_WINDOW_MS) return 0;
    const over = entry.count - this.#settings.maxFailedLogins;
    return over < 0 ? 0 : Math.min(this.#settings.failedLoginDelayMs * 2 ** over, MAX_LOGIN_DELAY_MS);
  }

  #countLoginFailure(login: string): void {
    const now = Date.now();
    const entry = this.#loginFailures.get(login);
    if (entry && now - entry.last <= LOGIN_FAILURE_WINDOW_MS) {
      entry.count++;
      entry.last = now;
      return;
    }
    if (this.#loginFailures.size >= MAX_TRACKED_LOGINS) this.#loginFailures.delete(this.#loginFailures.keys().next().value!);
    this.#loginFailures.set(login, { count: 1, last: now });
  }

  /** Resolves after `ms`, or rejects when `signal` aborts first. */
  #after(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', abort);
        resolve();
      }, ms);
      const abort = (): void => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      signal.addEventListener('abort', abort, { once: true });
    });
  }

  /** Answers a HELLO; a zeropeer server announces compact framing in the AUTHENTICATED body. */
  #answer(connection: Connection, message: Hello, accepted: boolean, reason = ''): void {
    this.#session.send(connection, accepted ? MessageType.AUTHENTICATED : MessageType.UNAUTHORIZED, message.id, accepted ? COMPACT_CAPABILITY : reason, message.framing);
  }

  /**
   * A connection over `maxFailedLogins`: its HELLO is not verified at all, and the refusal comes
   * after a delay that doubles with each further failure (up to 10 s).
   */
  #throttle(connection: Connection, message: Hello, failures: number): void {
    const { maxFailedLogins, failedLoginDelayMs } = this.#settings;
    const delay = Math.min(failedLoginDelayMs * 2 ** (failures - maxFailedLogins), MAX_THROTTLE_MS);
    this.#session.config.logger.warn('too many failed logins: throttled', { ...this.#session.context(connection), failedLogins: failures, delayMs: delay });
    const timer = setTimeout(() => {
      this.#logins.set(connection, { state: 'open', failures: failures + 1 });
      if (connection.up && this.#session.started) this.#answer(connection, message, false, 'too many failed attempts');
    }, delay);
    this.#logins.set(connection, { state: 'throttled', failures: failures + 1, timer });
  }

  /**
   * A proof with an end (a token's `exp`): at that moment the peer leaves the table ('expired'),
   * and a zeropeer client is told, so that it authenticates again with a fresh token at once.
   */
  #watchExpiry(connection: Connection, expiresAt: number): void {
    const expiry = setTimeout(() => {
      if (this.#proofs.get(connection)?.expiry !== expiry || !connection.authenticated) return;
      if (Date.now() < expiresAt) {
        this.#watchExpiry(connection, expiresAt); // a very distant exp: the timer could not reach it at once
        return;
      }
      this.forget(connection, 'expired');
      if (connection.framing === 'compact' && connection.up) this.#session.send(connection, MessageType.UNAUTHORIZED, 0, EXPIRED);
    }, Math.min(Math.max(0, expiresAt - Date.now()), MAX_OPTION_VALUE));
    expiry.unref();
    this.#proofs.set(connection, { expiresAt, expiry });
  }

  #endProof(connection: Connection): void {
    const proof = this.#proofs.get(connection);
    if (!proof) return;
    clearTimeout(proof.expiry);
    this.#proofs.delete(connection);
  }

  async stop(): Promise<void> {
    // Checks still queued are not wanted any more: a stopped server must not burn CPU on them.
    for (const check of this.#checks.values()) check.abort(new BusyError('the server stops'));
    this.#checks.clear();
    for (const connection of this.#session.connections.values()) {
      const login = this.#logins.get(connection);
      if (login?.state === 'throttled') clearTimeout(login.timer);
      this.#endProof(connection);
    }
    for (const connection of [...this.#identities.values()]) this.forget(connection, 'stopped');
    await this.#auth.close?.();
  }
}
