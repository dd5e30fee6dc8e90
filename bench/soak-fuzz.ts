/**
 * The soak's fuzzer parts: a seeded random source, valid messages of every type of the message
 * table in both framings (encoded by the library's own framing code), mutations of them, length
 * bombs, and raw DEALER sockets that send them and drain what comes back.
 *
 * Frames here are what a DEALER sends: the server's ROUTER puts the routing id in front, so v1 is
 * `['', 'v1', id, type, body]` and compact is `[packet]`.
 */
import { randomUUID } from 'node:crypto';
import * as zmq from 'zeromq';
import { MsgpackCodec } from '../lib/wire/codec.js';
import { encodeMessage, type FramingContext } from '../lib/wire/framing.js';
import { MessageIds } from '../lib/wire/message-ids.js';
import { MESSAGES, MessageType, type Framing, type MessageId, type MessageTypeCode } from '../lib/wire/messages.js';

/** mulberry32: small, fast, and the same run again from the same seed. */
export class Random {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** [0, 1) */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** One valid message as a DEALER sends it, and what it is (for the counts). */
export interface Seed {
  readonly label: string;
  readonly type: number;
  readonly framing: Framing;
  readonly frames: readonly Buffer[];
}

/** A uuid4 as 16 bytes: a pseud peer's message id. */
export function uuidBytes(): Buffer {
  return Buffer.from(randomUUID().replace(/-/g, ''), 'hex');
}

/** Bodies for every message type: plausible ones, and a few odd but valid ones. */
function bodiesOf(type: number): unknown[] {
  switch (type) {
    case MessageType.WORK:
      return [
        ['echo', [1, 'two', { three: 3 }], {}],
        ['echo', [[1, [2, [3]]], Buffer.from('bytes'), null, true, -1.5], { key: 'value' }],
        ['no.such.function', []],
        ['_zeropeer.inspect', []],
        ['_zeropeer.subscribe', ['topic']],
        ['echo', ['x'.repeat(300)]],
      ];
    case MessageType.OK:
      return [42, 'a result', { a: [1, 2, 3], b: { c: null } }, [Buffer.alloc(8, 1)], null];
    case MessageType.ERROR:
      return [['Error', 'boom', 'Error: boom\n    at somewhere'], ['RemoteThing', 'it failed', ''], ['TypeError', 'bad']];
    case MessageType.HELLO:
      return [['fuzz', 'not the password'], ['nobody', 'nothing'], ['alice']];
    case MessageType.AUTHENTICATED:
      return ['zeropeer/1 compact', ''];
    case MessageType.HEARTBEAT:
      return ['', 'beat'];
    case MessageType.GOODBYE:
      return ['stopping', ''];
    case MessageType.UNAUTHORIZED:
      return ['replaced', 'expired', 'authentication failed'];
    default:
      return [null];
  }
}

/**
 * Valid messages of every type of the message table, in v1 (with a pseud id, a zeropeer id, and no
 * id) and in compact framing (ids 0, small, 32-bit), encoded by lib/wire/framing.ts.
 */
export function makeSeeds(): Seed[] {
  const context: FramingContext = { codec: new MsgpackCodec(), ids: new MessageIds(), maxMessageBytes: 16 * 1024 * 1024 };
  const routingId = Buffer.from('fuzz');
  const seeds: Seed[] = [];
  for (const spec of MESSAGES.values()) {
    for (const body of bodiesOf(spec.code)) {
      const v1Ids: Array<MessageId | null> = [uuidBytes(), 7, null];
      for (const id of v1Ids) {
        const frames = encodeMessage(context, 'v1', routingId, spec.code as MessageTypeCode, id, body).slice(1);
        seeds.push({ label: `v1 ${spec.name}`, type: spec.code, framing: 'v1', frames });
      }
      for (const id of [0, 5, 0xfffffff0]) {
        const frames = encodeMessage(context, 'compact', routingId, spec.code as MessageTypeCode, id, body).slice(1);
        seeds.push({ label: `compact ${spec.name}`, type: spec.code, framing: 'compact', frames });
      }
    }
  }
  return seeds;
}

/** Bytes that MessagePack and the framing give meaning to. */
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0x90, 0x93, 0xa0, 0xc0, 0xc1, 0xc4, 0xc6, 0xc7, 0xc9, 0xd4, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff];

/**
 * The seeds an authenticated fuzz connection uses: not HELLO (a refused one counts towards the
 * connection's throttle) nor GOODBYE (the server would forget the connection's identity), so that
 * its work keeps reaching the dispatcher. Mutations may still turn a type into those, now and then.
 */
export function authenticatedSeeds(seeds: readonly Seed[]): Seed[] {
  return seeds.filter((seed) => seed.type !== MessageType.HELLO && seed.type !== MessageType.GOODBYE);
}

/**
 * A mutation of a seed: 1 to 3 of bit flips, truncations, splices with another seed, inserted,
 * deleted or overwritten bytes, a changed type, and frame-level changes (drop, duplicate, insert,
 * swap, or a random number of random frames). At least one frame always remains.
 */
export function mutate(random: Random, seed: Seed, seeds: readonly Seed[]): Buffer[] {
  let frames: Buffer[] = seed.frames.map((frame) => Buffer.from(frame));
  const steps = 1 + random.int(3);
  for (let step = 0; step < steps; step++) {
    const f = random.int(frames.length);
    const frame = frames[f]!;
    switch (random.int(11)) {
      case 0: { // flip 1 to 8 bits
        if (frame.length === 0) break;
        for (let n = 1 + random.int(8); n > 0; n--) {
          const at = random.int(frame.length);
          frame[at] = frame[at]! ^ (1 << random.int(8));
        }
        break;
      }
      case 1: // truncate
        frames[f] = frame.subarray(0, random.int(frame.length + 1));
        break;
      case 2: { // splice: our head, another seed's tail
        const other = random.pick(random.pick(seeds).frames);
        frames[f] = Buffer.concat([frame.subarray(0, random.int(frame.length + 1)), other.subarray(random.int(other.length + 1))]);
        break;
      }
      case 3: { // insert random bytes
        const at = random.int(frame.length + 1);
        frames[f] = Buffer.concat([frame.subarray(0, at), random.bytes(1 + random.int(16)), frame.subarray(at)]);
        break;
      }
      case 4: { // delete a range
        const at = random.int(frame.length + 1);
        frames[f] = Buffer.concat([frame.subarray(0, at), frame.subarray(at + 1 + random.int(8))]);
        break;
      }
      case 5: // overwrite a byte with one MessagePack cares about
        if (frame.length > 0) frame[random.int(frame.length)] = random.pick(INTERESTING);
        break;
      case 6: // another type
        if (seed.framing === 'v1' && frames.length >= 4) frames[3] = Buffer.from([random.int(2) ? random.pick([...MESSAGES.keys()]) : random.int(256)]);
        else if (frames[0]!.length >= 2) frames[0]![1] = random.int(2) ? random.pick([...MESSAGES.keys()]) : random.int(256);
        break;
      case 7: // drop a frame
        if (frames.length > 1) frames.splice(f, 1);
        break;
      case 8: // duplicate a frame
        frames.splice(f, 0, Buffer.from(frame));
        break;
      case 9: { // swap two frames, or put in a random one
        if (random.int(2) && frames.length > 1) {
          const g = random.int(frames.length);
          [frames[f], frames[g]] = [frames[g]!, frames[f]!];
        } else {
          frames.splice(random.int(frames.length + 1), 0, random.bytes(random.int(24)));
        }
        break;
      }
      default: { // a random frame count: 1 to 8 frames taken from this seed, another seed, or noise
        const count = 1 + random.int(8);
        const pool = [...frames, ...random.pick(seeds).frames];
        frames = Array.from({ length: count }, () => (random.int(4) ? Buffer.from(random.pick(pool)) : random.bytes(random.int(32))));
      }
    }
  }
  return frames;
}

/** `count` copies of `header`: containers nested `count` deep, each declaring a length the body does not have. */
function nested(header: number[], count = 1000): Buffer {
  return Buffer.concat(Array.from({ length: count }, () => Buffer.from(header)));
}

/** MessagePack length bombs (5,000 bytes each); the second exhausts msgpackr's heap when decoded unchecked. */
export const BOMBS: readonly Buffer[] = [
  nested([0xdd, 0xff, 0xff, 0xff, 0xff]),
  nested([0xdd, 0x00, 0x0f, 0x42, 0x40]),
  nested([0xdf, 0xff, 0xff, 0xff, 0xff]),
  nested([0xdf, 0x00, 0x0f, 0x42, 0x40]),
  Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]),
];

/** A length bomb as the body of a message of a random type, in v1 or compact framing (written by hand). */
export function bombFrames(random: Random): Buffer[] {
  const bomb = random.pick(BOMBS);
  const type = random.pick([MessageType.WORK, MessageType.HELLO, MessageType.OK, MessageType.ERROR]);
  if (random.int(2)) return [Buffer.alloc(0), Buffer.from('v1'), uuidBytes(), Buffer.from([type]), bomb];
  return [Buffer.concat([Buffer.from([0x93, type, 1 + random.int(0x7f)]), bomb])];
}

/** A v1 HELLO as a pseud client sends it (a uuid4 id: the server answers in v1). */
export function helloFrames(codec: MsgpackCodec, login: string, password: string, id = uuidBytes()): Buffer[] {
  return [Buffer.alloc(0), Buffer.from('v1'), id, Buffer.from([MessageType.HELLO]), codec.encode([login, password], 'plain')];
}

/**
 * A raw DEALER to the server: sends without ever blocking long (a full pipe, or a server that is
 * restarting, fails that send), and drains what the server answers.
 */
export class FuzzSocket {
  readonly socket: zmq.Dealer;
  received = 0;
  sent = 0;
  /** Sends refused (a full pipe, the server away). */
  refused = 0;
  readonly #waiters = new Map<string, (type: number) => void>();
  readonly #receiving: Promise<void>;

  constructor(endpoint: string, context?: zmq.Context) {
    this.socket = new zmq.Dealer({ ...(context ? { context } : {}), linger: 0, sendTimeout: 100, sendHighWaterMark: 1000, receiveHighWaterMark: 1000 });
    this.socket.connect(endpoint);
    this.#receiving = this.#receive();
  }

  async #receive(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        this.received++;
        // v1: ['', 'v1', id, type, body]
        if (frames.length === 5 && this.#waiters.size > 0) {
          const key = frames[2]!.toString('hex');
          const waiter = this.#waiters.get(key);
          if (waiter) {
            this.#waiters.delete(key);
            waiter(frames[3]![0] ?? -1);
          }
        }
      }
    } catch {
      // closed
    }
  }

  /** Sends one message; false when it could not be queued. */
  async send(frames: Buffer[]): Promise<boolean> {
    if (this.socket.closed) return false;
    try {
      await this.socket.send(frames);
      this.sent++;
      return true;
    } catch {
      this.refused++;
      return false;
    }
  }

  /** Says HELLO with these credentials; true once AUTHENTICATED comes back within `timeoutMs`. */
  async authenticate(codec: MsgpackCodec, login: string, password: string, timeoutMs: number): Promise<boolean> {
    const id = uuidBytes();
    const key = id.toString('hex');
    const answer = new Promise<number>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(key);
        resolve(-1);
      }, timeoutMs);
      this.#waiters.set(key, (type) => {
        clearTimeout(timer);
        resolve(type);
      });
    });
    if (!(await this.send(helloFrames(codec, login, password, id)))) return false;
    return (await answer) === MessageType.AUTHENTICATED;
  }

  async close(): Promise<void> {
    if (!this.socket.closed) this.socket.close();
    await this.#receiving;
  }
}
