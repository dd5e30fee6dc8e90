/**
 * The codec seam: how message bodies become bytes. A {@link Codec} is a value handed to each peer
 * (`options.codec`); {@link MsgpackCodec} (msgpackr) is the default. Translators belong to a codec,
 * so two peers in one process with different translators never see each other's.
 */
import { Packr, Unpackr, addExtension } from 'msgpackr';
import { EncodingError, ProtocolError } from '../errors.js';
import { widenIntegers } from './plain-values.js';
import { DEFAULT_MSGPACK_LIMITS, MSGPACKR_WRAPPING_EXTENSIONS, checkMessagePack, type MessagePackLimits } from './msgpack-guard.js';

/**
 * Two dialects. `rich` (compact framing, zeropeer to zeropeer) may use anything both sides' codecs
 * agree on (msgpackr records, so a Map stays a Map). `plain` (pseud v1) is standard MessagePack
 * that any library reads: objects and Maps as maps, a Set as an array, undefined as nil, bytes as
 * bin, integers as integers (up to 64 bits; a wider BigInt is an EncodingError), a Date as the
 * timestamp extension -1.
 */
export type Dialect = 'rich' | 'plain';

/** What framing needs of a serializer. Both methods are synchronous and called on every message. */
export interface Codec {
  /** For logs and errors. */
  readonly name: string;
  /** Encodes one value; throws {@link EncodingError} when it cannot (nothing is sent then). */
  encode(value: unknown, dialect: Dialect): Buffer;
  /**
   * Decodes exactly one value from bytes a remote peer sent; throws {@link ProtocolError} on
   * anything else. It must bound what hostile bytes can cost (see msgpack-guard).
   */
  decode(bytes: Uint8Array, dialect: Dialect): unknown;
  /**
   * Optional: {@link decode} of the value in `bytes[start, end)`, read where it lies (a message of
   * a batch, several of which share one received frame). Without it, each such message is
   * decoded from a view of its own (`bytes.subarray(start, end)`).
   */
  decodeRange?(bytes: Uint8Array, start: number, end: number, dialect: Dialect): unknown;
}

/** A class a translator handles: any constructor of `T` (abstract ones too). */
export type TranslatedClass<T> = abstract new (...args: never[]) => T;

/**
 * Teaches a codec a class of yours (aiozmq's translators): `pack` turns an instance into a value
 * MessagePack can carry, `unpack` turns that value back into an instance. Give the same
 * translator, with the same `type`, to the peers on both sides.
 *
 * @example
 * class Point { constructor(readonly x: number, readonly y: number) {} }
 * const point: Translator<Point, [number, number]> = {
 *   Class: Point, type: 1, pack: (p) => [p.x, p.y], unpack: ([x, y]) => new Point(x, y),
 * };
 * new Server('svc', { translators: [point] });
 */
export interface Translator<T = unknown, Packed = unknown> {
  /** Instances of this class (and subclasses) are encoded with `pack`. */
  Class: TranslatedClass<T>;
  /** Extension type code, 1..100, unique within one codec (msgpackr keeps 101..127 for itself). */
  type: number;
  /** Turns an instance into something MessagePack carries. */
  pack(value: T): Packed;
  /** Turns what `pack` gave back into an instance. */
  unpack(value: Packed): T;
}

/** Options of {@link MsgpackCodec}. */
export interface MsgpackCodecOptions {
  /** Classes of yours to carry as MessagePack extensions (see {@link Translator}). */
  translators?: readonly Translator[];
  /** Structural limits checked before any body is decoded. */
  limits?: MessagePackLimits;
}

/**
 * msgpackr keeps extensions in module-level tables. To keep translators per codec, each class and
 * each type code is registered there once, as a switch that asks the codec at work (set for the
 * duration of one synchronous encode or decode) what to do; a codec without a translator for it
 * packs the instance as a plain object and refuses the type code on receipt.
 */
let active: MsgpackCodec | undefined;
/** The one type code under 101 that msgpackr itself uses. */
const MSGPACKR_BIGINT = 0x42;
/** The other: bundled strings, refused in bodies by the guard. */
const MSGPACKR_BUNDLED_STRINGS = 0x62;
const switchedClasses = new WeakSet<object>();

/** The tagged form of an instance a translator packed; one class per type code. */
const taggedClasses = new Map<number, new (data: unknown) => { data: unknown }>();

function taggedClass(type: number): new (data: unknown) => { data: unknown } {
  let Tagged = taggedClasses.get(type);
  if (!Tagged) {
    Tagged = class {
      constructor(readonly data: unknown) {}
    };
    taggedClasses.set(type, Tagged);
    addExtension({ Class: Tagged, type, write: (tagged: { data: unknown }) => tagged.data, read: (data: unknown) => active!.unpackType(type, data) });
  }
  return Tagged;
}

function switchClass(Class: object): void {
  if (switchedClasses.has(Class)) return;
  switchedClasses.add(Class);
  addExtension({
    Class: Class as never,
    write: (value: object) => active?.packInstance(value) ?? value,
  });
}

/** msgpackr's `int64AsType: 'auto'` (number within 2^53, else BigInt): supported since 1.11, missing from its types. */
const INT64_AUTO = 'auto' as unknown as 'number';

const writeFunction = (): never => {
  throw new EncodingError('a function cannot be sent');
};

/** The default codec: MessagePack by msgpackr, with per-codec translators and a structural guard. */
export class MsgpackCodec implements Codec {
  readonly name = 'msgpack';
  readonly #byType = new Map<number, Translator<never, never>>();
  readonly #byClass = new Map<object, Translator<never, never>>();
  readonly #limits: MessagePackLimits;
  /** msgpackr's own value-wrapping extensions, and this codec's translator types (written the same way). */
  #wrapping: readonly number[] = MSGPACKR_WRAPPING_EXTENSIONS;
  readonly #packers = {
    rich: new Packr({ useRecords: true, moreTypes: true, writeFunction }),
    // Standard MessagePack only (pseud reads it): no msgpackr extensions; undefined is nil.
    plain: new Packr({ useRecords: false, moreTypes: false, encodeUndefinedAsNil: true, writeFunction }),
  };
  readonly #unpackers = {
    rich: new Unpackr({ moreTypes: true, mapsAsObjects: false }),
    // A Python int beyond 32 bits comes as int64/uint64: a number when it is safe, else a BigInt.
    plain: new Unpackr({ moreTypes: true, mapsAsObjects: true, int64AsType: INT64_AUTO }),
  };

  constructor(options: MsgpackCodecOptions = {}) {
    this.#limits = options.limits ?? DEFAULT_MSGPACK_LIMITS;
    for (const translator of options.translators ?? []) this.addTranslator(translator);
  }

  /** Adds a translator to this codec only; the same one again is a no-op. */
  addTranslator<T, P>(translator: Translator<T, P>): void {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only checked to be functions; called on the translator
    const { Class, type, pack, unpack } = translator;
    if (!Number.isInteger(type) || type < 1 || type > 100) {
      throw new TypeError(`translator type must be an integer from 1 to 100, got ${String(type)}`);
    }
    if (type === MSGPACKR_BIGINT) throw new TypeError(`translator type ${type} is msgpackr's own (BigInt); pick another`);
    if (type === MSGPACKR_BUNDLED_STRINGS) throw new TypeError(`translator type ${type} is msgpackr's own (bundled strings, which bodies may not carry); pick another`);
    if (typeof Class !== 'function' || typeof pack !== 'function' || typeof unpack !== 'function') {
      throw new TypeError('a translator needs Class, pack and unpack');
    }
    const known = this.#byType.get(type);
    if (known) {
      if (known.Class === Class) return;
      throw new TypeError(`translator type ${type} is already used by ${known.Class.name} in this codec`);
    }
    this.#byType.set(type, translator as unknown as Translator<never, never>);
    this.#byClass.set(Class, translator as unknown as Translator<never, never>);
    this.#wrapping = [...MSGPACKR_WRAPPING_EXTENSIONS, ...this.#byType.keys()];
    taggedClass(type);
    switchClass(Class);
  }

  /** The tagged form of `value` when this codec translates its class (or a parent class). */
  packInstance(value: object): unknown {
    for (let proto = Object.getPrototypeOf(value) as object | null; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as object | null) {
      const translator = this.#byClass.get(proto.constructor);
      if (translator) return new (taggedClass(translator.type))((translator.pack as unknown as (v: object) => unknown)(value));
    }
    return value;
  }

  /** @internal msgpackr's extension hook: the translator of `type` rebuilds the instance. */
  unpackType(type: number, data: unknown): unknown {
    const translator = this.#byType.get(type);
    if (!translator) throw new ProtocolError(`extension type ${type} has no translator on this peer`);
    return (translator.unpack as unknown as (v: unknown) => unknown)(data);
  }

  encode(value: unknown, dialect: Dialect): Buffer {
    return this.#asActive(() => this.#packers[dialect].pack(dialect === 'plain' ? widenIntegers(value) : value), EncodingError, 'cannot encode value', 'the value is cyclic or nested too deeply');
  }

  decode(bytes: Uint8Array, dialect: Dialect): unknown {
    return this.#decode(bytes, 0, bytes.length, undefined, dialect);
  }

  /**
   * A message of a batch, read in the frame it came in. msgpackr keeps a DataView on the buffer it
   * reads, as a property it adds: on a view made per message that was a DataView and a new object
   * shape per message, half of msgpackr's own time; read in the frame, once per frame.
   */
  decodeRange(bytes: Uint8Array, start: number, end: number, dialect: Dialect): unknown {
    return this.#decode(bytes, start, end, { start, end }, dialect);
  }

  /** The guard over `bytes[start, end)`, then msgpackr (over `range`, or all of `bytes`). */
  #decode(bytes: Uint8Array, start: number, end: number, range: { start: number; end: number } | undefined, dialect: Dialect): unknown {
    const unsound = checkMessagePack(bytes, this.#limits, this.#wrapping, start, end);
    if (unsound !== undefined) throw new ProtocolError(`garbage MessagePack body: ${unsound}`);
    return this.#asActive((): unknown => this.#unpackers[dialect].unpack(bytes, range), ProtocolError, 'garbage MessagePack body', 'nested too deeply');
  }

  /**
   * Runs one msgpackr call with this codec as the one the translator switches ask, and turns what
   * msgpackr throws into `Failure` (a stack overflow named as such).
   */
  #asActive<T>(run: () => T, Failure: typeof EncodingError | typeof ProtocolError, what: string, overflow: string): T {
    const previous = active;
    active = this;
    try {
      return run();
    } catch (error) {
      if (error instanceof Failure) throw error;
      const reason = error instanceof RangeError && /call stack/i.test(error.message) ? overflow : (error as Error).message;
      throw new Failure(`${what}: ${reason}`, { cause: error });
    } finally {
      active = previous;
    }
  }
}
