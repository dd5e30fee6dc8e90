/**
 * Cluster mode: one server id served by several processes ("nodes"). Each node publishes which
 * identities are connected to it in a {@link RedisDirectory}; a call to a client connected
 * elsewhere goes over an authenticated link to the node that holds it, which makes the call to its
 * own client, as the server (the same id on every node), and sends back the result or the error.
 *
 * A node's link is a second zeropeer Server (bound on `advertise`) whose only clients are the
 * other nodes, authenticated with the shared secret ({@link clusterLinkSecurity}) and, unless
 * `curve: false`, CURVE-encrypted with the key its directory entry publishes (vouched for by an
 * HMAC under the secret); each node keeps one Client per other node it talks to. Cancel, deadlines
 * and streams (results and arguments) travel over the link as they do between any two peers.
 *
 * This file is the node and its calling side (directory, links, forwarding); what a link serves
 * to the other nodes (the far side of a forwarded call) is in link-server.ts.
 */
import { CancelledError, ClusterUnavailableError, PeerNotConnectedError, RpcError, ServiceClosedError, TimeoutError } from '../errors.js';
import { deadlineOf } from '../engine/call-scope.js';
import { deadlineApplied } from '../engine/caller.js';
import { rejectUnknownKeys } from '../option-checks.js';
import type { CallOptions, StreamOptions } from '../options.js';
import { CallStream, streamSlots } from '../engine/streams.js';
import type { Server } from '../server.js';
import { RedisDirectory, checkDirectorySettings, type ClusterNodeInfo, type ClusterPeer } from './directory.js';
import { checkSecret, clusterLinkSecurity, nodeEntryProof } from './link-security.js';
import { relayStream, type RelaySource } from './stream-relay.js';
import { isWindow, serveLink, type ClusterHost } from './link-server.js';
import { NodeLinks, linkKeys, type Link, type LinkKeys } from './links.js';

export type { ClusterHost } from './link-server.js';
export type { LinkKeys } from './links.js';

/** `cluster` option of a Server. */
export interface ClusterOptions {
  /** The directory: `redis://host:port[/db]`. */
  redis: string;
  /** This node's name, unique in the cluster. */
  node: string;
  /** Where the other nodes reach this node's link: an endpoint to bind (`tcp://10.0.0.5:7001`; port 0 picks one). */
  advertise: string;
  /** At least 32 characters, the same on every node: authenticates the links between nodes. */
  secret: string;
  /** How long the entries of a node outlive its last refresh (so: how soon a dead node's clients are gone), in ms. Default 10000. */
  ttlMs?: number;
  /**
   * CURVE on this node's link (Z85 keys, see `curveKeyPair()`). Default: a key pair made at start,
   * its public key published in the directory, vouched for by the secret. `false`: the link is
   * clear text (authenticated all the same). The other nodes learn the key from the directory.
   */
  curve?: false | LinkKeys;
}

/** Extra time a link call gets over the call it carries, so that the far side's own deadline answers first. */
const LINK_MARGIN_MS = 1000;
/** Locations remembered; past that many identities the cache starts over. */
const MAX_CACHED_LOCATIONS = 100_000;

/**
 * A link call's options with what it takes from the caller's: its signal (its cancel goes along),
 * metadata and error table. Not the signal's deadline (`applied`: the link's own timeout has it,
 * plus a margin): inherited, the link call would time out here before the far node's answer came.
 */
function fromCaller<O extends CallOptions>(linkOptions: O, options: CallOptions, applied: boolean): O & { [deadlineApplied]?: true } {
  const carried: O & { [deadlineApplied]?: true } = linkOptions;
  if (options.signal) {
    carried.signal = options.signal;
    if (applied) carried[deadlineApplied] = true;
  }
  if (options.metadata) carried.metadata = options.metadata;
  if (options.errorTable) carried.errorTable = options.errorTable;
  return carried;
}

function failure(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** One call as the link carries it (`cluster.call`). */
interface LinkCall {
  readonly link: Link;
  readonly args: unknown[];
  readonly options: CallOptions;
}

export class ClusterNode {
  readonly node: string;
  readonly #options: Required<Omit<ClusterOptions, 'curve'>>;
  /** This node's CURVE key pair: its link server's, and its link clients'; undefined: `curve: false`. */
  readonly #keys: LinkKeys | undefined;
  readonly #host: ClusterHost;
  readonly #linkServer: Server;
  readonly #links: NodeLinks;
  #directory: RedisDirectory | undefined;
  /** The live nodes last read from the directory: publish uses it while Redis is away. */
  #knownNodes: ClusterNodeInfo[] = [];
  /** When publish last read the live nodes: it reads them again after a second (saves two Redis round trips per publish in a burst). */
  #nodesReadAt = 0;
  #stopped = false;
  /** Reads the live nodes now and then: publish's fallback list, and links to departed nodes closed. */
  #nodesTimer: NodeJS.Timeout | undefined;

  constructor(options: ClusterOptions, host: ClusterHost) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options.cluster must be an object');
    rejectUnknownKeys(options, ['redis', 'node', 'advertise', 'secret', 'ttlMs', 'curve'], 'options.cluster');
    checkSecret(options.secret);
    if (typeof options.advertise !== 'string' || !/^(tcp|ipc|inproc):\/\//.test(options.advertise)) {
      throw new TypeError('cluster.advertise must be an endpoint the other nodes can reach (tcp://host:port)');
    }
    const ttlMs = options.ttlMs ?? 10_000;
    checkDirectorySettings(options.redis, options.node, ttlMs);
    this.#keys = linkKeys(options.curve);
    this.#options = { redis: options.redis, node: options.node, advertise: options.advertise, secret: options.secret, ttlMs };
    this.node = options.node;
    this.#host = host;
    this.#linkServer = host.makeLinkServer(`${host.id}.cluster`, {
      security: clusterLinkSecurity(options.secret, options.node), logger: host.logger, drainTimeoutMs: 200, ...(this.#keys ? { curve: { ...this.#keys } } : {}),
    });
    serveLink(this.#linkServer, host, this.node, (identity) => this.#directory?.locate(identity));
    this.#links = new NodeLinks({
      id: host.id, node: this.node, secret: options.secret, logger: host.logger, keys: this.#keys,
      // A link that went down: the locations that point at its node are forgotten.
      down: (node) => {
        for (const [identity, known] of this.#locations) if (known.where.node === node) this.#locations.delete(identity);
      },
    });
  }

  /** Binds the link, joins the directory. Resolves even while Redis is unreachable. */
  async start(): Promise<void> {
    await this.#linkServer.bind(this.#options.advertise);
    await this.#linkServer.start();
    const endpoint = this.#linkServer.endpoint;
    const publicKey = this.#keys?.publicKey;
    const directory = new RedisDirectory({
      redis: this.#options.redis, node: this.node, endpoint, namespace: this.#host.id, ttlMs: this.#options.ttlMs, logger: this.#host.logger,
      ...(publicKey ? { publicKey } : {}), proof: nodeEntryProof(this.#options.secret, this.#host.id, this.node, endpoint, publicKey),
    });
    this.#directory = directory;
    directory.on('moved', (identities) => identities.forEach((identity) => this.#host.evict(identity)));
    directory.on('up', () => void this.#refreshNodes());
    this.#nodesTimer = setInterval(() => void this.#refreshNodes(), this.#options.ttlMs);
    this.#nodesTimer.unref();
    await directory.start();
  }

  /** The link endpoint this node advertises (after start). */
  get endpoint(): string {
    return this.#linkServer.endpoint;
  }

  async #refreshNodes(): Promise<ClusterNodeInfo[]> {
    try {
      this.#knownNodes = (await this.#directory?.nodes()) ?? [];
      // Links to nodes that left: closed (they would keep reconnecting to a dead endpoint).
      this.#links.dropDownExcept(this.#knownNodes, 'the node left');
    } catch {
      // keep the last list
    }
    return this.#knownNodes;
  }

  /** A client proved `identity` on this node: take it over cluster-wide, drop an older connection elsewhere. */
  authenticated(identity: string): void {
    const directory = this.#directory;
    if (!directory) return;
    directory.claim(identity).then(async (previous) => {
      if (previous === undefined) return;
      const where = await directory.endpointOf(previous);
      if (where) await this.#links.to(where).client.invoke('cluster.evict', [identity], { timeoutMs: this.#host.timeoutMs });
    }).catch((error: unknown) => {
      if (!(error instanceof ClusterUnavailableError)) this.#host.logger.warn('cluster: could not take over an identity from its previous node', { node: this.node, identity, error: failure(error) });
    });
  }

  /** `identity` left this node. */
  gone(identity: string): void {
    this.#directory?.release(identity).catch(() => undefined); // while Redis is away, its TTL removes it
  }

  /**
   * Calls `name` on `identity`, connected to another node. Rejects with PeerNotConnectedError when
   * no live node holds it, ClusterUnavailableError while the directory is unreachable.
   */
  invoke(identity: string, name: string, args: unknown[], options: CallOptions, oneWay: boolean): Promise<unknown> {
    if (!this.#directory || this.#stopped) return Promise.reject(new PeerNotConnectedError(`no client "${identity}" is connected to "${this.#host.id}"`));
    // A remembered location: the call leaves now, with one promise (see #forward); this path is
    // the whole of the calling node's share of a cross-node call.
    const known = this.#remembered(identity);
    if (known) return this.#forward(identity, known, name, args, options, oneWay, true);
    return this.#locate(identity, false).then(({ where, cached }) => this.#forward(identity, where, name, args, options, oneWay, cached));
  }

  /**
   * Sends the call over the link to `where`. `retry`: the location was remembered, not read from
   * Redis now; if it turns out stale (the client moved or left: the far node refuses before
   * calling anything), Redis is asked once more; not with streamed arguments, whose items may
   * have gone to the far node already.
   */
  #forward(identity: string, where: ClusterNodeInfo | undefined, name: string, args: unknown[], options: CallOptions, oneWay: boolean, retry: boolean): Promise<unknown> {
    // One promise: the link call settles it through callbacks (Client.invokeSettled), not a
    // promise of its own and a second for the error mapping (with AsyncLocalStorage on, each
    // promise costs its hooks too).
    return new Promise<unknown>((resolve, reject) => {
      let onLink = false;
      const fail = (error: unknown): void => {
        if (retry && !streamSlots(args) && error instanceof PeerNotConnectedError && (error as { notHere?: unknown }).notHere === true) {
          resolve(this.#locate(identity, true).then(({ where: now }) => this.#forward(identity, now, name, args, options, oneWay, false)));
          return;
        }
        // What the link call failed with, as the caller should hear it (what failed before it was made, as it is).
        reject(onLink ? this.#callerError(error, identity, where!.node, name, options.signal) : error);
      };
      let call: LinkCall;
      try {
        call = this.#linkCall(identity, where, name, args, options, oneWay);
      } catch (error) {
        fail(error);
        return;
      }
      onLink = true;
      // A link that drops (or is closed) fails its calls in flight at once, with ServiceClosedError: mapped by #callerError.
      const { client } = call.link;
      if (!client.invokeSettled('cluster.call', call.args, call.options, { resolve, reject: fail })) {
        client.invoke('cluster.call', call.args, call.options).then(resolve, fail);
      }
    });
  }

  /** The link call that carries one call to `where` (throws, nothing sent, when it cannot go). */
  #linkCall(identity: string, where: ClusterNodeInfo | undefined, name: string, args: unknown[], options: CallOptions, oneWay: boolean): LinkCall {
    const link = this.#linkTo(identity, where);
    const { timeoutMs, linkOptions } = this.#linkOptions(name, options);
    return { link, args: [identity, name, options.kwargs ?? null, timeoutMs, oneWay, ...args], options: linkOptions };
  }

  /**
   * The link to the node that holds `identity` (`where`, as the directory says). Throws
   * PeerNotConnectedError when no other node holds it, or (`notHere`: nothing was sent, a retry
   * with a fresh location is safe) when that node's link went down.
   */
  #linkTo(identity: string, where: ClusterNodeInfo | undefined): Link {
    if (!where || where.node === this.node) throw new PeerNotConnectedError(`no client "${identity}" is connected to "${this.#host.id}" on any node`);
    const link = this.#links.to(where);
    if (!link.up && link.everUp) throw Object.assign(new PeerNotConnectedError(`client "${identity}" is on node "${where.node}", which is unreachable`), { notHere: true });
    return link;
  }

  /**
   * The time the far node waits for its client (the caller's, bounded by a deadline inherited
   * from a handler's `ctx.signal`) and the options of the link call that carries it. The link
   * waits a margin longer, so that the far node's own TimeoutError answers first; the caller's
   * signal aborting sends CANCEL over the link, and the far node cancels its call to the client.
   */
  #linkOptions(name: string, options: CallOptions): { timeoutMs: number; linkOptions: CallOptions } {
    let timeoutMs = options.timeoutMs ?? this.#host.timeoutMs;
    const { signal } = options;
    const inherited = signal && deadlineOf(signal);
    if (inherited !== undefined) {
      const left = inherited - Date.now();
      if (left <= 0) throw new TimeoutError(`"${name}" was not sent: the deadline it inherits passed`);
      timeoutMs = Math.min(timeoutMs, left);
    }
    return { timeoutMs, linkOptions: fromCaller({ timeoutMs: timeoutMs + LINK_MARGIN_MS }, options, inherited !== undefined) };
  }

  /** What the caller of `name` sees of a failed link call. */
  #callerError(error: unknown, identity: string, node: string, name: string, signal: AbortSignal | undefined): unknown {
    // The link itself dropped (the node died or left), or the far node's link server stopped with
    // the call in flight (its own stop reason, as its session words it): to the caller, its client is gone.
    if (error instanceof ServiceClosedError && !this.#stopped &&
        (error.origin === 'local' || error.message === `peer "${this.#host.id}.cluster" stopped`)) {
      return new PeerNotConnectedError(`client "${identity}" was on node "${node}", which went away before "${name}" settled`, { cause: error });
    }
    // The caller's own signal: say so with the caller's function name, not the link's.
    if (signal?.aborted && (error instanceof CancelledError || error instanceof TimeoutError) && error.origin === 'local') {
      const why = signal.reason instanceof Error ? signal.reason.message : typeof signal.reason === 'string' ? signal.reason : '';
      return error instanceof TimeoutError
        ? new TimeoutError(`"${name}" got no answer: ${why}`, { cause: signal.reason })
        : new CancelledError(`"${name}" was cancelled${why ? `: ${why}` : ''}`, { cause: signal.reason });
    }
    return error;
  }

  /**
   * A streamed result from `identity`, connected to another node: the node that holds it streams
   * its client's items back over the link. Fails like {@link invoke} (the stream ends with the error).
   */
  stream<T>(identity: string, name: string, args: unknown[], options: StreamOptions): CallStream<T> {
    const failed = (error: Error): CallStream<T> => {
      const stream = new CallStream<T>(name, this.#host.streamWindow, 1, { credit() {}, cancel() {} });
      stream.end(error);
      return stream;
    };
    if (!this.#directory || this.#stopped) return failed(new PeerNotConnectedError(`no client "${identity}" is connected to "${this.#host.id}"`));
    const window = options.streamWindow ?? this.#host.streamWindow;
    if (!isWindow([window?.items, window?.bytes])) return failed(new TypeError('options.streamWindow items and bytes must be positive whole numbers'));
    const itemTimeoutMs = options.timeoutMs ?? this.#host.timeoutMs;
    if (!(itemTimeoutMs > 0)) return failed(new TypeError('options.timeoutMs must be a positive number'));
    const { signal } = options;
    let deadline = options.deadline;
    const inherited = signal && deadlineOf(signal);
    if (inherited !== undefined) deadline = Math.min(deadline ?? inherited, inherited);
    let at = '?';
    const streamedArgs = streamSlots(args) !== undefined;
    const open = async (fresh: boolean): Promise<RelaySource> => {
      const { where, cached } = await this.#locate(identity, fresh);
      const link = this.#linkTo(identity, where);
      // The link's stream waits a margin longer for each item (and the whole), so that the far
      // node's own TimeoutError answers first; its signal follows the caller's (CANCEL goes on).
      const linkOptions = fromCaller<StreamOptions>({ timeoutMs: itemTimeoutMs + LINK_MARGIN_MS, streamWindow: window }, options, inherited !== undefined);
      if (deadline !== undefined) linkOptions.deadline = deadline + LINK_MARGIN_MS; // the inherited one included
      at = where!.node; // #linkTo threw unless there is one
      const linkArgs = [identity, name, options.kwargs ?? null, itemTimeoutMs, [window.items, window.bytes], deadline === undefined ? null : deadline - Date.now(), ...args];
      return { stream: link.client.invokeStream('cluster.stream', linkArgs, linkOptions), cached };
    };
    return relayStream<T>(name, window, itemTimeoutMs + 2 * LINK_MARGIN_MS, {
      open,
      retriable: (error) => !streamedArgs && error instanceof PeerNotConnectedError && (error as { notHere?: unknown }).notHere === true,
      callerError: (error) => this.#callerError(error, identity, at, name, signal),
    });
  }

  /**
   * Where identities were found, so that a call does not wait for Redis each time. Used only while
   * Redis answers; a stale location costs one retry (the far node refuses before calling anything).
   */
  readonly #locations = new Map<string, { where: ClusterNodeInfo; until: number }>();

  /** Where `identity` was found lately, while Redis answers (else undefined: ask Redis). */
  #remembered(identity: string): ClusterNodeInfo | undefined {
    if (!this.#directory!.available) return undefined;
    const known = this.#locations.get(identity);
    return known && known.until > Date.now() ? known.where : undefined;
  }

  async #locate(identity: string, fresh: boolean): Promise<{ where: ClusterNodeInfo | undefined; cached: boolean }> {
    const directory = this.#directory!;
    const known = fresh ? undefined : this.#remembered(identity);
    if (known) return { where: known, cached: true };
    // Found wrong (fresh): forgotten now, so that calls meanwhile ask Redis too. An entry that only
    // expired is renewed in place below: deleted and set again every ttl/3 per identity, the Map's
    // table would be replaced over and over (see KeptMap).
    if (fresh) this.#locations.delete(identity);
    const where = await directory.locate(identity);
    const link = where && this.#links.of(where.node);
    if (where && where.node !== this.node && !(link && !link.up && link.everUp)) {
      const until = Date.now() + this.#options.ttlMs / 3;
      const entry = this.#locations.get(identity);
      if (entry) {
        entry.where = where;
        entry.until = until;
      } else {
        if (this.#locations.size >= MAX_CACHED_LOCATIONS) this.#locations.clear();
        this.#locations.set(identity, { where, until });
      }
    } else {
      this.#locations.delete(identity);
    }
    return { where, cached: false };
  }

  /** Publishes to the subscribers of every other live node; resolves to how many it was sent to. */
  async publish(topic: string, name: string, args: unknown[], options: CallOptions): Promise<number> {
    if (!this.#directory || this.#stopped) return 0;
    let nodes = this.#knownNodes;
    if (Date.now() - this.#nodesReadAt >= Math.min(1000, this.#options.ttlMs / 3)) {
      nodes = await this.#refreshNodes();
      this.#nodesReadAt = Date.now();
    }
    const counts = await Promise.allSettled(nodes.filter((n) => n.node !== this.node).map(async (where) => this.#links.to(where).client.invoke('cluster.publish', [topic, name, args, options.kwargs ?? null], {
      timeoutMs: options.timeoutMs ?? this.#host.timeoutMs, ...(options.metadata ? { metadata: options.metadata } : {}),
    })));
    let sent = 0;
    for (const outcome of counts) {
      if (outcome.status === 'fulfilled' && typeof outcome.value === 'number') sent += outcome.value;
      else if (outcome.status === 'rejected') this.#host.logger.debug('cluster: a node did not take a publish', { node: this.node, error: failure(outcome.reason) });
    }
    return sent;
  }

  /** Every identity connected to a live node, with its node. */
  peers(): Promise<ClusterPeer[]> {
    if (!this.#directory) return Promise.reject(new RpcError('the cluster is not started: await server.start() first'));
    return this.#directory.peers();
  }

  /** Leaves the cluster: entries removed, links closed. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#nodesTimer);
    await this.#directory?.close();
    this.#links.dropAll('this node stopped');
    await this.#linkServer.stop();
  }
}
