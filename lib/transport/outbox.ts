/**
 * Hands messages to the ROUTER socket, one queue per connection.
 *
 * The socket never blocks (`sendTimeout: 0`): when a peer's ZeroMQ pipe is full (it reads slower
 * than we write), its messages wait here and are retried with a short back-off, while messages to
 * every other peer go on. A queue holds at most `limit` messages besides calls (which maxPendingCalls
 * bounds); past that, a send fails at once.
 *
 * Batching (compact messages only): the messages to a connection made in one run of the microtask
 * queue (the calls of one tick, the answers to one received batch, a stream's items) are held and
 * leave together when that run ends (a few idle microtask hops), as one ZeroMQ message (see
 * encodeBatch); a message alone leaves
 * alone, as itself. One native send and one receive instead of one per message: the cost that bounds
 * throughput. Nothing waits for I/O or a timer, so a lone call is not delayed; order per connection
 * is kept: a message that cannot join a batch (v1) first sends what is held.
 */
import { KeptMap, type Kept } from '../kept-map.js';
import { batchBytes, encodeBatch } from '../wire/framing.js';

/** What the outbox sends through (the socket). */
export interface Sender {
  /** Sends one ZeroMQ message; `messages`: how many it carries (a batch, several). */
  send(frames: Buffer[], messages: number): Promise<void>;
}

/** What the sender of one message wants to hear. */
export interface OutgoingHooks {
  /** The message could not be sent (no route, queue full, socket closed). */
  onError?(error: Error): void;
  /** The message was handed to ZeroMQ. */
  onSent?(): void;
  /** True when the message is no longer worth sending (its call settled meanwhile). */
  stale?(): boolean;
  /** Calls are bounded by maxPendingCalls already; only other messages count against the queue limit. */
  exempt?: boolean;
}

interface Outgoing {
  frames: Buffer[];
  size: number;
  /** Messages it carries: 1, or a batch's count. */
  messages: number;
  /** The sender's hooks, as given: a call's are methods of its class, which a copy of its own properties would lose. */
  hooks: OutgoingHooks;
}

interface Queue {
  items: Outgoing[];
  /** A pump is sending from it (it may have just been emptied by drop). */
  busy: boolean;
  /** Bytes of the items waiting. */
  bytes: number;
  /** Messages waiting (a batch counts as the messages it carries). */
  messages: number;
}

/** How much may wait: messages and bytes per connection, bytes in all. */
export interface OutboxLimits {
  readonly messages: number;
  readonly bytes: number;
  readonly totalBytes: number;
}

/** How large a batch may grow (messages, payload bytes); false: every message leaves alone. */
export type BatchLimits = { readonly messages: number; readonly bytes: number } | false;

/**
 * What the outbox keeps for one connection: what is held to leave together, and the last direct
 * send until it settles. It stays from one batch to the next (see Outbox.#keys).
 */
interface PerKey extends Kept {
  readonly key: string;
  readonly routingId: Buffer;
  packets: Buffer[];
  hooks: OutgoingHooks[];
  bytes: number;
  /** In the list of what the next flush sends. */
  dirty: boolean;
  /** The last direct send, until it settles: what waits in the queue must not overtake it. */
  unsettled: Promise<void> | undefined;
  /** What waits for the pipe (made at the first wait, then kept). */
  queue: Queue | undefined;
  /** Bumped when the connection goes (drop): a direct send made before, met by a full pipe, is not queued for whoever has the key now. */
  generation: number;
}

function sizeOf(frames: Buffer[]): number {
  let size = 0;
  for (const frame of frames) size += frame.length;
  return size;
}

const MAX_BACKOFF_MS = 50;

const noop = (): void => {};

/** Microtask hops with no new message after which what is held leaves (see #flushAll). */
const IDLE_HOPS = 8;

export class QueueFullError extends Error {
  constructor(what: string) {
    super(`the send queue is full (${what}): the peer does not read`);
    this.name = 'QueueFullError';
  }
}

export class Outbox {
  readonly #socket: Sender;
  /**
   * What is held per connection until the microtask queue runs dry, its last direct send and its
   * queue. An entry stays from one batch to the next (see KeptMap for why a Map's entries must not
   * come and go per batch) and goes when its connection does (drop), or at a sweep once idle.
   */
  readonly #keys: KeptMap<PerKey>;
  /** Entries with something held: what the next flush sends. */
  #dirty: PerKey[] = [];
  #flushQueued = false;
  /** Messages held since the flush was queued, as last counted, and microtask hops without a new one. */
  #heldCount = 0;
  #countSeen = 0;
  #idleHops = 0;
  readonly #batch: BatchLimits;
  #closed = false;
  #totalBytes = 0;
  /** Messages waiting in all queues (kept as they come and go: there is an entry per connection in use). */
  #totalMessages = 0;

  /** @param keys how the entries of connections no longer in use are swept (see KeptMap; tests give their own clock) */
  constructor(socket: Sender, readonly limits: OutboxLimits, batch: BatchLimits = false, keys: { sweepMs?: number; now?: () => number } = {}) {
    this.#socket = socket;
    this.#batch = batch;
    this.#keys = new KeptMap<PerKey>(idle, keys.sweepMs, keys.now);
  }

  /** Messages waiting in all queues. */
  get queuedMessages(): number {
    return this.#totalMessages;
  }

  /** Connections the outbox keeps an entry for, idle ones included (for tests). */
  get keysKept(): number {
    return this.#keys.size;
  }

  /** Bytes waiting in all queues. */
  get queuedBytes(): number {
    return this.#totalBytes;
  }

  /**
   * Queues `frames` for the connection `key` and starts sending if idle. `front`: the message was
   * handed to ZeroMQ before everything that waits (a direct send that met a full pipe): it goes first.
   */
  send(key: string, frames: Buffer[], hooks: OutgoingHooks = {}, messages = 1, front = false): void {
    if (this.#closed) return;
    this.#enqueue(this.#entry(key, frames[0]!), frames, hooks, messages, front);
  }

  /** {@link send}, for the entry of its connection. */
  #enqueue(entry: PerKey, frames: Buffer[], hooks: OutgoingHooks, messages = 1, front = false): void {
    if (this.#closed) return;
    const queue = (entry.queue ??= { items: [], busy: false, bytes: 0, messages: 0 });
    const size = sizeOf(frames);
    if (!hooks.exempt) {
      const { messages, bytes, totalBytes } = this.limits;
      const full = queue.messages >= messages ? `${messages} messages`
        : queue.bytes + size > bytes ? `${bytes} bytes for this connection`
          : this.#totalBytes + size > totalBytes ? `${totalBytes} bytes in all` : undefined;
      if (full) {
        hooks.onError?.(new QueueFullError(full));
        return;
      }
    }
    queue.bytes += size;
    this.#totalBytes += size;
    const item = { frames, size, messages, hooks };
    if (front) queue.items.unshift(item);
    else queue.items.push(item);
    queue.messages += messages;
    this.#totalMessages += messages;
    if (!queue.busy) void this.#pump(entry, queue);
  }

  /**
   * The common case: nothing waits for this connection, so hand the frames to ZeroMQ now. Only a
   * full pipe (EAGAIN) sends the message to the queue, to be retried in order after what waits.
   */
  sendNow(key: string, frames: Buffer[], hooks: OutgoingHooks = {}): void {
    if (this.#closed) return;
    if (this.#batch && frames.length === 2) {
      const held = this.#entry(key, frames[0]!);
      if (!held.dirty) {
        held.dirty = true;
        this.#dirty.push(held);
      }
      this.#hold(held, frames[1]!, hooks);
      this.#heldCount++;
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        this.#countSeen = this.#heldCount;
        this.#idleHops = 0;
        queueMicrotask(this.#flushAll);
      }
      return;
    }
    const entry = this.#entry(key, frames[0]!);
    if (entry.packets.length > 0) this.#flush(entry); // what is held goes first
    if (waits(entry)) this.#enqueue(entry, frames, hooks);
    else this.#direct(entry, frames, hooks, 1);
  }

  /**
   * Whether nothing is queued, held or unsettled for `key`: a message handed straight to the
   * socket now cannot overtake one of the outbox's (a heartbeat, which is never retried).
   */
  idle(key: string): boolean {
    const entry = this.#keys.peek(key);
    return !this.#closed && (entry === undefined || (!waits(entry) && entry.packets.length === 0));
  }

  /** The entry of `key`, made if there is none (see #keys). */
  #entry(key: string, routingId: Buffer): PerKey {
    return this.#keys.get(key) ?? this.#keys.add(key, {
      key, routingId, packets: [], hooks: [], bytes: 0, dirty: false, unsettled: undefined, queue: undefined, generation: 0, used: true,
    });
  }

  /** Remembers the direct send to `key` until it settles: the queue waits for it. */
  #track(entry: PerKey, sent: Promise<void>): void {
    const settled = sent.then(noop, noop).then(() => {
      if (entry.unsettled === settled) entry.unsettled = undefined;
    });
    entry.unsettled = settled;
  }

  #direct(entry: PerKey, frames: Buffer[], hooks: OutgoingHooks, messages: number): void {
    const { generation } = entry;
    const sent = this.#socket.send(frames, messages);
    sent.then(
      hooks.onSent && (() => hooks.onSent!()),
      (error: { code?: string }) => {
        if (this.#retries(entry, generation, error)) this.#enqueue(entry, frames, hooks, messages, true);
        else hooks.onError?.(error as Error);
      },
    );
    this.#track(entry, sent);
  }

  /**
   * Whether a direct send that failed goes to the queue to be tried again: a full pipe (EAGAIN),
   * while the connection it was made for is still there (not dropped since: a new one with the
   * same key must not receive it).
   */
  #retries(entry: PerKey, generation: number, error: { code?: string }): boolean {
    return error?.code === 'EAGAIN' && !this.#closed && entry.generation === generation;
  }

  /**
   * Sends a batch; a full pipe puts its messages in the queue one by one, each with its own hooks,
   * so that each is held to the queue limit as it would be alone (a call is exempt, an answer is not).
   */
  #directBatch(entry: PerKey, packets: Buffer[], hooks: OutgoingHooks[], bytes: number): void {
    const { generation, routingId } = entry;
    const sent = this.#socket.send([routingId, encodeBatch(packets, bytes)], packets.length);
    sent.then(
      () => {
        for (const one of hooks) one.onSent?.();
      },
      (error: { code?: string }) => {
        if (this.#retries(entry, generation, error)) {
          // At the front, in order: they were handed over before anything that waits.
          for (let i = packets.length - 1; i >= 0; i--) this.#enqueue(entry, [routingId, packets[i]!], hooks[i]!, 1, true);
        } else {
          for (const one of hooks) one.onError?.(error as Error);
        }
      },
    );
    this.#track(entry, sent);
  }

  /** Holds a compact packet to leave with the others; a full batch leaves now. */
  #hold(held: PerKey, packet: Buffer, hooks: OutgoingHooks): void {
    const limits = this.#batch as Exclude<BatchLimits, false>;
    if (held.packets.length > 0 && batchBytes(held.packets.length + 1, held.bytes + packet.length) > limits.bytes) this.#flush(held);
    held.packets.push(packet);
    held.hooks.push(hooks);
    held.bytes += packet.length;
    if (held.packets.length >= limits.messages) this.#flush(held);
  }

  /** Sends what a connection holds: one packet as itself, several as one batch. */
  #flush(held: PerKey): void {
    const { packets, hooks } = held;
    if (packets.length === 0) return;
    held.packets = [];
    held.hooks = [];
    held.bytes = 0;
    // Messages already stale (their call settled while held) are left out.
    const live: Buffer[] = [];
    const liveHooks: OutgoingHooks[] = [];
    let bytes = 0;
    for (let i = 0; i < packets.length; i++) {
      if (hooks[i]!.stale?.()) continue;
      live.push(packets[i]!);
      liveHooks.push(hooks[i]!);
      bytes += packets[i]!.length;
    }
    if (live.length === 0) return;
    if (waits(held)) {
      if (live.length > 1 && this.#fits(held, live.length, batchBytes(live.length, bytes))) {
        // Room for all of it: the batch waits its turn whole.
        this.#enqueue(held, [held.routingId, encodeBatch(live, bytes)], batchHooks(liveHooks), live.length);
      } else {
        // Near a limit: each message alone, so that each is held to it as it would be alone.
        for (let i = 0; i < live.length; i++) this.#enqueue(held, [held.routingId, live[i]!], liveHooks[i]!);
      }
    } else if (live.length === 1) {
      this.#direct(held, [held.routingId, live[0]!], liveHooks[0]!, 1);
    } else {
      this.#directBatch(held, live, liveHooks, bytes);
    }
  }

  /** Whether `messages` more (of `size` bytes) fit the queue of `entry` within every limit. */
  #fits(entry: PerKey, messages: number, size: number): boolean {
    const { queue } = entry;
    const { limits } = this;
    return (queue?.messages ?? 0) + messages <= limits.messages && (queue?.bytes ?? 0) + size <= limits.bytes && this.#totalBytes + size <= limits.totalBytes;
  }

  /** Sends what is held for every connection now (before a message that bypasses the outbox, as GOODBYE does). */
  flushHeld(): void {
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const held of dirty) {
      held.dirty = false;
      this.#flush(held);
    }
  }

  /**
   * Runs a few microtask hops after the last message held: code that makes one message per step
   * of an async loop (a stream's producer, awaiting its iterator) adds one every few hops, and joins
   * the batch. When IDLE_HOPS pass with nothing new (or the microtask queue runs dry), what every
   * connection holds leaves.
   */
  readonly #flushAll = (): void => {
    if (this.#heldCount !== this.#countSeen) {
      this.#countSeen = this.#heldCount;
      this.#idleHops = 0;
    }
    if (++this.#idleHops < IDLE_HOPS && !this.#closed) {
      queueMicrotask(this.#flushAll);
      return;
    }
    this.#flushQueued = false;
    if (!this.#closed) this.flushHeld();
  };

  /** Takes the head item off a queue, and its bytes off the counts. */
  #shift(queue: Queue): void {
    const item = queue.items.shift();
    if (!item) return;
    queue.messages -= item.messages;
    this.#totalMessages -= item.messages;
    queue.bytes -= item.size;
    this.#totalBytes -= item.size;
  }

  #empty(queue: Queue): void {
    this.#totalBytes -= queue.bytes;
    this.#totalMessages -= queue.messages;
    queue.bytes = 0;
    queue.messages = 0;
    queue.items.length = 0;
  }

  /** Forgets what waits for a connection that is gone. */
  drop(key: string): void {
    const entry = this.#keys.peek(key);
    if (!entry) return;
    entry.generation++;
    entry.packets = [];
    entry.hooks = [];
    entry.bytes = 0;
    if (entry.queue) this.#empty(entry.queue);
    // A send still unsettled (or a pump still running) stays known: what a new connection with this
    // key sends waits for it. The entry goes in a later sweep.
    this.#keys.release(key);
  }

  /** Resolves once every queue is empty (or after `timeoutMs`). */
  async drained(timeoutMs = 500): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.#flushQueued || this.#totalMessages > 0) && Date.now() < deadline && !this.#closed) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /** Stops sending; what still waits is dropped. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#keys.values()) if (entry.queue) this.#empty(entry.queue);
    this.#keys.clear();
    this.#dirty = [];
  }

  async #pump(entry: PerKey, queue: Queue): Promise<void> {
    queue.busy = true;
    let backoff = 1;
    // A direct send whose outcome is not known yet goes first (a full pipe puts it at the front).
    if (entry.unsettled) await entry.unsettled;
    while (queue.items.length > 0 && !this.#closed) {
      const item = queue.items[0]!;
      const { hooks } = item;
      if (hooks.stale?.()) {
        this.#shift(queue);
        continue;
      }
      // The item may be gone from the queue when the send settles (drop, while a new connection
      // with the key queued more): only the item itself comes off, never the one after it.
      try {
        await this.#socket.send(item.frames, item.messages);
        if (queue.items[0] === item) this.#shift(queue);
        backoff = 1;
        hooks.onSent?.();
      } catch (error) {
        if ((error as { code?: string }).code === 'EAGAIN' && !this.#closed) {
          // The peer's pipe is full: wait for it to read, without holding up anybody else.
          await new Promise((resolve) => setTimeout(resolve, backoff));
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
          continue;
        }
        if (queue.items[0] === item) this.#shift(queue);
        hooks.onError?.(error as Error);
      }
    }
    queue.busy = false; // the queue stays with its entry (see #keys)
  }
}

/**
 * Whether a message to the connection of `entry` must wait its turn: something is queued, or a
 * direct send has not told yet whether the pipe took it (its EAGAIN comes a microtask later, and
 * what follows it must not overtake it).
 */
function waits(entry: PerKey): boolean {
  return entry.unsettled !== undefined || waiting(entry.queue);
}

/** Whether a queue has something waiting, or a pump still sending from it. */
function waiting(queue: Queue | undefined): boolean {
  return queue !== undefined && (queue.busy || queue.items.length > 0);
}

/** Whether an entry has nothing held, queued or unsettled: a sweep (or drop) may let it go. */
function idle(entry: PerKey): boolean {
  return entry.packets.length === 0 && entry.unsettled === undefined && !waiting(entry.queue);
}

/** The hooks of a batch that waits whole (it fit every limit): each message hears what became of it; stale when all are. */
function batchHooks(all: OutgoingHooks[]): OutgoingHooks {
  return {
    onError: (error) => {
      for (const hooks of all) hooks.onError?.(error);
    },
    onSent: () => {
      for (const hooks of all) hooks.onSent?.();
    },
    stale: () => all.every((hooks) => hooks.stale?.() === true),
    exempt: true,
  };
}
