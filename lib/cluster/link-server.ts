/**
 * The serving side of a node's link: what the other nodes call on it. `cluster.call` and
 * `cluster.stream` make a call (a stream) to a client connected to this node on behalf of the
 * calling node, `cluster.publish` publishes to this node's subscribers, `cluster.evict` drops a
 * connection whose identity a newer one proved on another node. The calling side (directory
 * lookups, links to the other nodes) is in node.ts.
 */
import { PeerNotConnectedError, ParameterError, ServiceClosedError } from '../errors.js';
import { relayOptions, relayTimeout, type CallScope } from '../engine/call-scope.js';
import type { RelaySettle } from '../engine/caller.js';
import { directHandler, type CallContext, type Work } from '../engine/work.js';
import type { Logger } from '../logger.js';
import type { CallOptions, ServerOptions, StreamOptions } from '../options.js';
import type { CallStream, StreamWindow } from '../engine/streams.js';
import type { Server } from '../server.js';
import type { ClusterNodeInfo } from './directory.js';

/** What a node needs of the server it belongs to. */
export interface ClusterHost {
  readonly id: string;
  readonly logger: Logger;
  readonly timeoutMs: number;
  /** A call to a client connected to this node only. */
  localInvoke(identity: string, name: string, args: unknown[], options: CallOptions, oneWay: boolean): Promise<unknown>;
  /** {@link localInvoke}, settled through `settle`; false (nothing done) when it cannot be (outgoing interceptors): use localInvoke. */
  localRelay(identity: string, name: string, args: unknown[], options: CallOptions, oneWay: boolean, settle: RelaySettle): boolean;
  /** A streaming call to a client connected to this node only. */
  localStream(identity: string, name: string, args: unknown[], options: StreamOptions): CallStream<unknown>;
  /** The window a stream's consumer grants when the caller gave none. */
  readonly streamWindow: StreamWindow;
  /** A publish to this node's subscribers only; resolves to how many it was sent to. */
  localPublish(topic: string, name: string, args: unknown[], options: CallOptions): Promise<number>;
  /** Whether `identity` is connected (and authenticated) to this node now. */
  holds(identity: string): boolean;
  /** Drops this node's connection of `identity`: a newer one proved it elsewhere. */
  evict(identity: string): void;
  /** Whether this server's calls go through outgoing interceptors (user code, which may want a real AbortSignal). */
  interceptsOutgoing(): boolean;
  /** Makes the link server (a Server, made by the caller: no import cycle). */
  makeLinkServer(id: string, options: ServerOptions): Server;
}

/** What the far node answers when the identity is not connected there (the call was not made): safe to retry elsewhere. */
function notHere(identity: string, node: string): PeerNotConnectedError {
  return Object.assign(new PeerNotConnectedError(`no client "${identity}" is connected to node "${node}"`), { notHere: true });
}

/** Whether a relayed call's scope aborted because this node stops (not because the calling node cancelled). */
function stopped(scope: CallScope): boolean {
  return scope.reason instanceof ServiceClosedError;
}

/** A stream window as the link carries it: [items, bytes], positive whole numbers. */
export function isWindow(value: unknown): value is [number, number] {
  return Array.isArray(value) && value.length === 2 && value.every((n) => Number.isSafeInteger(n) && (n as number) > 0);
}

/**
 * Registers the link's functions on `server` (the link server of node `node`); `locate` reads
 * where the directory has an identity now.
 */
export function serveLink(server: Server, host: ClusterHost, node: string, locate: (identity: string) => Promise<ClusterNodeInfo | undefined> | undefined): void {
  // The call's own arguments come last, each in its own place: one that is a stream arrives here
  // as a stream (the link's credit) and goes on to the client as one (the client's credit).
  // A direct handler (no handler context, AsyncLocalStorage or promise of its own): what it costs
  // is paid again on every call one node forwards to another.
  server.registerRpc('cluster.call', directHandler((work: Work, done: () => void) => {
    const [identity, name, kwargs, timeoutMs, oneWay] = work.args as [unknown, unknown, unknown, unknown, unknown];
    if (typeof identity !== 'string' || typeof name !== 'string' || typeof timeoutMs !== 'number' || !(timeoutMs > 0) || typeof oneWay !== 'boolean') {
      throw new ParameterError('cluster.call: [identity, name, kwargs, timeoutMs, oneWay, ...args]');
    }
    if (!host.holds(identity)) throw notHere(identity, node);
    // The calling node's cancel and this node's stop go along (through the scope, settle.scope;
    // as a real signal where outgoing interceptors see it), and a wait within the link call's own
    // deadline (a call that waited in the calling node's queue has less time than it says).
    const { scope } = work;
    const options: CallOptions = host.interceptsOutgoing() ? relayOptions(scope, true, name, timeoutMs) : { timeoutMs: relayTimeout(scope, name, timeoutMs) };
    if (kwargs !== null && typeof kwargs === 'object' && !Array.isArray(kwargs)) options.kwargs = kwargs as Record<string, unknown>;
    if (work.metadata && Object.keys(work.metadata).length > 0) options.metadata = { ...work.metadata };
    const { responder } = work;
    const settle: RelaySettle = {
      scope,
      // done() whatever the answer's sending throws (a logger of the user's, say): else the call
      // would count as running for good, and stop() would wait for it.
      resolve: (value) => {
        try {
          responder.ok(value);
        } finally {
          done();
        }
      },
      reject: (error) => {
        try {
          // This node stopping cancelled the call to its client: to the caller, the client is gone (nobody cancelled).
          responder.fail(stopped(scope) ? new PeerNotConnectedError(`client "${identity}" was on node "${node}", which stopped before "${name}" settled`) : error);
        } finally {
          done();
        }
      },
    };
    const args = work.args.slice(5);
    if (!host.localRelay(identity, name, args, options, oneWay, settle)) host.localInvoke(identity, name, args, options, oneWay).then(settle.resolve, settle.reject);
  }));
  server.registerRpc('cluster.stream', (ctx: CallContext, identity: unknown, name: unknown, kwargs: unknown, timeoutMs: unknown, window: unknown, deadlineLeftMs: unknown, ...args: unknown[]) => {
    if (typeof identity !== 'string' || typeof name !== 'string' || typeof timeoutMs !== 'number' || !(timeoutMs > 0) || !isWindow(window) ||
        (deadlineLeftMs !== null && !(typeof deadlineLeftMs === 'number' && Number.isFinite(deadlineLeftMs)))) {
      throw new ParameterError('cluster.stream: [identity, name, kwargs, timeoutMs, [items, bytes], deadlineLeftMs, ...args]');
    }
    if (!host.holds(identity)) throw notHere(identity, node);
    // The client's stream, handed to the link as this handler's result: the link's producer pulls
    // it only while the calling node grants credit, and this stream grants its client credit only
    // as items are pulled. Cancelling the link's stream returns it (CANCEL to the client); so does
    // ctx.signal (the calling node cancelled, or its link went away).
    const { signal } = relayOptions(ctx, host.interceptsOutgoing(), name);
    const options: StreamOptions = { timeoutMs, signal, streamWindow: { items: window[0], bytes: window[1] } };
    // The caller's deadline, as time left (clocks need not agree); the link's own is a margin later,
    // or sooner when the call waited at the calling node (ctx.deadline: the link's, as it was sent).
    const deadline = Math.min(typeof deadlineLeftMs === 'number' ? Date.now() + deadlineLeftMs : Number.POSITIVE_INFINITY, ctx.deadline ?? Number.POSITIVE_INFINITY);
    if (deadline !== Number.POSITIVE_INFINITY) options.deadline = deadline;
    if (kwargs !== null && typeof kwargs === 'object') options.kwargs = kwargs as Record<string, unknown>;
    if (Object.keys(ctx.metadata).length > 0) options.metadata = { ...ctx.metadata };
    const stream = host.localStream(identity, name, args, options);
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      next: () => stream.next(),
      // The link's producer is returned just before ctx.signal aborts with the caller's reason:
      // a turn later, so that the client hears that reason rather than a bare "stopped".
      async return(): Promise<IteratorResult<unknown>> {
        await Promise.resolve();
        await stream.cancel(signal.aborted ? signal.reason : undefined);
        return { done: true, value: undefined };
      },
    } satisfies AsyncIterableIterator<unknown>;
  }, { withContext: true });
  server.registerRpc('cluster.publish', (ctx: CallContext, topic: unknown, name: unknown, args: unknown, kwargs: unknown) => {
    if (typeof topic !== 'string' || typeof name !== 'string' || !Array.isArray(args)) throw new ParameterError('cluster.publish: [topic, name, args, kwargs]');
    const options: CallOptions = {};
    if (kwargs !== null && typeof kwargs === 'object') options.kwargs = kwargs as Record<string, unknown>;
    if (Object.keys(ctx.metadata).length > 0) options.metadata = { ...ctx.metadata };
    return host.localPublish(topic, name, args, options);
  }, { withContext: true });
  server.registerRpc('cluster.evict', async (identity: unknown) => {
    if (typeof identity !== 'string') throw new ParameterError('cluster.evict: [identity]');
    // Only when the directory agrees: a late eviction never drops a connection newer than the claim.
    const where = await locate(identity);
    if (where && where.node !== node) host.evict(identity);
  });
}
