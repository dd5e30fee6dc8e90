/**
 * The options of peers and calls, and their named defaults.
 */
import type * as zmq from 'zeromq';
import type { Translator } from './codec.js';
import type { ErrorClass, ErrorTable } from './errors.js';
import type { HeartbeatOptions } from './heartbeat.js';
import type { Logger } from './logger.js';
import type { Predicate } from './predicates.js';
import type { Registry } from './registry.js';
import type { SecurityPlugin } from '../security/plugin.js';

/** Named limits and defaults. Each is an option of the same name. */
export const DEFAULTS = {
  /** Deadline of a call, in ms. */
  timeoutMs: 5000,
  /** Largest message accepted or sent (all frames after the routing id), in bytes. */
  maxMessageBytes: 16 * 1024 * 1024,
  /** Most calls in flight (or waiting for a connection) at once, per peer. */
  maxPendingCalls: 100_000,
  /** How long stop() waits for handlers still running to answer, in ms. */
  drainTimeoutMs: 1000,
  /** Most messages waiting for one slow peer to read, per connection. */
  maxSendQueue: 10_000,
  /** Messages ZeroMQ itself queues per peer (ZMQ_SNDHWM) before the send queue above takes over. */
  sendHighWaterMark: 1000,
  /** How long a noop client waits for an answer to HELLO before it takes the server for pseud, in ms. */
  helloTimeoutMs: 1000,
  /** Failed HELLOs a connection may make before the server throttles it. */
  maxFailedLogins: 5,
  /** First delay of a throttled HELLO's refusal, in ms; doubles with each further failure, up to 10 s. */
  failedLoginDelayMs: 250,
  /** TCP keepalive: idle seconds before the kernel probes a silent connection. */
  tcpKeepaliveIdleSec: 30,
  /** TCP keepalive: seconds between probes. */
  tcpKeepaliveIntervalSec: 10,
  /** TCP keepalive: unanswered probes before the kernel closes the connection. */
  tcpKeepaliveCount: 3,
} as const;

/** CURVE keys, Z85-encoded (see `curveKeyPair()`). */
export interface CurveOptions {
  publicKey: string;
  secretKey: string;
  /** The server's public key: required on a client. */
  serverPublicKey?: string;
  /** Server: the only client public keys allowed to connect (checked by a ZAP handler). Default: any key. */
  allowedClientKeys?: string[];
}


/** Options common to Server and Client. */
export interface PeerOptions {
  /** A registered plugin name (`'noop'`, the default) or a plugin object. */
  security?: string | SecurityPlugin;
  /** Default deadline of a call, in ms. Default 5000. */
  timeoutMs?: number;
  /** Heartbeats: `{ intervalMs, timeoutMs, backend }` (defaults 3000, 10000, 'memory'), or false to turn them off. */
  heartbeat?: HeartbeatOptions | false;
  /** Where `peer.registerRpc` registers and where work looks functions up. Default: a new local registry. */
  registry?: Registry;
  /** Domain -> predicate on the caller's identity; see registerPredicate for process-wide ones. */
  predicates?: Readonly<Record<string, Predicate>>;
  curve?: CurveOptions;
  /** Largest message accepted or sent, in bytes. Default 16 MiB. */
  maxMessageBytes?: number;
  /** Most calls in flight at once. Default 100,000. */
  maxPendingCalls?: number;
  /** How long stop() lets running handlers finish, in ms. Default 1000. */
  drainTimeoutMs?: number;
  /** Most messages queued for one peer that does not read fast enough. Default 10,000. */
  maxSendQueue?: number;
  /** ZeroMQ's own per-peer send queue, in messages (ZMQ_SNDHWM). Default 1000. */
  sendHighWaterMark?: number;
  /** Client: how long to wait for the answer to HELLO before assuming a pseud server without authentication (noop only). Default 1000. */
  helloTimeoutMs?: number;
  /** Server: failed HELLOs per connection before it is throttled. Default 5. */
  maxFailedLogins?: number;
  /** Server: first delay of a throttled refusal, in ms (doubles per failure, at most 10 s). Default 250. */
  failedLoginDelayMs?: number;
  /** Remote error class name -> local class, for errors the other side's handlers throw. */
  errorTable?: ErrorTable;
  /** Log errors thrown by this peer's handlers (aiozmq's `log_exceptions`). Default false. */
  logExceptions?: boolean;
  /** Classes not to log when `logExceptions` is on. */
  excludeLogExceptions?: ErrorClass[];
  /** Send the handler's stack with an ERROR. Default true; turn off to reveal less to callers. */
  sendStacks?: boolean;
  /** Translators for classes of yours (process-wide, see registerTranslator). */
  translators?: Translator<never>[];
  logger?: Logger;
  /** A zeromq context of your own (the ZAP handler of a CURVE allow-list lives in it). */
  context?: zmq.Context;
  /** Settings for a security plugin of your own; it reads them beside the ones below. */
  securitySettings?: Readonly<Record<string, unknown>>;
  /** Client credentials and server plugin settings are read by the security plugin. */
  userId?: string;
  password?: string;
  token?: string | (() => string | Promise<string>);
  users?: unknown;
  jwt?: unknown;
}

/** Options of one call. */
export interface CallOptions {
  /** Deadline in ms; overrides the peer's `timeoutMs`. */
  timeoutMs?: number;
  /** Aborting rejects the call at once with the signal's reason (the remote side may still run it). */
  signal?: AbortSignal;
  /** Keyword arguments, for pseud peers whose functions take them. */
  kwargs?: Record<string, unknown>;
  /** Extra remote-name -> class mappings for this call. */
  errorTable?: ErrorTable;
}

/** The largest value a time or size option takes: what setTimeout accepts (about 24.8 days). */
export const MAX_OPTION_VALUE = 2 ** 31 - 1;

/** Reads a positive number option (at most {@link MAX_OPTION_VALUE}), or its default; throws a TypeError naming it otherwise. */
export function positive(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || !(value <= MAX_OPTION_VALUE)) {
    throw new TypeError(`options.${name} must be a positive number, at most ${MAX_OPTION_VALUE}`);
  }
  return value;
}
