/**
 * The stream side of incoming calls (split from dispatcher.ts): the caller's streamed arguments
 * (consumers granted a window, their items and ends) and a handler's streamed result (its
 * producer, the credit the caller grants it), or that result gathered into one list for a caller
 * that did not ask for a stream. The Dispatcher routes messages here through {@link IncomingStreamsHost}.
 */
import { MessageTooLargeError, PeerNotConnectedError, errorFromWire, errorToWire } from '../errors.js';
import { MessageType, type ErrorBody, type Framing, type MessageId, type MessageTypeCode } from '../wire/messages.js';
import type { CallResponder } from './call-responder.js';
import type { Connection } from './connection.js';
import { CallStream, RESULT_SLOT, StreamProducer, collect, type StreamWindow } from './streams.js';

export interface IncomingStreamsSettings {
  readonly sendStacks: boolean;
  /** How long a raw handler may take to reply, in ms (also the wait for each argument item). */
  readonly rawReplyTimeoutMs: number;
  /** The window this peer grants the caller's argument streams. */
  readonly streamWindow: StreamWindow;
}

/** What the streams send through (the session, as the dispatcher's host). */
export interface StreamTransport {
  /** Encodes and sends one message; returns the error when it could not be encoded, else undefined. */
  send(connection: Connection, framing: Framing, type: MessageTypeCode, id: MessageId, body: unknown, what: string): Error | undefined;
  /** The same, for a stream's items: returns the message's size in bytes, or why it was not sent. */
  sendSized(connection: Connection, framing: Framing, type: MessageTypeCode, id: MessageId, body: unknown, what: string): number | Error;
  /** The encoded size of a value, in bytes (to bound a stream gathered into one list). */
  sizeOf(value: unknown, framing: Framing): number;
  readonly maxMessageBytes: number;
  /** Whether `connection`, as of `epoch`, is still the one its routing id reaches. */
  stillThere(connection: Connection, epoch: number): boolean;
  /** A warning the peer on `connection` can cause at will (rate-limited per peer). */
  warn(connection: Connection, message: string): void;
}

/** What the streams need of the Dispatcher. */
export interface IncomingStreamsHost {
  readonly host: StreamTransport;
  /** The compact call `id` of `connection` still running, if any. */
  runningCall(connection: Connection, id: MessageId): CallResponder | undefined;
  /** Counts a producer running for a connection; call what it returns when it ends. */
  runningFor(key: string): () => void;
  /** The stream's answer is over. */
  settled(answer: CallResponder): void;
  logFailure(connection: Connection, name: string, error: unknown): void;
}

export class IncomingStreams {
  readonly #settings: IncomingStreamsSettings;
  readonly #owner: IncomingStreamsHost;

  constructor(settings: IncomingStreamsSettings, owner: IncomingStreamsHost) {
    this.#settings = settings;
    this.#owner = owner;
  }

  /** Consumers for the caller's streamed arguments, in their places; each is granted the window now. */
  argStreams(answer: CallResponder, slots: readonly number[], wireArgs: unknown[]): unknown[] {
    const { host } = this.#owner;
    const { connection, framing, id, name } = answer;
    const window = this.#settings.streamWindow;
    const args = [...wireArgs];
    answer.inputs = new Map();
    for (const slot of slots) {
      const credit = (items: number, bytes: number): void => {
        if (host.stillThere(connection, answer.epoch)) host.send(connection, framing, MessageType.STREAM_CREDIT, id, [slot, items, bytes], 'a STREAM_CREDIT');
      };
      const input = new CallStream<unknown>(`argument ${slot} of "${name}"`, window, this.#settings.rawReplyTimeoutMs, { credit, cancel: () => credit(0, 0) });
      answer.inputs.set(slot, input);
      args[slot] = input;
      credit(window.items, window.bytes);
    }
    return args;
  }

  /** An item of argument stream `slot` of the call `id` from `connection`. */
  argItem(connection: Connection, id: MessageId, slot: number, value: unknown, bytes: number): void {
    if (typeof id !== 'number') return;
    this.#owner.runningCall(connection, id)?.inputs?.get(slot)?.push(value, Math.max(1, bytes));
  }

  /** The end of argument stream `slot` of the call `id` (with the error the caller's iterable threw). */
  argEnd(connection: Connection, id: MessageId, slot: number, error: ErrorBody | undefined): void {
    if (typeof id !== 'number') return;
    this.#owner.runningCall(connection, id)?.inputs?.get(slot)?.end(error && errorFromWire(error, undefined));
  }

  /** The caller of `id` consumed items of its stream: its producer may send more. */
  credit(connection: Connection, id: MessageId, items: number, bytes: number): void {
    if (typeof id !== 'number') return;
    this.#owner.runningCall(connection, id)?.producer?.credit(items, bytes);
  }

  /**
   * A handler returned an AsyncIterable: stream it to a caller that asked for a stream, or gather
   * it into one list (bounded by maxMessageBytes) for one that did not (pseud, `peer.call`).
   */
  result(answer: CallResponder, iterable: AsyncIterable<unknown>): void {
    const { window } = answer;
    if (!window || typeof answer.id !== 'number') {
      const { host } = this.#owner;
      const limit = host.maxMessageBytes;
      collect(iterable, limit, (value) => host.sizeOf(value, answer.framing),
        (bytes) => new MessageTooLargeError(`the stream "${answer.name}" gathered into one list is over ${bytes} bytes, over maxMessageBytes (${limit}): call it as a stream (peer.stream)`),
        answer.scope.signal)
        .then((items) => answer.ok(items), (error: unknown) => answer.fail(error));
      return;
    }
    this.#startProducer(answer, iterable, window);
  }

  #startProducer(answer: CallResponder, iterable: AsyncIterable<unknown>, window: StreamWindow): void {
    const { host } = this.#owner;
    const { connection, framing, id, name, scope } = answer;
    const done = this.#owner.runningFor(connection.key);
    let producer: StreamProducer;
    try {
      producer = new StreamProducer(iterable, window, {
        item: (value) => {
          if (!host.stillThere(connection, answer.epoch)) return new PeerNotConnectedError(`the caller of "${name}" went away`);
          return host.sendSized(connection, framing, MessageType.STREAM_ITEM, id, [RESULT_SLOT, value], `an item of "${name}"`);
        },
        end: (error) => {
          if (error !== undefined) this.#owner.logFailure(connection, name, error);
          if (!answer.sent && host.stillThere(connection, answer.epoch)) {
            const body = error === undefined ? null : errorToWire(error, this.#settings.sendStacks, framing);
            host.send(connection, framing, MessageType.STREAM_END, id, [RESULT_SLOT, body], `the end of "${name}"`);
          }
        },
        finished: () => {
          answer.sent = true;
          this.#owner.settled(answer);
          done();
        },
        returnFailed: (error) => host.warn(connection, `stopping the stream "${name}" failed: ${(error as Error)?.message ?? String(error)}`),
      });
    } catch (error) {
      done();
      answer.fail(error); // [Symbol.asyncIterator]() threw
      return;
    }
    answer.producer = producer;
    // A deadline passing or this peer stopping ends the stream for both sides; a cancel stops it quietly.
    scope.signal.addEventListener('abort', () => producer.stop(scope.signal.reason), { once: true });
    producer.start();
  }
}
