/**
 * The caller's half of a stream from a client on another node: a {@link CallStream} fed from the
 * link's stream, which opens only once the directory said where the client is. Items are taken
 * from the link's stream only while the caller's window has room, so the link grants credit only
 * as the caller consumes: flow control holds end to end, and nothing piles up on either node
 * beyond one window each. Cancelling (break, `cancel()`, the signal) cancels the link's stream,
 * which sends CANCEL on to the far node and from there to the client.
 */
import { CallStream, type StreamWindow } from '../engine/streams.js';

/** A link stream that failed before its first item with this may be opened again elsewhere. */
export interface RelaySource {
  readonly stream: CallStream<unknown>;
  /** Whether the location it was opened to came from a cache (one more try with a fresh one is worth it). */
  readonly cached: boolean;
}

/** What the relay asks of the cluster node. */
export interface RelayHooks {
  /** Opens the link's stream; `fresh`: look the client up again, the remembered location was stale. */
  open(fresh: boolean): Promise<RelaySource>;
  /** Whether an error before the first item means "the client is not there" (worth one more try). */
  retriable(error: unknown): boolean;
  /** The error the caller sees for what the link's stream ended with. */
  callerError(error: unknown): unknown;
}

/**
 * A CallStream for the caller whose items come from a link stream opened by `hooks.open`.
 * `window` bounds the items the caller has not consumed yet (bytes are bounded by the link's own
 * stream, which uses the same window).
 */
export function relayStream<T>(name: string, window: StreamWindow, itemTimeoutMs: number, hooks: RelayHooks): CallStream<T> {
  let source: CallStream<unknown> | undefined;
  let cached = false;
  let received = 0;
  /** Items handed to the caller's stream and not yet credited back by its consumer. */
  let outstanding = 0;
  let pumping = false;
  let stopped: { reason: Error } | undefined;

  const fail = (error: unknown): void => {
    const seen = hooks.callerError(error);
    relay.end(seen instanceof Error ? seen : new Error(String(seen)));
  };

  // The byte window is enforced by the link stream; here each item counts one byte.
  const relay = new CallStream<T>(name, { items: window.items, bytes: Number.MAX_SAFE_INTEGER }, itemTimeoutMs, {
    credit(items) {
      outstanding = Math.max(0, outstanding - items);
      void pump();
    },
    cancel(reason) {
      stopped = { reason };
      void source?.cancel(reason);
    },
  });

  const start = (fresh: boolean): void => {
    hooks.open(fresh).then((opened) => {
      if (stopped) {
        void opened.stream.cancel(stopped.reason);
        return;
      }
      source = opened.stream;
      cached = opened.cached;
      void pump();
    }, fail);
  };

  async function pump(): Promise<void> {
    if (pumping || !source) return;
    pumping = true;
    try {
      while (!stopped && outstanding < window.items) {
        const from = source;
        let next: IteratorResult<unknown>;
        try {
          next = await from.next();
        } catch (error) {
          if (received === 0 && cached && !stopped && hooks.retriable(error)) {
            // The remembered location was stale (the client moved or left): ask the directory once more.
            source = undefined;
            cached = false;
            start(true);
          } else {
            fail(error);
          }
          return;
        }
        if (stopped) return;
        if (next.done) {
          relay.end();
          return;
        }
        received++;
        outstanding++;
        relay.push(next.value, 1);
      }
    } finally {
      pumping = false;
    }
  }

  start(false);
  return relay;
}
