/**
 * Running one unit of incoming work: arguments (keyword arguments, identity, validators), the
 * handler (plain, raw with a reply channel, or one-way), and the one answer it gets.
 */
import { CancelledError, NackError, ParameterError, TimeoutError } from '../errors.js';
import type { Registration } from '../registry.js';
import { callStorage, scopeOf, type CallScope } from './call-scope.js';

/** Sends the one answer a unit of work gets; later attempts are ignored. */
export interface Responder {
  sent: boolean;
  ok(value: unknown): void;
  fail(error: unknown): void;
}

/** One incoming call, ready to run. */
export interface Work {
  readonly name: string;
  readonly args: unknown[];
  readonly kwargs: Record<string, unknown> | undefined;
  readonly identity: string;
  /** Where the call came from, as this side can tell (the routing id). */
  readonly address: string;
  /** The key of the connection it came on (running handlers are counted per connection). */
  readonly connectionKey: string;
  /** Per-call metadata the caller sent (compact framing). */
  readonly metadata: Readonly<Record<string, string>> | undefined;
  /** The deadline the caller sent, and the signal that aborts on a cancel, the deadline or a stop. */
  readonly scope: CallScope;
  readonly responder: Responder;
}

/**
 * What a registration with `withContext: true` gets as its first argument.
 *
 * @example
 * server.registerRpc('whoami', (ctx: CallContext) => ctx.identity, { withContext: true });
 */
export interface CallContext {
  /** The caller's authenticated identity. */
  readonly identity: string;
  /** The dotted name called. */
  readonly method: string;
  /** Per-call metadata the caller sent (empty from pseud peers). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Where the call came from (the connection's routing id). */
  readonly address: string;
  /** When the caller stops waiting, epoch ms; undefined when not known (pseud callers, one-way calls). */
  readonly deadline: number | undefined;
  /**
   * Aborts when the caller cancels (reason: CancelledError), the deadline passes (TimeoutError) or
   * this peer stops (ServiceClosedError). Pass it on, `{ signal: ctx.signal }`, and a call made from
   * the handler inherits both the cancel and the deadline.
   */
  readonly signal: AbortSignal;
}

const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

/** The context of one running call; the signal is made only when asked for. */
class Context implements CallContext {
  readonly identity: string;
  readonly method: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly address: string;
  readonly #scope: CallScope;

  constructor(work: Work) {
    this.identity = work.identity;
    this.method = work.name;
    this.metadata = work.metadata ?? NO_METADATA;
    this.address = work.address;
    this.#scope = work.scope;
  }

  get deadline(): number | undefined {
    return this.#scope.deadline;
  }

  get signal(): AbortSignal {
    return this.#scope.signal;
  }

  /** @internal for relayOptions() (call-scope.ts). */
  get [scopeOf](): CallScope {
    return this.#scope;
  }
}

/** Calls the handler inside its context, so that currentCall() finds it. */
function callHandler(registration: Registration, context: CallContext, args: unknown[]): unknown {
  return callStorage.run(context, registration.handler, ...args);
}

/** What the engine lends to a running handler. */
export interface WorkHooks {
  /** Counts a handler still running, for stop()'s drain; call the returned function when it ends. */
  running(work: Work): () => void;
  /** How long a raw handler may take to reply, in ms. */
  readonly rawReplyTimeoutMs: number;
  /** Logs what a handler threw when nobody is waiting for the answer (one-way registrations). */
  logFailure(name: string, error: unknown): void;
}

/** Options of one reply on a channel (lymph's `unless_reply_sent`). */
export interface ReplyOptions {
  /** Do nothing (instead of throwing) when a reply was already sent. */
  unlessReplySent?: boolean;
}

/**
 * The reply channel a raw handler gets (lymph's raw_rpc): it answers when it likes, once.
 *
 * @example
 * server.registerRpc('jobs.submit', (channel, job) => { queue.push(job, () => channel.ack()); }, { raw: true });
 */
export class ReplyChannel {
  /** The caller's authenticated identity. */
  readonly identity: string;
  /** Where the call came from (PyMargo's handle.address): the connection's routing id. */
  readonly address: string;
  readonly #responder: Responder;

  /** @internal made by the dispatcher for a raw handler. */
  constructor(identity: string, address: string, responder: Responder) {
    this.identity = identity;
    this.address = address;
    this.#responder = responder;
  }

  /** Whether an answer went out already. */
  get replySent(): boolean {
    return this.#responder.sent;
  }

  /** Answers with a result. */
  reply(value: unknown, options?: ReplyOptions): void {
    if (this.#check(options)) this.#responder.ok(value);
  }

  /** Acknowledges without a result: the caller's promise resolves to undefined. */
  ack(options?: ReplyOptions): void {
    if (this.#check(options)) this.#responder.ok(undefined);
  }

  /** Refuses the work: the caller's promise rejects with NackError. */
  nack(options?: ReplyOptions): void {
    if (this.#check(options)) this.#responder.fail(new NackError('the handler refused the work (nack)'));
  }

  /** Answers with an error: the caller's promise rejects with it (RemoteError for classes it does not know). */
  error(error: unknown, options?: ReplyOptions): void {
    if (this.#check(options)) this.#responder.fail(error);
  }

  #check(options: ReplyOptions | undefined): boolean {
    if (!this.#responder.sent) return true;
    if (options?.unlessReplySent) return false;
    throw new Error('a reply was already sent on this channel');
  }
}

/** Runs validators over the arguments; throws ParameterError naming the first that fails. */
function validateArgs(registration: Registration, args: unknown[]): unknown[] {
  const { params, paramNames } = registration;
  if (!params) return args;
  if (args.length > params.length) {
    throw new ParameterError(`"${registration.name}" takes at most ${params.length} arguments, got ${args.length}`);
  }
  return params.map((validate, index) => {
    const parameter = paramNames[index] ?? `#${index}`;
    try {
      return validate(args[index]);
    } catch (error) {
      const failure = new ParameterError(`invalid argument "${parameter}" of "${registration.name}": ${(error as Error)?.message ?? String(error)}`);
      failure.parameter = parameter;
      throw failure;
    }
  });
}

function validateResult(registration: Registration, value: unknown): unknown {
  if (!registration.returns) return value;
  try {
    return registration.returns(value);
  } catch (error) {
    const failure = new ParameterError(`invalid result of "${registration.name}": ${(error as Error)?.message ?? String(error)}`);
    failure.parameter = 'result';
    throw failure;
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function';
}

/**
 * Positional arguments with keyword arguments added: bound by parameter name (a parameter not
 * given stays undefined, so its default applies), or as one trailing object when the
 * registration asks for that. Throws ParameterError for a name it has no parameter for.
 */
function withKeywords(registration: Registration, args: readonly unknown[], kwargs: Record<string, unknown>): unknown[] {
  if (registration.kwargs === 'object') return [...args, kwargs];
  const bound = [...args];
  for (const [name, value] of Object.entries(kwargs)) {
    const index = name.startsWith('#') ? -1 : registration.paramNames.indexOf(name);
    if (index < 0) {
      const failure = new ParameterError(`"${registration.name}" has no parameter named "${name}" (it takes ${registration.paramNames.join(', ') || 'none'})`);
      failure.parameter = name;
      throw failure;
    }
    if (index < args.length) {
      const failure = new ParameterError(`"${registration.name}" got "${name}" both by position and by name`);
      failure.parameter = name;
      throw failure;
    }
    while (bound.length < index) bound.push(undefined);
    bound[index] = value;
  }
  return bound;
}

/**
 * A handler of zeropeer's own that takes the unit of work itself and answers through its
 * responder: no context, no AsyncLocalStorage, no promise (what a relay saves on every call it
 * passes on, see cluster/link-server.ts). It calls `done` once it has answered. Never user code:
 * it gets the arguments unchecked, as they came, and the registration's options do not apply
 * (params, returns, withContext, oneWay, raw, kwargs binding): register it without any.
 */
export type DirectHandler = (work: Work, done: () => void) => void;

const directHandlers = new WeakSet<object>();

/** Marks `handler` as a {@link DirectHandler}: registered like any function, run as one. */
export function directHandler<H extends DirectHandler>(handler: H): H {
  directHandlers.add(handler);
  return handler;
}

/** Runs `work` with `registration`; the responder hears the outcome exactly once. */
export function runWork(registration: Registration, work: Work, hooks: WorkHooks): void {
  if (directHandlers.has(registration.handler)) {
    runDirect(registration.handler as DirectHandler, work, hooks);
    return;
  }
  let args: unknown[];
  try {
    args = work.kwargs && Object.keys(work.kwargs).length > 0 ? withKeywords(registration, work.args, work.kwargs) : work.args;
    args = validateArgs(registration, args);
  } catch (error) {
    work.responder.fail(error);
    return;
  }
  if (work.scope.aborted) {
    // Cancelled (or stopping) before it started: it never starts.
    work.responder.fail(new CancelledError(`"${work.name}" was cancelled before it started`));
    return;
  }
  const context = new Context(work);
  if (registration.withContext) {
    args.unshift(context);
  } else if (registration.withIdentity) {
    args.unshift(work.identity);
  }

  if (registration.raw) {
    runRaw(registration, work, context, args, hooks);
    return;
  }

  let responder = work.responder;
  if (registration.oneWay) {
    work.responder.ok(undefined); // the caller learns the work was accepted, nothing more
    responder = { sent: false, ok() {}, fail: (error) => hooks.logFailure(work.name, error) };
  }
  let result: unknown;
  try {
    result = callHandler(registration, context, args);
  } catch (error) {
    responder.fail(error);
    return;
  }
  if (!isThenable(result)) {
    settleResult(registration, responder, result);
    return;
  }
  const done = hooks.running(work);
  result.then(
    (value) => {
      done();
      settleResult(registration, responder, value);
    },
    (error: unknown) => {
      done();
      responder.fail(error);
    },
  );
}

function runDirect(handler: DirectHandler, work: Work, hooks: WorkHooks): void {
  if (work.scope.aborted) {
    work.responder.fail(new CancelledError(`"${work.name}" was cancelled before it started`));
    return;
  }
  const running = hooks.running(work);
  let finished = false;
  const done = (): void => {
    if (finished) return;
    finished = true;
    running();
  };
  try {
    handler(work, done);
  } catch (error) {
    work.responder.fail(error); // ignored if it had answered already
    done();
  }
}

function settleResult(registration: Registration, responder: Responder, value: unknown): void {
  let checked: unknown;
  try {
    checked = validateResult(registration, value);
  } catch (error) {
    responder.fail(error);
    return;
  }
  responder.ok(checked);
}

/**
 * A raw handler answers through its channel, whenever it likes; it counts as running until it
 * does, and if it has not by `rawReplyTimeoutMs`, its caller gets a TimeoutError.
 */
function runRaw(registration: Registration, work: Work, context: CallContext, args: unknown[], hooks: WorkHooks): void {
  const done = hooks.running(work);
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    done();
  };
  const { responder } = work;
  const tracked: Responder = {
    get sent() {
      return responder.sent;
    },
    ok(value) {
      responder.ok(value);
      finish();
    },
    fail(error) {
      responder.fail(error);
      finish();
    },
  };
  const timer = setTimeout(() => {
    if (!responder.sent) tracked.fail(new TimeoutError(`"${work.name}" did not reply within ${hooks.rawReplyTimeoutMs} ms`));
  }, hooks.rawReplyTimeoutMs);
  timer.unref(); // a safety net, not a reason to keep a process alive
  const channel = new ReplyChannel(work.identity, work.address, tracked);
  try {
    const result = callHandler(registration, context, [channel, ...args]);
    if (isThenable(result)) {
      result.then(undefined, (error: unknown) => {
        if (!responder.sent) tracked.fail(error);
      });
    }
  } catch (error) {
    if (!responder.sent) tracked.fail(error);
  }
}
