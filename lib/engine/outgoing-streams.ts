/**
 * The stream side of outgoing calls (split from caller.ts): a call whose result is a stream (its
 * consumer, its credit, its end) and the arguments of a call that are streams (their producers,
 * the credit the callee grants them). The Caller owns the pending table and the sending; this
 * module only asks it for what it needs through {@link OutgoingStreamsHost}.
 */
import { PeerNotConnectedError, TimeoutError, errorFromWire, errorToWire } from '../errors.js';
import type { Logger } from '../logger.js';
import { MAX_OPTION_VALUE, positive } from '../option-checks.js';
import type { Outbox } from '../transport/outbox.js';
import { encodeMessage, encodeWithin, payloadBytes, type FramingContext } from '../wire/framing.js';
import { MessageType, type MessageId, type StreamEndBody } from '../wire/messages.js';
import type { Connection, Connections } from './connection.js';
import { PendingCall, type PendingCalls } from './pending-calls.js';
import { CLOSED_WINDOW, CallStream, RESULT_SLOT, StreamProducer, type StreamWindow } from './streams.js';

/** What a streaming call needs besides a call's options. */
export interface StreamRequest {
  readonly stream: CallStream<unknown>;
  readonly window: StreamWindow;
  readonly deadline: number | undefined;
}

/** The options of a streaming call this module reads. */
export interface StreamCallOptions {
  timeoutMs?: number;
  deadline?: number;
  streamWindow?: StreamWindow;
}

export interface OutgoingStreamsSettings {
  readonly peerId: string;
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** The window a consumer of a stream grants by default. */
  readonly streamWindow: StreamWindow;
}

/** What the streams need of the Caller. */
export interface OutgoingStreamsHost {
  readonly framing: FramingContext;
  readonly outbox: Outbox;
  readonly connections: Connections;
  readonly pending: PendingCalls;
  /** Sends a STREAM_CREDIT about call `id` (zeropeer peers only). */
  credit(connection: Connection, id: number, body: unknown): void;
  /** The consumer cancelled: reject the call and tell the producer. */
  cancel(call: PendingCall, reason: unknown): void;
}

/** CANCEL and STREAM_CREDIT are small and bounded by the calls in flight: never refused by the queue limit. */
export const CONTROL_HOOKS = { exempt: true } as const;

/** What settles a stream's pending call when its producer ended it (not a value: a list answer is one). */
const STREAM_DONE = Symbol('stream done');

/** A stream without a deadline still sits in the pending table: with the longest timer there is. */
export function streamTimeout(deadline: number | undefined): number {
  if (deadline === undefined) return MAX_OPTION_VALUE;
  if (typeof deadline !== 'number' || !Number.isFinite(deadline)) throw new TypeError('options.deadline must be epoch ms (a number)');
  const left = deadline - Date.now();
  if (left <= 0) throw new TimeoutError('the stream\'s deadline passed before it started');
  return Math.min(left, MAX_OPTION_VALUE);
}

function checkWindow(window: StreamWindow): StreamWindow {
  const items = positive(window.items, 'streamWindow.items', 1);
  const bytes = positive(window.bytes, 'streamWindow.bytes', 1);
  if (!Number.isInteger(items) || !Number.isInteger(bytes)) throw new TypeError('options.streamWindow items and bytes must be whole numbers');
  return { items, bytes };
}

/** A stream's call settled with a value: its producer's end, or (pseud, a plain handler) one answer whose items are the stream. */
function finishStream(stream: CallStream<unknown>, value: unknown): void {
  if (value !== STREAM_DONE) {
    for (const item of Array.isArray(value) ? value : [value]) stream.push(item, 0);
  }
  stream.end();
}

/** Makes `call` the pending call of the streaming `request`: its settling ends the stream. */
export function attachStream(call: PendingCall, request: StreamRequest, wireTimeoutMs: number | undefined, signal: AbortSignal | undefined): void {
  call.stream = request.stream;
  call.streamWindow = request.window;
  call.wireTimeoutMs = wireTimeoutMs;
  call.bind((value) => finishStream(request.stream, value), (error) => request.stream.end(error), signal);
}

export class OutgoingStreams {
  readonly #settings: OutgoingStreamsSettings;
  readonly #host: OutgoingStreamsHost;

  constructor(settings: OutgoingStreamsSettings, host: OutgoingStreamsHost) {
    this.#settings = settings;
    this.#host = host;
  }

  /**
   * A streaming call's consumer; `start` sends the call (with the request) and returns its pending
   * call, or a promise that rejects when it could not start.
   */
  open<T>(name: string, options: StreamCallOptions, start: (request: StreamRequest) => PendingCall | Promise<unknown>): CallStream<T> {
    let window: StreamWindow;
    let itemTimeoutMs: number;
    try {
      window = options.streamWindow ? checkWindow(options.streamWindow) : this.#settings.streamWindow;
      itemTimeoutMs = positive(options.timeoutMs, 'timeoutMs', this.#settings.timeoutMs);
    } catch (error) {
      const failed = new CallStream<T>(name, this.#settings.streamWindow, 1, { credit() {}, cancel() {} });
      failed.end(error as Error);
      return failed;
    }
    let call: PendingCall | undefined;
    const stream = new CallStream<T>(name, window, itemTimeoutMs, {
      credit: (items, bytes) => {
        const connection = call && this.#host.connections.byKey(call.connectionKey);
        if (connection && !call!.settled) this.#host.credit(connection, call!.id, [RESULT_SLOT, items, bytes]);
      },
      cancel: (reason) => {
        if (call && !call.settled) this.#host.cancel(call, reason);
      },
    });
    const started = start({ stream: stream as CallStream<unknown>, window, deadline: options.deadline });
    if (started instanceof PendingCall) call = started;
    else started.then(undefined, (error: Error) => stream.end(error));
    return stream;
  }

  /** One item of a stream this peer consumes; false when no stream of `connection` has that id. */
  item(connection: Connection, id: MessageId, value: unknown, bytes: number): boolean {
    const call = this.#host.pending.get(id);
    if (!call?.stream || call.connectionKey !== connection.key) return false;
    call.stream.push(value, Math.max(1, bytes));
    return true;
  }

  /** The end of a stream this peer consumes. */
  end(connection: Connection, id: MessageId, body: StreamEndBody): void {
    const { pending } = this.#host;
    const call = pending.get(id);
    if (!call?.stream || call.connectionKey !== connection.key) return;
    if (body.error) pending.reject(call.id, errorFromWire(body.error, call.errorTable));
    else pending.resolve(call.id, STREAM_DONE);
  }

  /** One producer per streamed argument, closed until the callee grants its window. */
  argProducers(call: PendingCall, slots: readonly number[]): Map<number, StreamProducer> {
    const { framing, outbox, connections } = this.#host;
    const producers = new Map<number, StreamProducer>();
    for (const slot of slots) {
      const what = `an item of argument ${slot} of "${call.name}"`;
      producers.set(slot, new StreamProducer(call.args[slot] as AsyncIterable<unknown>, CLOSED_WINDOW, {
        item: (value) => {
          const connection = connections.byKey(call.connectionKey);
          if (!connection || call.settled) return new PeerNotConnectedError(`"${call.name}" is over`);
          let frames: Buffer[];
          try {
            frames = encodeWithin(framing, 'compact', connection.routingId, MessageType.STREAM_ITEM, call.id, [slot, value], what);
          } catch (error) {
            return error as Error;
          }
          outbox.sendNow(connection.key, frames, CONTROL_HOOKS);
          return payloadBytes(frames);
        },
        end: (error) => {
          const connection = connections.byKey(call.connectionKey);
          if (!connection || call.settled) return;
          const body = error === undefined ? null : errorToWire(error, false, 'compact');
          outbox.sendNow(connection.key, encodeMessage(framing, 'compact', connection.routingId, MessageType.STREAM_END, call.id, [slot, body]), CONTROL_HOOKS);
        },
        finished: () => {},
        returnFailed: (error) => this.#settings.logger.debug('an argument stream\'s return() failed', { peer: this.#settings.peerId, name: call.name, error: (error as Error)?.message }),
      }));
    }
    return producers;
  }

  /** The callee granted (or acknowledged, or refused with [0, 0]) credit for argument `slot` of call `id`. */
  argCredit(connection: Connection, id: MessageId, slot: number, items: number, bytes: number): void {
    const call = this.#host.pending.get(id);
    const producer = call && call.connectionKey === connection.key ? call.argStreams?.get(slot) : undefined;
    if (!producer) return;
    if (items === 0) producer.stop();
    else if (!producer.open) producer.grant({ items, bytes });
    else producer.credit(items, bytes);
  }
}
