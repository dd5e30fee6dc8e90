/**
 * The message table: every message type, its code, how its body travels and how a received body
 * is checked. Adding a message type means a row here (and a case where the engine routes it).
 */

import { MAX_OPTION_VALUE } from '../option-checks.js';

/** Message types. The ones pseud defines keep pseud's codes and meaning. */
export const MessageType = {
  /** A call's result: body is the value. */
  OK: 0x01,
  /** Credentials: body `[login, password]`. */
  HELLO: 0x02,
  /** A call: body `[name, args, kwargs]` (compact: `[name, args, kwargs?, extras?]`, extras a map or the deadline alone, a number). */
  WORK: 0x03,
  /** Credentials accepted: body a UTF-8 string (zeropeer puts its capabilities there). */
  AUTHENTICATED: 0x04,
  /** Sign of life; carries nothing. */
  HEARTBEAT: 0x06,
  /** zeropeer only (compact framing): the sender is stopping; body a UTF-8 string. */
  GOODBYE: 0x07,
  /** A call failed: body `[class name, message, remote stack]` (compact: `[..., details?]`). */
  ERROR: 0x10,
  /** Credentials refused, or work from a peer that has not authenticated: body a UTF-8 string. */
  UNAUTHORIZED: 0x11,
  /** zeropeer only (compact framing): the caller gave up on its call `id`; body the reason, a UTF-8 string. */
  CANCEL: 0x20,
  /** zeropeer only: one item of a stream of call `id`; body `[slot, value]` (slot -1: the result). */
  STREAM_ITEM: 0x21,
  /** zeropeer only: the end of a stream of call `id`; body `[slot, error body or null]`. */
  STREAM_END: 0x22,
  /**
   * zeropeer only: the consumer of a stream of call `id` consumed `[slot, items, bytes]`: send more.
   * An argument stream's first one grants the window; `[slot, 0, 0]` asks its producer to stop.
   */
  STREAM_CREDIT: 0x23,
} as const;

/** The one-byte code of a message type. */
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];

/** A message id: our own calls use numbers; a v1 peer's ids are 16 opaque bytes, echoed back as they came. */
export type MessageId = number | Buffer;

/** `v1`: pseud's six frames; `compact`: two frames, between zeropeer peers (see README, wire format). */
export type Framing = 'v1' | 'compact';

/** A WORK body, checked. */
export interface WorkBody {
  readonly name: string;
  readonly args: unknown[];
  readonly kwargs: Record<string, unknown> | undefined;
  /** Per-call metadata (compact framing only): string keys and values. */
  readonly metadata: Readonly<Record<string, string>> | undefined;
  /** How long the caller still waits, in ms, as it sent the call (compact framing only). */
  readonly timeoutMs: number | undefined;
  /** The caller takes a streamed result with this window (compact framing only). */
  readonly stream: { readonly items: number; readonly bytes: number } | undefined;
  /** The positions of the arguments that the caller streams (compact framing only); null in `args`. */
  readonly argStreams: readonly number[] | undefined;
}

/** Most arguments of one call that may be streams. */
export const MAX_ARG_STREAMS = 16;

/** A STREAM_ITEM body, checked. */
export interface StreamItemBody {
  readonly slot: number;
  readonly value: unknown;
}

/** A STREAM_END body, checked: the error it ended with, if any. */
export interface StreamEndBody {
  readonly slot: number;
  readonly error: ErrorBody | undefined;
}

/** A STREAM_CREDIT body, checked. */
export interface StreamCreditBody {
  readonly slot: number;
  readonly items: number;
  readonly bytes: number;
}

/** An ERROR body, checked: pseud's three fields, and in compact framing what else the error carried. */
export interface ErrorBody {
  readonly name: string;
  readonly message: string;
  readonly stack: string;
  /** compact only: code, enumerable fields, cause, AggregateError's errors (see errors.ts). */
  readonly details: Record<string, unknown> | undefined;
}

/** A HELLO body, checked. pseud sends bytes when given bytes: those are read as UTF-8. */
export interface HelloBody {
  readonly login: string;
  readonly password: string;
  /** A zeropeer client's answer to a key challenge: its CURVE public key (Z85) and the proof. */
  readonly keyProof?: { readonly key: string; readonly proof: Buffer } | undefined;
}

interface Envelope {
  readonly routingId: Buffer;
  readonly framing: Framing;
  readonly id: MessageId;
}

/** One received message, its body checked against the table: a union on `type`. */
export type Message =
  | (Envelope & { readonly type: typeof MessageType.WORK; readonly body: WorkBody })
  | (Envelope & { readonly type: typeof MessageType.OK; readonly body: unknown })
  | (Envelope & { readonly type: typeof MessageType.ERROR; readonly body: ErrorBody })
  | (Envelope & { readonly type: typeof MessageType.HELLO; readonly body: HelloBody })
  | (Envelope & { readonly type: typeof MessageType.AUTHENTICATED | typeof MessageType.UNAUTHORIZED; readonly body: string })
  | (Envelope & { readonly type: typeof MessageType.HEARTBEAT | typeof MessageType.GOODBYE | typeof MessageType.CANCEL; readonly body: string })
  | (Envelope & { readonly type: typeof MessageType.STREAM_ITEM; readonly body: StreamItemBody })
  | (Envelope & { readonly type: typeof MessageType.STREAM_END; readonly body: StreamEndBody })
  | (Envelope & { readonly type: typeof MessageType.STREAM_CREDIT; readonly body: StreamCreditBody });

/** A body that failed its check, and why. */
export class Invalid {
  constructor(readonly reason: string) {}
}

/** One row of the table. */
export interface MessageSpec {
  /** The type byte on the wire. */
  readonly code: MessageTypeCode;
  /** Its name in {@link MessageType}. */
  readonly name: keyof typeof MessageType;
  /** How a v1 body travels: MessagePack, or a UTF-8 string frame. */
  readonly v1Body: 'msgpack' | 'text';
  /** An answer (or a notice): a bad one is dropped, never answered with an ERROR. */
  readonly answer: boolean;
  /** Only zeropeer peers know it: never sent in v1. */
  readonly compactOnly: boolean;
  /**
   * Largest body, in bytes. The types a peer may send before it authenticated are capped small,
   * so that nobody reaches a password check (argon2's queue) with megabytes.
   */
  readonly maxBodyBytes: number | undefined;
  /** Checks a decoded body (the framing tells its shape); returns the typed body or an `Invalid`. */
  readonly read: (body: unknown, framing: Framing) => unknown;
}

const SMALL_BODY = 1024;
/** HELLO: a login and a password or token; a JWT with many claims is still well under this. */
export const MAX_HELLO_BYTES = 16 * 1024;

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Map) && !Buffer.isBuffer(value);
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  return undefined;
}

function readText(body: unknown): string | Invalid {
  if (body === null || body === undefined) return '';
  return text(body) ?? new Invalid('the body must be a string');
}

/** Metadata: at most this many entries, each key and value a string. */
export const MAX_METADATA_ENTRIES = 64;

function readMetadata(value: unknown): Record<string, string> | undefined | Invalid {
  if (value === undefined || value === null) return undefined;
  if (!isPlainRecord(value)) return new Invalid('metadata must be a map of strings');
  const entries = Object.entries(value);
  if (entries.length > MAX_METADATA_ENTRIES) return new Invalid(`metadata has more than ${MAX_METADATA_ENTRIES} entries`);
  for (const [, v] of entries) if (typeof v !== 'string') return new Invalid('metadata values must be strings');
  return value as Record<string, string>;
}

const DEADLINE_SHAPE = `a WORK deadline must be a number of ms from 0 to ${MAX_OPTION_VALUE}`;

/** A deadline (ms left) a peer may send: what our own caller sends at most (a timer's range; past it Node fires at once). */
function isDeadlineMs(value: unknown): value is number {
  return typeof value === 'number' && value >= 0 && value <= MAX_OPTION_VALUE;
}

function readWork(body: unknown, framing: Framing): WorkBody | Invalid {
  const shape = 'a WORK body must be [name, args, kwargs?]';
  if (!Array.isArray(body) || body.length < 2 || body.length > (framing === 'compact' ? 4 : 3)) return new Invalid(shape);
  const [name, args, kwargs, extras] = body as [unknown, unknown, unknown, unknown];
  if (typeof name !== 'string' || !Array.isArray(args) || (kwargs != null && !isPlainRecord(kwargs))) return new Invalid(shape);
  let metadata: Record<string, string> | undefined;
  let timeoutMs: number | undefined;
  let stream: WorkBody['stream'];
  let argStreams: number[] | undefined;
  if (typeof extras === 'number') {
    // The common call carries nothing else: its deadline alone, as a number (see workBody).
    if (!isDeadlineMs(extras)) return new Invalid(DEADLINE_SHAPE);
    timeoutMs = extras;
  } else if (extras != null) {
    if (!isPlainRecord(extras)) return new Invalid('WORK extras must be a map (or the deadline alone, a number)');
    const read = readMetadata(extras['m']);
    if (read instanceof Invalid) return read;
    metadata = read;
    const left = extras['d'];
    if (left != null && !isDeadlineMs(left)) return new Invalid(DEADLINE_SHAPE);
    timeoutMs = left ?? undefined;
    const window = extras['s'];
    if (window != null) {
      if (!Array.isArray(window) || window.length !== 2 || !window.every(isCount)) return new Invalid('a WORK stream window must be [items, bytes], each a whole number >= 1');
      stream = { items: window[0] as number, bytes: window[1] as number };
    }
    const slots = extras['a'];
    if (slots != null) {
      if (!Array.isArray(slots) || slots.length === 0 || slots.length > MAX_ARG_STREAMS || new Set(slots).size !== slots.length ||
          !slots.every((slot) => Number.isInteger(slot) && (slot as number) >= 0 && (slot as number) < args.length)) {
        return new Invalid(`WORK argument streams must be 1 to ${MAX_ARG_STREAMS} distinct argument positions`);
      }
      argStreams = slots as number[];
    }
  }
  const named = kwargs as Record<string, unknown> | null | undefined;
  return { name, args, kwargs: named && Object.keys(named).length > 0 ? named : undefined, metadata, timeoutMs, stream, argStreams };
}

function readError(body: unknown): ErrorBody | Invalid {
  if (!Array.isArray(body) || body.length < 2 || body.length > 4 || typeof body[0] !== 'string' || typeof body[1] !== 'string' ||
      (body[2] != null && typeof body[2] !== 'string') || (body[3] != null && !isPlainRecord(body[3]))) {
    return new Invalid('an ERROR body must be [class name, message, stack]');
  }
  return { name: body[0], message: body[1], stack: (body[2] as string | null | undefined) ?? '', details: (body[3] as Record<string, unknown> | null | undefined) ?? undefined };
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function isSlot(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= -1 && value < 256;
}

function readStreamItem(body: unknown): StreamItemBody | Invalid {
  if (!Array.isArray(body) || body.length !== 2 || !isSlot(body[0])) return new Invalid('a STREAM_ITEM body must be [slot, value]');
  return { slot: body[0], value: body[1] };
}

function readStreamEnd(body: unknown): StreamEndBody | Invalid {
  if (!Array.isArray(body) || body.length !== 2 || !isSlot(body[0])) return new Invalid('a STREAM_END body must be [slot, error or null]');
  if (body[1] == null) return { slot: body[0], error: undefined };
  const error = readError(body[1]);
  return error instanceof Invalid ? error : { slot: body[0], error };
}

function readStreamCredit(body: unknown): StreamCreditBody | Invalid {
  // [slot, 0, 0] is the consumer saying "stop" (an argument stream's consumer has no CANCEL to send).
  const whole = (value: unknown): boolean => value === 0 || isCount(value);
  if (!Array.isArray(body) || body.length !== 3 || !isSlot(body[0]) || !whole(body[1]) || !whole(body[2]) || ((body[1] === 0) !== (body[2] === 0))) {
    return new Invalid('a STREAM_CREDIT body must be [slot, items, bytes]');
  }
  return { slot: body[0], items: body[1] as number, bytes: body[2] as number };
}

function readHello(body: unknown): HelloBody | Invalid {
  if (!Array.isArray(body) || body.length < 1 || body.length > 3) return new Invalid('a HELLO body must be [login, password]');
  const login = text(body[0]);
  const password = body[1] == null ? '' : text(body[1]);
  if (login === undefined || password === undefined) return new Invalid('a HELLO body must be [login, password]');
  if (body.length < 3) return { login, password };
  const proof = body[2] as { k?: unknown; p?: unknown } | null;
  if (!isPlainRecord(proof) || typeof proof.k !== 'string' || !(proof.p instanceof Uint8Array)) {
    return new Invalid('a HELLO key proof must be { k: public key, p: proof }');
  }
  return { login, password, keyProof: { key: proof.k, proof: Buffer.from(proof.p.buffer, proof.p.byteOffset, proof.p.byteLength) } };
}

const rows: MessageSpec[] = [
  { code: MessageType.OK, name: 'OK', v1Body: 'msgpack', answer: true, compactOnly: false, maxBodyBytes: undefined, read: (body) => body },
  { code: MessageType.HELLO, name: 'HELLO', v1Body: 'msgpack', answer: false, compactOnly: false, maxBodyBytes: MAX_HELLO_BYTES, read: readHello },
  { code: MessageType.WORK, name: 'WORK', v1Body: 'msgpack', answer: false, compactOnly: false, maxBodyBytes: undefined, read: readWork },
  { code: MessageType.AUTHENTICATED, name: 'AUTHENTICATED', v1Body: 'text', answer: true, compactOnly: false, maxBodyBytes: SMALL_BODY, read: readText },
  { code: MessageType.HEARTBEAT, name: 'HEARTBEAT', v1Body: 'text', answer: true, compactOnly: false, maxBodyBytes: SMALL_BODY, read: readText },
  { code: MessageType.GOODBYE, name: 'GOODBYE', v1Body: 'text', answer: true, compactOnly: true, maxBodyBytes: SMALL_BODY, read: readText },
  { code: MessageType.ERROR, name: 'ERROR', v1Body: 'msgpack', answer: true, compactOnly: false, maxBodyBytes: undefined, read: readError },
  { code: MessageType.UNAUTHORIZED, name: 'UNAUTHORIZED', v1Body: 'text', answer: true, compactOnly: false, maxBodyBytes: SMALL_BODY, read: readText },
  { code: MessageType.CANCEL, name: 'CANCEL', v1Body: 'text', answer: true, compactOnly: true, maxBodyBytes: SMALL_BODY, read: readText },
  { code: MessageType.STREAM_ITEM, name: 'STREAM_ITEM', v1Body: 'msgpack', answer: true, compactOnly: true, maxBodyBytes: undefined, read: readStreamItem },
  { code: MessageType.STREAM_END, name: 'STREAM_END', v1Body: 'msgpack', answer: true, compactOnly: true, maxBodyBytes: undefined, read: readStreamEnd },
  { code: MessageType.STREAM_CREDIT, name: 'STREAM_CREDIT', v1Body: 'msgpack', answer: true, compactOnly: true, maxBodyBytes: SMALL_BODY, read: readStreamCredit },
];

/** The table, by code. */
export const MESSAGES: ReadonlyMap<number, MessageSpec> = new Map(rows.map((row) => [row.code, row]));

/** The name of a message type, for logs. */
export function typeName(type: number): string {
  return MESSAGES.get(type)?.name ?? `0x${type.toString(16).padStart(2, '0')}`;
}

/** The body of the UNAUTHORIZED (id 0) a server sends a connection whose identity a newer one took. */
export const REPLACED = 'replaced';

/** The body of the UNAUTHORIZED (id 0) a server sends a connection whose proof (a token) expired. */
export const EXPIRED = 'expired';

/** The body of the UNAUTHORIZED that answers a HELLO the server cannot check now: try again later. */
export const BUSY = 'busy';

/** The word a zeropeer server puts in its AUTHENTICATED body to say it reads compact framing. */
export const COMPACT_CAPABILITY = 'zeropeer/1 compact';

/**
 * The first message of a zeropeer client: a v1 WORK every server answers. A zeropeer server
 * answers OK (its capabilities) before any authentication; a pseud server without authentication
 * answers ERROR (no such function); a pseud server with authentication answers UNAUTHORIZED, and
 * then expects HELLO (a HELLO before any WORK breaks it).
 */
export const PROBE = '_zeropeer.hello';

/**
 * The wire form of a WORK body: pseud v1 always has kwargs; compact drops what is empty, and
 * carries metadata (`m`) and the time the caller still waits (`d`, ms: relative, so clocks need not agree).
 * Extras that would be `{ d }` alone are that number alone: `[name, args, kwargs|null, ms]`.
 */
export function workBody(framing: Framing, name: string, args: unknown[], kwargs: Record<string, unknown> | undefined,
  metadata: Readonly<Record<string, string>> | undefined, timeoutMs?: number, stream?: { readonly items: number; readonly bytes: number },
  argStreams?: readonly number[]): unknown[] {
  if (framing === 'v1') return [name, args, kwargs ?? {}];
  if (stream || argStreams) {
    const extras: Record<string, unknown> = {};
    if (stream) extras['s'] = [stream.items, stream.bytes];
    if (argStreams) extras['a'] = argStreams;
    if (metadata) extras['m'] = metadata;
    if (timeoutMs !== undefined) extras['d'] = timeoutMs;
    return [name, args, kwargs ?? null, extras];
  }
  // A deadline alone is a number, not `{ d }`: an object is a msgpackr record whose definition
  // travels with every message, and writing and reading it cost ~3 % of a call at 64 in flight.
  if (timeoutMs !== undefined) return [name, args, kwargs ?? null, metadata ? { m: metadata, d: timeoutMs } : timeoutMs];
  if (metadata) return [name, args, kwargs ?? null, { m: metadata }];
  return kwargs ? [name, args, kwargs] : [name, args];
}

/**
 * Whether WORK with this id is one-way (no answer wanted): an empty id in v1, 0 in compact. pseud
 * peers never send such ids; if one answers a one-way WORK anyway, the answer matches no call.
 */
export function isOneWayId(id: MessageId): boolean {
  return typeof id === 'number' ? id === 0 : Buffer.isBuffer(id) && id.length === 0;
}
