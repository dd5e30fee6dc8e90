/**
 * The options of peers, typed by role, and the one place that checks them: named defaults, number
 * ranges, and unknown keys (a misspelled option is an error at construction, never ignored).
 */
import type * as zmq from 'zeromq';
import type { ErrorClass, ErrorTable } from './errors.js';
import type { InterceptorOptions } from './engine/interceptors.js';
import type { StreamWindow } from './engine/streams.js';
import type { HeartbeatOptions } from './heartbeat.js';
import type { Logger } from './logger.js';
import type { Predicate } from './predicates.js';
import type { Registry } from './registry.js';
import type { Codec, Translator } from './wire/codec.js';
import type { SecurityPlugin } from '../security/plugin.js';
import type { Client } from './client.js';
import type { ClusterOptions } from './cluster/node.js';

export type { CallOptions, StreamOptions } from './engine/caller.js';
import { rejectUnknownKeys } from './option-checks.js';
import type { RateLimit } from './engine/rate-limit.js';

export { MAX_OPTION_VALUE, positive, rejectUnknownKeys, wholeNumber } from './option-checks.js';

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
  /** Bytes waiting for one slow peer to read; past it, further answers to that peer are dropped (and logged). */
  maxSendQueueBytes: 32 * 1024 * 1024,
  /** Bytes waiting for all slow peers together. */
  maxSendQueueTotalBytes: 256 * 1024 * 1024,
  /** Messages ZeroMQ itself queues per peer (ZMQ_SNDHWM) before the send queue above takes over. */
  sendHighWaterMark: 1000,
  /** Handlers running at once for one connection; past it, its work is refused with BusyError (retryable). */
  maxRunningPerConnection: 1000,
  /** Handlers running at once in all. */
  maxRunning: 10_000,
  /** Most messages, and bytes of the whole frame, that leave together as one batch. */
  batch: {
    /** Messages in one batch. */
    messages: 128,
    /** Bytes of one batch frame, its marker and lengths included. */
    bytes: 64 * 1024,
  },
  /** How long a noop client waits for an answer to HELLO before it takes the server for pseud, in ms. */
  helloTimeoutMs: 1000,
  /** How long before a token's `exp` a client with a token function authenticates again, in ms. */
  tokenRefreshMarginMs: 5000,
  /** Failed HELLOs a connection may make before the server throttles it. */
  maxFailedLogins: 5,
  /** First delay of a throttled HELLO's refusal, in ms; doubles with each further failure, up to 10 s. */
  failedLoginDelayMs: 250,
} as const;

/** CURVE keys of a server, Z85-encoded (see `curveKeyPair()`). */
export interface ServerCurveOptions {
  /** This server's public key. */
  publicKey: string;
  /** This server's secret key. */
  secretKey: string;
  /**
   * The only client public keys allowed to connect (checked by a ZAP handler). Default: any key.
   * As a map, each key to the identities its holder may authenticate as: zeropeer clients then
   * prove in the handshake that they hold the secret key of the key they name, and a login whose
   * identity is not listed for that key is refused (so bob's key cannot claim to be alice).
   */
  allowedClientKeys?: string[] | Record<string, string[]>;
}

/** CURVE keys of a client, Z85-encoded. */
export interface ClientCurveOptions {
  /** This client's public key (what a server's `allowedClientKeys` lists). */
  publicKey: string;
  /** This client's secret key. */
  secretKey: string;
  /** The server's public key (required: checked at construction). */
  serverPublicKey?: string;
}

/** CURVE keys as either role takes them. */
export type CurveOptions = ServerCurveOptions & Partial<ClientCurveOptions>;

/** Bounds of batching (`batch` option): a batch leaves once it holds either many. */
export interface BatchOptions {
  /** Most messages in one batch, 1 to 256. Default 128. */
  messages?: number;
  /** Most bytes of one batch frame, its marker and lengths included, up to 65536. Default 65536. */
  bytes?: number;
}

/** Options common to Server and Client. */
export interface CommonOptions {
  /** A registered plugin name (`'noop'`, the default) or a plugin object (see `plain()`, `jwt()`...). */
  security?: string | SecurityPlugin;
  /** Default deadline of a call, in ms. Default 5000. */
  timeoutMs?: number;
  /** Heartbeats: `{ intervalMs, timeoutMs, backend }` (defaults 3000, 10000, 'memory'), or false to turn them off. */
  heartbeat?: HeartbeatOptions | false;
  /** Where `peer.registerRpc` registers and where work looks functions up. Default: a new local registry. */
  registry?: Registry;
  /** Domain -> predicate on the caller's identity; see registerPredicate for process-wide ones. */
  predicates?: Readonly<Record<string, Predicate>>;
  /** Largest message accepted or sent, in bytes. Default 16 MiB. */
  maxMessageBytes?: number;
  /** Most calls in flight at once. Default 100,000. */
  maxPendingCalls?: number;
  /** How long stop() lets running handlers finish, in ms. Default 1000. */
  drainTimeoutMs?: number;
  /** Most messages queued for one peer that does not read fast enough. Default 10,000. */
  maxSendQueue?: number;
  /** Bytes queued for one peer that does not read fast enough. Default 32 MiB. */
  maxSendQueueBytes?: number;
  /** Bytes queued for all slow peers together. Default 256 MiB. */
  maxSendQueueTotalBytes?: number;
  /** ZeroMQ's own per-peer send queue, in messages (ZMQ_SNDHWM). Default 1000. */
  sendHighWaterMark?: number;
  /** Handlers running at once for one connection; more work is refused with BusyError. Default 1000. */
  maxRunningPerConnection?: number;
  /** Handlers running at once in all; more work is refused with BusyError. Default 10,000. */
  maxRunning?: number;
  /**
   * Work one connection may send per second (`{ perSecond, burst? }`); past it, its work is refused
   * with BusyError (retryable) and its one-way work dropped. Default: no limit.
   */
  rateLimit?: RateLimit;
  /**
   * Batching between zeropeer peers: the messages to one peer made in one run of the microtask
   * queue (the calls of one tick, the answers to one received batch) leave together as one ZeroMQ
   * message, at most `messages` of them (up to 256) and `bytes` for the whole frame (up to 65536,
   * what any receiver accepts); a message alone leaves as itself,
   * before any I/O or timer. `false`: every message leaves alone. Default
   * `{ messages: 128, bytes: 65536 }`. pseud (v1) peers never receive batches.
   */
  batch?: BatchOptions | false;
  /** Remote error class name -> local class, for errors the other side's handlers throw. */
  errorTable?: ErrorTable;
  /** Log errors thrown by this peer's handlers (aiozmq's `log_exceptions`). Default false. */
  logExceptions?: boolean;
  /** Classes not to log when `logExceptions` is on. */
  excludeLogExceptions?: ErrorClass[];
  /** Send the handler's stack with an ERROR. Default false: server file paths stay on the server. */
  sendStacks?: boolean;
  /**
   * Append the caller's stack (where the call was made) to every rejection of a call. Default false:
   * capturing a stack costs a few µs per call, about a third of the throughput at 64 in flight.
   */
  callSites?: boolean;
  /**
   * How far a stream's producer may run ahead of this peer consuming it: items and bytes sent and
   * not yet consumed. Default `{ items: 256, bytes: 1 MiB }`; per stream: `peer.streamWith({ streamWindow })`.
   */
  streamWindow?: StreamWindow;
  /** The serializer. Default: a MsgpackCodec with `translators`. */
  codec?: Codec;
  /** Translators for classes of yours, for this peer's default codec. */
  translators?: Translator[];
  /**
   * Where logs go (default: warnings and errors to stderr). Message first, as `console`; a pino or
   * bunyan logger is recognised and called context first (see {@link LoggerOption}).
   */
  logger?: Logger;
  /** A zeromq context of your own (the ZAP handler of a CURVE allow-list lives in it). A Client uses three of its sockets. */
  context?: zmq.Context;
  /** Settings for a security plugin of your own; it reads them beside the ones below. */
  securitySettings?: Readonly<Record<string, unknown>>;
  /** Interceptors per direction, outermost first (see `peer.use`). */
  interceptors?: InterceptorOptions;
}

/** A server's options. */
export interface ServerOptions extends CommonOptions {
  /** CURVE encryption and, with `allowedClientKeys`, a key allow-list. */
  curve?: ServerCurveOptions;
  /** plain: user id -> argon2 hash, or a `verify(userId, password)` function. */
  users?: unknown;
  /** jwt: `{ secret | publicKey | jwks, algorithms, issuer?, audience?, clockToleranceSec? }`. */
  jwt?: unknown;
  /** Failed HELLOs per connection before it is throttled. Default 5. */
  maxFailedLogins?: number;
  /** First delay of a throttled refusal, in ms (doubles per failure, at most 10 s). Default 250. */
  failedLoginDelayMs?: number;
  /**
   * Let clients ask this server to stop (PyMargo's remote shutdown): `true` for any authenticated
   * client, or a predicate on the caller's identity. Default false.
   */
  remoteShutdown?: boolean | Predicate;
  /**
   * Where calls go that no registration here serves (pseud's proxy_to): a Client connected to an
   * upstream server. A zeropeer upstream runs them as the original caller and must list this
   * server's identity in `trustedProxies`; a pseud (v1) upstream gets plain calls, made as this proxy.
   */
  proxyTo?: Client;
  /** Identities of proxies whose calls run as the caller they relay for. Default: none. */
  trustedProxies?: string[];
  /**
   * Cluster mode: several processes serve this id, one directory in Redis, calls reach a client on
   * any node. `{ redis, node, advertise, secret, ttlMs? }` (see README, "Running several servers").
   */
  cluster?: ClusterOptions;
}

/** A client's options. */
export interface ClientOptions extends CommonOptions {
  /** CURVE encryption: this client's key pair and the server's public key. */
  curve?: ClientCurveOptions;
  /** A routing id for this client's socket (1-255 bytes). Default: `zp-` and 16 random characters. */
  routingId?: string;
  /** Credentials: plain and trusted_peer (`userId`, `password`), jwt (`token`). */
  userId?: string;
  /** The password (plain; trusted_peer sends it unchecked). */
  password?: string;
  /** jwt: the token, or a function called for each fresh one. */
  token?: string | (() => string | Promise<string>);
  /** How long to wait for the answer to the first message (the probe), then to HELLO (noop only), before going on without it. Default 1000. */
  helloTimeoutMs?: number;
  /**
   * jwt with a `token` function: how long before the token's `exp` the client fetches a fresh one
   * and authenticates again on the live connection, in ms. Default 5000.
   */
  tokenRefreshMarginMs?: number;
}

/** Either role's options (for code that builds both). Prefer ServerOptions and ClientOptions. */
export type PeerOptions = Omit<ServerOptions & ClientOptions, 'curve'> & {
  /** A server's or a client's CURVE keys. */
  curve?: CurveOptions;
};

const COMMON_KEYS = [
  'security', 'timeoutMs', 'heartbeat', 'registry', 'predicates', 'maxMessageBytes', 'maxPendingCalls', 'drainTimeoutMs',
  'maxSendQueue', 'maxSendQueueBytes', 'maxSendQueueTotalBytes', 'sendHighWaterMark', 'maxRunningPerConnection', 'maxRunning', 'rateLimit', 'batch', 'errorTable', 'logExceptions', 'excludeLogExceptions', 'sendStacks', 'callSites', 'streamWindow', 'codec',
  'translators', 'logger', 'context', 'securitySettings', 'interceptors',
] as const satisfies readonly (keyof CommonOptions)[];
const SERVER_KEYS = ['curve', 'users', 'jwt', 'maxFailedLogins', 'failedLoginDelayMs', 'remoteShutdown', 'proxyTo', 'trustedProxies', 'cluster'] as const satisfies readonly (keyof ServerOptions)[];
const CLIENT_KEYS = ['curve', 'routingId', 'userId', 'password', 'token', 'helloTimeoutMs', 'tokenRefreshMarginMs'] as const satisfies readonly (keyof ClientOptions)[];

export function checkServerOptions(options: object): void {
  rejectUnknownKeys(options, [...COMMON_KEYS, ...SERVER_KEYS], 'Server');
}

export function checkClientOptions(options: object): void {
  rejectUnknownKeys(options, [...COMMON_KEYS, ...CLIENT_KEYS], 'Client');
}
