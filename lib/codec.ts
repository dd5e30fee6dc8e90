/**
 * MessagePack encoding of bodies (msgpackr), with user translators.
 *
 * Standard MessagePack covers strings, numbers, booleans, null, arrays, plain objects, Buffer /
 * Uint8Array (bin) and Date (timestamp ext -1). msgpackr's `moreTypes` adds Set, typed arrays,
 * BigInt (int64) and undefined.
 *
 * msgpackr keeps extensions in one table per process, so translators are process-wide too.
 */
import { Packr, Unpackr, addExtension } from 'msgpackr';
import { EncodingError, ProtocolError } from './errors.js';

/**
 * Teaches the codec a class of yours (aiozmq's translators): `pack` turns an instance into a value
 * MessagePack can carry, `unpack` turns that value back into an instance. Register the same
 * translator, with the same `type`, on both sides.
 *
 * @example
 * registerTranslator({ Class: Point, type: 1, pack: (p) => [p.x, p.y], unpack: ([x, y]) => new Point(x, y) });
 */
export interface Translator<T = unknown> {
  /** Instances of this class (and subclasses) are encoded with `pack`. */
  Class: abstract new (...args: never[]) => T;
  /** Extension type code, 1..100, unique in the process (msgpackr keeps 101..127 for itself). */
  type: number;
  pack(value: T): unknown;
  unpack(value: never): T;
}

const translators = new Map<number, Translator<never>>();

/** Registers a translator for the whole process; registering the same one again is a no-op. */
export function registerTranslator<T>(translator: Translator<T>): void {
  const { Class, type, pack, unpack } = translator;
  if (!Number.isInteger(type) || type < 1 || type > 100) {
    throw new TypeError(`translator type must be an integer from 1 to 100, got ${String(type)}`);
  }
  if (typeof Class !== 'function' || typeof pack !== 'function' || typeof unpack !== 'function') {
    throw new TypeError('a translator needs Class, pack and unpack');
  }
  const known = translators.get(type);
  if (known) {
    if (known.Class === Class) return;
    throw new TypeError(`translator type ${type} is already used by ${known.Class.name}`);
  }
  translators.set(type, translator as unknown as Translator<never>);
  addExtension({ Class: Class as never, type, write: (value: T) => pack(value), read: (data: never) => unpack(data) });
}


const writeFunction = (): never => {
  throw new EncodingError('a function cannot be sent');
};

/**
 * Two dialects. `rich` (compact framing, zeropeer to zeropeer) writes objects as msgpackr records,
 * each message self-contained, so that plain maps can mean `Map`: objects and Maps both come back
 * as they left. `plain` (pseud v1) writes objects and Maps as MessagePack maps, read back as
 * objects: what every MessagePack library understands.
 */
export type Dialect = 'rich' | 'plain';

const packers = {
  rich: new Packr({ useRecords: true, moreTypes: true, writeFunction }),
  plain: new Packr({ useRecords: false, moreTypes: true, writeFunction }),
};
const unpackers = {
  rich: new Unpackr({ moreTypes: true, mapsAsObjects: false }),
  plain: new Unpackr({ moreTypes: true, mapsAsObjects: true }),
};

/** Encodes one value; throws {@link EncodingError} when it cannot be (a function, a symbol, a cycle). */
export function encode(value: unknown, dialect: Dialect): Buffer {
  try {
    return packers[dialect].pack(value);
  } catch (error) {
    if (error instanceof EncodingError) throw error;
    const reason = error instanceof RangeError && /call stack/i.test(error.message)
      ? 'the value is cyclic or nested too deeply'
      : (error as Error).message;
    throw new EncodingError(`cannot encode value: ${reason}`, { cause: error });
  }
}

/** Decodes one value; throws {@link ProtocolError} on anything that is not exactly one MessagePack value. */
export function decode(bytes: Uint8Array, dialect: Dialect): unknown {
  try {
    return unpackers[dialect].unpack(bytes);
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    const reason = error instanceof RangeError && /call stack/i.test(error.message)
      ? 'nested too deeply'
      : (error as Error).message;
    throw new ProtocolError(`garbage MessagePack body: ${reason}`, { cause: error });
  }
}
