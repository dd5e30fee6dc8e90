/**
 * The answer of one normal incoming call (split from dispatcher.ts): OK or ERROR, once, in the
 * framing the call came in; or, when the handler returned an AsyncIterable, a streamed result.
 */
import type { Framing, MessageId } from '../wire/messages.js';
import type { CallScope } from './call-scope.js';
import type { Connection } from './connection.js';
import { isAsyncIterable, type CallStream, type StreamProducer, type StreamWindow } from './streams.js';
import type { Responder } from './work.js';

/** What a CallResponder hands its outcome to (the Dispatcher). */
export interface ResponderOwner {
  /** The handler returned an AsyncIterable. */
  streamResult(answer: CallResponder, iterable: AsyncIterable<unknown>): void;
  /** An answer goes out (or was dropped): the call can no longer be cancelled. */
  settled(answer: CallResponder): void;
  answerOk(answer: CallResponder, value: unknown): void;
  answerError(answer: CallResponder, error: unknown): void;
}

/** The answer of a normal call: OK or ERROR, once, in the framing the call came in. */
export class CallResponder implements Responder {
  sent = false;
  /** Among the dispatcher's cancellable calls (compact, numbered). */
  cancellable = false;
  /** The caller takes a streamed result, with this window (compact framing). */
  window: StreamWindow | undefined;
  /** The producer of a streamed result, once the handler returned one. */
  producer: StreamProducer | undefined;
  /** The consumers of the caller's streamed arguments, by position. */
  inputs: Map<number, CallStream<unknown>> | undefined;

  constructor(
    readonly dispatcher: ResponderOwner,
    readonly connection: Connection,
    readonly epoch: number,
    readonly framing: Framing,
    readonly id: MessageId,
    readonly name: string,
    readonly scope: CallScope,
  ) {}

  /** The call is over: its argument streams end (`error`, or quietly). */
  endInputs(error: Error | undefined): void {
    if (!this.inputs) return;
    for (const input of this.inputs.values()) input.end(error);
    this.inputs = undefined;
  }

  ok(value: unknown): void {
    if (this.sent || this.producer) return;
    if (isAsyncIterable(value)) {
      this.dispatcher.streamResult(this, value);
      return;
    }
    this.sent = true;
    this.dispatcher.settled(this);
    this.dispatcher.answerOk(this, value);
  }

  fail(error: unknown): void {
    if (this.sent || this.producer) return;
    this.sent = true;
    this.dispatcher.settled(this);
    this.dispatcher.answerError(this, error);
  }
}
