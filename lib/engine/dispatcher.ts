/**
 * Incoming work: identity -> lookup (predicates applied) -> interceptors -> handler -> one answer,
 * in the framing the call came in, only to the connection that asked.
 */
import { PeerCounters } from './counters.js';
import { BusyError, ServiceClosedError, ServiceNotFoundError, errorToWire, type ErrorClass } from '../errors.js';
import type { LogContext, Logger } from '../logger.js';
import { domainAllows, type Predicate } from '../predicates.js';
import { RESERVED_PREFIX, type FunctionInfo, type Registration, type Registry } from '../registry.js';
import { MessageType, isOneWayId, type Framing, type Message, type MessageId, type MessageTypeCode } from '../wire/messages.js';
import type { Connection } from './connection.js';
import { wrap, type InterceptedCall, type Interceptor } from './interceptors.js';
import type { Builtin, Role } from './role.js';
import { runWork, type Responder, type Work, type WorkHooks } from './work.js';

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
}

/** What the dispatcher needs of the session it serves. */
export interface DispatcherHost {
  /** Whether work is taken now (started, not stopping). */
  serving(): boolean;
  /** Encodes and sends one message; returns the error when it could not be encoded, else undefined. */
  send(connection: Connection, framing: Framing, type: MessageTypeCode, id: MessageId, body: unknown, what: string): Error | undefined;
  /** Whether `connection`, as of `epoch`, is still the one its routing id reaches. */
  stillThere(connection: Connection, epoch: number): boolean;
  /** Aborts when the peer stops: what incoming interceptors see as the call's signal. */
  readonly stopping: AbortSignal;
  context(connection: Connection): LogContext;
  /** A warning the peer on `connection` can cause at will (rate-limited per peer). */
  warn(connection: Connection, message: string): void;
}

export class Dispatcher {
  readonly #settings: DispatcherSettings;
  readonly #host: DispatcherHost;
  readonly #hooks: WorkHooks;
  #role: Role | undefined;
  #builtins: Readonly<Record<string, Builtin>> | undefined;
  #running = 0;
  readonly #runningBy = new Map<string, number>();
  #drained: (() => void) | undefined;

  constructor(settings: DispatcherSettings, host: DispatcherHost) {
    this.#settings = settings;
    this.#host = host;
    this.#hooks = {
      running: (work) => {
        this.#running++;
        const key = work.connectionKey;
        this.#runningBy.set(key, (this.#runningBy.get(key) ?? 0) + 1);
        return () => this.#handlerDone(key);
      },
      rawReplyTimeoutMs: settings.rawReplyTimeoutMs,
      logFailure: (name, error) =>
        settings.logger.error(`one-way "${name}" failed`, { peer: settings.peerId, name, error: error instanceof Error ? error.stack : String(error) }),
    };
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

  #handlerDone(key: string): void {
    this.#running--;
    const left = (this.#runningBy.get(key) ?? 1) - 1;
    if (left === 0) this.#runningBy.delete(key);
    else this.#runningBy.set(key, left);
    if (this.#running === 0 && this.#drained) {
      this.#drained();
      this.#drained = undefined;
    }
  }

  /** One WORK message from `connection`. */
  work(connection: Connection, message: Extract<Message, { type: 0x03 }>): void {
    const { framing, id, body } = message;
    const oneWay = isOneWayId(id);
    const role = this.#role!;
    const identity = role.workIdentity(connection);
    if (identity === undefined) {
      if (!oneWay) this.#host.send(connection, framing, MessageType.UNAUTHORIZED, id, 'authentication required', 'UNAUTHORIZED');
      else this.#host.warn(connection, 'one-way work from an unauthenticated peer dropped');
      return;
    }
    this.#settings.counters.callsIn++;
    const responder = oneWay ? this.#oneWayResponder(connection, body.name) : new CallResponder(this, connection, connection.epoch, framing, id, body.name);
    if (!this.#host.serving()) {
      responder.fail(new ServiceClosedError(`peer "${this.#settings.peerId}" is stopping`));
      return;
    }
    const { maxRunning, maxRunningPerConnection } = this.#settings;
    if (this.#running >= maxRunning || (this.#runningBy.get(connection.key) ?? 0) >= maxRunningPerConnection) {
      // Bounded work: a peer that floods us with slow calls is told to come back later, and costs nothing more.
      responder.fail(new BusyError(`"${this.#settings.peerId}" is busy: ${this.#running >= maxRunning ? `${maxRunning} handlers running` : `${maxRunningPerConnection} handlers running for this connection`}; retry later`));
      return;
    }
    const work: Work = {
      name: body.name, args: body.args, kwargs: body.kwargs, metadata: body.metadata, identity, address: connection.address,
      connectionKey: connection.key, signal: this.#host.stopping, responder,
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
      deadline: undefined,
      signal: this.#host.stopping,
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
  #oneWayResponder(connection: Connection, name: string): Responder {
    const { logger } = this.#settings;
    const context = (): LogContext => this.#host.context(connection);
    return {
      sent: false,
      ok() {
        this.sent = true;
      },
      fail(error) {
        if (this.sent) return;
        this.sent = true;
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

/** The answer of a normal call: OK or ERROR, once, in the framing the call came in. */
class CallResponder implements Responder {
  sent = false;

  constructor(
    readonly dispatcher: Dispatcher,
    readonly connection: Connection,
    readonly epoch: number,
    readonly framing: Framing,
    readonly id: MessageId,
    readonly name: string,
  ) {}

  ok(value: unknown): void {
    if (this.sent) return;
    this.sent = true;
    this.dispatcher.answerOk(this, value);
  }

  fail(error: unknown): void {
    if (this.sent) return;
    this.sent = true;
    this.dispatcher.answerError(this, error);
  }
}
