/**
 * Outgoing calls: encoding, the pending table, deadlines, and the answers that settle them. A call
 * rejects, never hangs: TimeoutError after its deadline, at once when it cannot be sent.
 */
import { PeerCounters } from './counters.js';
import { RpcError, ServiceClosedError, TimeoutError, UnauthorizedError, errorFromWire, type ErrorTable } from '../errors.js';
import type { Logger } from '../logger.js';
import { positive } from '../option-checks.js';
import { isUnreachable } from '../transport/router-socket.js';
import type { Outbox } from '../transport/outbox.js';
import { encodeWithin, type FramingContext } from '../wire/framing.js';
import { MessageType, typeName, workBody, type Message, type MessageId } from '../wire/messages.js';
import type { Connection, Connections } from './connection.js';
import { wrap, type InterceptedCall, type Interceptor } from './interceptors.js';
import { PendingCall, PendingCalls } from './pending-calls.js';
import type { Role } from './role.js';

/** Options of one call. */
export interface CallOptions {
  /** Deadline in ms; overrides the peer's `timeoutMs`. */
  timeoutMs?: number;
  /** Aborting rejects the call at once with the signal's reason (the remote side may still run it). */
  signal?: AbortSignal;
  /** Keyword arguments, for pseud peers whose functions take them. */
  kwargs?: Record<string, unknown>;
  /** Per-call metadata, string keys and values; travels in compact framing (zeropeer peers). */
  metadata?: Record<string, string>;
  /** Extra remote-name -> class mappings for this call. */
  errorTable?: ErrorTable;
}

export interface CallerSettings {
  readonly peerId: string;
  readonly timeoutMs: number;
  readonly maxPendingCalls: number;
  readonly errorTable: ErrorTable | undefined;
  readonly outgoing: readonly Interceptor[];
  readonly logger: Logger;
  /** Append the caller's stack to every rejection. */
  readonly callSites: boolean;
  readonly counters: PeerCounters;
}

export class Caller {
  readonly #settings: CallerSettings;
  readonly #framing: FramingContext;
  readonly #outbox: Outbox;
  readonly #connections: Connections;
  readonly #pending: PendingCalls;
  #role: Role | undefined;
  #closed = false;

  constructor(settings: CallerSettings, framing: FramingContext, outbox: Outbox, connections: Connections) {
    this.#settings = settings;
    this.#framing = framing;
    this.#outbox = outbox;
    this.#connections = connections;
    this.#pending = new PendingCalls(settings.maxPendingCalls, {
      failed: (error) => PeerCounters.count(settings.counters.failedOut, error),
      expire: (call) => {
        const why = call.sent ? undefined : this.#role?.describeWait(this.#connections.byKey(call.connectionKey));
        const waited = call.sent ? '' : ' (it was never sent: the connection was not ready)';
        this.#pending.reject(call.id, new TimeoutError(`"${call.name}" got no answer within ${call.timeoutMs} ms${why ? `: ${why}` : waited}`));
      },
      sendFailed: (call, error) => {
        const connection = this.#connections.byKey(call.connectionKey);
        if (connection && isUnreachable(error)) this.#role?.unreachable(connection, call);
        else this.#pending.reject(call.id, new RpcError(`"${call.name}" could not be sent: ${error.message}`, { cause: error }));
      },
    });
  }

  set role(role: Role) {
    this.#role = role;
  }

  /** Calls in flight or waiting for their connection. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Calls `name` on the peer `target` designates. `target` is an Error when the role already knows
   * the call cannot go (not connected): the call rejects with it.
   */
  invoke(target: Connection | Error, name: string, args: unknown[], options: CallOptions = {}, oneWay = false): Promise<unknown> {
    if (this.#settings.outgoing.length === 0 || target instanceof Error) return this.#send(target, name, args, options, oneWay);
    const call: InterceptedCall = {
      method: name,
      args,
      direction: 'outgoing',
      identity: target.identity,
      deadline: Date.now() + (options.timeoutMs ?? this.#settings.timeoutMs),
      signal: options.signal,
      metadata: { ...options.metadata },
    };
    const last = (c: InterceptedCall): Promise<unknown> =>
      this.#send(target, c.method, c.args, { ...options, metadata: c.metadata }, oneWay);
    try {
      return wrap(this.#settings.outgoing, last)(call);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #send(target: Connection | Error, name: string, args: unknown[], options: CallOptions, oneWay: boolean): Promise<unknown> {
    const { peerId } = this.#settings;
    if (this.#closed) return Promise.reject(new ServiceClosedError(`peer "${peerId}" is stopped; "${name}" was not sent`));
    if (target instanceof Error) return Promise.reject(target);
    if (typeof name !== 'string' || name.length === 0) return Promise.reject(new TypeError('a call needs a function name'));
    if (!Array.isArray(args)) return Promise.reject(new TypeError('args must be an array'));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#pending.full) {
      return Promise.reject(new RpcError(`too many calls in flight (maxPendingCalls = ${this.#pending.limit}); "${name}" was not sent`));
    }
    let timeoutMs: number;
    let frames: Buffer[];
    const id = this.#framing.ids.next();
    const kwargs = options.kwargs && Object.keys(options.kwargs).length > 0 ? options.kwargs : undefined;
    const metadata = options.metadata && Object.keys(options.metadata).length > 0 ? options.metadata : undefined;
    try {
      timeoutMs = positive(options.timeoutMs, 'timeoutMs', this.#settings.timeoutMs);
      // Encode now, so that a value that cannot be sent fails here and nothing is queued.
      frames = this.#encode(target, oneWay ? 0 : id, name, args, kwargs, metadata);
    } catch (error) {
      return Promise.reject(error);
    }
    const errorTable = options.errorTable ? { ...this.#settings.errorTable, ...options.errorTable } : this.#settings.errorTable;
    const call = new PendingCall(this.#pending, id, target.key, name, args, kwargs, metadata, errorTable, timeoutMs, oneWay);
    // The call site, captured now and formatted only if the call fails. Capturing costs a few µs
    // per call (a third of the throughput at 64 in flight), hence opt-in.
    let site: { stack?: string } | undefined;
    if (this.#settings.callSites) Error.captureStackTrace((site = {}));
    const promise = new Promise<unknown>((resolve, reject) => call.bind(resolve, reject, signal, site));
    this.#pending.add(call);
    this.#settings.counters.callsOut++;
    if (this.#role!.ready(target)) this.#hand(target, call, frames);
    return promise;
  }

  #encode(target: Connection, id: number, name: string, args: unknown[], kwargs: Record<string, unknown> | undefined,
    metadata: Readonly<Record<string, string>> | undefined): Buffer[] {
    // Id 0: one-way (an empty id in v1).
    const wireId = id === 0 ? (target.framing === 'v1' ? Buffer.alloc(0) : 0) : id;
    return encodeWithin(this.#framing, target.framing, target.routingId, MessageType.WORK, wireId, workBody(target.framing, name, args, kwargs, metadata), `call "${name}"`);
  }

  #hand(connection: Connection, call: PendingCall, frames: Buffer[]): void {
    call.sent = true;
    this.#outbox.sendNow(connection.key, frames, call);
  }

  /** Sends the calls that waited for `connection` to become ready, encoded for its framing now. */
  flushWaiting(connection: Connection): void {
    for (const call of this.#pending.unsent(connection.key)) {
      let frames: Buffer[];
      try {
        frames = this.#encode(connection, call.oneWay ? 0 : call.id, call.name, call.args, call.kwargs, call.metadata);
      } catch (error) {
        this.#pending.reject(call.id, error as Error);
        continue;
      }
      this.#hand(connection, call, frames);
    }
  }

  /** Rejects the calls sent on `connection` (not the ones still waiting to be sent). */
  rejectSent(connection: Connection, makeError: (name: string) => Error): void {
    this.#pending.rejectWhere((call) => call.connectionKey === connection.key && call.sent, (call) => makeError(call.name));
  }

  /** Rejects every call for `connection`, sent or waiting. */
  rejectAll(connection: Connection, makeError: (name: string) => Error): void {
    this.#pending.rejectWhere((call) => call.connectionKey === connection.key, (call) => makeError(call.name));
  }

  /** Rejects everything, and takes no more calls: the peer stops. */
  close(): void {
    this.#closed = true;
    const { peerId } = this.#settings;
    this.#pending.rejectWhere(() => true, (call) => new ServiceClosedError(`peer "${peerId}" stopped before "${call.name}" settled`));
  }

  /**
   * The other side refused a call as unauthorized (an expired proof): put it back to wait for the
   * next authentication, once; a second refusal rejects it. False when the id is no call of ours there.
   */
  requeueUnauthorized(connection: Connection, id: MessageId, reason: string): boolean {
    const call = this.#pending.get(id);
    if (!call || call.connectionKey !== connection.key) return false;
    if (call.retried) {
      this.#pending.reject(call.id, new UnauthorizedError(`"${this.#settings.peerId}" refused "${call.name}": ${reason}`));
    } else {
      call.retried = true;
      call.sent = false;
    }
    return true;
  }

  /** An OK or ERROR arrived: it settles the call with that id, if `connection` is where the call went. */
  answer(connection: Connection, message: Extract<Message, { type: 0x01 | 0x10 }>): void {
    const call = this.#pending.get(message.id);
    if (!call || call.connectionKey !== connection.key) {
      // Late (after a deadline), duplicated, or not ours: never let one peer settle another's call.
      this.#settings.logger.debug('answer to no pending call dropped', { peer: this.#settings.peerId, routingId: connection.address, type: typeName(message.type) });
      return;
    }
    if (message.type === MessageType.OK) this.#pending.resolve(call.id, message.body);
    else this.#pending.reject(call.id, errorFromWire(message.body, call.errorTable));
  }

  /** A broken answer to one of our calls: fail that call now rather than at its deadline. */
  answerBroken(connection: Connection, id: MessageId, error: Error): void {
    const call = this.#pending.get(id);
    if (call && call.connectionKey === connection.key) this.#pending.reject(call.id, error);
  }
}
