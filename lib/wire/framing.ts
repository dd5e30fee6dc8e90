/**
 * Frames on the wire: pseud's protocol v1, and zeropeer's compact framing, over any {@link Codec}.
 *
 * v1 (pseud): `[routing id, '', 'v1', message id, type (1 byte), body]`. WORK, OK, ERROR and HELLO
 * bodies are MessagePack; AUTHENTICATED, UNAUTHORIZED and HEARTBEAT bodies are UTF-8 strings.
 *
 * compact (zeropeer to zeropeer): `[routing id, packet]`, the packet one encoded array
 * `[type, id, body]` in the codec's `rich` dialect. Two frames instead of six; one encode.
 *
 * Negotiation: a zeropeer client says HELLO in v1 with a zeropeer message id (see message-ids); a
 * zeropeer server answers AUTHENTICATED with COMPACT_CAPABILITY in the body. From then on both use
 * compact on that connection. Every peer keeps reading v1, and answers in the framing it was spoken to.
 *
 * batch (compact peers only): `[routing id, 0xc1 (length, packet)...]`, several compact packets in
 * one frame (see the outbox and encodeBatch); read in order as if each had come alone. Every peer
 * that speaks compact reads batches: they are part of COMPACT_CAPABILITY.
 *
 * ROUTER_NOTIFY adds a fourth shape, `[routing id, '']`: a peer connected or disconnected.
 */
import { MessageTooLargeError, ProtocolError } from '../errors.js';
import type { Codec } from './codec.js';
import type { MessageIds } from './message-ids.js';
import { Invalid, MESSAGES, typeName, type Framing, type Message, type MessageId, type MessageTypeCode } from './messages.js';

/** The protocol version frame of v1. */
export const PROTOCOL_VERSION = 'v1';

/** Where to send the ERROR that answers a bad message, when enough of it was readable. */
export interface ReplyTo {
  readonly framing: Framing;
  readonly id: MessageId;
  readonly type: number;
}

/** What one receive turned out to be. */
export type Inbound =
  | { readonly kind: 'message'; readonly message: Message }
  | { readonly kind: 'notify'; readonly routingId: Buffer }
  /** A batch: its packets are `frame[bounds[2i], bounds[2i + 1])`, read where they lie (see decodeBatched). */
  | { readonly kind: 'batch'; readonly routingId: Buffer; readonly frame: Buffer; readonly bounds: readonly number[] }
  | {
      readonly kind: 'malformed';
      readonly routingId: Buffer | undefined;
      readonly error: ProtocolError | MessageTooLargeError;
      readonly replyTo?: ReplyTo;
    };

/** What decoding needs: the codec, this peer's ids (to recognise its own v1 ids) and the size cap. */
export interface FramingContext {
  readonly codec: Codec;
  readonly ids: MessageIds;
  readonly maxMessageBytes: number;
}

const EMPTY = Buffer.alloc(0);

const VERSION_FRAME = Buffer.from(PROTOCOL_VERSION);
const TYPE_FRAMES = new Map<number, Buffer>([...MESSAGES.keys()].map((t) => [t, Buffer.from([t])]));

/**
 * The first byte of a batch packet: 0xc1, the one byte MessagePack never uses, so no compact packet
 * starts with it.
 */
export const BATCH_MARKER = 0xc1;

/** Most packets one batch may carry; a larger one is refused whole. */
export const MAX_BATCH_PACKETS = 256;

/**
 * Most bytes one batch frame may have, marker and lengths included: below what any receiver's libzmq
 * accepts (it allows `maxMessageBytes * 2 + 65536` per frame), whatever its `maxMessageBytes`.
 */
export const MAX_BATCH_BYTES = 65536;

/** Bytes before each packet in a batch: its length, uint32 big-endian. */
const LENGTH_BYTES = 4;

/** The size of a batch frame of `count` packets of `bytes` bytes in all. */
export function batchBytes(count: number, bytes: number): number {
  return 1 + count * LENGTH_BYTES + bytes;
}

/**
 * Several compact packets as one: `0xc1`, then each packet after its length (uint32 BE). One frame,
 * because ZeroMQ's cost is per frame: a 64-frame message costs ~8x a 64-packet frame to send.
 */
export function encodeBatch(packets: readonly Buffer[], bytes: number): Buffer {
  const batch = Buffer.allocUnsafe(batchBytes(packets.length, bytes));
  batch[0] = BATCH_MARKER;
  let at = 1;
  for (const packet of packets) {
    batch.writeUInt32BE(packet.length, at);
    at += LENGTH_BYTES + packet.copy(batch, at + LENGTH_BYTES);
  }
  return batch;
}

/** Whether a multipart message is a batch: `[routing id, batch packet]`. */
export function isBatch(frames: readonly Buffer[]): boolean {
  return frames.length === 2 && frames[1]![0] === BATCH_MARKER;
}

/** Where the packets of a batch lie (start, end, start, end, ...: no view made), or why it is not one. */
function splitBatch(batch: Buffer): number[] | ProtocolError {
  // Every sender keeps a batch within MAX_BATCH_BYTES; a larger frame is refused whole (its packets
  // are read where they lie, so a bound on the frame bounds what any one of them can cost).
  if (batch.length > MAX_BATCH_BYTES) return new ProtocolError(`a batch of ${batch.length} bytes, over ${MAX_BATCH_BYTES}`);
  const bounds: number[] = [];
  let at = 1;
  while (at < batch.length) {
    if (bounds.length === MAX_BATCH_PACKETS * 2) return new ProtocolError(`a batch of more than ${MAX_BATCH_PACKETS} messages`);
    if (at + LENGTH_BYTES > batch.length) return new ProtocolError('a batch cut short in a length');
    const end = at + LENGTH_BYTES + batch.readUInt32BE(at);
    if (end > batch.length) return new ProtocolError('a batch cut short in a message');
    bounds.push(at + LENGTH_BYTES, end);
    at = end;
  }
  return bounds.length > 0 ? bounds : new ProtocolError('an empty batch');
}

/** The packets of a batch as views (for tests and tools; the session reads them in place). */
export function batchPackets(inbound: Extract<Inbound, { kind: 'batch' }>): Buffer[] {
  const packets: Buffer[] = [];
  for (let i = 0; i < inbound.bounds.length; i += 2) packets.push(inbound.frame.subarray(inbound.bounds[i], inbound.bounds[i + 1]));
  return packets;
}

/**
 * Encodes one outgoing message. A number id becomes this peer's 16-byte form in v1; null is no id.
 * Throws EncodingError (nothing to send) when the body cannot be encoded.
 */
export function encodeMessage(context: FramingContext, framing: Framing, routingId: Buffer, type: MessageTypeCode, id: MessageId | null, body: unknown): Buffer[] {
  if (framing === 'compact') return [routingId, context.codec.encode([type, id ?? 0, body], 'rich')];
  const idFrame = id === null ? EMPTY : typeof id === 'number' ? context.ids.toV1(id) : id;
  const bodyFrame = MESSAGES.get(type)!.v1Body === 'msgpack' ? context.codec.encode(body, 'plain') : Buffer.from(typeof body === 'string' ? body : '');
  return [routingId, EMPTY, VERSION_FRAME, idFrame, TYPE_FRAMES.get(type)!, bodyFrame];
}

/** {@link encodeMessage}, refusing a message over `maxMessageBytes`: MessageTooLargeError naming `what`, nothing to send. */
export function encodeWithin(context: FramingContext, framing: Framing, routingId: Buffer, type: MessageTypeCode, id: MessageId | null, body: unknown, what: string): Buffer[] {
  const frames = encodeMessage(context, framing, routingId, type, id, body);
  const size = payloadBytes(frames);
  if (size > context.maxMessageBytes) {
    throw new MessageTooLargeError(`${what} is ${size} bytes, over maxMessageBytes (${context.maxMessageBytes}); nothing was sent`);
  }
  return frames;
}

/** Total payload size of a multipart message, routing id excluded. */
export function payloadBytes(frames: readonly Buffer[]): number {
  let total = 0;
  for (let i = 1; i < frames.length; i++) total += frames[i]!.length;
  return total;
}

/**
 * Reads the type and id at the head of the compact packet `source[start, end)` without decoding
 * the body (to answer a message that cannot be decoded). Undefined unless the head is
 * `[fixint type, uint id, ...`.
 */
function peekCompactHead(source: Buffer, start: number, end: number): { type: number; id: number } | undefined {
  const type = peekCompactType(source, start, end);
  if (type === undefined) return undefined;
  const marker = source[start + 2]!;
  if (marker <= 0x7f) return { type, id: marker };
  if (marker === 0xcc) return { type, id: source.readUInt8(start + 3) };
  if (marker === 0xcd) return { type, id: source.readUInt16BE(start + 3) };
  return { type, id: source.readUInt32BE(start + 3) };
}

/** The type {@link peekCompactHead} would read, without making its record. */
function peekCompactType(source: Buffer, start: number, end: number): number | undefined {
  const length = end - start;
  if (length < 3 || source[start] !== 0x93 || source[start + 1]! > 0x7f) return undefined;
  const marker = source[start + 2]!;
  if (marker <= 0x7f || (marker === 0xcc && length >= 4) || (marker === 0xcd && length >= 5) || (marker === 0xce && length >= 7)) return source[start + 1]!;
  return undefined;
}

/** Where to answer a compact packet that failed, when its head is readable. */
function compactReplyTo(source: Buffer, start: number, end: number): ReplyTo | undefined {
  const head = peekCompactHead(source, start, end);
  return head && { framing: 'compact', type: head.type, id: head.id };
}

type Malformed = Extract<Inbound, { kind: 'malformed' }>;

function malformed(routingId: Buffer | undefined, error: ProtocolError | MessageTooLargeError, replyTo?: ReplyTo): Malformed {
  return replyTo ? { kind: 'malformed', routingId, error, replyTo } : { kind: 'malformed', routingId, error };
}

function tooLarge(size: number, limit: number, what = 'message'): MessageTooLargeError {
  return new MessageTooLargeError(`${what} of ${size} bytes exceeds ${what === 'message' ? 'maxMessageBytes' : 'its limit'} (${limit})`);
}

/** Checks a decoded body against its row of the table. */
function checked(routingId: Buffer, framing: Framing, type: number, id: MessageId, body: unknown, replyTo: ReplyTo | undefined): Exclude<Inbound, { kind: 'batch' }> {
  const read = MESSAGES.get(type)!.read(body, framing);
  if (read instanceof Invalid) return malformed(routingId, new ProtocolError(read.reason), replyTo);
  return { kind: 'message', message: { routingId, framing, type, id, body: read } as Message };
}

/**
 * Decodes the frames of one receive on a ROUTER socket. Never throws: anything that is not a valid
 * message comes back as `malformed`, with what is needed to answer it when that is possible.
 */
export function decodeFrames(frames: Buffer[], context: FramingContext): Inbound {
  const routingId = frames[0];
  if (!routingId || frames.length < 2) return malformed(routingId, new ProtocolError('a message with no frame after the routing id'));
  if (frames.length === 2 && frames[1]!.length === 0) return { kind: 'notify', routingId };
  if (isBatch(frames)) {
    const bounds = splitBatch(frames[1]!);
    return bounds instanceof ProtocolError ? malformed(routingId, bounds) : { kind: 'batch', routingId, frame: frames[1]!, bounds };
  }
  const size = payloadBytes(frames);
  return frames.length === 2 ? decodeCompact(routingId, frames[1]!, 0, frames[1]!.length, context) : decodeV1(routingId, frames, size, context);
}

/** Decodes the packet `frame[start, end)` of a batch (a compact packet; anything else is malformed). */
export function decodeBatched(routingId: Buffer, frame: Buffer, start: number, end: number, context: FramingContext): Exclude<Inbound, { kind: 'batch' }> {
  if (end === start) return malformed(routingId, new ProtocolError('an empty message in a batch'));
  return decodeCompact(routingId, frame, start, end, context);
}

/** Decodes the compact packet `source[start, end)`: a frame of its own, or a packet of a batch read where it lies. */
function decodeCompact(routingId: Buffer, source: Buffer, start: number, end: number, context: FramingContext): Exclude<Inbound, { kind: 'batch' }> {
  // The head's type is read in place; the reply-to record is made only for a message that fails
  // (every message paid for two objects it almost never needed).
  const size = end - start;
  const headType = peekCompactType(source, start, end);
  if (size > context.maxMessageBytes) return malformed(routingId, tooLarge(size, context.maxMessageBytes), compactReplyTo(source, start, end));
  const spec = headType === undefined ? undefined : MESSAGES.get(headType);
  if (headType !== undefined && !spec) return malformed(routingId, new ProtocolError(`unknown message type ${typeName(headType)}`), compactReplyTo(source, start, end));
  if (spec?.maxBodyBytes !== undefined && size > spec.maxBodyBytes + 8) {
    return malformed(routingId, tooLarge(size, spec.maxBodyBytes, `a ${spec.name} body`), compactReplyTo(source, start, end));
  }
  let value: unknown;
  try {
    const { codec } = context;
    const whole = start === 0 && end === source.length;
    value = whole ? codec.decode(source, 'rich') : codec.decodeRange ? codec.decodeRange(source, start, end, 'rich') : codec.decode(source.subarray(start, end), 'rich');
  } catch (error) {
    return malformed(routingId, error instanceof ProtocolError ? error : new ProtocolError((error as Error).message), compactReplyTo(source, start, end));
  }
  if (!Array.isArray(value) || value.length !== 3 || typeof value[0] !== 'number' || (typeof value[1] !== 'number' && !Buffer.isBuffer(value[1]))) {
    return malformed(routingId, new ProtocolError('a compact packet must be [type, id, body]'));
  }
  const type = value[0] as number;
  const id = value[1] as MessageId;
  const row = MESSAGES.get(type);
  if (!row) return malformed(routingId, new ProtocolError(`unknown message type ${typeName(type)}`), { framing: 'compact', id, type });
  const read = row.read(value[2], 'compact');
  if (read instanceof Invalid) return malformed(routingId, new ProtocolError(read.reason), { framing: 'compact', id, type });
  return { kind: 'message', message: { routingId, framing: 'compact', type, id, body: read } as Message };
}

function decodeV1(routingId: Buffer, frames: Buffer[], size: number, context: FramingContext): Inbound {
  if (frames.length !== 6 || frames[1]!.length !== 0) {
    return malformed(routingId, new ProtocolError(`expected 6 frames (pseud v1) or 2 (compact), got ${frames.length}`));
  }
  const [, , version, rawId, typeFrame, bodyFrame] = frames as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
  const id: MessageId = context.ids.fromV1(rawId) ?? rawId;
  const type = typeFrame.length === 1 ? typeFrame[0]! : -1;
  const replyTo = rawId.length > 0 ? { framing: 'v1' as const, id, type } : undefined;
  if (!version.equals(VERSION_FRAME)) {
    return malformed(routingId, new ProtocolError(`unsupported protocol version ${JSON.stringify(version.toString('latin1').slice(0, 16))}, expected "${PROTOCOL_VERSION}"`), replyTo);
  }
  const spec = MESSAGES.get(type);
  if (!spec) {
    return malformed(routingId, new ProtocolError(`unknown message type ${type < 0 ? `(a type frame of ${typeFrame.length} bytes)` : typeName(type)}`), replyTo);
  }
  if (size > context.maxMessageBytes) return malformed(routingId, tooLarge(size, context.maxMessageBytes), replyTo);
  if (spec.maxBodyBytes !== undefined && bodyFrame.length > spec.maxBodyBytes) {
    return malformed(routingId, tooLarge(bodyFrame.length, spec.maxBodyBytes, `a ${spec.name} body`), replyTo);
  }
  let body: unknown;
  if (spec.v1Body === 'msgpack') {
    try {
      body = context.codec.decode(bodyFrame, 'plain');
    } catch (error) {
      return malformed(routingId, error instanceof ProtocolError ? error : new ProtocolError((error as Error).message), replyTo);
    }
  } else {
    body = bodyFrame.toString('utf8');
  }
  return checked(routingId, 'v1', type, id, body, replyTo);
}
