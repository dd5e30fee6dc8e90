/**
 * What a benchmarked system provides: two roles, each in its own process.
 *
 * - the responder registers `upper(s) -> s.toUpperCase()` and answers;
 * - the caller makes the calls and is the side the scenarios drive.
 *
 * One of the two binds (`binder`); its `start` returns the details (endpoint, keys) the other
 * side's `start` receives. Everything listens on 127.0.0.1 only.
 */

/** Endpoint and whatever else (a server's public key) the other role needs to connect. */
export type Rendezvous = Record<string, string>;

export interface Role {
  /** Set by the binding role: what the other one needs to connect. */
  readonly rendezvous?: Rendezvous;
  close(): Promise<void>;
}

export interface Caller extends Role {
  /** Resolves once a call works (and its answer is right), bounded by `timeoutMs`. */
  ready(timeoutMs: number): Promise<void>;
  /** One call of the benchmarked function: resolves to `payload.toUpperCase()`. */
  call(payload: string): Promise<string>;
}

export type Responder = Role;

export interface NodeSystem {
  /** Which role binds: it starts first, and its rendezvous goes to the other. */
  readonly binder: 'caller' | 'responder';
  startResponder(rendezvous: Rendezvous | undefined): Promise<Responder>;
  startCaller(rendezvous: Rendezvous | undefined): Promise<Caller>;
}

/** The benchmarked function, the same everywhere. */
export function upper(s: string): string {
  return s.toUpperCase();
}

/** Retries `attempt` until it resolves or `timeoutMs` passes (bounded: at most one try per 20 ms). */
export async function retryUntil<T>(attempt: () => Promise<T>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      return await attempt();
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  throw new Error(`${what}: not ready within ${timeoutMs} ms (${(lastError as Error)?.message ?? 'no answer'})`);
}

/** Checks an answer of the benchmarked function. */
export function expectUpper(payload: string, answer: unknown): void {
  if (answer !== payload.toUpperCase()) throw new Error(`wrong answer: ${String(answer).slice(0, 40)}`);
}
