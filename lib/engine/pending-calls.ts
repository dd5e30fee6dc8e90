/**
 * The table of calls this peer made and has not seen settle. A call leaves the table the moment it
 * settles (result, remote error, deadline, abort, lost connection, local stop), so the table holds
 * only what is really in flight; {@link PendingCalls.limit} bounds it.
 *
 * Deadlines are kept without a timer per call: calls with the same timeout expire in the order
 * they were made, so each distinct timeout is a FIFO lane, and one timer waits for the earliest
 * head of all lanes. Settled calls leave their lane lazily, as the head passes them.
 */
import type { ErrorTable } from '../errors.js';
import type { OutgoingHooks } from '../transport/outbox.js';
import type { MessageId } from '../wire/messages.js';
import { ByConnection, type Grouped } from './by-connection.js';
import { IdTable } from './id-table.js';
import type { CallStream, StreamProducer, StreamWindow } from './streams.js';

/** What the table asks of its owner (the engine). */
export interface PendingCallsOwner {
  /** A call's deadline passed: reject it with the right TimeoutError. */
  expire(call: PendingCall): void;
  /** A call could not be handed to ZeroMQ. */
  sendFailed(call: PendingCall, error: Error): void;
  /** The caller's signal aborted: reject the call (CancelledError) and tell the other side. */
  cancelled(call: PendingCall, reason: unknown): void;
  /** A call failed (for the counters). */
  failed?(error: Error): void;
}

/** One call in flight (or waiting for its connection). It is its own outbox hooks. */
export class PendingCall implements OutgoingHooks, Grouped {
  /** Calls are bounded by maxPendingCalls, not by the send queue's limit. */
  readonly exempt = true;
  /** Its place among its connection's calls (see ByConnection). */
  groupAt = -1;
  groupSeq = 0;
  /** False while the call waits for its connection to be ready. */
  sent = false;
  /** Sent again once already after an UNAUTHORIZED answer. */
  retried = false;
  settled = false;
  readonly deadline: number;
  /** A streaming call: its items go to this consumer; the call settles when the stream ends. */
  stream: CallStream<unknown> | undefined;
  /** The window the stream's consumer grants (sent with the WORK). */
  streamWindow: StreamWindow | undefined;
  /** The time left the WORK says (a stream without a deadline says none). */
  wireTimeoutMs: number | undefined;
  /** The producers of the arguments that are streams, by position; stopped when the call settles. */
  argStreams: Map<number, StreamProducer> | undefined;
  #resolve: (value: unknown) => void = noop;
  #reject: (error: Error) => void = noop;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;
  /** Where the call was made: its frames are appended to the stack of an error it rejects with. */
  #site: { stack?: string } | undefined;

  constructor(
    readonly table: PendingCalls,
    readonly id: number,
    /** The connection the call was (or will be) sent on; only that connection may answer it. */
    public connectionKey: string,
    readonly name: string,
    readonly args: unknown[],
    readonly kwargs: Record<string, unknown> | undefined,
    readonly metadata: Readonly<Record<string, string>> | undefined,
    readonly errorTable: ErrorTable | undefined,
    readonly timeoutMs: number,
    /** One-way: settles (undefined) once handed to the transport; no answer comes. */
    readonly oneWay: boolean,
  ) {
    this.deadline = Date.now() + timeoutMs;
    this.onSent = oneWay ? () => this.table.resolve(this.id, undefined) : undefined;
  }

  /** Wires the promise's settle functions (and an abort signal) to this call. */
  bind(resolve: (value: unknown) => void, reject: (error: Error) => void, signal: AbortSignal | undefined, site?: { stack?: string }): void {
    this.#site = site;
    this.#resolve = resolve;
    this.#reject = reject;
    if (signal) {
      this.#signal = signal;
      this.#onAbort = () => this.cancel(signal.reason);
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  /** The caller gave up (its signal, or the scope of the call it relays, aborted): rejects with CancelledError, and tells the other side. */
  cancel(reason: unknown): void {
    if (!this.settled) this.table.owner.cancelled(this, reason);
  }

  /** Ends the call (called by the table only). */
  settle(error: Error | undefined, value?: unknown): void {
    this.settled = true;
    if (this.argStreams) for (const producer of this.argStreams.values()) producer.stop();
    if (this.#onAbort) this.#signal!.removeEventListener('abort', this.#onAbort);
    if (error && this.#site && error !== this.#signal?.reason) appendCallSite(error, this.#site);
    if (error) this.#reject(error);
    else this.#resolve(value);
  }

  stale(): boolean {
    return this.settled;
  }

  /** Only a one-way call wants to hear that it was handed over: it settles then. */
  readonly onSent: (() => void) | undefined;

  onError(error: Error): void {
    if (!this.settled) this.table.owner.sendFailed(this, error);
  }
}

function noop(): void {}

/** Frames of zeropeer itself, left out of a call site (the caller wants the line that made the call). */
const INTERNAL_FRAME = /[\\/]lib[\\/](?:(?:engine|wire|transport|auth)[\\/]|(?:proxy|client|server|peer)\.[jt]s)|node:internal/;

/** grpc-js style: the caller's stack, where the call was made, after the error's own. */
function appendCallSite(error: Error, site: { stack?: string }): void {
  const frames = (site.stack ?? '').split('\n').slice(1).filter((line) => !INTERNAL_FRAME.test(line));
  if (frames.length === 0 || typeof error.stack !== 'string' || error.stack.includes('--- call site ---')) return;
  try {
    error.stack = `${error.stack}\n    --- call site ---\n${frames.join('\n')}`;
  } catch {
    // a frozen error keeps its stack
  }
}

/** Lanes kept before the empty ones go (see #drop). */
const KEPT_LANES = 16;

interface Lane {
  readonly timeoutMs: number;
  /** Oldest first; the slots before `head` are emptied as the head passes them. */
  calls: (PendingCall | undefined)[];
  head: number;
}

export class PendingCalls {
  /** Not a Map: see IdTable (a Map's replaced tables kept every call alive through young-generation GCs). */
  readonly #calls = new IdTable<PendingCall>();
  readonly #lanes = new Map<number, Lane>();
  /** Lanes emptied while there were more than KEPT_LANES (see #drop). */
  #emptied: Lane[] = [];
  /** The same calls by connection: what a lost connection rejects, without a scan of every call. */
  readonly #byConnection = new ByConnection<PendingCall>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  /** True while #expire walks the lanes: settling then must not reshape them. */
  #expiring = false;

  /** @param limit most calls in flight at once (`maxPendingCalls`). */
  constructor(readonly limit: number, readonly owner: PendingCallsOwner) {}

  get size(): number {
    return this.#calls.size;
  }

  /** Timeout lanes kept, emptied ones included (for tests). */
  get lanes(): number {
    return this.#lanes.size;
  }

  get full(): boolean {
    return this.#calls.size >= this.limit;
  }

  add(call: PendingCall): void {
    this.#calls.set(call);
    this.#byConnection.add(call.connectionKey, call);
    let lane = this.#lanes.get(call.timeoutMs);
    if (!lane) {
      lane = { timeoutMs: call.timeoutMs, calls: [], head: 0 };
      this.#lanes.set(call.timeoutMs, lane);
    }
    lane.calls.push(call);
    if (call.deadline < this.#timerAt) this.#arm(call.deadline);
  }

  get(id: MessageId): PendingCall | undefined {
    return typeof id === 'number' ? this.#calls.get(id) : undefined;
  }

  /** Removes a call from the table; returns it, or undefined if it had settled. */
  #take(id: number): PendingCall | undefined {
    const call = this.#calls.delete(id);
    if (!call) return undefined;
    this.#byConnection.delete(call.connectionKey, call);
    if (this.#expiring) return call;
    if (this.#calls.size === 0) this.#clear();
    else this.#trim(this.#lanes.get(call.timeoutMs), call);
    return call;
  }

  resolve(id: number, value: unknown): void {
    this.#take(id)?.settle(undefined, value);
  }

  reject(id: number, error: Error): void {
    const call = this.#take(id);
    if (!call) return;
    this.owner.failed?.(error);
    call.settle(error);
  }

  /** The connection of `connectionKey` is gone: what the table keeps for it goes once it has no call. */
  release(connectionKey: string): void {
    this.#byConnection.release(connectionKey);
  }

  /** Calls waiting, not yet sent, on a connection, oldest first. */
  unsent(connectionKey: string): PendingCall[] {
    return this.#byConnection.of(connectionKey).filter((call) => !call.sent);
  }

  /** Rejects the calls on one connection that match (only those are looked at); `makeError` is asked once per call. */
  rejectOn(connectionKey: string, match: (call: PendingCall) => boolean, makeError: (call: PendingCall) => Error): void {
    for (const call of this.#byConnection.of(connectionKey)) if (match(call)) this.reject(call.id, makeError(call));
  }

  /** Rejects the calls that match, oldest first; `makeError` is asked once per call so each gets its own stack. */
  rejectWhere(match: (call: PendingCall) => boolean, makeError: (call: PendingCall) => Error): void {
    const calls = this.#calls.values().filter(match).sort((a, b) => a.id - b.id); // the table's order is its hash's
    for (const call of calls) this.reject(call.id, makeError(call));
  }

  /**
   * Drops the settled calls at the head of a lane (calls mostly settle in the order they were made);
   * `taken`, leaving the table now, counts as settled (it settles right after): else a lane of one
   * call (a relayed call's timeout is its own) would keep it, answer and all, until the lane's timer.
   */
  #trim(lane: Lane | undefined, taken?: PendingCall): void {
    if (!lane) return;
    const { calls } = lane;
    // A passed slot is emptied at once: a lane is compacted only every ~1,000 calls, and settled
    // calls kept there until then (with their arguments, promise and answer) outlive young GCs.
    while (lane.head < calls.length && (calls[lane.head]!.settled || calls[lane.head] === taken)) calls[lane.head++] = undefined;
    if (lane.head === calls.length) {
      this.#drop(lane);
    } else if (lane.head > 1024 && lane.head * 2 > calls.length) {
      calls.splice(0, lane.head);
      lane.head = 0;
    }
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - Date.now()));
  }

  #clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    for (const lane of this.#lanes.values()) {
      lane.calls.length = 0;
      lane.head = 0;
    }
    this.#emptied = [];
    if (this.#lanes.size > KEPT_LANES) this.#lanes.clear();
  }

  /**
   * An emptied lane stays, so that the usual one or two timeouts do not delete and re-add a Map
   * entry every batch (see KeptMap: a Map whose table is replaced over and over keeps what it held
   * through young GCs). Timeouts may all differ (a relayed call's is what is left of a
   * deadline): past KEPT_LANES lanes, the emptied ones go, a few at a time.
   */
  #drop(lane: Lane): void {
    lane.calls.length = 0;
    lane.head = 0;
    if (this.#lanes.size <= KEPT_LANES) return;
    this.#emptied.push(lane);
    if (this.#emptied.length <= KEPT_LANES) return;
    const emptied = this.#emptied;
    this.#emptied = [];
    for (const one of emptied) if (one.calls.length === 0 && this.#lanes.get(one.timeoutMs) === one) this.#lanes.delete(one.timeoutMs);
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    this.#expiring = true;
    for (const lane of this.#lanes.values()) {
      const { calls } = lane;
      while (lane.head < calls.length) {
        const call = calls[lane.head]!;
        if (!call.settled) {
          if (call.deadline > now) {
            next = Math.min(next, call.deadline);
            break;
          }
          this.owner.expire(call);
        }
        calls[lane.head++] = undefined;
      }
    }
    this.#expiring = false;
    if (this.#calls.size === 0) {
      this.#clear();
      return;
    }
    for (const lane of this.#lanes.values()) this.#trim(lane);
    if (next < Infinity && next < this.#timerAt) this.#arm(next);
  }
}
