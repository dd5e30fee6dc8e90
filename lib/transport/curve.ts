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
/** A handler being closed, per context: its endpoint is free only once this settles. */
const closing = new Map<zmq.Context, Promise<void>>();
let domainCounter = 0;

/** Unbinds, then closes, so that the next handler of the context can bind at once. */
function closeHandler(context: zmq.Context, handler: ZapHandler): void {
  handlers.delete(context);
  const done = (async () => {
    await handler.socket.unbind(ZAP_ENDPOINT).catch(() => {});
    handler.socket.close();
  })();
  closing.set(context, done);
  void done.then(() => {
    if (closing.get(context) === done) closing.delete(context);
  });
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
    await closing.get(context);
    let handler = handlers.get(context);
    if (!handler) {
      const reply = new zmq.Reply({ context, linger: 0 });
      handler = { socket: reply, domains: new Map(), bound: reply.bind(ZAP_ENDPOINT) };
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
