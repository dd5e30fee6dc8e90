/**
 * Outgoing calls: encoding, the pending table, deadlines, and the answers that settle them. A call
 * rejects, never hangs: TimeoutError after its deadline, at once when it cannot be sent.
 */
import { PeerCounters } from './counters.js';
import { CancelledError, EncodingError, PeerNotConnectedError, RpcError, ServiceClosedError, TimeoutError, UnauthorizedError, errorFromWire, type ErrorTable } from '../errors.js';
import type { Logger } from '../logger.js';
import { positive } from '../option-checks.js';
import { isUnreachable } from '../transport/router-socket.js';
import type { Outbox } from '../transport/outbox.js';
import { encodeMessage, encodeWithin, type FramingContext } from '../wire/framing.js';
import { MessageType, typeName, workBody, type Message, type MessageId, type StreamEndBody } from '../wire/messages.js';
import { deadlineOf, type CallScope } from './call-scope.js';
import type { Connection, Connections } from './connection.js';
import { wrap, type InterceptedCall, type Interceptor } from './interceptors.js';
import { PendingCall, PendingCalls } from './pending-calls.js';
import type { Role } from './role.js';
import { CONTROL_HOOKS, OutgoingStreams, attachStream, streamTimeout, type StreamRequest } from './outgoing-streams.js';
import { streamSlots, type CallStream, type StreamWindow } from './streams.js';

/** Options of one call. */
export interface CallOptions {
  /** Deadline in ms; overrides the peer's `timeoutMs`. */
  timeoutMs?: number;
  /**
   * Aborting rejects the call at once with CancelledError (the reason as its `cause`) and, between
   * zeropeer peers, aborts the handler's `ctx.signal` over there. A handler's own `ctx.signal`
   * also passes its deadline on: the call waits no longer than the caller's caller.
   */
  signal?: AbortSignal;
  /** Keyword arguments, for pseud peers whose functions take them. */
  kwargs?: Record<string, unknown>;
  /** Per-call metadata, string keys and values; travels in compact framing (zeropeer peers). */
  metadata?: Record<string, string>;
  /** Extra remote-name -> class mappings for this call. */
  errorTable?: ErrorTable;
}

/**
 * Internal: set on the options of a call whose `timeoutMs` already accounts for the deadline its
 * signal carries (a cluster link call, which waits a margin longer than the call it forwards): the
 * signal's cancel goes along, its deadline is not inherited again. Without it, the link would need a
 * signal of its own that follows the caller's (AbortSignal.any, made per call).
 */
export const deadlineApplied = Symbol('zeropeer.deadlineApplied');

/** The deadline a call inherits from its signal (a handler's ctx.signal), unless told it is applied already. */
function inheritedDeadline(options: CallOptions & { [deadlineApplied]?: true }): number | undefined {
  const { signal } = options;
  return signal && !options[deadlineApplied] ? deadlineOf(signal) : undefined;
}

/** Options of one streaming call: `timeoutMs` is the wait for each next item. */
export interface StreamOptions extends CallOptions {
  /** When the whole stream must have ended, epoch ms (default: none; each item still has `timeoutMs`). */
  deadline?: number;
  /** How far the producer may run ahead of this consumer (default: the peer's `streamWindow`). */
  streamWindow?: StreamWindow;
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
  /** The window a consumer of a stream grants by default. */
  readonly streamWindow: StreamWindow;
  readonly counters: PeerCounters;
}

/**
 * How a relayed call settles (see {@link Caller.relay}): what would have settled its promise.
 * Called synchronously, from inside the pending-calls table (an answer, an expiry, a lost
 * connection, a stop): they must not call back into the same Caller at once (make calls, cancel
 * others); hand the outcome on, as a relay does, or defer.
 */
export interface RelaySettle {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  /**
   * The scope of the handler's call this one is made for: its cancel and this peer's stop cancel
   * this call (what `options.signal` would do, at a lower cost: see CallScope.relay).
   */
  readonly scope?: CallScope;
}

/** A call that fails before it is made: its promise rejects, or (a relayed call) `settle` hears it. */
function failed(settle: RelaySettle | undefined, error: Error): Promise<never> | undefined {
  if (!settle) return Promise.reject(error);
  settle.reject(error);
  return undefined;
}

/** The options of a call made without any (not a new object per call). */
const NO_OPTIONS: CallOptions = Object.freeze({});

/** Why a call was cancelled, as the CANCEL message says it (short text: the body is capped). */
function describeReason(reason: unknown): string {
  const text = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : '';
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/** A stream ends with PeerNotConnectedError when the other peer goes, on both sides, whatever the role says for calls. */
function lostError(call: PendingCall, makeError: (name: string) => Error): Error {
  const error = makeError(call.name);
  if (!call.stream || error instanceof PeerNotConnectedError || error instanceof UnauthorizedError) return error;
  return new PeerNotConnectedError(error.message, { cause: error });
}

/** The rejection of a call whose signal aborted: a deadline passed on the way (a handler's ctx.signal) stays a TimeoutError. */
function cancelledError(name: string, reason: unknown): CancelledError | TimeoutError {
  const why = describeReason(reason);
  if (reason instanceof TimeoutError) return new TimeoutError(`"${name}" got no answer: ${why}`, { cause: reason });
  return new CancelledError(`"${name}" was cancelled${why ? `: ${why}` : ''}`, { cause: reason });
}

export class Caller {
  readonly #settings: CallerSettings;
  readonly #framing: FramingContext;
  readonly #outbox: Outbox;
  readonly #connections: Connections;
  readonly #pending: PendingCalls;
  readonly #streams: OutgoingStreams;
  #role: Role | undefined;
  #closed = false;
  /** Answers that came for no call in flight (after its deadline or cancel, duplicated, or not ours). */
  droppedAnswers = 0;
  /** Told when the calls of a connection are failed because it is gone (the work it sent ends too). */
  onLost: ((connection: Connection) => void) | undefined;

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
      cancelled: (call, reason) => this.cancel(call, reason),
    });
    this.#streams = new OutgoingStreams(settings, {
      framing, outbox, connections, pending: this.#pending,
      credit: (connection, id, body) => this.#control(connection, MessageType.STREAM_CREDIT, id, body),
      cancel: (call, reason) => this.cancel(call, reason),
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
  invoke(target: Connection | Error, name: string, args: unknown[], options: CallOptions = NO_OPTIONS, oneWay = false): Promise<unknown> {
    if (this.#settings.outgoing.length === 0 || target instanceof Error) return this.#send(target, name, args, options, oneWay);
    const call: InterceptedCall = {
      method: name,
      args,
      direction: 'outgoing',
      identity: target.identity,
      deadline: Date.now() + this.#timeoutFor(options),
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

  /**
   * Calls `name` for a streamed result: the items arrive as the producer sends them, never more
   * than the window ahead. A caller that is not a zeropeer peer answers with one list: its items.
   */
  stream<T>(target: Connection | Error, name: string, args: unknown[], options: StreamOptions = {}): CallStream<T> {
    return this.#streams.open<T>(name, options, (request) => this.#send(target, name, args, options, false, request));
  }

  /** One item of a stream this peer consumes. */
  streamItem(connection: Connection, id: MessageId, value: unknown, bytes: number): void {
    if (!this.#streams.item(connection, id, value, bytes)) this.droppedAnswers++;
  }

  /** The end of a stream this peer consumes. */
  streamEnd(connection: Connection, id: MessageId, body: StreamEndBody): void {
    this.#streams.end(connection, id, body);
  }

  /** A small message about call `id` (CANCEL, STREAM_CREDIT), zeropeer peers only. */
  #control(connection: Connection, type: typeof MessageType.CANCEL | typeof MessageType.STREAM_CREDIT, id: number, body: unknown): void {
    if (connection.framing !== 'compact') return;
    let frames: Buffer[];
    try {
      frames = encodeMessage(this.#framing, 'compact', connection.routingId, type, id, body);
    } catch {
      return; // strings and numbers always encode
    }
    this.#outbox.sendNow(connection.key, frames, CONTROL_HOOKS);
  }

  /**
   * {@link invoke}, settled through `settle` instead of a promise: a call a relay makes for its own
   * caller (cluster forwarding), which hands the outcome on and needs no promise of its own. False,
   * with nothing sent or settled, when this peer has outgoing interceptors (they take and return
   * promises): use {@link invoke} then.
   */
  relay(target: Connection | Error, name: string, args: unknown[], options: CallOptions, oneWay: boolean, settle: RelaySettle): boolean {
    if (this.#settings.outgoing.length > 0) return false;
    this.#send(target, name, args, options, oneWay, undefined, settle);
    return true;
  }

  #send(target: Connection | Error, name: string, args: unknown[], options: CallOptions, oneWay: boolean): Promise<unknown>;
  #send(target: Connection | Error, name: string, args: unknown[], options: CallOptions, oneWay: boolean, stream: StreamRequest): PendingCall | Promise<unknown>;
  #send(target: Connection | Error, name: string, args: unknown[], options: CallOptions, oneWay: boolean, stream: undefined, settle: RelaySettle): undefined;
  #send(target: Connection | Error, name: string, args: unknown[], options: CallOptions, oneWay: boolean, stream?: StreamRequest, settle?: RelaySettle): PendingCall | Promise<unknown> | undefined {
    const { peerId } = this.#settings;
    if (this.#closed) return failed(settle, new ServiceClosedError(`peer "${peerId}" is stopped; "${name}" was not sent`));
    if (target instanceof Error) return failed(settle, target);
    if (typeof name !== 'string' || name.length === 0) return failed(settle, new TypeError('a call needs a function name'));
    if (!Array.isArray(args)) return failed(settle, new TypeError('args must be an array'));
    const { signal } = options;
    if (signal?.aborted) return failed(settle, cancelledError(name, signal.reason));
    if (settle?.scope?.aborted) return failed(settle, cancelledError(name, settle.scope.reason));
    if (this.#pending.full) {
      return failed(settle, new RpcError(`too many calls in flight (maxPendingCalls = ${this.#pending.limit}); "${name}" was not sent`));
    }
    let timeoutMs: number;
    let frames: Buffer[] | undefined;
    let slots: number[] | undefined;
    let ready: boolean;
    const id = this.#framing.ids.next();
    const kwargs = options.kwargs && Object.keys(options.kwargs).length > 0 ? options.kwargs : undefined;
    const metadata = options.metadata && Object.keys(options.metadata).length > 0 ? options.metadata : undefined;
    let wireTimeoutMs: number | undefined;
    try {
      timeoutMs = stream ? streamTimeout(stream.deadline) : positive(options.timeoutMs, 'timeoutMs', this.#settings.timeoutMs);
      const inherited = inheritedDeadline(options);
      if (inherited !== undefined) {
        // Called from a handler with its ctx.signal: never wait past the deadline of the caller's caller.
        const left = inherited - Date.now();
        if (left <= 0) throw new TimeoutError(`"${name}" was not sent: the deadline it inherits passed`);
        timeoutMs = Math.min(timeoutMs, left);
      }
      // A stream without a deadline says none: each item has its own wait, the whole has no end.
      wireTimeoutMs = stream && stream.deadline === undefined && inherited === undefined ? undefined : timeoutMs;
      slots = streamSlots(args);
      if (slots && oneWay) throw new EncodingError(`"${name}": a one-way call cannot stream an argument (nobody would grant it credit)`);
      // Encode now, so that a value that cannot be sent fails here and nothing is queued (stream
      // arguments need the framing, known once the connection is ready: encoded when sent).
      ready = this.#role!.ready(target);
      if (ready || !slots) frames = this.#encode(target, oneWay ? 0 : id, name, args, kwargs, metadata, wireTimeoutMs, stream?.window, slots ?? null);
    } catch (error) {
      return failed(settle, error as Error);
    }
    const errorTable = options.errorTable ? { ...this.#settings.errorTable, ...options.errorTable } : this.#settings.errorTable;
    const call = new PendingCall(this.#pending, id, target.key, name, args, kwargs, metadata, errorTable, timeoutMs, oneWay);
    if (slots) call.argStreams = this.#streams.argProducers(call, slots);
    if (stream) {
      attachStream(call, stream, wireTimeoutMs, signal);
      this.#start(call, target, ready ? frames : undefined);
      return call;
    }
    if (settle) {
      call.bind(settle.resolve, settle.reject, signal);
      settle.scope?.relay(call);
      this.#start(call, target, ready ? frames : undefined);
      return undefined;
    }
    // The call site, captured now and formatted only if the call fails. Capturing costs a few µs
    // per call (a third of the throughput at 64 in flight), hence opt-in.
    let site: { stack?: string } | undefined;
    if (this.#settings.callSites) Error.captureStackTrace((site = {}));
    const promise = new Promise<unknown>((resolve, reject) => call.bind(resolve, reject, signal, site));
    this.#start(call, target, ready ? frames : undefined);
    return promise;
  }

  /** A call made: in the table, counted, and sent now if its frames are ready (else when its connection is). */
  #start(call: PendingCall, target: Connection, frames: Buffer[] | undefined): void {
    this.#pending.add(call);
    this.#settings.counters.callsOut++;
    if (frames) this.#hand(target, call, frames);
  }

  /** The callee granted (or acknowledged, or refused with [0, 0]) credit for argument `slot` of call `id`. */
  argCredit(connection: Connection, id: MessageId, slot: number, items: number, bytes: number): void {
    this.#streams.argCredit(connection, id, slot, items, bytes);
  }

  #timeoutFor(options: CallOptions): number {
    const timeoutMs = options.timeoutMs ?? this.#settings.timeoutMs;
    const inherited = inheritedDeadline(options);
    return inherited === undefined ? timeoutMs : Math.min(timeoutMs, inherited - Date.now());
  }

  #encode(target: Connection, id: number, name: string, args: unknown[], kwargs: Record<string, unknown> | undefined,
    metadata: Readonly<Record<string, string>> | undefined, timeoutMs: number | undefined, window?: StreamWindow, knownSlots?: number[] | null): Buffer[] {
    // Id 0: one-way (an empty id in v1); a one-way call has nobody waiting, hence no deadline to send.
    const wireId = id === 0 ? (target.framing === 'v1' ? Buffer.alloc(0) : 0) : id;
    // The caller looked for streamed arguments already (null: none); a call sent later looks again.
    const slots = knownSlots === undefined ? streamSlots(args) : knownSlots ?? undefined;
    if (slots && target.framing !== 'compact') {
      throw new EncodingError(`"${name}": an AsyncIterable argument is streamed to zeropeer peers only (this peer speaks pseud v1)`);
    }
    const wireArgs = slots ? args.map((arg, index) => (slots.includes(index) ? null : arg)) : args;
    const body = workBody(target.framing, name, wireArgs, kwargs, metadata, id === 0 ? undefined : timeoutMs, window, slots);
    return encodeWithin(this.#framing, target.framing, target.routingId, MessageType.WORK, wireId, body, `call "${name}"`);
  }

  /**
   * The caller's signal aborted: the call rejects at once with CancelledError; if it went out to a
   * zeropeer peer, a CANCEL tells the handler there. A call not sent yet is never sent.
   */
  cancel(call: PendingCall, reason: unknown): void {
    this.#pending.reject(call.id, cancelledError(call.name, reason));
    const connection = this.#connections.byKey(call.connectionKey);
    if (!call.sent || call.oneWay || !connection) return;
    this.#control(connection, MessageType.CANCEL, call.id, describeReason(reason));
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
        const left = call.stream && call.wireTimeoutMs === undefined ? undefined : Math.max(1, call.deadline - Date.now());
        frames = this.#encode(connection, call.oneWay ? 0 : call.id, call.name, call.args, call.kwargs, call.metadata, left, call.streamWindow);
      } catch (error) {
        this.#pending.reject(call.id, error as Error);
        continue;
      }
      this.#hand(connection, call, frames);
    }
  }

  /** Rejects the calls sent on `connection` (not the ones still waiting to be sent). */
  rejectSent(connection: Connection, makeError: (name: string) => Error): void {
    this.#pending.rejectOn(connection.key, (call) => call.sent, (call) => lostError(call, makeError));
    this.#pending.release(connection.key);
    this.onLost?.(connection);
  }

  /** Rejects every call for `connection`, sent or waiting. */
  rejectAll(connection: Connection, makeError: (name: string) => Error): void {
    this.#pending.rejectOn(connection.key, () => true, (call) => lostError(call, makeError));
    this.#pending.release(connection.key);
    this.onLost?.(connection);
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
      // Late (after a deadline or a cancel), duplicated, or not ours: never let one peer settle another's call.
      this.droppedAnswers++;
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
