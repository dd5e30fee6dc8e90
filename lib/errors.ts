/**
 * Error classes of zeropeer, and their translation to and from the wire.
 *
 * On the wire an error is pseud's ERROR body: `[class name, message, remote stack]`.
 */

/** Base class of every error zeropeer raises on purpose. */
export class RpcError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No function of that name (or none this caller may use) is registered on the other side. */
export class ServiceNotFoundError extends RpcError {}

/** The other side refused this peer's credentials, or work came from a peer that has not authenticated. */
export class UnauthorizedError extends RpcError {}

/** A call's deadline passed before its answer arrived. */
export class TimeoutError extends RpcError {}

/** The identity a call was addressed to is not connected (or dropped while the call was in flight). */
export class PeerNotConnectedError extends RpcError {}

/** The local peer stopped, or the connection to the other side was lost, while the call was in flight. */
export class ServiceClosedError extends RpcError {}

/** An argument (or a result) failed validation. `parameter` names it when known. */
export class ParameterError extends RpcError {
  parameter?: string;
}

/** A reply channel answered with `nack()`. */
export class NackError extends RpcError {}

/** The other side sent something that does not follow the protocol (bad frames, garbage body, wrong version). */
export class ProtocolError extends RpcError {}

/** A value could not be encoded as MessagePack; nothing was sent. */
export class EncodingError extends RpcError {}

/** A message is larger than `maxMessageBytes` allows; nothing was sent (or it was refused on receipt). */
export class MessageTooLargeError extends RpcError {}

/**
 * A handler on the other side threw an error of a class the caller does not know.
 * `remoteName` is that class's name and `remoteStack` the stack it had over there.
 */
export class RemoteError extends RpcError {
  readonly remoteName: string;
  readonly remoteStack: string;

  constructor(remoteName: string, message: string, remoteStack = '') {
    super(message);
    this.remoteName = remoteName;
    this.remoteStack = remoteStack;
  }
}

/** Registration refused: an invalid name, a duplicate without `replace: true`, or a handler that is not a function. */
export class RegistrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistrationError';
  }
}

/** A constructor the caller maps a remote class name to, in an error table. */
export type ErrorClass = new (message: string) => Error;

/** Remote class name -> local class, as aiozmq's `error_table`. */
export type ErrorTable = Readonly<Record<string, ErrorClass>>;

/** What an ERROR message carries: class name, message, stack. */
export type WireError = [name: string, message: string, stack: string];

const builtinErrors: ErrorTable = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

const rpcErrors: ErrorTable = {
  RpcError,
  ServiceNotFoundError,
  UnauthorizedError,
  TimeoutError,
  PeerNotConnectedError,
  ServiceClosedError,
  ParameterError,
  NackError,
  ProtocolError,
  EncodingError,
  MessageTooLargeError,
};

/** Turns whatever a handler threw into the three fields of an ERROR message. */
export function errorToWire(thrown: unknown, withStack: boolean): WireError {
  if (thrown instanceof RemoteError) {
    // Relayed from a further peer: keep the original class so the caller sees what really failed.
    return [thrown.remoteName, thrown.message, withStack ? thrown.remoteStack : ''];
  }
  if (thrown instanceof Error) {
    const name = thrown instanceof RpcError ? thrown.name : thrown.constructor?.name || thrown.name || 'Error';
    return [name, thrown.message, withStack ? (thrown.stack ?? '') : ''];
  }
  return ['Error', String(thrown), ''];
}

/**
 * Rebuilds the error a caller sees from an ERROR message: the caller's own table first, then
 * JavaScript's built-in classes and zeropeer's, else a {@link RemoteError}.
 */
export function errorFromWire(wire: WireError, table?: ErrorTable): Error {
  const [name, message] = wire;
  const stack = wire[2] ?? '';
  const Class = (table && Object.hasOwn(table, name) ? table[name] : undefined) ??
    (Object.hasOwn(builtinErrors, name) ? builtinErrors[name] : undefined) ??
    (Object.hasOwn(rpcErrors, name) ? rpcErrors[name] : undefined);
  const error = Class ? new Class(message) : new RemoteError(name, message, stack);
  if (Class) {
    Object.defineProperty(error, 'remoteStack', { value: stack, enumerable: false, writable: true });
  }
  if (stack) {
    error.stack = `${error.stack ?? ''}\n    --- remote stack ---\n${stack}`;
  }
  return error;
}

/** Checks that a decoded ERROR body has the three fields pseud v1 gives it. */
export function isWireError(value: unknown): value is WireError {
  return Array.isArray(value) && value.length >= 2 && typeof value[0] === 'string' && typeof value[1] === 'string' &&
    (value[2] === undefined || value[2] === null || typeof value[2] === 'string');
}
