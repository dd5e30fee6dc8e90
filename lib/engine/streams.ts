/**
 * Streams: a handler that returns an AsyncIterable sends its items one message each (STREAM_ITEM),
 * then STREAM_END; the consumer grants credit back (STREAM_CREDIT), so the producer's iterator is
 * never pulled past the window, whatever the speed difference. Both halves are here, free of
 * sockets: {@link CallStream} (the consumer's AsyncIterable) and {@link StreamProducer}.
 */
import { ProtocolError, TimeoutError } from '../errors.js';

/** How much a consumer lets a producer send ahead of what it has consumed. */
export interface StreamWindow {
  /** Items sent and not yet consumed. */
  readonly items: number;
  /** Bytes (encoded messages) sent and not yet consumed; one item may go over it. */
  readonly bytes: number;
}

/** The window a consumer grants when `streamWindow` is not given: 256 items and 1 MiB. */
export const DEFAULT_STREAM_WINDOW: StreamWindow = Object.freeze({ items: 256, bytes: 1024 * 1024 });

/** The slot of a stream message that belongs to a call's result (argument streams use 0, 1, ...). */
export const RESULT_SLOT = -1;

/** The positions of the arguments that are streams, or undefined when none is. */
export function streamSlots(args: readonly unknown[]): number[] | undefined {
  let slots: number[] | undefined;
  for (let i = 0; i < args.length; i++) if (isAsyncIterable(args[i])) (slots ??= []).push(i);
  return slots;
}

/** Whether a value is an AsyncIterable (what a streaming handler returns). */
export function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function';
}

/** What a consumer asks of the engine. */
export interface ConsumerHooks {
  /** Tells the producer that `items` items of `bytes` bytes were consumed. */
  credit(items: number, bytes: number): void;
  /** Stops the producer (CANCEL) with `reason`; the stream is closed already. */
  cancel(reason: Error): void;
}

interface Item {
  readonly value: unknown;
  readonly bytes: number;
}

/**
 * The result of a streaming call: an AsyncIterable of the producer's items (one consumer), with
 * `cancel(reason?)`. Leaving a `for await` early (break, throw) cancels it too: the producer's
 * iterator is returned (its `finally` runs) and its `ctx.signal` aborts.
 *
 * @example
 * for await (const line of client.stream.logs.tail(100)) console.log(line);
 * const s = client.stream.logs.tail(1e9); await s.cancel();
 */
export class CallStream<T = unknown> implements AsyncIterableIterator<T> {
  readonly #hooks: ConsumerHooks;
  readonly #window: StreamWindow;
  readonly #itemTimeoutMs: number;
  readonly #name: string;
  readonly #buffer: Item[] = [];
  #head = 0;
  #bufferedBytes = 0;
  /** Ended by the producer (items may still be buffered). */
  #ended = false;
  #error: Error | undefined;
  /** Closed by the consumer (cancel, break): nothing more is delivered. */
  #closed = false;
  #waiter: { resolve: (result: IteratorResult<T>) => void; reject: (error: Error) => void } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #consumedItems = 0;
  #consumedBytes = 0;

  /** @internal made by the engine */
  constructor(name: string, window: StreamWindow, itemTimeoutMs: number, hooks: ConsumerHooks) {
    this.#name = name;
    this.#window = window;
    this.#itemTimeoutMs = itemTimeoutMs;
    this.#hooks = hooks;
  }

  /** The stream is its own iterator: `for await (const item of stream)`. */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next item; rejects with the producer's error after the items before it. */
  next(): Promise<IteratorResult<T>> {
    if (this.#waiter) return Promise.reject(new TypeError('a CallStream has one consumer: await each next() before the next'));
    if (this.#head < this.#buffer.length) return Promise.resolve({ done: false, value: this.#take() });
    if (this.#closed) return Promise.resolve({ done: true, value: undefined });
    if (this.#ended) {
      this.#closed = true;
      if (this.#error) return Promise.reject(this.#error);
      return Promise.resolve({ done: true, value: undefined });
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#timer = setTimeout(() => this.#itemTimedOut(), this.#itemTimeoutMs);
    });
  }

  /** Called when a `for await` is left early: cancels the stream. */
  async return(): Promise<IteratorResult<T>> {
    await this.cancel();
    return { done: true, value: undefined };
  }

  /**
   * Stops the stream: buffered items are dropped, the producer's iterator is returned (its
   * `finally` runs) and its `ctx.signal` aborts with a CancelledError carrying `reason`.
   */
  async cancel(reason?: unknown): Promise<void> {
    if (this.#closed) return;
    const ended = this.#ended;
    this.#close();
    this.#settleWaiter({ done: true, value: undefined });
    if (!ended) this.#hooks.cancel(reason instanceof Error ? reason : new Error(typeof reason === 'string' ? reason : 'the consumer stopped the stream'));
  }

  /** @internal an item arrived (`bytes`: its message's size, as the producer counted it). */
  push(value: unknown, bytes: number): void {
    if (this.#closed || this.#ended) return;
    const item = { value, bytes };
    if (this.#waiter) {
      this.#count(item);
      this.#settleWaiter({ done: false, value: value as T });
      return;
    }
    this.#buffer.push(item);
    this.#bufferedBytes += bytes;
    const items = this.#buffer.length - this.#head;
    // One item may go over the byte window; more than that is a producer that ignores credit.
    if (items > this.#window.items || this.#bufferedBytes - bytes >= this.#window.bytes) {
      const error = new ProtocolError(`"${this.#name}": the producer sent past the stream window (${this.#window.items} items, ${this.#window.bytes} bytes)`);
      this.#buffer.length = 0;
      this.#head = 0;
      this.#bufferedBytes = 0;
      this.#ended = true;
      this.#error = error;
      this.#hooks.cancel(error);
    }
  }

  /** @internal the producer ended the stream; `error` after the items before it. */
  end(error?: Error): void {
    if (this.#ended || this.#closed) return;
    this.#ended = true;
    this.#error = error;
    if (!this.#waiter) return;
    this.#closed = true;
    if (error) this.#rejectWaiter(error);
    else this.#settleWaiter({ done: true, value: undefined });
  }

  /** Items received and not yet consumed. */
  get buffered(): number {
    return this.#buffer.length - this.#head;
  }

  #take(): T {
    const item = this.#buffer[this.#head]!;
    this.#buffer[this.#head++] = undefined as unknown as Item;
    if (this.#head === this.#buffer.length) {
      this.#buffer.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024) {
      this.#buffer.splice(0, this.#head);
      this.#head = 0;
    }
    this.#bufferedBytes -= item.bytes;
    this.#count(item);
    return item.value as T;
  }

  /** Counts a consumed item; gives credit back once half the window is consumed. */
  #count(item: Item): void {
    if (item.bytes === 0) return; // an item of a list answer (no producer to credit)
    this.#consumedItems++;
    this.#consumedBytes += item.bytes;
    if (this.#ended || this.#closed) return;
    if (this.#consumedItems * 2 >= this.#window.items || this.#consumedBytes * 2 >= this.#window.bytes) {
      this.#hooks.credit(this.#consumedItems, this.#consumedBytes);
      this.#consumedItems = 0;
      this.#consumedBytes = 0;
    }
  }

  #itemTimedOut(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    const error = new TimeoutError(`"${this.#name}": no item within ${this.#itemTimeoutMs} ms`);
    this.#close();
    this.#hooks.cancel(error);
    this.#rejectWaiter(error);
  }

  #close(): void {
    this.#closed = true;
    this.#buffer.length = 0;
    this.#head = 0;
    this.#bufferedBytes = 0;
  }

  #settleWaiter(result: IteratorResult<T>): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    this.#waiter = undefined;
    clearTimeout(this.#timer);
    waiter.resolve(result);
  }

  #rejectWaiter(error: Error): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    this.#waiter = undefined;
    clearTimeout(this.#timer);
    waiter.reject(error);
  }
}

/** What a producer asks of the engine. */
export interface ProducerHooks {
  /** Sends one item; returns its size in bytes, or the error that kept it from being sent. */
  item(value: unknown): number | Error;
  /** Sends the end (with the error that ended it); `undefined` error: the iterator is done. */
  end(error: unknown): void;
  /** The producer is finished (ended, failed or stopped): release what the call holds. */
  finished(): void;
  /** Logs what a producer's `return()` threw while being stopped. */
  returnFailed(error: unknown): void;
}

/** The window of an argument stream until the callee grants one: nothing is pulled. */
export const CLOSED_WINDOW: StreamWindow = Object.freeze({ items: 0, bytes: 0 });

/**
 * Pulls an AsyncIterable (a handler's result, or a caller's argument) and sends its items while the
 * consumer's credit allows: the iterator is never asked for an item past the window. An argument
 * stream starts closed ({@link CLOSED_WINDOW}) until the callee grants its window.
 */
export class StreamProducer {
  readonly #iterator: AsyncIterator<unknown>;
  #window: StreamWindow;
  readonly #hooks: ProducerHooks;
  #items = 0;
  #bytes = 0;
  #pulling = false;
  #done = false;

  constructor(iterable: AsyncIterable<unknown>, window: StreamWindow, hooks: ProducerHooks) {
    this.#iterator = iterable[Symbol.asyncIterator]();
    this.#window = window;
    this.#hooks = hooks;
  }

  /** Items sent and not yet consumed (never more than the window). */
  get outstanding(): { items: number; bytes: number } {
    return { items: this.#items, bytes: this.#bytes };
  }

  get done(): boolean {
    return this.#done;
  }

  /** Starts pulling. */
  start(): void {
    void this.#pull();
  }

  /** Whether the consumer's window is known (an argument stream waits for the callee to grant it). */
  get open(): boolean {
    return this.#window.items > 0;
  }

  /** The consumer granted its window (argument streams: the callee says how much it takes): start pulling. */
  grant(window: StreamWindow): void {
    if (this.#done || this.open) return;
    this.#window = window;
    void this.#pull();
  }

  /** The consumer consumed `items` items of `bytes` bytes: pull more. */
  credit(items: number, bytes: number): void {
    if (this.#done) return;
    this.#items = Math.max(0, this.#items - items);
    this.#bytes = Math.max(0, this.#bytes - bytes);
    void this.#pull();
  }

  /**
   * Stops: the iterator is returned (a generator's `finally` runs). `error`, when given, ends the
   * stream for the consumer too (a deadline, the peer stopping); a cancel needs no end.
   */
  stop(error?: unknown): void {
    if (this.#done) return;
    this.#finish(error, error !== undefined);
    this.#return();
  }

  async #pull(): Promise<void> {
    if (this.#pulling) return;
    this.#pulling = true;
    try {
      while (!this.#done && this.#items < this.#window.items && this.#bytes < this.#window.bytes) {
        let result: IteratorResult<unknown>;
        try {
          result = await this.#iterator.next();
        } catch (error) {
          this.#finish(error ?? new Error('the stream threw'), true);
          return;
        }
        if (this.#done) return; // stopped while the iterator worked
        if (result.done) {
          this.#finish(undefined, true);
          return;
        }
        const sent = this.#hooks.item(result.value);
        if (typeof sent !== 'number') {
          this.#finish(sent, true);
          this.#return();
          return;
        }
        this.#items++;
        this.#bytes += sent;
      }
    } finally {
      this.#pulling = false;
    }
  }

  #finish(error: unknown, tell: boolean): void {
    if (this.#done) return;
    this.#done = true;
    if (tell) this.#hooks.end(error);
    this.#hooks.finished();
  }

  #return(): void {
    try {
      const returned = this.#iterator.return?.();
      if (returned) returned.then(undefined, (error: unknown) => this.#hooks.returnFailed(error));
    } catch (error) {
      this.#hooks.returnFailed(error);
    }
  }
}

/**
 * Gathers an AsyncIterable into one list, for a caller that cannot take a stream (pseud, or
 * `peer.call` on a streaming function). Bounded: past `maxBytes` (as `sizeOf` counts), it stops
 * the iterator and throws `tooLarge()`; `signal` aborting stops it too.
 */
export async function collect(iterable: AsyncIterable<unknown>, maxBytes: number, sizeOf: (value: unknown) => number, tooLarge: (bytes: number) => Error,
  signal?: AbortSignal): Promise<unknown[]> {
  const items: unknown[] = [];
  let bytes = 0;
  for await (const item of iterable) {
    if (signal?.aborted) throw signal.reason; // cancelled, or the deadline passed: stop the iterator
    bytes += sizeOf(item);
    if (bytes > maxBytes) throw tooLarge(bytes); // leaving the loop returns the iterator
    items.push(item);
  }
  return items;
}
