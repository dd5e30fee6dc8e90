/**
 * zeropeer: bidirectional peer RPC over ZeroMQ, with pluggable authentication.
 *
 * @example
 * import { Server, Client } from 'zeropeer';
 */
export { Server, type ServerEvents, type ServerCallOptions, type GoneReason } from './server.js';
export { Client, type ClientEvents } from './client.js';
export type { PeerStats } from './peer.js';
export {
  DEFAULTS,
  type CommonOptions,
  type ServerOptions,
  type ClientOptions,
  type PeerOptions,
  type CallOptions,
  type StreamOptions,
  type CurveOptions,
  type ServerCurveOptions,
  type ClientCurveOptions,
  type BatchOptions,
} from './options.js';
export type { InterceptedCall, CallStep, Interceptor, InterceptorOptions, InterceptorUse } from './engine/interceptors.js';
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
  type DomainFilter,
} from './registry.js';
export { rpcMethod } from './service.js';
export { ReplyChannel, type ReplyOptions, type CallContext } from './engine/work.js';
export { currentCall, deadlineOf } from './engine/call-scope.js';
export { CallStream, DEFAULT_STREAM_WINDOW, type StreamWindow } from './engine/streams.js';
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
  BusyError,
  CancelledError,
  ClusterUnavailableError,
  type ErrorCode,
  type ErrorTable,
  type ErrorClass,
} from './errors.js';
export { MsgpackCodec, type Codec, type Dialect, type Translator, type TranslatedClass, type MsgpackCodecOptions } from './wire/codec.js';
export { DEFAULT_MSGPACK_LIMITS, type MessagePackLimits } from './wire/msgpack-guard.js';
export { MessageType, COMPACT_CAPABILITY, MESSAGES, type Framing, type MessageSpec, type MessageTypeCode } from './wire/messages.js';
export { PROTOCOL_VERSION } from './wire/framing.js';
export type { StreamApi, StreamProxy, AnyStreamProxy, StreamItem, RemoteApi, CallProxy, AnyCallProxy, FixedResultApi, NotifyApi, NotifyProxy, PublishApi, PublishProxy } from './proxy.js';
export { registerPredicate, unregisterPredicate, type Predicate } from './predicates.js';
export { consoleLogger, silentLogger, contextFirst, type Logger, type ContextFirstLogger, type LoggerOption, type LogContext } from './logger.js';
export {
  registerSecurityPlugin,
  noopSecurity,
  plainSecurity,
  trustedPeerSecurity,
  jwtSecurity,
  noop,
  plain,
  trustedPeer,
  jwt,
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
export { curveKeyPair } from './transport/curve.js';
export { RedisDirectory, type RedisDirectoryOptions, type ClusterNodeInfo, type ClusterPeer, type DirectoryEvents } from './cluster/directory.js';
export type { RateLimit } from './engine/rate-limit.js';
export type { ClusterOptions, LinkKeys } from './cluster/node.js';
