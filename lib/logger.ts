/**
 * Logging seam. Every log line carries a context object (peer, routing id, identity, message
 * type...) and never a secret: credentials are not passed to the logger anywhere.
 */

export type LogContext = Record<string, unknown>;

/** What zeropeer logs through. Pass your own (pino, winston, a test spy) as `options.logger`. */
export interface Logger {
  debug(message: string, context?: LogContext): void;
  info(message: string, context?: LogContext): void;
  warn(message: string, context?: LogContext): void;
  error(message: string, context?: LogContext): void;
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
