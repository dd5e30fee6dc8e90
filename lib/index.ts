/**
 * zeropeer: bidirectional peer RPC over ZeroMQ, with pluggable authentication.
 *
 * @example
 * import { Server, Client } from 'zeropeer';
 */
import '../security/index.js';

export { Server, type ServerEvents, type ServerCallOptions, type ServerOptions, type GoneReason } from './server.js';
export { Client, type ClientEvents, type ClientOptions } from './client.js';
export { DEFAULTS, type PeerOptions, type CallOptions, type CurveOptions } from './options.js';
export {
  registerHeartbeatBackend,
  MemoryHeartbeatBackend,
  HEARTBEAT_DEFAULTS,
  type HeartbeatBackend,
  type HeartbeatBackendFactory,
  type HeartbeatOptions,
  type TrackedPeer,
} from './heartbeat.js';
export {
  Registry,
  registerRpc,
  createLocalRegistry,
  globalRegistry,
  DEFAULT_DOMAIN,
  type RegistrationOptions,
  type Registration,
  type Handler,
  type Validator,
  type FunctionInfo,
} from './registry.js';
export { rpcMethod } from './service.js';
export { ReplyChannel, type ReplyOptions } from './work.js';
export {
  RpcError,
  ServiceNotFoundError,
  UnauthorizedError,
  TimeoutError,
  PeerNotConnectedError,
  ServiceClosedError,
  ParameterError,
  RemoteError,
  NackError,
  ProtocolError,
  EncodingError,
  MessageTooLargeError,
  RegistrationError,
  type ErrorTable,
  type ErrorClass,
} from './errors.js';
export { registerTranslator, type Translator } from './codec.js';
export { MessageType, PROTOCOL_VERSION, COMPACT_CAPABILITY, type Framing } from './protocol.js';
export type { RemoteApi, CallProxy, AnyCallProxy, FixedResultApi, NotifyApi, NotifyProxy, PublishApi, PublishProxy } from './proxy.js';
export { registerPredicate, unregisterPredicate, type Predicate } from './predicates.js';
export { consoleLogger, silentLogger, type Logger, type LogContext } from './logger.js';
export {
  registerSecurityPlugin,
  noopSecurity,
  plainSecurity,
  trustedPeerSecurity,
  jwtSecurity,
  hashPassword,
  type VerifyPassword,
  type JwtSettings,
  type TokenSource,
  type Authentication,
  type SecurityPlugin,
  type ServerSecurity,
  type ClientSecurity,
  type ConnectionInfo,
  type SecuritySettings,
} from '../security/index.js';
export { curveKeyPair } from 'zeromq';
