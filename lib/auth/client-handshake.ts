/**
 * The client's side of authentication, as one state machine per server connection:
 * down -> probing (a v1 WORK every server answers: what is this server?) -> authenticating (HELLO
 * out, or credentials being fetched) -> ready, with refusals remembered so that calls fail at once
 * instead of at their deadline.
 *
 * The probe's answer says who the server is: OK from a zeropeer server (then HELLO, compact
 * framing); ERROR from a pseud server without authentication (ready at once, v1); UNAUTHORIZED
 * from a pseud server with authentication (pseud's own flow: WORK -> UNAUTHORIZED -> HELLO ->
 * AUTHENTICATED -> the waiting calls go out).
 */
import { ServiceClosedError, UnauthorizedError } from '../errors.js';
import type { Connection } from '../engine/connection.js';
import type { PendingCall } from '../engine/pending-calls.js';
import type { HandshakeMessage, LostReason } from '../engine/role.js';
import type { Session } from '../engine/session.js';
import type { ClientSecurity } from '../../security/plugin.js';
import { BUSY, COMPACT_CAPABILITY, EXPIRED, MessageType, REPLACED, type Message } from '../wire/messages.js';
import { challengeNonce, type KeyProver } from './key-proof.js';

/** First pause before a HELLO the server answered 'busy' is sent again; it doubles, with jitter, up to the max. */
const BUSY_RETRY_FIRST_MS = 100;
const BUSY_RETRY_MAX_MS = 5000;
/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type State =
  | { readonly name: 'down' }
  | { readonly name: 'probing'; readonly generation: number; readonly probeId: number }
  | { readonly name: 'authenticating'; readonly generation: number; readonly helloId: number | undefined }
  | { readonly name: 'ready' };

/** Why the server refused us, and whether fresh credentials may change its mind. */
interface Refusal {
  readonly reason: string;
  readonly retry: boolean;
}

/** What the client facade hears from the handshake. */
export interface ClientHandshakeEvents {
  /** Ready: calls flow. `announce` is false for a re-authentication on a live connection. */
  ready(announce: 'connected' | 'reconnected' | undefined): void;
  disconnected(): void;
  /**
   * Every server answers the probe; no answer within `helloTimeoutMs` may be a server that still
   * holds our previous connection under the same routing id. Returns true when the facade dials
   * again (then a new connection brings a new probe) instead of the HELLO that follows otherwise.
   */
  probeUnanswered?(): boolean;
}

export interface ClientHandshakeSettings {
  /** How long a noop client waits for an answer to HELLO before it takes the server for pseud, in ms. */
  readonly helloTimeoutMs: number;
  /** Answers a server's key challenge (a client with CURVE keys). */
  readonly keyProver?: KeyProver | undefined;
  /** How long before its proof ends (a token's `exp`) a refreshable client authenticates again, in ms; 0: never ahead. */
  readonly refreshMarginMs: number;
}

/** A refresh closer to the end than this is left to the expiry path (no tight loop on a token that never changes). */
const MIN_REFRESH_LEAD_MS = 1000;

export class ClientHandshake {
  readonly #session: Session;
  readonly #auth: ClientSecurity;
  readonly #settings: ClientHandshakeSettings;
  readonly #events: ClientHandshakeEvents;
  readonly #server: Connection;
  #state: State = { name: 'down' };
  #refusal: Refusal | undefined;
  /** The last reason the connection could not be made, for the TimeoutError of calls that waited. */
  #transportError: string | undefined;
  /** Bumped at every (re)connection and re-authentication, so that a stale one is dropped. */
  #generation = 0;
  #helloTimer: NodeJS.Timeout | undefined;
  #wasReady = false;
  /** HELLOs answered 'busy' in a row: the next one waits longer (with jitter). */
  #busyRetries = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** The next time this client becomes ready, it says so ('connected' / 'reconnected'). */
  #announce = false;
  /**
   * The server showed it is zeropeer on this connection (OK to the probe, or AUTHENTICATED with the
   * compact capability): it always answers HELLO, so silence is never read as pseud's noop server.
   */
  #zeropeer = false;
  /** What the server was the last time this client became ready (kept while down: a restart is most likely the same). */
  #serverKind: 'zeropeer' | 'pseud' | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  /** The HELLO of a refresh ahead of expiry: sent while ready, calls flowing. */
  #refreshHelloId: number | undefined;
  /** That HELLO carried a key proof: a second challenge is not answered (no ping-pong with a server). */
  #refreshProved = false;
  /** The credentials of the HELLO out now, for the HELLO that answers a key challenge. */
  #credentials: [string, string] | undefined;

  constructor(session: Session, server: Connection, auth: ClientSecurity, settings: ClientHandshakeSettings, events: ClientHandshakeEvents) {
    this.#session = session;
    this.#server = server;
    this.#auth = auth;
    this.#settings = settings;
    this.#events = events;
  }

  get ready(): boolean {
    return this.#state.name === 'ready';
  }

  /** What the server is, once this client has been ready with it: zeropeer, or another v1 server (pseud). */
  get serverKind(): 'zeropeer' | 'pseud' | undefined {
    return this.#serverKind;
  }

  describeWait(): string | undefined {
    return this.#transportError;
  }

  /** CURVE: the server's ZAP handler refused our key. Calls waiting fail now. */
  curveRefused(reason: string): void {
    this.#transportError = reason;
    if (this.#server.up) return;
    this.#refusal = { reason, retry: false };
    this.#session.caller.rejectAll(this.#server, (name) => new UnauthorizedError(`"${name}" not sent: ${reason}`));
  }

  curveFailed(reason: string): void {
    this.#transportError = reason;
  }

  /** Whether the server refused this client's credentials (the next call must go through {@link afterRefusal}). */
  get refused(): boolean {
    return this.#refusal !== undefined;
  }

  /**
   * Makes a call, minding an earlier refusal of our credentials: fails it at once, unless the
   * credentials can change (a token function): then fresh ones are asked for and the call waits.
   */
  afterRefusal(call: () => Promise<unknown>): Promise<unknown> {
    const refusal = this.#refusal;
    if (refusal === undefined) return call();
    if (!refusal.retry || !this.#server.up) {
      return Promise.reject(new UnauthorizedError(`"${this.#session.config.id}" refused this client's credentials: ${refusal.reason}`));
    }
    this.#refusal = undefined;
    const pending = call();
    this.#authenticate();
    return pending;
  }

  up(): void {
    this.#server.framing = 'v1'; // until this server says it reads compact
    this.#server.heartbeats = false; // until it shows it speaks them
    this.#refusal = undefined;
    this.#transportError = undefined;
    this.#announce = true;
    this.#zeropeer = false;
    this.#probe();
  }

  /** Asks the server what it is (see the file's comment); without an answer in time, says HELLO anyway. */
  #probe(): void {
    this.#become({ name: 'down' }, 'disconnect'); // a new generation: a HELLO still being prepared is dropped
    if (!this.#server.up || !this.#session.started) return;
    const generation = this.#generation;
    this.#state = { name: 'probing', generation, probeId: this.#session.sendProbe(this.#server) };
    this.#helloTimer = setTimeout(() => {
      this.#helloTimer = undefined;
      if (this.#state.name !== 'probing' || this.#state.generation !== generation) return;
      if (this.#events.probeUnanswered?.() !== true) this.#authenticate();
    }, this.#settings.helloTimeoutMs);
    this.#helloTimer.unref();
  }

  /** The answer to the probe, if `message` is one: OK (zeropeer: authenticate) or ERROR (pseud without authentication: ready). */
  answer(message: Extract<Message, { type: 0x01 | 0x10 }>): boolean {
    const state = this.#state;
    if (state.name !== 'probing' || message.id !== state.probeId) return false;
    if (message.type === MessageType.OK) {
      this.#zeropeer = true;
      this.#authenticate();
    } else {
      this.#session.config.logger.debug('the server is not zeropeer and lets anybody call: plain v1', this.#session.context(this.#server));
      this.#becomeReady();
    }
    return true;
  }

  lost(reason: LostReason): void {
    if (reason === 'down') {
      const wasReady = this.ready;
      this.#become({ name: 'down' }, 'disconnect');
      this.#server.framing = 'v1';
      this.#server.heartbeats = false;
      this.#session.dropQueued(this.#server);
      this.#session.caller.rejectSent(this.#server, (name) => new ServiceClosedError(`connection to "${this.#session.config.id}" lost before "${name}" settled`));
      if (wasReady) this.#events.disconnected();
      return;
    }
    // Silent (hung, or a network that drops packets without closing), or stopping: fail what was
    // sent; a silent server is asked to authenticate us again, a restarted one meets a new HELLO.
    this.#lose(reason === 'goodbye' ? 'stopped' : 'silent');
    if (reason === 'silent' && this.#server.up && this.#refusal === undefined) this.#authenticate();
  }

  unreachable(call: PendingCall): void {
    call.sent = false; // not routable (any more): the call waits for the connection, bounded by its deadline
  }

  handshake(message: HandshakeMessage): void {
    const logger = this.#session.config.logger;
    const context = this.#session.context(this.#server);
    switch (message.type) {
      case MessageType.HELLO:
        logger.warn('HELLO from the server ignored', context);
        return;
      case MessageType.AUTHENTICATED: {
        if (this.#refreshHelloId !== undefined && message.id === this.#refreshHelloId) {
          this.#refreshHelloId = undefined;
          logger.debug('authenticated again with a fresh token', context);
          this.#scheduleRefresh();
          return;
        }
        const state = this.#state;
        if (state.name !== 'authenticating' || state.helloId !== message.id) return;
        if (message.body.includes(COMPACT_CAPABILITY)) {
          this.#zeropeer = true;
          this.#server.framing = 'compact';
          this.#server.heartbeats = true; // a zeropeer server: held to heartbeats
        }
        logger.debug('authenticated by the server', { ...context, framing: this.#server.framing });
        this.#becomeReady();
        return;
      }
      case MessageType.UNAUTHORIZED:
        this.#unauthorized(message.id, message.body || 'unauthorized');
    }
  }

  #unauthorized(id: unknown, reason: string): void {
    if (this.#refreshHelloId !== undefined && id === this.#refreshHelloId) {
      const nonce = challengeNonce(reason);
      const prover = this.#settings.keyProver;
      if (nonce && prover && this.#credentials && !this.#refreshProved) {
        // Identities bound to CURVE keys: the refresh proves our key too, as the first login did.
        const [login, password] = this.#credentials;
        this.#refreshHelloId = this.#session.sendHello(this.#server, login, password, prover.prove(nonce, login));
        this.#refreshProved = true;
        return;
      }
      // The refresh was not taken: the proof we have holds until it ends, then the expiry path runs.
      this.#refreshHelloId = undefined;
      this.#session.config.logger.warn('the server refused the refreshed credentials', { ...this.#session.context(this.#server), reason });
      return;
    }
    const state = this.#state;
    const caller = this.#session.caller;
    const nonce = challengeNonce(reason);
    if (state.name === 'authenticating' && id === state.helloId && id !== undefined && nonce && this.#credentials) {
      const prover = this.#settings.keyProver;
      if (prover) {
        // The server binds identities to CURVE keys: prove ours for this challenge, same credentials.
        const [login, password] = this.#credentials;
        const helloId = this.#session.sendHello(this.#server, login, password, prover.prove(nonce, login));
        this.#state = { name: 'authenticating', generation: state.generation, helloId };
        return;
      }
      reason = 'the server binds identities to CURVE keys: give this client curve keys listed in its curve.allowedClientKeys';
    }
    if (state.name === 'probing' && id === state.probeId) {
      // A pseud server that authenticates on demand: HELLO now (it would break on one sent before any WORK).
      this.#authenticate();
      return;
    }
    if (state.name === 'authenticating' && id === state.helloId && id !== undefined && reason === BUSY) {
      // The server cannot check us now (a login flood, say): calls keep waiting; ask again later.
      const delay = Math.min(BUSY_RETRY_FIRST_MS * 2 ** this.#busyRetries++, BUSY_RETRY_MAX_MS) * (0.5 + Math.random());
      this.#session.config.logger.debug('the server is busy: HELLO again later', { ...this.#session.context(this.#server), delayMs: Math.round(delay) });
      clearTimeout(this.#retryTimer);
      this.#retryTimer = setTimeout(() => {
        if (this.#state === state) this.#authenticate();
      }, delay);
      this.#retryTimer.unref();
      return;
    }
    if (state.name === 'authenticating' && id === state.helloId && id !== undefined) {
      // Our credentials were refused: every call waiting for this server fails now, not at its deadline.
      const expiresAt = this.#credentials && this.#auth.expiresAt?.(this.#credentials[1]);
      if (typeof expiresAt === 'number' && expiresAt <= Date.now()) reason = `the token expired at ${new Date(expiresAt).toISOString()}`;
      this.#session.config.logger.warn('the server refused our credentials', { ...this.#session.context(this.#server), reason });
      this.#become({ name: 'authenticating', generation: state.generation, helloId: undefined });
      clearTimeout(this.#helloTimer);
      this.#refusal = { reason, retry: this.#auth.refreshable === true };
      caller.rejectAll(this.#server, (name) => new UnauthorizedError(`"${this.#session.config.id}" refused "${name}": ${reason}`));
      return;
    }
    if (id === 0 && reason === EXPIRED) {
      // Our proof (a token) ran out: fetch fresh credentials now; calls wait for the answer.
      if (this.ready) this.#authenticate('expired');
      return;
    }
    if (id === 0 && reason === REPLACED) {
      // Another connection proved our identity since: it is the one the server talks to now.
      this.#session.config.logger.warn('replaced by a newer connection with the same identity', this.#session.context(this.#server));
      this.#lose('replaced');
      this.#refusal = { reason: 'replaced by a newer connection with the same identity', retry: false };
      caller.rejectAll(this.#server, (name) => new UnauthorizedError(`"${name}" not sent: ${this.#refusal!.reason}`));
      return;
    }
    if (!caller.requeueUnauthorized(this.#server, id as number, reason)) {
      this.#session.config.logger.debug('UNAUTHORIZED for no pending call', this.#session.context(this.#server));
      return;
    }
    // The server stopped accepting our work (an expired token): prove who we are again, and the
    // call goes out again once that is done.
    if (this.ready) this.#authenticate('expired');
  }

  /** Moves to `next`; leaving `ready` stops heartbeat tracking (for `why`). */
  #become(next: State, why = 'disconnect'): void {
    const wasReady = this.#state.name === 'ready';
    this.#state = next;
    this.#server.authenticated = next.name === 'ready';
    if (next.name !== 'authenticating') clearTimeout(this.#helloTimer);
    if (wasReady && next.name !== 'ready') this.#session.liveness?.untrack(this.#server, why);
    if (next.name === 'down') this.#generation++;
  }

  #lose(reason: 'silent' | 'stopped' | 'replaced'): void {
    if (!this.ready) return;
    this.#become({ name: 'down' }, reason);
    this.#announce = true;
    this.#session.caller.rejectSent(this.#server, (name) =>
      new ServiceClosedError(`"${this.#session.config.id}" ${reason === 'stopped' ? 'stopped' : 'went silent'} before "${name}" settled`));
    this.#events.disconnected();
  }

  /** Sends HELLO with fresh credentials; calls wait until the server answers. */
  #authenticate(why = 'disconnect'): void {
    const generation = ++this.#generation;
    this.#become({ name: 'authenticating', generation, helloId: undefined }, why);
    const server = this.#server;
    const send = ([login, password]: [string, string]): void => {
      if (generation !== this.#generation || !server.up || !this.#session.started) return;
      const helloId = this.#session.sendHello(server, login, password);
      this.#credentials = [login, password];
      this.#session.config.logger.debug('HELLO sent', { ...this.#session.context(server), login });
      this.#state = { name: 'authenticating', generation, helloId };
      // A zeropeer server that does not answer (paused, say) is silent, not pseud: the call deadlines bound the wait.
      if (!this.#auth.requiresAuthentication && !this.#zeropeer) this.#armHelloFallback(generation);
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
  #armHelloFallback(generation: number): void {
    clearTimeout(this.#helloTimer);
    this.#helloTimer = setTimeout(() => {
      this.#helloTimer = undefined;
      if (generation !== this.#generation || this.ready || !this.#server.up) return;
      this.#session.config.logger.warn(`no answer to HELLO within ${this.#settings.helloTimeoutMs} ms: assuming a pseud v1 server without authentication`, this.#session.context(this.#server));
      this.#becomeReady();
    }, this.#settings.helloTimeoutMs);
  }

  #credentialsFailed(error: unknown): void {
    const reason = `no credentials: ${(error as Error)?.message}`;
    this.#session.config.logger.error('could not get credentials', { peer: this.#session.config.id, error: (error as Error)?.message });
    this.#refusal = { reason, retry: true }; // the next call asks again
    this.#session.caller.rejectAll(this.#server, (name) => new UnauthorizedError(`"${name}" not sent: ${reason}`));
  }

  /** A refreshable proof with an end: authenticate again, on the live connection, a margin before it. */
  #scheduleRefresh(): void {
    clearTimeout(this.#refreshTimer);
    const margin = this.#settings.refreshMarginMs;
    const password = this.#credentials?.[1];
    if (margin === 0 || !this.#auth.refreshable || password === undefined) return;
    const expiresAt = this.#auth.expiresAt?.(password);
    if (typeof expiresAt !== 'number') return;
    const left = expiresAt - Date.now();
    if (left < MIN_REFRESH_LEAD_MS) return;
    const generation = this.#generation;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined;
      if (this.ready && generation === this.#generation) this.#refresh(generation);
    }, Math.min(Math.max(left - margin, left / 2), MAX_TIMER_MS));
    this.#refreshTimer.unref();
  }

  /** Fresh credentials, HELLO while staying ready: calls in flight and new ones go on. */
  #refresh(generation: number): void {
    const send = ([login, password]: [string, string]): void => {
      if (generation !== this.#generation || !this.ready || !this.#server.up) return;
      this.#credentials = [login, password];
      this.#refreshHelloId = this.#session.sendHello(this.#server, login, password);
      this.#refreshProved = false;
      this.#session.config.logger.debug('HELLO sent ahead of expiry', { ...this.#session.context(this.#server), login });
    };
    Promise.resolve().then(() => this.#auth.credentials()).then(send, (error: unknown) => {
      this.#session.config.logger.warn('could not refresh credentials ahead of expiry', { peer: this.#session.config.id, error: (error as Error)?.message });
    });
  }

  #becomeReady(): void {
    this.#busyRetries = 0;
    this.#serverKind = this.#zeropeer ? 'zeropeer' : 'pseud';
    this.#become({ name: 'ready' });
    this.#session.liveness?.track(this.#server);
    this.#session.caller.flushWaiting(this.#server);
    let announce: 'connected' | 'reconnected' | undefined;
    if (this.#announce) {
      this.#announce = false; // a re-authentication on a live connection is not news
      announce = this.#wasReady ? 'reconnected' : 'connected';
      this.#wasReady = true;
    }
    this.#events.ready(announce);
    this.#scheduleRefresh();
  }

  stop(): void {
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#helloTimer);
    clearTimeout(this.#retryTimer);
  }
}
