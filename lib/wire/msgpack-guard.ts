// A structural check of one MessagePack value, run before msgpackr decodes a body from the wire.

/** Limits of the structural check. */
export interface MessagePackLimits {
  /** Containers open at once (arrays, maps, msgpackr records, extensions that wrap a value). */
  maxDepth: number;
  /** Values inside containers, in total: an array item counts one, a map entry two. */
  maxElements: number;
}

/** The limits a body gets unless told otherwise: msgpackr decodes recursively, so 64 levels keep it far from the stack limit; 1e6 elements cap what a 16 MiB body of 1-byte items could make it allocate. */
export const DEFAULT_MSGPACK_LIMITS: MessagePackLimits = Object.freeze({ maxDepth: 64, maxElements: 1_000_000 });

/**
 * Extension types after which msgpackr reads one more value as the extension's content, beyond its
 * payload: bundled strings (0x62), Error (0x65), structured-clone id (0x69), Set (0x73), RegExp
 * (0x78). Extensions registered with a `read` function (zeropeer's translators) do the same when
 * written as fixext 1; pass their types too, after these.
 */
export const MSGPACKR_WRAPPING_EXTENSIONS: readonly number[] = Object.freeze([0x62, 0x65, 0x69, 0x73, 0x78]);

/**
 * msgpackr extensions refused outright: bundled strings (0x62) and structured-clone references
 * (0x69 id, 0x70 pointer). zeropeer never writes them (no `bundleStrings`, no `structuredClone`),
 * and msgpackr reads them by jumping to positions the payload names, outside the value this guard
 * walks: a bundle's 32-bit offset sent it reading to the end of whatever buffer it was given (a
 * whole batch frame for a packet read in place).
 */
const REFUSED_EXTENSIONS: readonly number[] = [0x62, 0x69, 0x70];

/** msgpackr's record definition: fixext 1 of this type, the record's id, then an array of keys. */
const RECORD_DEFINITION = 0x72;

// Values still to read in each open container but the innermost; synchronous and never re-entered, so one is shared.
// Int32, not Float64: counters V8 keeps as small integers make the loop about three times faster (see `left`).
let frames = new Int32Array(DEFAULT_MSGPACK_LIMITS.maxDepth);
/** Where the bytes being checked begin (reasons count from there). */
let origin = 0;
// Field count of each msgpackr record id (0..63) defined so far in the value being checked (Int32 as the counters).
const recordFields = new Int32Array(64);

/**
 * Walks one MessagePack value in `bytes` without allocating anything per element (no decode) and
 * returns undefined when it is structurally sound, or a short reason (string) when it is not:
 * a container declaring more elements than bytes left (every element takes at least 1 byte; a map
 * entry at least 2), a str/bin/ext whose length runs past the end, nesting deeper than maxDepth,
 * more than maxElements elements in total, the reserved byte 0xc1, trailing bytes after the value,
 * or a truncated value.
 *
 * It reads the stream as msgpackr does, so that every container msgpackr will build has been
 * counted: a record definition (fixext 1, type 0x72) is followed by its keys array and one value per
 * key, a byte 0x40..0x7f naming a record defined earlier in the value is followed by one value per
 * key (otherwise it is a fixint), and an extension whose type is in `wrappingExtensions` is followed
 * by one value. Two-byte record ids (fixext 2, type 0x72), which need shared structures, are refused.
 * Other extension payloads are opaque.
 *
 * @param bytes One whole message body, or what holds it (see `first` and `end`).
 * @param limits Depth and element limits; {@link DEFAULT_MSGPACK_LIMITS} unless given.
 * @param wrappingExtensions Extension types followed by one value; {@link MSGPACKR_WRAPPING_EXTENSIONS} unless given.
 * @param first Where the body begins in `bytes` (0 unless given).
 * @param end Where it ends (the end of `bytes` unless given).
 * @returns undefined when sound, else why not.
 */
export function checkMessagePack(
  bytes: Uint8Array,
  limits: MessagePackLimits = DEFAULT_MSGPACK_LIMITS,
  wrappingExtensions: readonly number[] = MSGPACKR_WRAPPING_EXTENSIONS,
  first = 0,
  end = bytes.length,
): string | undefined {
  // [first, end): a packet of a batch is checked where it lies; reasons count bytes from `first`.
  if (end <= first) return 'empty input';
  // Counts are refused past the bytes left, so below 2^31 they fit the Int32 counters.
  if (end > 0x7fffffff) return 'longer than 2 GiB';
  origin = first;
  const { maxDepth, maxElements } = limits;
  // Every container takes a byte, so no value nests deeper than its length.
  const frameCount = Math.min(maxDepth, end - first);
  if (frames.length < frameCount) frames = new Int32Array(frameCount);
  const stack = frames;
  // Record ids defined so far, as two 32-bit masks: the record table is per value, as in msgpackr.
  let definedLow = 0;
  let definedHigh = 0;
  // Values still to read in the innermost open container (at first: the one value); the stack keeps the outer ones'.
  // pos, count and left must stay int32 for V8: a 32-bit length is compared with the bytes left before it
  // moves pos (then `| 0`), and `<< 1` doubles. One float (`* 2`, or a huge length added, even in a body it
  // refuses) makes V8 recompile the loop for floats, 2.5 to 4 times slower for every later body.
  let left = 1;
  let depth = 0;
  let elements = 0;
  let pos = first;

  for (;;) {
    if (left === 0) {
      if (depth === 0) break;
      left = stack[--depth];
      continue;
    }
    left--;
    if (pos >= end) return at('truncated: a value is missing', pos);
    const start = pos;
    const token = bytes[pos++];
    // How many values the container this token opens holds; scalars `continue` instead.
    let count = 0;

    if (token < 0x80) {
      // A fixint, unless it names a record defined earlier (plain bodies define none: test that first).
      if (token < 0x40 || (definedLow | definedHigh) === 0) continue;
      const id = token & 0x3f;
      if (((id < 32 ? definedLow >>> id : definedHigh >>> (id - 32)) & 1) === 0) continue;
      count = recordFields[id];
    } else if (token < 0x90) {
      count = (token & 0x0f) << 1;
    } else if (token < 0xa0) {
      count = token & 0x0f;
    } else if (token < 0xc0) {
      pos += token & 0x1f;
      if (pos > end) return runsPast(token, start, token & 0x1f, end);
      continue;
    } else if (token >= 0xe0) {
      continue;
    } else {
      let length = 0;
      let type = 0;
      switch (token) {
        case 0xc0: case 0xc2: case 0xc3:
          continue;
        case 0xc1:
          return at('reserved byte 0xc1', start);
        case 0xcc: case 0xd0:
          pos += 1;
          if (pos > end) return truncated(token, start);
          continue;
        case 0xcd: case 0xd1:
          pos += 2;
          if (pos > end) return truncated(token, start);
          continue;
        case 0xca: case 0xce: case 0xd2:
          pos += 4;
          if (pos > end) return truncated(token, start);
          continue;
        case 0xcb: case 0xcf: case 0xd3:
          pos += 8;
          if (pos > end) return truncated(token, start);
          continue;
        case 0xc4: case 0xd9:
          if (pos + 1 > end) return truncated(token, start);
          length = bytes[pos];
          pos += 1 + length;
          if (pos > end) return runsPast(token, start, length, end);
          continue;
        case 0xc5: case 0xda:
          if (pos + 2 > end) return truncated(token, start);
          length = (bytes[pos] << 8) | bytes[pos + 1];
          pos += 2 + length;
          if (pos > end) return runsPast(token, start, length, end);
          continue;
        case 0xc6: case 0xdb:
          if (pos + 4 > end) return truncated(token, start);
          length = readUint32(bytes, pos);
          pos += 4;
          if (length > end - pos) return runsPast(token, start, length, end);
          pos += length | 0;
          continue;
        case 0xc7:
          if (pos + 2 > end) return truncated(token, start);
          length = bytes[pos];
          type = bytes[pos + 1];
          pos += 2;
          break;
        case 0xc8:
          if (pos + 3 > end) return truncated(token, start);
          length = (bytes[pos] << 8) | bytes[pos + 1];
          type = bytes[pos + 2];
          pos += 3;
          break;
        case 0xc9:
          if (pos + 5 > end) return truncated(token, start);
          length = readUint32(bytes, pos);
          type = bytes[pos + 4];
          pos += 5;
          break;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
          if (pos + 1 > end) return truncated(token, start);
          length = 1 << (token - 0xd4);
          type = bytes[pos];
          pos += 1;
          break;
        case 0xdc:
          if (pos + 2 > end) return truncated(token, start);
          count = (bytes[pos] << 8) | bytes[pos + 1];
          pos += 2;
          break;
        case 0xdd: {
          if (pos + 4 > end) return truncated(token, start);
          const declared = readUint32(bytes, pos);
          pos += 4;
          if (declared > end - pos) return tooMany('array32', start, declared, end - pos);
          count = declared | 0;
          break;
        }
        case 0xde:
          if (pos + 2 > end) return truncated(token, start);
          count = ((bytes[pos] << 8) | bytes[pos + 1]) << 1;
          pos += 2;
          break;
        default: { // 0xdf
          if (pos + 4 > end) return truncated(token, start);
          const declared = readUint32(bytes, pos) * 2;
          pos += 4;
          if (declared > end - pos) return tooMany('map32', start, declared, end - pos);
          count = declared | 0;
          break;
        }
      }
      if (token >= 0xc7 && token <= 0xd8) {
        // An extension: `length` payload bytes after the type byte.
        const payload = pos;
        if (length > end - pos) return runsPast(token, start, length, end);
        pos += length | 0;
        if (type === RECORD_DEFINITION && (token === 0xd4 || token === 0xd5)) {
          if (token === 0xd5) return at('two-byte record id', start);
          const keys = pos;
          if (pos >= end) return at('truncated: record definition without keys', start);
          const head = bytes[pos++];
          let fields: number;
          if (head >= 0x90 && head < 0xa0) {
            fields = head & 0x0f;
          } else if (head === 0xdc) {
            if (pos + 2 > end) return truncated(head, keys);
            fields = (bytes[pos] << 8) | bytes[pos + 1];
            pos += 2;
          } else if (head === 0xdd) {
            if (pos + 4 > end) return truncated(head, keys);
            fields = readUint32(bytes, pos);
            pos += 4;
          } else {
            return at('record definition without an array of keys', start);
          }
          // The keys, then one value per key; checked here, before the count is kept.
          if (fields * 2 > end - pos) return tooMany('record definition', start, fields * 2, end - pos);
          count = fields << 1;
          // Known from here on (msgpackr knows it after the keys; only a record used as a key differs).
          const id = bytes[payload] & 0x3f;
          recordFields[id] = fields;
          if (id < 32) definedLow |= 1 << id;
          else definedHigh |= 1 << (id - 32);
        } else if (REFUSED_EXTENSIONS.includes(type)) {
          return refusedExtension(type, start);
        } else if (wrappingExtensions.includes(type)) {
          count = 1;
        } else {
          continue;
        }
      }
    }

    // The token opens a container of `count` values: check it before walking into it.
    if (count > end - pos) {
      return tooMany(name(bytes[start]), start, count, end - pos);
    }
    elements += count;
    if (elements > maxElements) return tooManyElements(maxElements);
    if (depth >= maxDepth) return tooDeep(maxDepth, start);
    if (count > 0) {
      stack[depth++] = left;
      left = count;
    }
  }

  if (pos !== end) return trailing(pos, end);
  return undefined;
}

/** Big-endian unsigned 32-bit integer at `at`; the caller has checked the 4 bytes are there. */
function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

// Reasons are built out of line: a template literal inside the loop made it several times slower.

function at(what: string, byte: number): string {
  return `${what} at byte ${byte - origin}`;
}

function refusedExtension(type: number, start: number): string {
  return `msgpackr extension 0x${type.toString(16)} (${type === 0x62 ? 'bundled strings' : 'a structured-clone reference'}), which zeropeer never sends, at byte ${start - origin}`;
}

function tooManyElements(maxElements: number): string {
  return `more than ${maxElements} elements`;
}

function tooDeep(maxDepth: number, start: number): string {
  return `nested deeper than ${maxDepth} at byte ${start - origin}`;
}

function tooMany(what: string, start: number, count: number, left: number): string {
  return `${what} at byte ${start - origin} declares ${count} elements, only ${left} bytes left`;
}

function trailing(pos: number, end: number): string {
  return `${end - pos} trailing bytes after the value, at byte ${pos - origin}`;
}

function truncated(token: number, start: number): string {
  return `truncated: ${name(token)} at byte ${start - origin} runs past the end`;
}

function runsPast(token: number, start: number, length: number, end: number): string {
  return `${name(token)} at byte ${start - origin} declares ${length} bytes, past the end of ${end - origin}`;
}

/** The format's name, for reasons. */
function name(token: number): string {
  if (token < 0x40) return 'fixint';
  if (token < 0x80) return 'record';
  if (token < 0x90) return 'fixmap';
  if (token < 0xa0) return 'fixarray';
  if (token < 0xc0) return 'fixstr';
  if (token >= 0xe0) return 'negative fixint';
  return FORMAT_NAMES[token - 0xc0];
}

const FORMAT_NAMES = [
  'nil', 'reserved', 'false', 'true', 'bin8', 'bin16', 'bin32', 'ext8', 'ext16', 'ext32', 'float32',
  'float64', 'uint8', 'uint16', 'uint32', 'uint64', 'int8', 'int16', 'int32', 'int64', 'fixext1',
  'fixext2', 'fixext4', 'fixext8', 'fixext16', 'str8', 'str16', 'str32', 'array16', 'array32', 'map16',
  'map32',
];
