/**
 * Message ids of one peer: a counter, and for v1 a 16-byte form (a prefix of this peer plus the
 * counter) that only this peer will recognise in a reply.
 */
import { randomBytes } from 'node:crypto';
import type { MessageId } from './messages.js';

/**
 * The prefix starts with `zp` and has zero bytes where a UUID4 has its version and variant bits,
 * so a pseud id (a UUID4) never looks like one: that is how a zeropeer server knows, from a v1
 * HELLO, that the client reads compact framing.
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

/** Whether a v1 message id was made by a zeropeer peer. */
export function isZeropeerId(id: MessageId): boolean {
  return Buffer.isBuffer(id) && id.length === 16 && id[0] === 0x7a && id[1] === 0x70 && id[6] === 0 && id[8] === 0;
}
