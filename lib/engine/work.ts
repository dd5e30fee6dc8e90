/**
 * Running one unit of incoming work: arguments (keyword arguments, identity, validators), the
 * handler (plain, raw with a reply channel, or one-way), and the one answer it gets.
 */
import { NackError, ParameterError, TimeoutError } from '../errors.js';
import type { Registration } from '../registry.js';

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
  /** Aborts when the work is abandoned. */
  readonly signal: AbortSignal;
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
  /** When the caller stops waiting, epoch ms; undefined when not known. */
  readonly deadline: number | undefined;
  /** Aborts when the work is abandoned. */
  readonly signal: AbortSignal;
}

const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

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

/** Runs `work` with `registration`; the responder hears the outcome exactly once. */
export function runWork(registration: Registration, work: Work, hooks: WorkHooks): void {
  let args: unknown[];
  try {
    args = work.kwargs && Object.keys(work.kwargs).length > 0 ? [...work.args, work.kwargs] : work.args;
    args = validateArgs(registration, args);
  } catch (error) {
    work.responder.fail(error);
    return;
  }
  if (registration.withContext) {
    args.unshift({ identity: work.identity, method: work.name, metadata: work.metadata ?? NO_METADATA, address: work.address, deadline: undefined, signal: work.signal } satisfies CallContext);
  } else if (registration.withIdentity) {
    args.unshift(work.identity);
  }

  if (registration.raw) {
    runRaw(registration, work, args, hooks);
    return;
  }

  let responder = work.responder;
  if (registration.oneWay) {
    work.responder.ok(undefined); // the caller learns the work was accepted, nothing more
    responder = { sent: false, ok() {}, fail: (error) => hooks.logFailure(work.name, error) };
  }
  let result: unknown;
  try {
    result = registration.handler(...args);
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
function runRaw(registration: Registration, work: Work, args: unknown[], hooks: WorkHooks): void {
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
    const result = registration.handler(channel, ...args);
    if (isThenable(result)) {
      result.then(undefined, (error: unknown) => {
        if (!responder.sent) tracked.fail(error);
      });
    }
  } catch (error) {
    if (!responder.sent) tracked.fail(error);
  }
}
