/**
 * The cluster's directory in Redis: which identity is connected to which node, and which nodes are
 * alive at which endpoint. Every entry carries a TTL that this node refreshes on each sweep, so a
 * node that dies takes its entries with it within `ttlMs`.
 *
 * Keys (all under `zeropeer:<namespace>:`, the namespace being the server id):
 * - `peer:<identity>` -> node name (PX ttl), the newest claim wins;
 * - `members:<node>` -> set of the identities that node claimed (PX ttl), for `peers()`;
 * - `node:<node>` -> the node's link endpoint, or `{ endpoint, publicKey, proof }` as JSON (PX ttl), and
 *   `nodes`, the set of node names ever seen.
 *
 * Redis loss: commands fail at once (no offline queue) with ClusterUnavailableError; the client
 * reconnects with capped, jittered backoff; the loss is logged once; when Redis is back, the sweep
 * publishes this node's table again (a restarted Redis without persistence starts empty).
 */
import { EventEmitter } from 'eventemitter3';
import { Redis, type ChainableCommander } from 'ioredis';
import type { Logger } from '../logger.js';
import { ClusterUnavailableError } from '../errors.js';

/** A live node and where its link listens. */
export interface ClusterNodeInfo {
  /** The node's name. */
  readonly node: string;
  /** The endpoint its link is bound on. */
  readonly endpoint: string;
  /** Its link's CURVE public key (Z85), when its link is encrypted. */
  readonly publicKey?: string;
  /** What the node published to vouch for its entry (see ClusterNode: an HMAC under the cluster's secret). */
  readonly proof?: string;
}

/** An identity and the node it is connected to. */
export interface ClusterPeer {
  /** The client's authenticated identity. */
  readonly identity: string;
  /** The node it is connected to. */
  readonly node: string;
}

/** Where the directory lives and who this node is in it. */
export interface RedisDirectoryOptions {
  /** `redis://host:port[/db]`. */
  readonly redis: string;
  /** This node's name (unique in the cluster). */
  readonly node: string;
  /** Where other nodes reach this node's link. */
  readonly endpoint: string;
  /** Published with the endpoint: the link's CURVE public key (Z85), when it has one. */
  readonly publicKey?: string;
  /** Published with the endpoint: what vouches for the entry (never a secret: everyone who reads Redis sees it). */
  readonly proof?: string;
  /** Groups the keys: nodes of one cluster share it (the server id). */
  readonly namespace: string;
  /** How long an entry outlives its last refresh, in ms. */
  readonly ttlMs: number;
  /** How long one Redis command may take before it counts as a failure, in ms. Default 1000. */
  readonly commandTimeoutMs?: number;
  /** Where the loss and return of Redis are logged (once each). */
  readonly logger: Logger;
}

/** What a {@link RedisDirectory} emits. */
export interface DirectoryEvents {
  /** Redis is reachable (again) and this node's table is published. */
  up: () => void;
  /** Redis became unreachable. */
  down: (error: Error) => void;
  /** Identities this node holds whose entry names another node now: they moved. */
  moved: (identities: string[]) => void;
}

/** Keeps the entry when it is absent or ours: returns 1, else 0 (someone newer claimed it). */
const KEEP = `
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

/** Claims the entry (the newest connection wins); returns the node that held it before, if any. */
const CLAIM = `
local v = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return v`;

/** Deletes the entry only when it is still ours. */
const RELEASE = `
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** The node an identity is on and that node's endpoint, when both are alive. */
const LOCATE = `
local n = redis.call('GET', KEYS[1])
if n == false then return false end
local e = redis.call('GET', ARGV[1] .. n)
if e == false then return false end
return {n, e}`;

interface DirectoryCommands {
  zpKeep(peerKey: string, node: string, ttlMs: number): Promise<number>;
  zpClaim(peerKey: string, membersKey: string, node: string, ttlMs: number, identity: string): Promise<string | null>;
  zpRelease(peerKey: string, membersKey: string, node: string, identity: string): Promise<number>;
  zpLocate(peerKey: string, nodePrefix: string): Promise<[string, string] | null>;
}

type DirectoryPipeline = ChainableCommander & { zpKeep(peerKey: string, node: string, ttlMs: number): DirectoryPipeline };

/**
 * What `node:<name>` holds: the endpoint alone, or (with a key or a proof) a small JSON object
 * `{ endpoint, publicKey?, proof? }`.
 */
function nodeEntry(endpoint: string, publicKey: string | undefined, proof: string | undefined): string {
  if (publicKey === undefined && proof === undefined) return endpoint;
  return JSON.stringify({ endpoint, ...(publicKey === undefined ? {} : { publicKey }), ...(proof === undefined ? {} : { proof }) });
}

/** Reads a `node:<name>` value; anything malformed reads as an entry without key or proof (which a ClusterNode refuses). */
function nodeInfo(node: string, entry: string): ClusterNodeInfo {
  if (!entry.startsWith('{')) return { node, endpoint: entry };
  try {
    const parsed = JSON.parse(entry) as Record<string, unknown>;
    const info: { node: string; endpoint: string; publicKey?: string; proof?: string } = { node, endpoint: typeof parsed['endpoint'] === 'string' ? parsed['endpoint'] : '' };
    if (typeof parsed['publicKey'] === 'string') info.publicKey = parsed['publicKey'];
    if (typeof parsed['proof'] === 'string') info.proof = parsed['proof'];
    return info;
  } catch {
    return { node, endpoint: '' };
  }
}

/** Backoff between reconnection attempts: 100 ms doubling to 5 s, with jitter. */
export function reconnectDelay(attempt: number): number {
  const base = Math.min(100 * 2 ** Math.min(attempt, 10), 5000);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/** Throws a TypeError naming the first bad setting. */
export function checkDirectorySettings(redis: unknown, node: unknown, ttlMs: unknown): void {
  if (typeof redis !== 'string' || !/^rediss?:\/\//.test(redis)) throw new TypeError('cluster.redis must be a redis:// URL');
  if (typeof node !== 'string' || node.length === 0 || node.length > 128 || /[\s:]/.test(node)) {
    throw new TypeError('cluster.node must be a name of 1-128 characters without spaces or colons');
  }
  if (typeof ttlMs !== 'number' || !(ttlMs >= 100) || ttlMs > 2 ** 31 - 1) throw new TypeError('cluster.ttlMs must be a number of ms, at least 100');
}

/**
 * The identity -> node table and the live nodes, in Redis.
 *
 * @example
 * const directory = new RedisDirectory({ redis: 'redis://127.0.0.1:6379', node: 'a', endpoint, namespace: 'svc', ttlMs: 10_000, logger });
 * await directory.start();
 * await directory.claim('alice');
 * await directory.locate('alice'); // { node: 'a', endpoint }
 */
export class RedisDirectory extends EventEmitter<DirectoryEvents> {
  /** This node's name. */
  readonly node: string;
  /** Where other nodes reach this node's link. */
  readonly endpoint: string;
  /** How long an entry outlives its last refresh, in ms. */
  readonly ttlMs: number;
  readonly #prefix: string;
  /** What `node:<name>` holds for this node. */
  readonly #entry: string;
  readonly #redis: Redis & DirectoryCommands;
  readonly #logger: Logger;
  /** The identities this node holds: refreshed on every sweep, published again after an outage. */
  readonly #mine = new Set<string>();
  #available = false;
  #closed = false;
  /** Whether the current outage was logged already (once per outage). */
  #outageLogged = false;
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;

  constructor(options: RedisDirectoryOptions) {
    super();
    const { redis, node, endpoint, namespace, ttlMs, logger } = options;
    checkDirectorySettings(redis, node, ttlMs);
    this.node = node;
    this.endpoint = endpoint;
    this.#entry = nodeEntry(endpoint, options.publicKey, options.proof);
    this.ttlMs = Math.round(ttlMs);
    this.#prefix = `zeropeer:${namespace}:`;
    this.#logger = logger;
    const commandTimeout = options.commandTimeoutMs ?? 1000;
    this.#redis = new Redis(redis, {
      lazyConnect: true,
      // Fail at once while Redis is away: the caller gets ClusterUnavailableError, nothing piles up.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: commandTimeout * 2,
      commandTimeout,
      retryStrategy: (attempt) => (this.#closed ? null : reconnectDelay(attempt)),
    }) as Redis & DirectoryCommands;
    this.#redis.defineCommand('zpKeep', { numberOfKeys: 1, lua: KEEP });
    this.#redis.defineCommand('zpClaim', { numberOfKeys: 2, lua: CLAIM });
    this.#redis.defineCommand('zpRelease', { numberOfKeys: 2, lua: RELEASE });
    this.#redis.defineCommand('zpLocate', { numberOfKeys: 1, lua: LOCATE });
    this.#redis.on('ready', () => {
      this.#available = true;
      if (this.#outageLogged) this.#logger.info('cluster directory: redis is back, publishing this node\'s table', { node });
      this.#outageLogged = false;
      void this.sweep().then(() => this.emit('up'));
    });
    this.#redis.on('error', (error: Error) => this.#lost(error));
    this.#redis.on('close', () => this.#lost(new Error('connection to redis closed')));
  }

  #lost(error: Error): void {
    const was = this.#available;
    this.#available = false;
    if (this.#closed) return;
    if (!this.#outageLogged) {
      this.#outageLogged = true;
      this.#logger.warn('cluster directory: redis unreachable; serving local clients only, cross-node calls fail until it is back (retrying with backoff)', { node: this.node, error: error.message });
    }
    if (was) this.emit('down', error);
  }

  /** Whether Redis answers now. */
  get available(): boolean {
    return this.#available;
  }

  /** The identities this node holds. */
  get held(): ReadonlySet<string> {
    return this.#mine;
  }

  /**
   * Connects and starts the sweep (every third of the TTL). Resolves even when Redis is not
   * reachable yet: the node serves its own clients and keeps trying.
   */
  async start(): Promise<void> {
    if (this.#sweepTimer || this.#closed) return;
    this.#sweepTimer = setInterval(() => void this.sweep(), Math.max(50, Math.floor(this.ttlMs / 3)));
    this.#sweepTimer.unref();
    try {
      await this.#redis.connect();
    } catch (error) {
      this.#lost(error as Error); // the retry strategy goes on trying
    }
  }

  #key(kind: 'peer' | 'members' | 'node', name: string): string {
    return `${this.#prefix}${kind}:${name}`;
  }

  #unavailable(error?: unknown): ClusterUnavailableError {
    return new ClusterUnavailableError(`cluster directory unreachable (redis)${error instanceof Error ? `: ${error.message}` : ''}`, error === undefined ? undefined : { cause: error });
  }

  async #command<T>(run: () => Promise<T>): Promise<T> {
    if (!this.#available) throw this.#unavailable();
    try {
      return await run();
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  /**
   * Refreshes this node's entry and every identity it holds; entries lost in an outage are
   * published again. Identities another node claimed since are reported as `moved`.
   */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweep().finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    if (!this.#available || this.#closed) return;
    const held = [...this.#mine];
    const pipeline = this.#redis.pipeline() as DirectoryPipeline;
    pipeline.set(this.#key('node', this.node), this.#entry, 'PX', this.ttlMs).sadd(`${this.#prefix}nodes`, this.node);
    if (held.length > 0) pipeline.sadd(this.#key('members', this.node), ...held).pexpire(this.#key('members', this.node), this.ttlMs);
    for (const identity of held) pipeline.zpKeep(this.#key('peer', identity), this.node, this.ttlMs);
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
    } catch (error) {
      this.#lost(error as Error);
      return;
    }
    const offset = held.length > 0 ? 4 : 2;
    const moved = held.filter((identity, i) => results?.[offset + i]?.[1] === 0 && this.#mine.has(identity));
    if (moved.length > 0) {
      for (const identity of moved) this.#mine.delete(identity);
      this.emit('moved', moved);
    }
  }

  /**
   * This node now holds `identity` (the newest connection wins). Resolves to the node that held
   * it before, when another one did; that node should drop its connection.
   */
  async claim(identity: string): Promise<string | undefined> {
    this.#mine.add(identity);
    const previous = await this.#command(() => this.#redis.zpClaim(this.#key('peer', identity), this.#key('members', this.node), this.node, this.ttlMs, identity));
    return previous !== null && previous !== this.node ? previous : undefined;
  }

  /** This node no longer holds `identity`; its entry goes unless another node claimed it since. */
  async release(identity: string): Promise<void> {
    this.#mine.delete(identity);
    await this.#command(() => this.#redis.zpRelease(this.#key('peer', identity), this.#key('members', this.node), this.node, identity));
  }

  /** Where `identity` is connected, or undefined (not connected, or its node is gone). */
  async locate(identity: string): Promise<ClusterNodeInfo | undefined> {
    const found = await this.#command(() => this.#redis.zpLocate(this.#key('peer', identity), `${this.#prefix}node:`));
    return found ? nodeInfo(found[0], found[1]) : undefined;
  }

  /** A live node's endpoint, or undefined when it is gone. */
  async endpointOf(node: string): Promise<ClusterNodeInfo | undefined> {
    const endpoint = await this.#command(() => this.#redis.get(this.#key('node', node)));
    return endpoint === null ? undefined : nodeInfo(node, endpoint);
  }

  /** The live nodes (this one included, once published). */
  async nodes(): Promise<ClusterNodeInfo[]> {
    return this.#command(async () => {
      const names = await this.#redis.smembers(`${this.#prefix}nodes`);
      if (names.length === 0) return [];
      const endpoints = await this.#redis.mget(names.map((name) => this.#key('node', name)));
      const dead = names.filter((_, i) => endpoints[i] === null);
      if (dead.length > 0) await this.#redis.srem(`${this.#prefix}nodes`, ...dead);
      return names.flatMap((node, i) => (endpoints[i] === null ? [] : [nodeInfo(node, endpoints[i]!)]));
    });
  }

  /** Every identity connected to a live node, with its node. */
  async peers(): Promise<ClusterPeer[]> {
    const nodes = await this.nodes();
    return this.#command(async () => {
      const peers: ClusterPeer[] = [];
      for (const { node } of nodes) {
        const members = await this.#redis.smembers(this.#key('members', node));
        if (members.length === 0) continue;
        const owners = await this.#redis.mget(members.map((identity) => this.#key('peer', identity)));
        members.forEach((identity, i) => {
          if (owners[i] === node) peers.push({ identity, node });
        });
      }
      return peers.sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0));
    });
  }

  /** Leaves the cluster: this node's entries go (best effort), the connection closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    await this.#sweeping;
    if (this.#available) {
      try {
        const pipeline = this.#redis.pipeline() as ChainableCommander & { zpRelease(...args: string[]): ChainableCommander };
        for (const identity of this.#mine) pipeline.zpRelease(this.#key('peer', identity), this.#key('members', this.node), this.node, identity);
        pipeline.del(this.#key('node', this.node), this.#key('members', this.node)).srem(`${this.#prefix}nodes`, this.node);
        await pipeline.exec();
      } catch (error) {
        this.#logger.debug('cluster directory: could not remove this node\'s entries', { node: this.node, error: (error as Error).message });
      }
    }
    this.#mine.clear();
    this.#available = false;
    this.#redis.disconnect();
  }
}
