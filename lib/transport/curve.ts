/**
 * CURVE client-key allow-lists, through ZeroMQ's ZAP protocol (RFC 27).
 *
 * libzmq asks a ZAP handler bound at `inproc://zeromq.zap.01`, in the socket's own context, about
 * every CURVE handshake. There can be only one such handler per context, so one is shared by all
 * the servers of a context; each server marks its socket with a ZAP domain of its own, and the
 * handler answers by that domain's list. Handshakes of any other domain are let through.
 */
import * as zmq from 'zeromq';

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
const Z85_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_VALUES = new Map([...Z85_ALPHABET].map((char, value) => [char, value]));

/**
 * Decodes a 40-character Z85 CURVE key to its 32 bytes. zeromq.js encodes keys (curveKeyPair) but
 * exposes no decoder, and a ZAP request carries the client's key as raw bytes.
 */
export function z85Decode(text: string): Buffer {
  if (typeof text !== 'string' || text.length !== 40) throw new TypeError('a CURVE key is a 40-character Z85 string');
  const bytes = Buffer.alloc(32);
  for (let block = 0; block < 8; block++) {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const digit = Z85_VALUES.get(text[block * 5 + i]!);
      if (digit === undefined) throw new TypeError(`not a Z85 key: bad character ${JSON.stringify(text[block * 5 + i])}`);
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) throw new TypeError('not a Z85 key: a block overflows 32 bits');
    bytes.writeUInt32BE(value, block * 4);
  }
  return bytes;
}

interface ZapHandler {
  socket: zmq.Reply;
  domains: Map<string, Set<string>>;
  bound: Promise<void>;
}

const handlers = new Map<zmq.Context, ZapHandler>();
/**
 * When a handler of the context was last closed: its endpoint is released by libzmq's reaper
 * thread a moment later, so a bind that fails with EADDRINUSE soon after is tried again.
 */
const closedAt = new Map<zmq.Context, number>();
let domainCounter = 0;

/** How long after a close EADDRINUSE on the ZAP endpoint still means "not released yet". */
const RELEASE_WAIT_MS = 2000;
const RELEASE_POLL_MS = 5;

/**
 * Closes the handler's socket, on this thread, and nothing else. Never `await socket.unbind()`
 * here: zeromq.js runs an unbind on a libuv worker thread, while the handler's pending receive
 * keeps its poller on the main thread reading the same libzmq socket (ZMQ_EVENTS processes its
 * commands) whenever a server's connection ends and its ZAP pipe closes. libzmq sockets are not
 * thread-safe: two threads draining one socket's mailbox corrupts its pipes, and the process
 * aborts (`Assertion failed: _state == term_ack_sent || _state == term_req_sent2 (pipe.cpp:355)`,
 * or pipe.cpp:305, msg.cpp:387, socket_base.cpp:2140). zeromq.js 6.8.0's `unbindSync` binds
 * instead of unbinding, so it is no way out. See docs/hardened-zmq.md.
 */
function closeHandler(context: zmq.Context, handler: ZapHandler): void {
  handlers.delete(context);
  handler.socket.close();
  closedAt.set(context, Date.now());
}

/**
 * Binds a new handler at the ZAP endpoint. Right after a handler of this context closed, its
 * endpoint may not be released yet: EADDRINUSE is then tried again, for a bounded time.
 */
async function bindHandler(context: zmq.Context, reply: zmq.Reply): Promise<void> {
  for (;;) {
    try {
      await reply.bind(ZAP_ENDPOINT);
      return;
    } catch (error) {
      const closed = closedAt.get(context);
      const releasing = closed !== undefined && Date.now() - closed < RELEASE_WAIT_MS;
      if ((error as { code?: string }).code !== 'EADDRINUSE' || !releasing || reply.closed) throw error;
      await new Promise((resolve) => setTimeout(resolve, RELEASE_POLL_MS));
    }
  }
}

async function serve(handler: ZapHandler): Promise<void> {
  try {
    for await (const frames of handler.socket) {
      const [version, requestId, domain, , , mechanism, key] = frames;
      const allowed = handler.domains.get(domain?.toString() ?? '');
      const ok = !allowed || (mechanism?.toString() === 'CURVE' && key !== undefined && allowed.has(key.toString('hex')));
      await handler.socket.send([version ?? '1.0', requestId ?? '', ok ? '200' : '400', ok ? 'OK' : 'client key not allowed', '', '']);
    }
  } catch {
    // closed
  }
}

/**
 * Restricts the CURVE clients of `socket` to `allowedKeys` (Z85 public keys). Resolves to the
 * function that lifts the restriction (and closes the shared handler when no socket needs it).
 */
export async function restrictClientKeys(socket: zmq.Socket, allowedKeys: readonly string[]): Promise<() => void> {
  const keys = new Set(allowedKeys.map((key) => z85Decode(key).toString('hex')));
  const context = socket.context;
  // Fail closed: with no handler answering (one being replaced, say), libzmq refuses the handshake.
  socket.zapEnforceDomain = true;
  let owner: ZapHandler | undefined;
  while (!owner) {
    let handler = handlers.get(context);
    if (!handler) {
      const reply = new zmq.Reply({ context, linger: 0 });
      handler = { socket: reply, domains: new Map(), bound: bindHandler(context, reply) };
      handlers.set(context, handler);
    }
    try {
      await handler.bound;
    } catch (error) {
      if (handlers.get(context) === handler) closeHandler(context, handler);
      // eslint-disable-next-line preserve-caught-error -- the message carries the cause; adding `cause` would change the error
      throw new Error(`cannot bind the ZAP handler at ${ZAP_ENDPOINT} (is another one bound in this context?): ${(error as Error).message}`);
    }
    // The last user of this handler may have closed it while we waited: then start over.
    if (handlers.get(context) === handler && !handler.socket.closed) owner = handler;
  }
  if (owner.domains.size === 0) void serve(owner);
  const domain = `zeropeer-${process.pid}-${++domainCounter}`;
  owner.domains.set(domain, keys);
  socket.zapDomain = domain;
  const handler = owner;
  return () => {
    handler.domains.delete(domain);
    if (handler.domains.size === 0 && handlers.get(context) === handler) closeHandler(context, handler);
  };
}

/**
 * A fresh CURVE key pair, as 40-character Z85 strings (zeromq's own generator): give a server
 * `curve: keys`, its clients `serverPublicKey: keys.publicKey`. Keep `secretKey` secret.
 *
 * @example
 * const keys = curveKeyPair();
 * const server = new Server('service', { curve: keys });
 */
export function curveKeyPair(): {
  /** The public key, to hand to peers (a server's: clients' `serverPublicKey`). */
  publicKey: string;
  /** The secret key: never leaves this peer. */
  secretKey: string;
} {
  const { publicKey, secretKey } = zmq.curveKeyPair();
  return { publicKey, secretKey };
}
