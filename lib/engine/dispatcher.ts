/**
 * Incoming work: identity -> lookup (predicates applied) -> interceptors -> handler -> one answer,
 * in the framing the call came in, only to the connection that asked.
 */
import { PeerCounters } from './counters.js';
import { BusyError, CancelledError, PeerNotConnectedError, ProtocolError, ServiceClosedError, ServiceNotFoundError, errorToWire, type ErrorClass } from '../errors.js';
import type { LogContext, Logger } from '../logger.js';
import { KeptMap, type Kept } from '../kept-map.js';
import { domainAllows, type Predicate } from '../predicates.js';
import { RESERVED_PREFIX, type FunctionInfo, type Registration, type Registry } from '../registry.js';
import { COMPACT_CAPABILITY, MessageType, PROBE, isOneWayId, type ErrorBody, type Framing, type Message, type MessageId, type MessageTypeCode } from '../wire/messages.js';
import { CallScope } from './call-scope.js';
import { CallResponder, type ResponderOwner } from './call-responder.js';
import { IdTable } from './id-table.js';
import { IncomingStreams } from './incoming-streams.js';
import { RateLimiter, type RateLimit } from './rate-limit.js';
import type { Connection } from './connection.js';
import { wrap, type InterceptedCall, type Interceptor } from './interceptors.js';
import type { Builtin, Role } from './role.js';
import type { StreamWindow } from './streams.js';
import { runWork, type Responder, type Work, type WorkHooks } from './work.js';

/** Handlers running for one connection (see Dispatcher.#runningBy). */
interface RunningCount extends Kept {
  count: number;
}

export interface DispatcherSettings {
  readonly peerId: string;
  readonly registry: Registry;
  readonly predicates: Readonly<Record<string, Predicate>> | undefined;
  readonly logger: Logger;
  readonly logExceptions: boolean;
  readonly excludeLogExceptions: readonly ErrorClass[];
  readonly sendStacks: boolean;
  /** How long a raw handler may take to reply, in ms. */
  readonly rawReplyTimeoutMs: number;
  readonly incoming: readonly Interceptor[];
  /** Most handlers running at once for one connection; past it, work is refused with BusyError. */
  readonly maxRunningPerConnection: number;
  /** Most handlers running at once in all; past it, work is refused with BusyError. */
  readonly maxRunning: number;
  readonly counters: PeerCounters;
  /** The window this peer grants the caller's argument streams. */
  readonly streamWindow: StreamWindow;
  /** Work one connection may start per second; past it, refused with BusyError (one-way: dropped). */
  readonly rateLimit: RateLimit | undefined;
}

/** What the dispatcher needs of the session it serves. */
export interface DispatcherHost {
  /** Whether work is taken now (started, not stopping). */
  serving(): boolean;
  /** Encodes and sends one message; returns the error when it could not be encoded, else undefined. */
  send(connection: Connection, framing: Framing, type: MessageTypeCode, id: MessageId, body: unknown, what: string): Error | undefined;
  /** The same, for a stream's items: returns the message's size in bytes, or why it was not sent. */
  sendSized(connection: Connection, framing: Framing, type: MessageTypeCode, id: MessageId, body: unknown, what: string): number | Error;
  /** The encoded size of a value, in bytes (to bound a stream gathered into one list). */
  sizeOf(value: unknown, framing: Framing): number;
  readonly maxMessageBytes: number;
  /** Whether `connection`, as of `epoch`, is still the one its routing id reaches. */
  stillThere(connection: Connection, epoch: number): boolean;
  /** Aborts when the peer stops: what incoming interceptors see as the call's signal. */
  readonly stopping: AbortSignal;
  context(connection: Connection): LogContext;
  /** A warning the peer on `connection` can cause at will (rate-limited per peer). */
  warn(connection: Connection, message: string): void;
}

/**
 * A compact call's answer: its id is a number. Kept in an IdTable, not a Map: a Map filled and
 * emptied with every batch of calls is replaced as it grows and shrinks (see IdTable): profiled,
 * ~3 % of a relaying node's time at 512 calls in flight.
 */
type NumberedResponder = CallResponder & { readonly id: number };

export class Dispatcher implements ResponderOwner {
  readonly #settings: DispatcherSettings;
  readonly #host: DispatcherHost;
  readonly #hooks: WorkHooks;
  #role: Role | undefined;
  #builtins: Readonly<Record<string, Builtin>> | undefined;
  #running = 0;
  readonly #runningBy = new KeptMap<RunningCount>((running) => running.count === 0);
  /** Compact calls still running, per connection then id: CANCEL, stream messages and a departure find them at once. */
  readonly #cancellable = new Map<Connection, IdTable<NumberedResponder>>();
  #drained: (() => void) | undefined;
  readonly #rateLimiter: RateLimiter | undefined;
  readonly #streams: IncomingStreams;

  constructor(settings: DispatcherSettings, host: DispatcherHost) {
    this.#settings = settings;
    this.#host = host;
    this.#rateLimiter = settings.rateLimit && new RateLimiter(settings.rateLimit);
    this.#hooks = {
      running: (work) => this.#runningFor(work.connectionKey),
      rawReplyTimeoutMs: settings.rawReplyTimeoutMs,
      logFailure: (name, error) =>
        settings.logger.error(`one-way "${name}" failed`, { peer: settings.peerId, name, error: error instanceof Error ? error.stack : String(error) }),
    };
    this.#streams = new IncomingStreams(settings, {
      host,
      runningCall: (connection, id) => this.#runningCall(connection, id),
      runningFor: (key) => this.#runningFor(key),
      settled: (answer) => this.settled(answer),
      logFailure: (connection, name, error) => this.#logFailure(connection, name, error),
    });
  }

  set role(role: Role) {
    this.#role = role;
  }

  /** Handlers still running (stop() drains them; remote shutdown waits for them). */
  get running(): number {
    return this.#running;
  }

  /** Resolves once no handler runs, or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void> {
    if (this.#running === 0 || timeoutMs <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Counts a handler (or a stream's producer) running for a connection; call what it returns when it ends. */
  #runningFor(key: string): () => void {
    this.#running++;
    // A count at 0 stays (a client making one call at a time would add and delete its entry per
    // call: see KeptMap for what that costs).
    const running = this.#runningBy.get(key) ?? this.#runningBy.add(key, { count: 0, used: true });
    running.count++;
    return () => this.#handlerDone(running);
  }

  #handlerDone(running: RunningCount): void {
    this.#running--;
    running.count--;
    if (this.#running === 0 && this.#drained) {
      this.#drained();
      this.#drained = undefined;
    }
  }

  /** One WORK message from `connection`. */
  work(connection: Connection, message: Extract<Message, { type: 0x03 }>): void {
    const { framing, id, body } = message;
    const oneWay = isOneWayId(id);
    if (body.name === PROBE && !oneWay) {
      // A client asks what this server is, before it authenticates: nothing but the capabilities.
      this.#host.send(connection, framing, MessageType.OK, id, COMPACT_CAPABILITY, 'OK');
      return;
    }
    if (this.#rateLimiter && !this.#rateLimiter.take(connection)) {
      this.#host.warn(connection, 'rate limit: work refused');
      if (!oneWay) this.refuse(connection, framing, id, new BusyError(`over the rate limit of ${this.#settings.rateLimit!.perSecond} calls/s: try again later`));
      return;
    }
    const role = this.#role!;
    const identity = role.workIdentity(connection);
    if (identity === undefined) {
      if (!oneWay) this.#host.send(connection, framing, MessageType.UNAUTHORIZED, id, 'authentication required', 'UNAUTHORIZED');
      else this.#host.warn(connection, 'one-way work from an unauthenticated peer dropped');
      return;
    }
    this.#settings.counters.callsIn++;
    const scope = new CallScope(this.#host.stopping, body.timeoutMs === undefined ? undefined : Date.now() + body.timeoutMs);
    let responder: Responder;
    if (oneWay) {
      responder = this.#oneWayResponder(connection, body.name, scope);
    } else {
      const answer = new CallResponder(this, connection, connection.epoch, framing, id, body.name, scope);
      answer.window = framing === 'compact' ? body.stream : undefined;
      if (framing === 'compact' && typeof id === 'number') {
        let running = this.#cancellable.get(connection);
        if (!running) this.#cancellable.set(connection, (running = new IdTable<NumberedResponder>()));
        running.set(answer as NumberedResponder);
        answer.cancellable = true;
      }
      responder = answer;
    }
    if (!this.#host.serving()) {
      responder.fail(new ServiceClosedError(`peer "${this.#settings.peerId}" is stopping`));
      return;
    }
    const { maxRunning, maxRunningPerConnection } = this.#settings;
    if (this.#running >= maxRunning || (this.#runningBy.peek(connection.key)?.count ?? 0) >= maxRunningPerConnection) {
      // Bounded work: a peer that floods us with slow calls is told to come back later, and costs nothing more.
      responder.fail(new BusyError(`"${this.#settings.peerId}" is busy: ${this.#running >= maxRunning ? `${maxRunning} handlers running` : `${maxRunningPerConnection} handlers running for this connection`}; retry later`));
      return;
    }
    let args = body.args;
    if (body.argStreams) {
      if (!(responder instanceof CallResponder) || !responder.cancellable) {
        responder.fail(new ProtocolError('argument streams need a call in compact framing that wants an answer'));
        return;
      }
      args = this.#streams.argStreams(responder, body.argStreams, args);
    }
    const work: Work = {
      name: body.name, args, kwargs: body.kwargs, metadata: body.metadata, identity, address: connection.address,
      connectionKey: connection.key, scope, responder,
    };
    if (work.name.startsWith(RESERVED_PREFIX)) {
      this.#runBuiltin(connection, work);
      return;
    }
    const registration = this.lookup(work.name, identity);
    if (registration) this.run(registration, work);
    else if (!role.forward(connection, work)) responder.fail(new ServiceNotFoundError(`no function "${work.name}" is available`));
  }

  /** Runs one unit of work with a registration, through the incoming interceptors. */
  run(registration: Registration, work: Work): void {
    const interceptors = this.#settings.incoming;
    if (interceptors.length === 0) {
      runWork(registration, work, this.#hooks);
      return;
    }
    const call: InterceptedCall = {
      method: work.name,
      args: work.args,
      direction: 'incoming',
      identity: work.identity,
      deadline: work.scope.deadline,
      signal: work.scope.signal,
      metadata: { ...work.metadata },
    };
    const last = (c: InterceptedCall): Promise<unknown> => new Promise((resolve, reject) => {
      const settle: Responder = {
        sent: false,
        ok(value) {
          this.sent = true;
          resolve(value);
        },
        fail(error) {
          this.sent = true;
          reject(error);
        },
      };
      runWork(registration, { ...work, args: c.args, metadata: c.metadata, responder: settle }, this.#hooks);
    });
    let outcome: Promise<unknown>;
    try {
      outcome = wrap(interceptors, last)(call);
    } catch (error) {
      outcome = Promise.reject(error);
    }
    outcome.then((value) => work.responder.ok(value), (error: unknown) => work.responder.fail(error));
  }

  /**
   * The caller cancelled its call `id` (CANCEL): the handler's signal aborts, and whatever it still
   * answers is dropped. Work not started yet never starts. An unknown id (answered already) is ignored.
   */
  cancel(connection: Connection, id: MessageId, reason: string): void {
    if (typeof id !== 'number') return;
    const answer = this.#runningCall(connection, id);
    if (!answer) return;
    this.#forget(answer);
    answer.sent = true; // nobody waits for the answer any more
    answer.producer?.stop(); // the caller stopped reading: no end to send
    const error = new CancelledError(`the caller cancelled "${answer.name}"${reason ? `: ${reason}` : ''}`);
    answer.endInputs(error);
    answer.scope.abort(error);
  }

  /** An item of argument stream `slot` of the call `id` from `connection`. */
  argItem(connection: Connection, id: MessageId, slot: number, value: unknown, bytes: number): void {
    this.#streams.argItem(connection, id, slot, value, bytes);
  }

  /** The end of argument stream `slot` of the call `id` (with the error the caller's iterable threw). */
  argEnd(connection: Connection, id: MessageId, slot: number, error: ErrorBody | undefined): void {
    this.#streams.argEnd(connection, id, slot, error);
  }

  /** The caller of `id` consumed items of its stream: its producer may send more. */
  credit(connection: Connection, id: MessageId, items: number, bytes: number): void {
    this.#streams.credit(connection, id, items, bytes);
  }

  /** The compact call `id` of `connection` still running, if any. */
  #runningCall(connection: Connection, id: MessageId): CallResponder | undefined {
    return typeof id === 'number' ? this.#cancellable.get(connection)?.get(id) : undefined;
  }

  #forget(answer: CallResponder): void {
    answer.cancellable = false;
    const running = this.#cancellable.get(answer.connection);
    if (!running) return;
    // A repeated id may have replaced this answer in the table: leave the newer one there.
    if (running.get(answer.id as number) === answer) running.delete(answer.id as number);
    // An empty table stays until the connection is lost: a busy connection empties it after each
    // batch of answers, and making it again each time cost ~7 % of a responder's time at 64 in flight.
  }

  /** `connection` is gone: its work is abandoned (signals abort) and its streams end. */
  connectionLost(connection: Connection): void {
    this.#runningBy.release(connection.key); // when none runs (else it goes at a sweep)
    const running = this.#cancellable.get(connection);
    if (!running) return;
    this.#cancellable.delete(connection);
    for (const answer of running.values()) {
      answer.cancellable = false;
      answer.sent = true;
      const error = new PeerNotConnectedError(`"${connection.identity ?? connection.address}" went away during "${answer.name}"`);
      answer.producer?.stop();
      answer.endInputs(error);
      answer.scope.abort(error);
    }
  }

  /** A handler returned an AsyncIterable: streamed, or gathered into one list (IncomingStreams). */
  streamResult(answer: CallResponder, iterable: AsyncIterable<unknown>): void {
    this.#streams.result(answer, iterable);
  }

  /** An answer goes out (or was dropped): the call can no longer be cancelled. */
  settled(answer: CallResponder): void {
    if (answer.cancellable) this.#forget(answer);
    answer.endInputs(undefined);
    answer.scope.end();
  }

  /** The registration `identity` gets for `name`, predicates applied. */
  lookup(name: string, identity: string): Registration | undefined {
    return this.#settings.registry.lookup(name, (domain) => this.#allows(domain, identity));
  }

  #allows(domain: string, identity: string): boolean {
    return domainAllows(domain, identity, this.#settings.predicates, (error) =>
      this.#settings.logger.error(`predicate of domain "${domain}" threw`, { peer: this.#settings.peerId, identity, error: (error as Error)?.message }));
  }

  #runBuiltin(connection: Connection, work: Work): void {
    this.#builtins ??= { '_zeropeer.inspect': (_connection, w) => w.responder.ok(this.inspectFor(w.identity)), ...this.#role!.builtins };
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
  inspectFor(identity: string): FunctionInfo[] {
    const names = new Set<string>();
    for (const registration of this.#settings.registry.registrations()) names.add(registration.name);
    const visible: FunctionInfo[] = [];
    for (const name of [...names].sort()) {
      const registration = this.lookup(name, identity);
      if (!registration) continue;
      visible.push({ name, ...(registration.description !== undefined ? { description: registration.description } : {}), params: [...registration.paramNames] });
    }
    return visible;
  }

  /** One-way work answers nobody: a failure is logged, a result dropped. */
  #oneWayResponder(connection: Connection, name: string, scope: CallScope): Responder {
    const { logger } = this.#settings;
    const context = (): LogContext => this.#host.context(connection);
    // The work is over when it settles, as a call's is when it answers: its scope ends (else a
    // scope whose signal was asked for, or that relays a call, stays armed until this peer stops).
    return {
      sent: false,
      ok() {
        this.sent = true;
        scope.end();
      },
      fail(error) {
        if (this.sent) return;
        this.sent = true;
        scope.end();
        logger.error(`one-way "${name}" failed`, { ...context(), name, error: error instanceof Error ? error.stack : String(error) });
      },
    };
  }

  /** Sends a result; one that cannot be sent becomes an ERROR saying why. */
  answerOk(r: CallResponder, value: unknown): void {
    if (!this.#host.stillThere(r.connection, r.epoch)) return;
    const failure = this.#host.send(r.connection, r.framing, MessageType.OK, r.id, value, `the result of "${r.name}"`);
    if (failure) this.#sendError(r.connection, r.framing, r.id, failure);
  }

  answerError(r: CallResponder, error: unknown): void {
    this.#logFailure(r.connection, r.name, error);
    if (this.#host.stillThere(r.connection, r.epoch)) this.#sendError(r.connection, r.framing, r.id, error);
  }

  #sendError(connection: Connection, framing: Framing, id: MessageId, error: unknown): void {
    PeerCounters.count(this.#settings.counters.failedIn, error);
    this.#host.send(connection, framing, MessageType.ERROR, id, errorToWire(error, this.#settings.sendStacks, framing), 'an ERROR');
  }

  /** Answers a message that could not be read, when it was work (answers are never answered). */
  refuse(connection: Connection, framing: Framing, id: MessageId, error: Error): void {
    this.#sendError(connection, framing, id, error);
  }

  #logFailure(connection: Connection, name: string, error: unknown): void {
    const { logExceptions, excludeLogExceptions, logger } = this.#settings;
    if (logExceptions && !excludeLogExceptions.some((Class) => error instanceof Class)) {
      logger.error(`handler "${name}" threw`, { ...this.#host.context(connection), name, error: error instanceof Error ? error.stack : String(error) });
    }
  }
}

