/**
 * Frames on the wire: pseud's protocol v1, and zeropeer's compact framing.
 *
 * v1 (pseud): `[routing id, '', 'v1', message id, type (1 byte), body]`. WORK, OK, ERROR and HELLO
 * bodies are MessagePack; AUTHENTICATED, UNAUTHORIZED and HEARTBEAT bodies are UTF-8 strings.
 *
 * compact (zeropeer to zeropeer): `[routing id, packet]`, the packet one MessagePack array
 * `[type, id, body]` with the same body values as v1, in the `rich` dialect (objects as records, so
 * that a Map stays a Map). Two frames instead of six; one encode instead of one per part.
 *
 * Negotiation: a zeropeer client says HELLO in v1 with a zeropeer message id ({@link isZeropeerId});
 * a zeropeer server answers AUTHENTICATED with {@link COMPACT_CAPABILITY} in the body. From then on
 * both use compact on that connection. A pseud peer never does either, and is spoken to in v1. Every
 * peer keeps reading v1, and answers each message in the framing it arrived in.
 *
 * ROUTER_NOTIFY adds a third shape, `[routing id, '']`: a peer connected or disconnected.
 */
import { randomBytes } from 'node:crypto';
import { decode, encode } from './codec.js';
import { MessageTooLargeError, ProtocolError } from './errors.js';

/** The protocol version frame of v1. */
export const PROTOCOL_VERSION = 'v1';

/** Message types. The ones pseud defines keep pseud's codes and meaning. */
export const MessageType = {
  /** A call's result: body is the value. */
  OK: 0x01,
  /** Credentials: body `[login, password]`. */
  HELLO: 0x02,
  /** A call: body `[name, args, kwargs]`. */
  WORK: 0x03,
  /** Credentials accepted: body a UTF-8 string (zeropeer puts its capabilities there). */
  AUTHENTICATED: 0x04,
  /** Sign of life; carries nothing. */
  HEARTBEAT: 0x06,
  /** A call failed: body `[class name, message, remote stack]`. */
  ERROR: 0x10,
  /** Credentials refused, or work from a peer that has not authenticated: body a UTF-8 string. */
  UNAUTHORIZED: 0x11,
  /** zeropeer only (compact framing): the sender is stopping; body a UTF-8 string. */
  GOODBYE: 0x07,
} as const;

export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];

const knownTypes = new Set<number>(Object.values(MessageType));
const typeNames = new Map<number, string>(Object.entries(MessageType).map(([name, code]) => [code, name]));

/** The name of a message type, for logs. */
export function typeName(type: number): string {
  return typeNames.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

/** Types whose v1 body is MessagePack (the others carry a UTF-8 string). */
const msgpackBodies = new Set<number>([MessageType.WORK, MessageType.OK, MessageType.ERROR, MessageType.HELLO]);

/** The body of the UNAUTHORIZED (id 0) a server sends a connection whose identity a newer one took. */
export const REPLACED = 'replaced';

/** The body of the UNAUTHORIZED (id 0) a server sends a connection whose proof (a token) expired. */
export const EXPIRED = 'expired';

/** The word a zeropeer server puts in its AUTHENTICATED body to say it reads compact framing. */
export const COMPACT_CAPABILITY = 'zeropeer/1 compact';

export type Framing = 'v1' | 'compact';

/**
 * A message id: our own calls use numbers; a v1 peer's ids are 16 opaque bytes, kept as they came
 * so that the reply can echo them.
 */
export type MessageId = number | Buffer;

/** One decoded message. */
export interface Message {
  routingId: Buffer;
  framing: Framing;
  type: number;
  id: MessageId;
  body: unknown;
}

/** What a receive turned out to be. */
export type Inbound =
  | { kind: 'message'; message: Message }
  | { kind: 'notify'; routingId: Buffer }
  | {
      kind: 'malformed';
      routingId: Buffer | undefined;
      error: ProtocolError | MessageTooLargeError;
      /** Set when enough was readable to answer with an ERROR. */
      replyTo?: { framing: Framing; id: MessageId; type: number };
    };

/**
 * Message ids of one peer: a counter, and for v1 a 16-byte form (a prefix of this peer plus the
 * counter) that only this peer will recognise in a reply. The prefix starts with `zp` and has zero
 * bytes where a UUID4 has its version and variant bits, so a pseud id (a UUID4) never looks like
 * one: that is how a zeropeer server knows, from a v1 HELLO, that the client reads compact framing.
 */
export class MessageIds {
  readonly #prefix = zeropeerPrefix();
  /** Starts anywhere, so that two runs of a peer (a restarted server) do not reuse the same ids. */
  #next = randomBytes(4).readUInt32BE(0);

  next(): number {
    this.#next = (this.#next + 1) >>> 0;
    if (this.#next === 0) this.#next = 1; // 0 means one-way
    return this.#next;
  }

  toV1(id: number): Buffer {
    const bytes = Buffer.allocUnsafe(16);
    this.#prefix.copy(bytes, 0);
    bytes.writeUInt32BE(id, 12);
    return bytes;
  }

  /** The counter a v1 id stands for, or undefined when the id is not one of ours. */
  fromV1(bytes: Buffer): number | undefined {
    if (bytes.length !== 16 || bytes.compare(this.#prefix, 0, 12, 0, 12) !== 0) return undefined;
    return bytes.readUInt32BE(12);
  }
}

function zeropeerPrefix(): Buffer {
  const prefix = randomBytes(12);
  prefix[0] = 0x7a; // 'z'
  prefix[1] = 0x70; // 'p'
  prefix[6] = 0; // a UUID4 has 0x4_ here
  prefix[8] = 0; // and 0b10______ here
  return prefix;
}

/**
 * Whether WORK with this id is one-way (no answer wanted): an empty id in v1, 0 in compact. pseud
 * peers never send such ids; if one answers a one-way WORK anyway, the answer matches no call.
 */
export function isOneWayId(id: MessageId): boolean {
  return id === 0 || (Buffer.isBuffer(id) && id.length === 0);
}

/** Whether a v1 message id was made by a zeropeer peer (see {@link MessageIds}). */
export function isZeropeerId(id: MessageId): boolean {
  return Buffer.isBuffer(id) && id.length === 16 && id[0] === 0x7a && id[1] === 0x70 && id[6] === 0 && id[8] === 0;
}

const EMPTY = Buffer.alloc(0);
const VERSION_FRAME = Buffer.from(PROTOCOL_VERSION);
const TYPE_FRAMES = new Map<number, Buffer>([...knownTypes].map((t) => [t, Buffer.from([t])]));

/**
 * Encodes one outgoing message in the given framing. A number id becomes our 16-byte form in v1.
 * Throws {@link EncodingError} (nothing to send) when the body cannot be encoded.
 */
export function encodeMessage(
  framing: Framing,
  routingId: Buffer,
  type: MessageTypeCode,
  id: MessageId | null,
  body: unknown,
  ids: MessageIds,
): Buffer[] {
  if (framing === 'compact') {
    return [routingId, encode([type, id ?? 0, body], 'rich')];
  }
  const idFrame = id === null ? EMPTY : typeof id === 'number' ? ids.toV1(id) : id;
  const bodyFrame = msgpackBodies.has(type) ? encode(body, 'plain') : Buffer.from(typeof body === 'string' ? body : '');
  return [routingId, EMPTY, VERSION_FRAME, idFrame, TYPE_FRAMES.get(type)!, bodyFrame];
}

/** Total payload size of a multipart message, routing id excluded. */
function payloadBytes(frames: Buffer[]): number {
  let total = 0;
  for (let i = 1; i < frames.length; i++) total += frames[i]!.length;
  return total;
}

/**
 * Reads the type and id at the head of a compact packet without decoding the body (used to answer
 * a message too large to decode). Returns undefined unless the head is `[fixint type, uint id, ...`.
 */
function peekCompactHead(packet: Buffer): { type: number; id: number } | undefined {
  if (packet.length < 3 || packet[0] !== 0x93 || packet[1]! > 0x7f) return undefined;
  const type = packet[1]!;
  const marker = packet[2]!;
  if (marker <= 0x7f) return { type, id: marker };
  if (marker === 0xcc && packet.length >= 4) return { type, id: packet.readUInt8(3) };
  if (marker === 0xcd && packet.length >= 5) return { type, id: packet.readUInt16BE(3) };
  if (marker === 0xce && packet.length >= 7) return { type, id: packet.readUInt32BE(3) };
  return undefined;
}

function malformed(
  routingId: Buffer | undefined,
  reason: string,
  replyTo?: { framing: Framing; id: MessageId; type: number },
): Inbound {
  return replyTo
    ? { kind: 'malformed', routingId, error: new ProtocolError(reason), replyTo }
    : { kind: 'malformed', routingId, error: new ProtocolError(reason) };
}

/**
 * Decodes the frames of one receive on a ROUTER socket. Never throws: anything that is not a valid
 * message comes back as `malformed`, with what is needed to answer it when that is possible.
 */
export function decodeFrames(frames: Buffer[], maxMessageBytes: number, ids: MessageIds): Inbound {
  const routingId = frames[0];
  if (!routingId || frames.length < 2) return malformed(routingId, 'a message with no frame after the routing id');

  if (frames.length === 2 && frames[1]!.length === 0) return { kind: 'notify', routingId };

  const size = payloadBytes(frames);
  if (frames.length === 2) {
    const packet = frames[1]!;
    if (size > maxMessageBytes) {
      const head = peekCompactHead(packet);
      return {
        kind: 'malformed',
        routingId,
        error: new MessageTooLargeError(`message of ${size} bytes exceeds maxMessageBytes (${maxMessageBytes})`),
        ...(head ? { replyTo: { framing: 'compact' as const, id: head.id, type: head.type } } : {}),
      };
    }
    let value: unknown;
    try {
      value = decode(packet, 'rich');
    } catch (error) {
      const head = peekCompactHead(packet);
      return malformed(routingId, (error as Error).message, head && { framing: 'compact', ...head });
    }
    if (!Array.isArray(value) || value.length !== 3 || typeof value[0] !== 'number' ||
        (typeof value[1] !== 'number' && !Buffer.isBuffer(value[1]))) {
      return malformed(routingId, 'a compact packet must be [type, id, body]');
    }
    const [type, id, body] = value as [number, MessageId, unknown];
    if (!knownTypes.has(type)) {
      return malformed(routingId, `unknown message type ${typeName(type)}`, { framing: 'compact', id, type });
    }
    return { kind: 'message', message: { routingId, framing: 'compact', type, id, body } };
  }

  if (frames.length !== 6 || frames[1]!.length !== 0) {
    return malformed(routingId, `expected 6 frames (pseud v1) or 2 (compact), got ${frames.length}`);
  }
  const [, , version, rawId, typeFrame, bodyFrame] = frames as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
  const id: MessageId = ids.fromV1(rawId) ?? rawId;
  const type = typeFrame.length === 1 ? typeFrame[0]! : -1;
  const replyTo = rawId.length > 0 ? { framing: 'v1' as const, id, type } : undefined;
  if (!version.equals(VERSION_FRAME)) {
    return malformed(routingId, `unsupported protocol version ${JSON.stringify(version.toString('latin1').slice(0, 16))}, expected "${PROTOCOL_VERSION}"`, replyTo);
  }
  if (type < 0 || !knownTypes.has(type)) {
    return malformed(routingId, `unknown message type ${type < 0 ? `(a type frame of ${typeFrame.length} bytes)` : typeName(type)}`, replyTo);
  }
  if (size > maxMessageBytes) {
    const error = new MessageTooLargeError(`message of ${size} bytes exceeds maxMessageBytes (${maxMessageBytes})`);
    return replyTo ? { kind: 'malformed', routingId, error, replyTo } : { kind: 'malformed', routingId, error };
  }
  let body: unknown;
  if (msgpackBodies.has(type)) {
    try {
      body = decode(bodyFrame, 'plain');
    } catch (error) {
      return malformed(routingId, (error as Error).message, replyTo);
    }
  } else {
    body = bodyFrame.toString('utf8');
  }
  return { kind: 'message', message: { routingId, framing: 'v1', type, id, body } };
}
