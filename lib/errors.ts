/**
 * One error model: every error zeropeer raises is an {@link RpcError} with a stable `code`, and
 * errors cross the wire as pseud's ERROR body `[class name, message, stack]`, plus (compact
 * framing) the details a JavaScript caller can use: code, enumerable fields, cause, AggregateError's errors.
 */

/** The stable codes of zeropeer's errors. */
export type ErrorCode =
  | 'rpc_error'
  | 'service_not_found'
  | 'unauthorized'
  | 'timeout'
  | 'peer_not_connected'
  | 'service_closed'
  | 'invalid_argument'
  | 'remote'
  | 'nack'
  | 'protocol'
  | 'encoding'
  | 'message_too_large'
  | 'registration'
  | 'busy'
  | 'cancelled'
  | 'cluster_unavailable';

/** Base class of every error zeropeer raises on purpose. */
export class RpcError extends Error {
  /** The stable name this class has on the wire (minifiers rename classes; this never changes). */
  static readonly wireName: string = 'RpcError';
  /** What kind of failure this is: stable, documented, safe to switch on. */
  code: string = 'rpc_error';
  /** 'local': raised here; 'remote': raised by the other peer's handler and carried back. */
  origin: 'local' | 'remote' = 'local';

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = (new.target as typeof RpcError).wireName;
  }

  /** Any thrown value as an RpcError: itself when it is one, else wrapped (the original as `cause`). */
  static from(value: unknown): RpcError {
    if (value instanceof RpcError) return value;
    if (value instanceof Error) return new RpcError(value.message, { cause: value });
    return new RpcError(typeof value === 'string' ? value : describeValue(value), { cause: value });
  }
}

function define<C extends ErrorCode>(wireName: string, code: C): typeof RpcError {
  return class extends RpcError {
    static override readonly wireName = wireName;
    override code: string = code;
  };
}

/** No function of that name (or none this caller may use) is registered on the other side. */
export class ServiceNotFoundError extends define('ServiceNotFoundError', 'service_not_found') {}
/** The other side refused this peer's credentials, or work came from a peer that has not authenticated. */
export class UnauthorizedError extends define('UnauthorizedError', 'unauthorized') {}
/** A call's deadline passed before its answer arrived (`origin: 'remote'`: the handler's own call timed out). */
export class TimeoutError extends define('TimeoutError', 'timeout') {}
/** The identity a call was addressed to is not connected (or dropped while the call was in flight). */
export class PeerNotConnectedError extends define('PeerNotConnectedError', 'peer_not_connected') {}
/** The local peer stopped, or the connection to the other side was lost, while the call was in flight. */
export class ServiceClosedError extends define('ServiceClosedError', 'service_closed') {}
/** An argument (or a result) failed validation. `parameter` names it when known. */
export class ParameterError extends define('ParameterError', 'invalid_argument') {
  /** The name of the parameter that failed (`'result'` for the return value), when known. */
  parameter?: string;
}
/** A reply channel answered with `nack()`. */
export class NackError extends define('NackError', 'nack') {}
/** The other side sent something that does not follow the protocol (bad frames, garbage body, wrong version). */
export class ProtocolError extends define('ProtocolError', 'protocol') {}
/** A value could not be encoded; nothing was sent. */
export class EncodingError extends define('EncodingError', 'encoding') {}
/** A message is larger than `maxMessageBytes` allows; nothing was sent (or it was refused on receipt). */
export class MessageTooLargeError extends define('MessageTooLargeError', 'message_too_large') {}
/** The other side is at a limit (running handlers, logins in progress) and refused for now: retry later. */
export class BusyError extends define('BusyError', 'busy') {}
/**
 * The caller cancelled the call (its `signal` aborted, or a stream's consumer stopped): the reason is
 * the `cause`. On the other side, the handler's `ctx.signal` aborts with one of these.
 */
export class CancelledError extends define('CancelledError', 'cancelled') {}

/**
 * Cluster mode: a call to a client not connected to this node could not be routed, because the
 * cluster's directory (Redis) is unreachable. This node's own clients stay reachable; retry later.
 */
export class ClusterUnavailableError extends define('ClusterUnavailableError', 'cluster_unavailable') {}
/** Registration refused: an invalid name, a duplicate without `replace: true`, or a handler that is not a function. */
export class RegistrationError extends define('RegistrationError', 'registration') {}

/**
 * A handler on the other side threw an error of a class the caller does not know.
 * `remoteName` is that class's name and `remoteStack` the stack it had over there.
 */
export class RemoteError extends RpcError {
  static override readonly wireName: string = 'RemoteError';
  override code = 'remote';
  /** The class name the error had on the other side. */
  readonly remoteName: string;
  /** The stack it had over there (empty unless that side sends stacks). */
  readonly remoteStack: string;

  constructor(remoteName: string, message: string, remoteStack = '') {
    super(message);
    this.remoteName = remoteName;
    this.remoteStack = remoteStack;
    this.origin = 'remote';
  }
}

/** A constructor the caller maps a remote class name to, in an error table. */
export type ErrorClass = new (message: string) => Error;

/** Remote class name -> local class, as aiozmq's `error_table`. */
export type ErrorTable = Readonly<Record<string, ErrorClass>>;

/** What an ERROR message carries, read: pseud's three fields and, in compact framing, details. */
export interface WireErrorBody {
  readonly name: string;
  readonly message: string;
  readonly stack: string;
  readonly details: Record<string, unknown> | undefined;
}

const builtinErrors: ErrorTable = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError: AggregateError as unknown as ErrorClass };

const rpcErrors: ErrorTable = Object.fromEntries(
  [RpcError, ServiceNotFoundError, UnauthorizedError, TimeoutError, PeerNotConnectedError, ServiceClosedError, ParameterError,
    NackError, ProtocolError, EncodingError, MessageTooLargeError, RegistrationError, BusyError, CancelledError, ClusterUnavailableError].map((Class) => [Class.wireName, Class]),
);

/** Bounds of what an error carries besides its message: fields, causes, aggregated errors. */
const DETAIL_LIMITS = { depth: 3, fields: 16, errors: 16, text: 4096 } as const;

function describeValue(value: unknown): string {
  try {
    const text = typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
    return text === undefined ? String(value) : text.slice(0, DETAIL_LIMITS.text);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** The name a class goes by on the wire: what it declares, else its `name`. */
function wireNameOf(error: Error): string {
  if (error instanceof RpcError) return (error.constructor as typeof RpcError).wireName ?? error.name;
  return error.name && error.name !== 'Error' ? error.name : error.constructor?.name || 'Error';
}

/** Enumerable own fields worth carrying: small, plain values only. */
function fieldsOf(error: Error): Record<string, unknown> | undefined {
  let fields: Record<string, unknown> | undefined;
  let count = 0;
  for (const key of Object.keys(error)) {
    if (key === 'origin' || key === 'remoteName' || key === 'remoteStack' || key === 'errors' || key === 'cause' || ++count > DETAIL_LIMITS.fields) continue;
    const value = (error as unknown as Record<string, unknown>)[key];
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) (fields ??= {})[key] = typeof value === 'string' ? value.slice(0, DETAIL_LIMITS.text) : value;
    else if (typeof value === 'object') {
      try {
        (fields ??= {})[key] = JSON.parse(describeValue(value)); // plain data only; cut too long: dropped
      } catch {
        // not JSON-shaped: left behind
      }
    }
  }
  return fields;
}

function detailsOf(thrown: unknown, withStack: boolean, depth: number): Record<string, unknown> {
  if (!(thrown instanceof Error)) return { value: describeValue(thrown) };
  const details: Record<string, unknown> = {};
  const fields = fieldsOf(thrown);
  if (fields) details['fields'] = fields;
  if (depth < DETAIL_LIMITS.depth && thrown.cause !== undefined) details['cause'] = wireForm(thrown.cause, withStack, depth + 1);
  if (depth < DETAIL_LIMITS.depth && thrown instanceof AggregateError) {
    details['errors'] = thrown.errors.slice(0, DETAIL_LIMITS.errors).map((error) => wireForm(error, withStack, depth + 1));
  }
  return details;
}

function wireForm(thrown: unknown, withStack: boolean, depth: number): unknown[] {
  const [name, message, stack] = headOf(thrown, withStack);
  return [name, message, stack, detailsOf(thrown, withStack, depth)];
}

function headOf(thrown: unknown, withStack: boolean): [string, string, string] {
  if (thrown instanceof RemoteError) return [thrown.remoteName, thrown.message, withStack ? thrown.remoteStack : ''];
  if (thrown instanceof Error) return [wireNameOf(thrown), thrown.message, withStack ? (thrown.stack ?? '') : ''];
  return ['Error', typeof thrown === 'string' ? thrown : describeValue(thrown), ''];
}

/**
 * Turns whatever a handler threw into an ERROR body: pseud's three fields in v1; in compact
 * framing a fourth with what else the error carried (bounded in size and depth).
 */
export function errorToWire(thrown: unknown, withStack: boolean, framing: 'v1' | 'compact' = 'v1'): unknown[] {
  const head = headOf(thrown, withStack);
  return framing === 'v1' ? head : [...head, detailsOf(thrown, withStack, 0)];
}

/**
 * Rebuilds the error a caller sees from an ERROR body: the caller's own table first, then
 * JavaScript's built-in classes and zeropeer's (marked `origin: 'remote'`), else a {@link RemoteError}.
 */
export function errorFromWire(wire: WireErrorBody, table?: ErrorTable): Error {
  const { name, message, stack, details } = wire;
  const Class = (table && Object.hasOwn(table, name) ? table[name] : undefined) ??
    (Object.hasOwn(builtinErrors, name) ? builtinErrors[name] : undefined) ??
    (Object.hasOwn(rpcErrors, name) ? rpcErrors[name] : undefined);
  let error: Error;
  if (Class === (AggregateError as unknown)) {
    const errors = Array.isArray(details?.['errors']) ? (details['errors'] as unknown[]).map((e) => fromNested(e, table)) : [];
    error = new AggregateError(errors, message);
  } else {
    error = Class ? new Class(message) : new RemoteError(name, message, stack);
  }
  if (error instanceof RpcError) error.origin = 'remote';
  if (Class) Object.defineProperty(error, 'remoteStack', { value: stack, enumerable: false, writable: true });
  const fields = details?.['fields'];
  if (fields && typeof fields === 'object') {
    for (const [key, value] of Object.entries(fields)) {
      if (key in Error.prototype || key === 'stack' || key === 'message' || key === 'name' || key === 'origin') continue;
      (error as unknown as Record<string, unknown>)[key] = value;
    }
  }
  if (details?.['cause'] !== undefined) Object.defineProperty(error, 'cause', { value: fromNested(details['cause'], table), enumerable: false, writable: true, configurable: true });
  if (stack) error.stack = `${error.stack ?? ''}\n    --- remote stack ---\n${stack}`;
  return error;
}

function fromNested(value: unknown, table: ErrorTable | undefined): unknown {
  if (!Array.isArray(value) || typeof value[0] !== 'string' || typeof value[1] !== 'string') return value;
  const details = value[3] && typeof value[3] === 'object' ? (value[3] as Record<string, unknown>) : undefined;
  return errorFromWire({ name: value[0], message: value[1], stack: typeof value[2] === 'string' ? value[2] : '', details }, table);
}
