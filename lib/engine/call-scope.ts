/**
 * The life of one incoming call as its handler sees it: the deadline the caller sent, and a signal
 * that aborts when the caller cancels, the deadline passes or the peer stops. `currentCall()`
 * finds the running call's context anywhere in the handler's async flow (AsyncLocalStorage).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { TimeoutError } from '../errors.js';
import type { CallContext } from './work.js';

/** The deadline (epoch ms) a signal given by zeropeer stands for: a call made with it inherits it. */
const deadlines = new WeakMap<AbortSignal, number>();

/**
 * The deadline (epoch ms) a signal stands for, when zeropeer made it (a handler's `ctx.signal`);
 * undefined for any other signal. A call given `{ signal: ctx.signal }` waits no longer than this.
 */
export function deadlineOf(signal: AbortSignal): number | undefined {
  return deadlines.get(signal);
}

/**
 * The scopes whose signal exists (or that relay a call), per stopping signal: one listener per
 * peer aborts them all when it stops (a listener per call would cost more than the rest of the
 * signal). A list in which each scope knows its place, not a Set: added and removed in O(1) with
 * no hash table grown and shrunk with every batch of calls (see IdTable).
 */
const armed = new WeakMap<AbortSignal, CallScope[]>();

function armedOn(stopping: AbortSignal): CallScope[] {
  let scopes = armed.get(stopping);
  if (!scopes) {
    const list = (scopes = [] as CallScope[]);
    armed.set(stopping, list);
    stopping.addEventListener('abort', () => {
      for (const scope of [...list]) scope.abort(stopping.reason as Error);
    }, { once: true });
  }
  return scopes;
}

/** The key under which a handler's context lends its scope to {@link relayOptions} (not public API). */
export const scopeOf = Symbol('zeropeer.callScope');

type AbortListener = ((event: Event) => void) | { handleEvent(event: Event): void };

/**
 * What a call made on behalf of a handler's own call needs of a signal: it aborts when that call
 * is cancelled or this peer stops, never on the deadline (the call it is given to carries a
 * timeout of its own, within that deadline). No AbortController, no timer, no EventTarget: a call
 * forwarded this way costs a few objects less (measured: ~5 µs per call for the AbortController
 * and its listener). It offers what zeropeer's caller uses of a signal (`aborted`, `reason`,
 * `addEventListener`/`removeEventListener` of 'abort', `throwIfAborted`); it is never handed to
 * user code (see {@link relayOptions}), which could give it to AbortSignal.any() or fetch().
 */
class RelaySignal {
  aborted = false;
  reason: unknown = undefined;
  onabort: ((event: Event) => void) | null = null;
  #listeners: AbortListener[] | undefined;

  addEventListener(type: string, listener: AbortListener | null): void {
    if (type !== 'abort' || !listener || this.aborted) return;
    (this.#listeners ??= []).push(listener);
  }

  removeEventListener(type: string, listener: AbortListener | null): void {
    const listeners = this.#listeners;
    if (type !== 'abort' || !listeners) return;
    const at = listeners.indexOf(listener!);
    if (at >= 0) listeners.splice(at, 1);
  }

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }

  /** Aborts with `reason`: each listener is called once (as the 'abort' listeners of a signal are). */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.#listeners ?? [];
    this.#listeners = undefined;
    if (listeners.length === 0 && !this.onabort) return;
    const event = new Event('abort');
    this.onabort?.(event);
    for (const listener of listeners) {
      try {
        if (typeof listener === 'function') listener(event);
        else listener.handleEvent(event);
      } catch (error) {
        queueMicrotask(() => { throw error; }); // as EventTarget does: reported, the others still run
      }
    }
  }
}

/**
 * The options of a call made on behalf of a handler's call (zeropeer's own relays: cluster
 * streams, proxyTo; a forwarded cluster call uses {@link CallScope.relay} instead), so that
 * its cancel, this peer's stop and its deadline go along: the light relay signal (no AbortController, no deadline timer: it does not abort on the deadline) and a
 * timeout within the deadline (at most `timeoutMs`). When user code will see the signal (outgoing
 * interceptors, which may hand it to AbortSignal.any() or fetch()), the handler's own signal.
 * Throws TimeoutError when the deadline has passed: nothing is sent.
 */
export function relayOptions(from: CallContext | CallScope, userSeesSignal: boolean, name: string, timeoutMs?: number): { signal: AbortSignal; timeoutMs?: number } {
  const scope = from instanceof CallScope ? from : (from as { [scopeOf]?: CallScope })[scopeOf];
  const signal = userSeesSignal || !scope ? from.signal : scope.relaySignal;
  const wait = relayTimeout(from, name, timeoutMs);
  return wait === undefined ? { signal } : { signal, timeoutMs: wait };
}

/**
 * The timeout of a call made on behalf of a handler's call: `timeoutMs`, at most the time left
 * until the handler's deadline (undefined: neither says). Throws TimeoutError when the deadline
 * has passed: nothing is sent.
 */
export function relayTimeout(from: CallContext | CallScope, name: string, timeoutMs?: number): number | undefined {
  const { deadline } = from;
  if (deadline === undefined) return timeoutMs;
  const left = deadline - Date.now();
  if (left <= 0) throw new TimeoutError(`"${name}" was not relayed: the deadline it inherits passed`);
  return Math.min(timeoutMs ?? left, left);
}

/** The one call a scope relays (see {@link CallScope.relay}): cancelled when the scope aborts. */
export interface RelayTarget {
  cancel(reason: unknown): void;
}

/**
 * The signal and deadline of one unit of work. The AbortController (and the deadline's timer) are
 * made only when the handler asks for the signal: most handlers never do, and a call costs less.
 */
export class CallScope {
  readonly #stopping: AbortSignal;
  #controller: AbortController | undefined;
  #relay: RelaySignal | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reason: Error | undefined;
  #ended = false;
  /** The list this scope is armed in (see armedOn), and its place there. */
  #armed: CallScope[] | undefined;
  #armedAt = 0;
  #relayed: RelayTarget | undefined;

  /**
   * @param stopping aborts when the peer stops
   * @param deadline when the caller stops waiting, epoch ms, if it said
   */
  constructor(stopping: AbortSignal, readonly deadline: number | undefined) {
    this.#stopping = stopping;
  }

  /** Aborts when the caller cancels, the deadline passes, or the peer stops. */
  get signal(): AbortSignal {
    if (this.#controller) return this.#controller.signal;
    const controller = (this.#controller = new AbortController());
    if (this.deadline !== undefined) deadlines.set(controller.signal, this.deadline);
    if (this.#reason) {
      controller.abort(this.#reason);
    } else if (this.#stopping.aborted) {
      controller.abort(this.#stopping.reason);
    } else if (this.deadline !== undefined && this.deadline <= Date.now()) {
      this.abort(this.#deadlinePassed());
    } else if (!this.#ended) {
      if (!this.#armed) this.#arm();
      if (this.deadline !== undefined) {
        this.#timer = setTimeout(() => this.abort(this.#deadlinePassed()), this.deadline - Date.now());
        this.#timer.unref(); // the caller's deadline, not a reason to keep a process alive
      }
    }
    return controller.signal;
  }

  /**
   * Aborts when the caller cancels or the peer stops; not when the deadline passes (see
   * {@link relayOptions}). Made when asked for, at most once.
   */
  get relaySignal(): AbortSignal {
    if (this.#relay) return this.#relay as unknown as AbortSignal;
    const relay = (this.#relay = new RelaySignal());
    if (this.#reason) {
      relay.abort(this.#reason);
    } else if (this.#stopping.aborted) {
      relay.abort(this.#stopping.reason);
    } else if (this.deadline !== undefined && this.deadline <= Date.now()) {
      this.abort(this.#deadlinePassed()); // past already: nobody waits for what the call would bring
    } else if (!this.#ended && !this.#armed) {
      this.#arm();
    }
    return relay as unknown as AbortSignal;
  }

  /**
   * Makes `target` the one call this scope relays (Caller.relay, for cluster forwarding): it is
   * cancelled when the scope aborts (the caller cancels, this peer stops), as a call given
   * {@link relaySignal} would be, without a signal, listener or closure per call. The scope must
   * not have aborted (the call is then not made at all) nor ended.
   */
  relay(target: RelayTarget): void {
    if (this.#ended) return;
    this.#relayed = target;
    if (!this.#armed) this.#arm();
  }

  /** Why the work was cancelled (or that the peer stops); undefined while it was not. */
  get reason(): unknown {
    return this.#reason ?? (this.#stopping.aborted ? (this.#stopping.reason as unknown) : undefined);
  }

  /** Whether the work was cancelled (or the peer stops): work not started yet should not start. */
  get aborted(): boolean {
    return this.#reason !== undefined || this.#stopping.aborted;
  }

  /** Aborts the signal with `reason` (the first reason wins). */
  abort(reason: Error): void {
    if (this.#reason) return;
    this.#reason = reason;
    this.#release();
    this.#controller?.abort(reason);
    this.#relay?.abort(reason);
    const relayed = this.#relayed;
    this.#relayed = undefined;
    relayed?.cancel(reason);
  }

  /** The work answered (or its stream ended): its timer and listener go; the signal no longer aborts. */
  end(): void {
    this.#ended = true;
    this.#relayed = undefined;
    this.#release();
  }

  #release(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const list = this.#armed;
    if (!list) return;
    this.#armed = undefined;
    // The last scope of the list takes this one's place.
    const last = list.pop()!;
    if (last === this) return;
    list[this.#armedAt] = last;
    last.#armedAt = this.#armedAt;
  }

  #arm(): void {
    const list = (this.#armed = armedOn(this.#stopping));
    this.#armedAt = list.length;
    list.push(this);
  }

  #deadlinePassed(): TimeoutError {
    const at = new Date(this.deadline!);
    return new TimeoutError(`the caller's deadline passed (${Number.isNaN(at.getTime()) ? `${this.deadline} ms since the epoch` : at.toISOString()})`);
  }
}

/** The context of the handler running in this async flow. */
export const callStorage = new AsyncLocalStorage<CallContext>();

/**
 * The context of the call whose handler is running (anywhere in its async flow: awaited functions,
 * timers, promises it made), or undefined outside a handler.
 *
 * @example
 * server.registerRpc('jobs.run', async () => { await db.query(sql, { signal: currentCall()?.signal }); });
 */
export function currentCall(): CallContext | undefined {
  return callStorage.getStore();
}
