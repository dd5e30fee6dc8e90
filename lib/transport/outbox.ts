/**
 * Hands messages to the ROUTER socket, one queue per connection.
 *
 * The socket never blocks (`sendTimeout: 0`): when a peer's ZeroMQ pipe is full (it reads slower
 * than we write), its messages wait here and are retried with a short back-off, while messages to
 * every other peer go on. A queue holds at most `limit` messages besides calls (which maxPendingCalls
 * bounds); past that, a send fails at once.
 */

/** What the outbox sends through (the socket). */
export interface Sender {
  send(frames: Buffer[]): Promise<void>;
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

interface Outgoing extends OutgoingHooks {
  frames: Buffer[];
  size: number;
}

interface Queue {
  items: Outgoing[];
  busy: boolean;
  /** Bytes of the items waiting. */
  bytes: number;
}

/** How much may wait: messages and bytes per connection, bytes in all. */
export interface OutboxLimits {
  readonly messages: number;
  readonly bytes: number;
  readonly totalBytes: number;
}

function sizeOf(frames: Buffer[]): number {
  let size = 0;
  for (const frame of frames) size += frame.length;
  return size;
}

const MAX_BACKOFF_MS = 50;

export class QueueFullError extends Error {
  constructor(what: string) {
    super(`the send queue is full (${what}): the peer does not read`);
    this.name = 'QueueFullError';
  }
}

export class Outbox {
  readonly #socket: Sender;
  readonly #queues = new Map<string, Queue>();
  #closed = false;
  #totalBytes = 0;

  constructor(socket: Sender, readonly limits: OutboxLimits) {
    this.#socket = socket;
  }

  /** Messages waiting in all queues. */
  get queuedMessages(): number {
    let messages = 0;
    for (const queue of this.#queues.values()) messages += queue.items.length;
    return messages;
  }

  /** Bytes waiting in all queues. */
  get queuedBytes(): number {
    return this.#totalBytes;
  }

  /** Queues `frames` for the connection `key` and starts sending if idle. */
  send(key: string, frames: Buffer[], hooks: OutgoingHooks = {}): void {
    if (this.#closed) return;
    let queue = this.#queues.get(key);
    if (!queue) {
      queue = { items: [], busy: false, bytes: 0 };
      this.#queues.set(key, queue);
    }
    const size = sizeOf(frames);
    if (!hooks.exempt) {
      const { messages, bytes, totalBytes } = this.limits;
      const full = queue.items.length >= messages ? `${messages} messages`
        : queue.bytes + size > bytes ? `${bytes} bytes for this connection`
          : this.#totalBytes + size > totalBytes ? `${totalBytes} bytes in all` : undefined;
      if (full) {
        hooks.onError?.(new QueueFullError(full));
        return;
      }
    }
    queue.bytes += size;
    this.#totalBytes += size;
    queue.items.push({ frames, size, ...hooks });
    if (!queue.busy) void this.#pump(key, queue);
  }

  /**
   * The common case: nothing waits for this connection, so hand the frames to ZeroMQ now. Only a
   * full pipe (EAGAIN) sends the message to the queue, to be retried in order after what waits.
   */
  sendNow(key: string, frames: Buffer[], hooks: OutgoingHooks = {}): void {
    if (this.#closed) return;
    if (this.#queues.has(key)) {
      this.send(key, frames, hooks);
      return;
    }
    this.#socket.send(frames).then(
      hooks.onSent && (() => hooks.onSent!()),
      (error: { code?: string }) => {
        if (error?.code === 'EAGAIN' && !this.#closed) this.send(key, frames, hooks);
        else hooks.onError?.(error as Error);
      },
    );
  }

  /** Takes the head item off a queue, and its bytes off the counts. */
  #shift(queue: Queue): void {
    const item = queue.items.shift();
    if (!item) return;
    queue.bytes -= item.size;
    this.#totalBytes -= item.size;
  }

  #empty(queue: Queue): void {
    this.#totalBytes -= queue.bytes;
    queue.bytes = 0;
    queue.items.length = 0;
  }

  /** Forgets what waits for a connection that is gone. */
  drop(key: string): void {
    const queue = this.#queues.get(key);
    if (!queue) return;
    this.#empty(queue);
    if (!queue.busy) this.#queues.delete(key); // a busy pump deletes it as it stops
  }

  /** Resolves once every queue is empty (or after `timeoutMs`). */
  async drained(timeoutMs = 500): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ([...this.#queues.values()].some((queue) => queue.items.length > 0) && Date.now() < deadline && !this.#closed) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /** Stops sending; what still waits is dropped. */
  close(): void {
    this.#closed = true;
    for (const queue of this.#queues.values()) this.#empty(queue);
  }

  async #pump(key: string, queue: Queue): Promise<void> {
    queue.busy = true;
    let backoff = 1;
    while (queue.items.length > 0 && !this.#closed) {
      const item = queue.items[0]!;
      if (item.stale?.()) {
        this.#shift(queue);
        continue;
      }
      try {
        await this.#socket.send(item.frames);
        this.#shift(queue);
        backoff = 1;
        item.onSent?.();
      } catch (error) {
        if ((error as { code?: string }).code === 'EAGAIN' && !this.#closed) {
          // The peer's pipe is full: wait for it to read, without holding up anybody else.
          await new Promise((resolve) => setTimeout(resolve, backoff));
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
          continue;
        }
        this.#shift(queue);
        item.onError?.(error as Error);
      }
    }
    queue.busy = false;
    if (queue.items.length === 0 && this.#queues.get(key) === queue) this.#queues.delete(key);
  }
}
