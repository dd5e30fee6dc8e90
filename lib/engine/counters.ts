/**
 * Counters a service scrapes (`peer.stats()`): calls each way, failures by error code, bytes and
 * messages through the socket. Plain numbers bumped on the hot path; read rarely.
 */

/** Most distinct error codes kept per direction: remote codes are the other side's choice. */
const MAX_CODES = 64;

export class PeerCounters {
  /** Calls this peer made that entered the pending table (sent, or waiting for their connection). */
  callsOut = 0;
  /** Work this peer accepted to run (from authenticated peers; one-way included). */
  callsIn = 0;
  /** Calls this peer made that failed, by error code. */
  readonly failedOut = new Map<string, number>();
  /** ERROR answers this peer sent, by error code. */
  readonly failedIn = new Map<string, number>();
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;

  /** Counts a failure under its code (`RpcError.code`, else the class name). */
  static count(by: Map<string, number>, error: unknown): void {
    const code = codeOf(error);
    const known = by.get(code);
    if (known !== undefined) by.set(code, known + 1);
    else by.set(by.size < MAX_CODES ? code : 'other', (by.get('other') ?? 0) + 1);
  }

  /** Counts one ZeroMQ message: the messages it carries (a batch, several), and its bytes. */
  received(frames: readonly Buffer[], messages = 1): void {
    this.messagesIn += messages;
    for (const frame of frames) this.bytesIn += frame.length;
  }

  sent(frames: readonly Buffer[], messages = 1): void {
    this.messagesOut += messages;
    for (const frame of frames) this.bytesOut += frame.length;
  }
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.length > 0 && code.length <= 64) return code;
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' && name.length > 0 && name.length <= 64 ? name : 'error';
}
