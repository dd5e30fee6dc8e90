/** Turns the options every peer shares into a validated SessionConfig (one place for every limit). */
import type { SessionConfig } from './engine/session.js';
import { InterceptorChains } from './engine/interceptors.js';
import { DEFAULT_STREAM_WINDOW, type StreamWindow } from './engine/streams.js';
import { resolveHeartbeat } from './heartbeat.js';
import { consoleLogger, toLogger } from './logger.js';
import type { RateLimit } from './engine/rate-limit.js';
import { rejectUnknownKeys } from './option-checks.js';
import { DEFAULTS, positive, type CommonOptions } from './options.js';
import { createLocalRegistry } from './registry.js';
import type { BatchLimits } from './transport/outbox.js';
import { MsgpackCodec } from './wire/codec.js';
import { MAX_BATCH_BYTES, MAX_BATCH_PACKETS } from './wire/framing.js';

/** Checks a peer id: what clients name to reach a server. */
export function checkPeerId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id) > 255) {
    throw new TypeError('a peer id must be a string of 1 to 255 bytes');
  }
  return id;
}

function rateLimitOf(limit: RateLimit | undefined): RateLimit | undefined {
  if (limit === undefined) return undefined;
  if (typeof limit !== 'object' || limit === null) throw new TypeError('options.rateLimit must be { perSecond, burst? }');
  rejectUnknownKeys(limit, ['perSecond', 'burst'], 'options.rateLimit');
  const perSecond = positive(limit.perSecond, 'rateLimit.perSecond', Number.NaN);
  if (Number.isNaN(perSecond)) throw new TypeError('options.rateLimit.perSecond is required');
  return { perSecond, burst: Math.max(1, positive(limit.burst, 'rateLimit.burst', perSecond)) };
}

function batchOf(batch: CommonOptions['batch']): BatchLimits {
  if (batch === undefined) return DEFAULTS.batch;
  if (batch === false) return false;
  if (typeof batch !== 'object' || batch === null || Array.isArray(batch)) throw new TypeError('options.batch must be { messages?, bytes? } or false');
  rejectUnknownKeys(batch, ['messages', 'bytes'], 'options.batch');
  const messages = positive(batch.messages, 'batch.messages', DEFAULTS.batch.messages);
  if (!Number.isInteger(messages) || messages > MAX_BATCH_PACKETS) throw new TypeError(`options.batch.messages must be a whole number from 1 to ${MAX_BATCH_PACKETS}`);
  // The receiver's libzmq drops a connection past its frame limit, which the sender cannot know: a
  // batch stays under a size every receiver accepts.
  const bytes = positive(batch.bytes, 'batch.bytes', DEFAULTS.batch.bytes);
  if (bytes > MAX_BATCH_BYTES) throw new TypeError(`options.batch.bytes must be at most ${MAX_BATCH_BYTES} (every receiver accepts a batch that size)`);
  return { messages, bytes };
}

function streamWindow(window: StreamWindow | undefined): StreamWindow {
  if (window === undefined) return DEFAULT_STREAM_WINDOW;
  if (typeof window !== 'object' || window === null) throw new TypeError('options.streamWindow must be { items, bytes }');
  rejectUnknownKeys(window, ['items', 'bytes'], 'options.streamWindow');
  const items = positive(window.items, 'streamWindow.items', DEFAULT_STREAM_WINDOW.items);
  const bytes = positive(window.bytes, 'streamWindow.bytes', DEFAULT_STREAM_WINDOW.bytes);
  if (!Number.isInteger(items) || !Number.isInteger(bytes)) throw new TypeError('options.streamWindow items and bytes must be whole numbers');
  return { items, bytes };
}

export function sessionConfig(id: string, routingId: string, options: CommonOptions): SessionConfig {
  if (options.codec !== undefined && options.translators !== undefined) {
    throw new TypeError('options.translators belong to the default codec: give them to your codec instead');
  }
  const codec = options.codec ?? new MsgpackCodec({ translators: options.translators ?? [] });
  if (typeof codec?.encode !== 'function' || typeof codec?.decode !== 'function') throw new TypeError('options.codec must have encode() and decode()');
  return {
    id,
    routingId,
    logger: toLogger(options.logger ?? consoleLogger),
    registry: options.registry ?? createLocalRegistry(id),
    predicates: options.predicates,
    codec,
    timeoutMs: positive(options.timeoutMs, 'timeoutMs', DEFAULTS.timeoutMs),
    maxMessageBytes: positive(options.maxMessageBytes, 'maxMessageBytes', DEFAULTS.maxMessageBytes),
    maxPendingCalls: positive(options.maxPendingCalls, 'maxPendingCalls', DEFAULTS.maxPendingCalls),
    drainTimeoutMs: options.drainTimeoutMs === 0 ? 0 : positive(options.drainTimeoutMs, 'drainTimeoutMs', DEFAULTS.drainTimeoutMs),
    maxSendQueue: positive(options.maxSendQueue, 'maxSendQueue', DEFAULTS.maxSendQueue),
    maxSendQueueBytes: positive(options.maxSendQueueBytes, 'maxSendQueueBytes', DEFAULTS.maxSendQueueBytes),
    maxSendQueueTotalBytes: positive(options.maxSendQueueTotalBytes, 'maxSendQueueTotalBytes', DEFAULTS.maxSendQueueTotalBytes),
    maxRunningPerConnection: positive(options.maxRunningPerConnection, 'maxRunningPerConnection', DEFAULTS.maxRunningPerConnection),
    maxRunning: positive(options.maxRunning, 'maxRunning', DEFAULTS.maxRunning),
    rateLimit: rateLimitOf(options.rateLimit),
    batch: batchOf(options.batch),
    sendHighWaterMark: positive(options.sendHighWaterMark, 'sendHighWaterMark', DEFAULTS.sendHighWaterMark),
    heartbeat: resolveHeartbeat(options.heartbeat),
    errorTable: options.errorTable,
    logExceptions: options.logExceptions ?? false,
    excludeLogExceptions: options.excludeLogExceptions ?? [],
    sendStacks: options.sendStacks ?? false,
    callSites: options.callSites ?? false,
    streamWindow: streamWindow(options.streamWindow),
    context: options.context,
    interceptors: new InterceptorChains(options.interceptors),
  };
}
