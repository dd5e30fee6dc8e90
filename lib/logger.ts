/**
 * Logging seam. Every log line carries a context object (peer, routing id, identity, message
 * type...) and never a secret: credentials are not passed to the logger anywhere.
 */

export type LogContext = Record<string, unknown>;

/**
 * What zeropeer logs through, message first: `console`, winston, or a test spy fit as they are.
 * pino and bunyan (context first) are recognised and called their way; see {@link LoggerOption}.
 */
export interface Logger {
  /** Connections up and down, handshake steps, dropped messages, a silent peer heard from again: for finding out why. */
  debug(message: string, context?: LogContext): void;
  /** Peers judged silent by the heartbeat. */
  info(message: string, context?: LogContext): void;
  /** What a peer did wrong (rate-limited per peer), and settings that weaken security. */
  warn(message: string, context?: LogContext): void;
  /** What went wrong here: a handler, a predicate or a heartbeat backend threw. */
  error(message: string, context?: LogContext): void;
}

/** A logger that takes its context first, as pino and bunyan do: `logger.warn({ peer }, 'message')`. */
export interface ContextFirstLogger {
  /** See {@link Logger.debug}. */
  debug(context: LogContext, message: string): void;
  /** See {@link Logger.info}. */
  info(context: LogContext, message: string): void;
  /** See {@link Logger.warn}. */
  warn(context: LogContext, message: string): void;
  /** See {@link Logger.error}. */
  error(context: LogContext, message: string): void;
}

/**
 * What `options.logger` takes (typed `Logger`, which pino's and bunyan's loggers also satisfy):
 * a message-first {@link Logger}, or a pino or bunyan logger, which
 * zeropeer recognises (pino by its `bindings()`, bunyan by its `streams`) and calls context
 * first, so that the context fields become fields of the log record. A context-first logger of
 * another kind: wrap it in {@link contextFirst}.
 *
 * @example
 * import pino from 'pino';
 * const server = new Server('service', { logger: pino({ level: 'debug' }) });
 * // {"level":20,"peer":"service","routingId":"zp-...","identity":"alice","msg":"connection up"}
 */
export type LoggerOption = Logger | ContextFirstLogger;

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** Calls a context-first logger (pino, bunyan, ...) through zeropeer's message-first contract. */
export function contextFirst(logger: ContextFirstLogger): Logger {
  const call = (level: (typeof LEVELS)[number]) => (message: string, context?: LogContext): void => logger[level](context ?? {}, message);
  return { debug: call('debug'), info: call('info'), warn: call('warn'), error: call('error') };
}

const CONTEXT_FIRST = new WeakSet<Logger>();

/** The Logger for what `options.logger` was given: pino and bunyan are called context first. */
export function toLogger(logger: LoggerOption | Logger): Logger {
  if (logger === null || (typeof logger !== 'object' && typeof logger !== 'function')) throw new TypeError('options.logger must be an object with debug, info, warn and error');
  for (const level of LEVELS) {
    if (typeof (logger as unknown as Record<string, unknown>)[level] !== 'function') throw new TypeError(`options.logger has no ${level}() method`);
  }
  if (CONTEXT_FIRST.has(logger as Logger)) return logger as Logger;
  const shape = logger as unknown as { bindings?: unknown; child?: unknown; streams?: unknown };
  const pino = typeof shape.bindings === 'function' && typeof shape.child === 'function';
  const bunyan = Array.isArray(shape.streams) && typeof shape.child === 'function';
  if (!pino && !bunyan) return logger as Logger;
  const adapted = contextFirst(logger as ContextFirstLogger);
  CONTEXT_FIRST.add(adapted);
  return adapted;
}

/** The default: warnings and errors to stderr, the rest dropped. */
export const consoleLogger: Logger = {
  debug() {},
  info() {},
  warn(message, context) {
    console.warn(`[zeropeer] ${message}`, context ?? '');
  },
  error(message, context) {
    console.error(`[zeropeer] ${message}`, context ?? '');
  },
};

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Routing ids in logs: printable ones as text, libzmq's generated ones as hex. */
export function describeRoutingId(routingId: Buffer | undefined): string {
  if (!routingId) return '(none)';
  return isPrintable(routingId) ? routingId.toString('utf8') : `0x${routingId.toString('hex')}`;
}

/** True for a routing id a user chose (printable UTF-8), false for libzmq's generated ones (leading 0). */
export function isPrintable(bytes: Buffer): boolean {
  if (bytes.length === 0 || bytes[0] === 0) return false;
  for (const byte of bytes) if (byte < 0x20 || byte === 0x7f) return false;
  return Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
}

/**
 * At most one log line per key per interval: a peer that sends garbage, or never reads, must not
 * make us write a line per message (that costs everybody else their throughput).
 */
export class LogThrottle {
  readonly #seen = new Map<string, { at: number; suppressed: number }>();

  constructor(readonly intervalMs = 10_000, readonly maxKeys = 10_000) {}

  /** Undefined: stay quiet. A number: log now, and say that many lines were left out since the last. */
  take(key: string, now = Date.now()): number | undefined {
    const entry = this.#seen.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return undefined;
    }
    if (!entry && this.#seen.size >= this.maxKeys) this.#seen.clear(); // bounded: forget the oldest all at once
    this.#seen.set(key, { at: now, suppressed: 0 });
    return entry?.suppressed ?? 0;
  }
}
