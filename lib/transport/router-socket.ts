/**
 * The one ZeroMQ socket a peer owns: a ROUTER, with its draft and keepalive options set in one
 * place, CURVE, the receive loop, and the errors of bind and connect named by endpoint.
 */
import * as zmq from 'zeromq';
import { RpcError } from '../errors.js';
import { restrictClientKeys } from './curve.js';

/** ZMQ_ROUTER_NOTIFY (draft): an empty message per peer connect and disconnect. */
const ROUTER_NOTIFY = 97;
const NOTIFY_CONNECT_AND_DISCONNECT = 3;

/** Messages handled in a row before the receive loop lets the event loop run (timers, I/O). */
const YIELD_EVERY = 64;

/**
 * ZMQ_BACKLOG: connections the kernel queues for accept on a bound endpoint (libzmq's default is
 * 100). After a server restart every client reconnects at once: past the queue the kernel drops
 * the SYN and the client retries after 1, 3, 7, 15 s..., so 10,000 clients took over 30 s where
 * 1,000 took 2. Linux caps it at net.core.somaxconn (4096 by default).
 */
export const LISTEN_BACKLOG = 4096;

/**
 * ZMQ_RECONNECT_IVL_MAX: a connecting socket (a client) that cannot reach its server retries after
 * 100 ms (libzmq's interval, with its jitter), then doubles the wait up to this. At a fixed 100 ms,
 * 10,000 clients of a server that restarts make 70,000 connection attempts a second, and the new
 * server process starts under that load (3.5-5.5 s to bind on the bench VM, 1.4 s with the cap).
 * A client comes back at most about this long after its server does.
 */
export const RECONNECT_MAX_MS = 1000;

/** Kernel TCP keepalive: how a peer that never sends our heartbeats is found dead. */
export const TCP_KEEPALIVE = { idleSec: 30, intervalSec: 10, count: 3 } as const;

export interface RouterSocketOptions {
  /** This socket's routing id (a server's id; a client's own). */
  routingId: string;
  context?: zmq.Context | undefined;
  /** ZMQ_SNDHWM: messages libzmq queues per peer. */
  sendHighWaterMark: number;
  /** Hard cap in libzmq (it drops the connection past it). */
  maxMessageBytes: number;
}

/** What the socket reports about CURVE handshakes that fail (they are otherwise silent). */
export interface HandshakeFailures {
  refused(reason: string): void;
  failed(reason: string): void;
}

/**
 * A ROUTER socket: never blocks (`sendTimeout: 0`: a full pipe fails that message, the outbox
 * retries it), never drops an unroutable message silently (`mandatory`), and never runs ZMTP
 * heartbeats: libzmq's heartbeat timer can abort the process when the JavaScript thread stalls
 * while a peer resets its connection (libzmq #3937, #4229). Liveness is zeropeer's heartbeats,
 * and kernel TCP keepalive for peers that never send those.
 */
export class RouterSocket {
  readonly #socket: zmq.Router;
  #unrestrict: (() => void) | undefined;
  /** Whether receiveLoop runs (a receive is pending: zeromq.js polls the socket on this thread). */
  #receiving = false;
  /** An asynchronous bind in flight (on zeromq.js's worker thread): the receive loop waits for it. */
  #binding: Promise<unknown> | undefined;

  constructor(options: RouterSocketOptions) {
    this.#socket = new zmq.Router({
      ...(options.context ? { context: options.context } : {}),
      routingId: options.routingId,
      mandatory: true,
      sendHighWaterMark: options.sendHighWaterMark,
      sendTimeout: 0,
      linger: 200,
      maxMessageSize: options.maxMessageBytes,
      backlog: LISTEN_BACKLOG,
      reconnectMaxInterval: RECONNECT_MAX_MS,
      tcpKeepalive: 1,
      tcpKeepaliveIdle: TCP_KEEPALIVE.idleSec,
      tcpKeepaliveInterval: TCP_KEEPALIVE.intervalSec,
      tcpKeepaliveCount: TCP_KEEPALIVE.count,
    });
    (this.#socket as unknown as { setInt32Option(option: number, value: number): void }).setInt32Option(ROUTER_NOTIFY, NOTIFY_CONNECT_AND_DISCONNECT);
  }

  /** Option values, for tests of the settings above. */
  get settings(): { heartbeatInterval: number; tcpKeepalive: number; backlog: number; reconnectMaxInterval: number } {
    const socket = this.#socket;
    return { heartbeatInterval: socket.heartbeatInterval, tcpKeepalive: socket.tcpKeepalive, backlog: socket.backlog, reconnectMaxInterval: socket.reconnectMaxInterval };
  }

  get closed(): boolean {
    return this.#socket.closed;
  }

  /** Serves CURVE; `allowedClientKeys` (Z85) are the only client keys a ZAP handler lets in. */
  curveServer(publicKey: string, secretKey: string): void {
    this.#socket.curveServer = true;
    this.#socket.curvePublicKey = publicKey;
    this.#socket.curveSecretKey = secretKey;
  }

  /**
   * Without CURVE: a ZMTP handshake that fails is almost always a CURVE server (the mechanisms
   * differ), which would otherwise show only as calls that time out.
   */
  plainClient(failed: (reason: string) => void): void {
    this.#socket.events.on('handshake:error:protocol', ({ error }) =>
      failed(`ZMTP handshake failed (${error.message}): does the server use CURVE? then set options.curve with its serverPublicKey`));
  }

  /** Speaks CURVE to a server whose public key is `serverPublicKey`. */
  curveClient(publicKey: string, secretKey: string, serverPublicKey: string, failures: HandshakeFailures): void {
    this.#socket.curveServerKey = serverPublicKey;
    this.#socket.curvePublicKey = publicKey;
    this.#socket.curveSecretKey = secretKey;
    const events = this.#socket.events;
    events.on('handshake:error:auth', ({ error }) => failures.refused(`CURVE: the server refused this client's key (${error.status ?? error.message})`));
    const failed = ({ error }: { error: Error }): void => failures.failed(`CURVE handshake failed (${error.message}): is curve.serverPublicKey right?`);
    events.on('handshake:error:protocol', failed);
    events.on('handshake:error:other', failed);
  }

  /**
   * Binds; the real endpoint comes back (port 0 resolved). An error names the endpoint.
   *
   * Once the receive loop runs, the bind is synchronous: zeromq.js's `bind()` calls zmq_bind on a
   * libuv worker thread while the pending receive's poller reads the same libzmq socket on this
   * thread whenever a peer sends or connects. libzmq sockets are not thread-safe; two threads
   * draining one socket's commands corrupt its pipes and abort the process (pipe.cpp:355 and
   * others, see docs/hardened-zmq.md). Sends meanwhile would fail with EBUSY, too.
   */
  async bind(endpoint: string, allowedClientKeys?: readonly string[]): Promise<string> {
    if (allowedClientKeys && !this.#unrestrict) this.#unrestrict = await restrictClientKeys(this.#socket, allowedClientKeys);
    try {
      if (this.#receiving) {
        this.#socket.bindSync(endpoint);
      } else {
        const binding = this.#socket.bind(endpoint);
        this.#binding = binding.catch(() => {});
        await binding;
      }
    } catch (error) {
      throw new RpcError(`cannot bind ${endpoint}: ${(error as Error).message}`, { cause: error });
    }
    return this.#socket.lastEndpoint ?? endpoint;
  }

  connect(endpoint: string): void {
    try {
      this.#socket.connect(endpoint);
    } catch (error) {
      throw new RpcError(`cannot connect to ${endpoint}: ${(error as Error).message}`, { cause: error });
    }
  }

  disconnect(endpoint: string): void {
    this.#socket.disconnect(endpoint);
  }

  /** The routing id this socket gives the connections it makes from now on. */
  set routingId(id: string) {
    this.#socket.routingId = id;
  }

  /**
   * ZMQ_ROUTER_HANDOVER: a new connection that brings a routing id already in use takes the route
   * over. For a client (one server, one routing id): after `disconnect` + `connect`, libzmq
   * otherwise keeps the route on the old, closing pipe and what is sent on it is lost.
   */
  handOverRoutes(): void {
    this.#socket.handover = true;
  }

  send(frames: Buffer[]): Promise<void> {
    return this.#socket.send(frames);
  }

  /**
   * Receives until the socket closes, handing each message to `onFrames` (which returns how many
   * messages it carried, a batch several). What `onFrames` throws
   * is reported to `onError` and the loop goes on: nothing a peer sends may stop it.
   */
  async receiveLoop(onFrames: (frames: Buffer[]) => number, onError: (error: unknown, frames: Buffer[] | undefined) => void): Promise<void> {
    let burst = 0;
    this.#receiving = true;
    // A bind not awaited before start (server.bind(a); server.start()) must not run beside a receive.
    await this.#binding;
    for (;;) {
      // While messages are waiting, receive() resolves at once and this loop runs on microtasks
      // alone: timers, other sockets and I/O would starve under a flood. Give them a turn.
      if (burst >= YIELD_EVERY) {
        burst = 0;
        await new Promise(setImmediate);
      }
      let frames: Buffer[];
      try {
        frames = await this.#socket.receive();
      } catch (error) {
        if (this.#socket.closed) return;
        burst++; // a failure that repeats must not keep the loop on microtasks either
        onError(error, undefined);
        continue;
      }
      try {
        burst += onFrames(frames); // a batch counts as the messages it carries
      } catch (error) {
        burst++;
        onError(error, frames);
      }
    }
  }

  close(): void {
    this.#unrestrict?.();
    this.#unrestrict = undefined;
    if (!this.#socket.closed) this.#socket.close();
  }
}

/** Whether a tcp endpoint listens beyond this machine (anything but 127.0.0.0/8, localhost and ::1). */
export function isOpenNetwork(endpoint: string): boolean {
  const match = /^tcp:\/\/(?:\[([^\]]+)\]|([^:]+)):/.exec(endpoint);
  if (!match) return false; // ipc, inproc: local by nature
  const host = match[1] ?? match[2]!;
  return !(host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host));
}

/** Whether a failed send means that no route to the peer exists (any more). */
export function isUnreachable(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === 'EHOSTUNREACH';
}
