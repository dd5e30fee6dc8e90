/**
 * The table of calls this peer made and has not seen settle. A call leaves the table the moment it
 * settles (result, remote error, deadline, abort, lost connection, local stop), so the table holds
 * only what is really in flight; {@link PendingCalls.limit} bounds it.
 */
import type { ErrorTable } from './errors.js';
import type { MessageId } from './protocol.js';

export interface PendingCall {
  readonly id: number;
  /** The connection the call was (or will be) sent on; only that connection may answer it. */
  connectionKey: string;
  readonly name: string;
  readonly args: unknown[];
  readonly kwargs: Record<string, unknown> | undefined;
  readonly errorTable: ErrorTable | undefined;
  /** False while the call waits for its connection to be ready. */
  sent: boolean;
  /** Sent again once already after an UNAUTHORIZED answer. */
  retried?: boolean;
  /** One-way: settles (undefined) once handed to the transport; no answer comes. */
  readonly oneWay?: boolean;
  resolve(value: unknown): void;
  reject(error: Error): void;
  /** Releases the deadline timer and abort listener. */
  release(): void;
}

export class PendingCalls {
  readonly #calls = new Map<number, PendingCall>();

  /** @param limit most calls in flight at once (`maxPendingCalls`). */
  constructor(readonly limit: number) {}

  get size(): number {
    return this.#calls.size;
  }

  get full(): boolean {
    return this.#calls.size >= this.limit;
  }

  add(call: PendingCall): void {
    this.#calls.set(call.id, call);
  }

  get(id: MessageId): PendingCall | undefined {
    return typeof id === 'number' ? this.#calls.get(id) : undefined;
  }

  /** Removes a call from the table and releases its timer; returns it, or undefined if it had settled. */
  take(id: number): PendingCall | undefined {
    const call = this.#calls.get(id);
    if (!call) return undefined;
    this.#calls.delete(id);
    call.release();
    return call;
  }

  resolve(id: number, value: unknown): void {
    this.take(id)?.resolve(value);
  }

  reject(id: number, error: Error): void {
    this.take(id)?.reject(error);
  }

  /** Calls waiting, not yet sent, on a connection, oldest first. */
  unsent(connectionKey: string): PendingCall[] {
    const calls: PendingCall[] = [];
    for (const call of this.#calls.values()) if (!call.sent && call.connectionKey === connectionKey) calls.push(call);
    return calls;
  }

  /** Rejects the calls that match; `makeError` is asked once per call so each gets its own stack. */
  rejectWhere(match: (call: PendingCall) => boolean, makeError: (call: PendingCall) => Error): void {
    for (const call of [...this.#calls.values()]) if (match(call)) this.reject(call.id, makeError(call));
  }
}
