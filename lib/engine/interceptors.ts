/**
 * Interceptors (connect-es style): cross-cutting behaviour that wraps a call on its way out or
 * a unit of work on its way in, as `(next) => async (call) => ...`.
 *
 * @example
 * const timing: Interceptor = (next) => async (call) => {
 *   const started = Date.now();
 *   try { return await next(call); } finally { log(call.method, Date.now() - started); }
 * };
 * new Server('svc', { interceptors: { incoming: [timing] } });
 */
import { rejectUnknownKeys } from '../option-checks.js';

/** What an interceptor sees of one call. `args` and `metadata` may be changed before `next`. */
export interface InterceptedCall {
  /** The dotted function name. */
  readonly method: string;
  /** The positional arguments (an interceptor may replace them). */
  args: unknown[];
  /** 'outgoing': this peer calls; 'incoming': this peer runs the other side's call. */
  readonly direction: 'incoming' | 'outgoing';
  /** The other peer: the caller's identity (incoming), or the identity called (outgoing). */
  readonly identity: string | undefined;
  /** When the caller stops waiting, epoch ms (undefined: not known here). */
  readonly deadline: number | undefined;
  /** Aborts when the call is abandoned (outgoing: the caller's signal; incoming: this peer stops). */
  readonly signal: AbortSignal | undefined;
  /** Per-call metadata: string keys and values that travel with the call (compact framing). */
  metadata: Record<string, string>;
}

/** One step of a call: resolves to its result, rejects with its error. */
export type CallStep = (call: InterceptedCall) => Promise<unknown>;

/** Wraps the next step. */
export type Interceptor = (next: CallStep) => CallStep;

/** Interceptors for each direction, outermost first. */
export interface InterceptorOptions {
  /** Around the work this peer runs for the other side. */
  incoming?: Interceptor[];
  /** Around the calls this peer makes. */
  outgoing?: Interceptor[];
}

/** What `peer.use()` takes: one interceptor or a list, per direction. */
export interface InterceptorUse {
  /** Around the work this peer runs for the other side. */
  incoming?: Interceptor | Interceptor[];
  /** Around the calls this peer makes. */
  outgoing?: Interceptor | Interceptor[];
}

/** The interceptors of one peer, per direction; `use` appends (innermost). */
export class InterceptorChains {
  readonly incoming: Interceptor[] = [];
  readonly outgoing: Interceptor[] = [];

  constructor(options: InterceptorOptions | undefined) {
    if (options) this.use(options);
  }

  use(more: InterceptorUse): void {
    rejectUnknownKeys(more, ['incoming', 'outgoing'], 'interceptors');
    for (const direction of ['incoming', 'outgoing'] as const) {
      const given = more[direction];
      if (given === undefined) continue;
      for (const interceptor of Array.isArray(given) ? given : [given]) {
        if (typeof interceptor !== 'function') throw new TypeError(`an ${direction} interceptor must be a function (next) => (call) => ...`);
        this[direction].push(interceptor);
      }
    }
  }
}

/** `last` wrapped by `interceptors`, the first one outermost. */
export function wrap(interceptors: readonly Interceptor[], last: CallStep): CallStep {
  let step = last;
  for (let i = interceptors.length - 1; i >= 0; i--) step = interceptors[i]!(step);
  return step;
}
