/**
 * What Server and Client share as public API: registration, life cycle, interceptors, events. A
 * thin facade over a {@link Session}; the role that makes it a server or a client is data the
 * session was built with, not an override here.
 */
import { EventEmitter } from 'eventemitter3';
import type { InterceptorUse } from './engine/interceptors.js';
import type { Session } from './engine/session.js';
import type { Logger } from './logger.js';
import type { Handler, Registry, RegistrationOptions } from './registry.js';
import { registerService } from './service.js';
import type { SecurityPlugin } from '../security/plugin.js';

/**
 * What `peer.stats()` tells: gauges (now) and counters (since the peer was made, never reset).
 *
 * @example
 * const { callsOut, failedOut, pendingCalls } = client.stats();
 * // failedOut: { timeout: 2, service_not_found: 1 }
 */
export interface PeerStats {
  /** Connection records held (one per routing id seen and not gone; authenticated or not). */
  readonly connections: number;
  /** Connections up and authenticated (a server: its clients; a client: 1 or 0). */
  readonly connectedPeers: number;
  /** Calls this peer made that have not settled. */
  readonly pendingCalls: number;
  /** Handlers of this peer still running. */
  readonly runningHandlers: number;
  /** Answers dropped because no call waited for them any more (after its deadline or cancel). */
  readonly droppedAnswers: number;
  /** Messages waiting in the send queues for peers that read too slowly. */
  readonly queuedMessages: number;
  /** Bytes waiting in the send queues. */
  readonly queuedBytes: number;
  /** Calls this peer made (counter; one-way included; not those refused before sending). */
  readonly callsOut: number;
  /** Work this peer accepted from authenticated peers (counter; one-way included). */
  readonly callsIn: number;
  /** Calls this peer made that failed, by error code (`timeout`, `service_not_found`, ..., or a class name). */
  readonly failedOut: Readonly<Record<string, number>>;
  /** ERROR answers this peer sent, by error code. */
  readonly failedIn: Readonly<Record<string, number>>;
  /** Messages received from the socket (counter). */
  readonly messagesIn: number;
  /** Messages handed to the socket (counter). */
  readonly messagesOut: number;
  /** Bytes received (counter). */
  readonly bytesIn: number;
  /** Bytes handed to the socket (counter). */
  readonly bytesOut: number;
}

export class Peer<Events extends EventEmitter.ValidEventTypes> extends EventEmitter<Events> {
  /** The server's routing identity (a client: the server it talks to). */
  readonly id: string;
  /** This peer's own registry (it sees the global one too). */
  readonly registry: Registry;
  /** @internal */
  protected readonly session: Session;
  /** @internal */
  protected readonly logger: Logger;

  /** The plugin whose secrets would cross tcp in clear (no CURVE), until warned about once. */
  #clearText: string | undefined;

  /** @internal */
  protected constructor(session: Session, security: SecurityPlugin, curve: boolean) {
    super();
    this.#clearText = security.secretCredentials === true && !curve ? security.name : undefined;
    this.session = session;
    this.id = session.config.id;
    this.registry = session.config.registry;
    this.logger = session.config.logger;
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

  /** @internal Warns once when the plugin's secrets would cross tcp without CURVE. */
  protected warnIfClearText(endpoint: string): void {
    if (this.#clearText === undefined || !endpoint.startsWith('tcp://')) return;
    this.logger.warn(`security "${this.#clearText}" over tcp without CURVE: credentials travel in clear; set options.curve`, { peer: this.id, endpoint });
    this.#clearText = undefined;
  }

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

  /**
   * Adds interceptors (innermost, after those given in the options).
   *
   * @example
   * peer.use({ incoming: (next) => async (call) => { console.log(call.method); return next(call); } });
   */
  use(interceptors: InterceptorUse): this {
    this.session.config.interceptors.use(interceptors);
    return this;
  }

  /** Starts serving: work that arrives is dispatched from now on. Idempotent. */
  async start(): Promise<void> {
    this.session.start();
  }

  /**
   * Stops: calls in flight reject with ServiceClosedError, handlers still running get
   * `drainTimeoutMs` to answer, then the socket closes. Idempotent; resolves when stopped.
   */
  stop(): Promise<void> {
    return this.session.stop();
  }

  /** `await using peer = ...`: stops the peer at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Counters of this peer, now. */
  stats(): PeerStats {
    const { session } = this;
    const { counters } = session;
    let connectedPeers = 0;
    for (const connection of session.connections.values()) if (connection.up && connection.authenticated) connectedPeers++;
    const queued = session.queued;
    return {
      connections: session.connections.size,
      connectedPeers,
      pendingCalls: session.caller.size,
      runningHandlers: session.dispatcher.running,
      queuedMessages: queued.messages,
      queuedBytes: queued.bytes,
      callsOut: counters.callsOut,
      callsIn: counters.callsIn,
      failedOut: Object.fromEntries(counters.failedOut),
      failedIn: Object.fromEntries(counters.failedIn),
      messagesIn: counters.messagesIn,
      messagesOut: counters.messagesOut,
      bytesIn: counters.bytesIn,
      bytesOut: counters.bytesOut,
      droppedAnswers: session.caller.droppedAnswers,
    };
  }

  /** Number of calls in flight or waiting. */
  get pendingCalls(): number {
    return this.session.caller.size;
  }
}
