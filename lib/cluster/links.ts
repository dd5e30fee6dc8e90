/**
 * A node's links to the other nodes (split from node.ts): one Client per other node, made when a
 * directory entry vouched for by the cluster secret names it, made again when the entry changes
 * (a new endpoint or key), closed when the node leaves. CURVE when the far node's entry carries a
 * public key, with this node's own key pair (or one made for its clients when its link is clear).
 */
import { Client } from '../client.js';
import { UnauthorizedError } from '../errors.js';
import type { Logger } from '../logger.js';
import { rejectUnknownKeys } from '../option-checks.js';
import type { ClientOptions } from '../options.js';
import { curveKeyPair, z85Decode } from '../transport/curve.js';
import type { ClusterNodeInfo } from './directory.js';
import { checkNodeEntryProof, clusterLinkSecurity } from './link-security.js';

/** A node link's CURVE key pair, Z85 (as `curveKeyPair()` makes). */
export interface LinkKeys {
  /** The public key, 40 Z85 characters: other nodes learn it from the directory. */
  publicKey: string;
  /** The secret key, 40 Z85 characters: never leaves this process. */
  secretKey: string;
}

function isKey(value: string): boolean {
  try {
    z85Decode(value);
    return true;
  } catch {
    return false;
  }
}

/** The link's key pair from `cluster.curve`: made here by default, none with `false`; a bad one throws. */
export function linkKeys(curve: false | LinkKeys | undefined): LinkKeys | undefined {
  if (curve === false) return undefined;
  if (curve === undefined) return curveKeyPair();
  if (typeof curve !== 'object' || curve === null) throw new TypeError('cluster.curve must be false or { publicKey, secretKey } (Z85, see curveKeyPair())');
  rejectUnknownKeys(curve, ['publicKey', 'secretKey'], 'options.cluster.curve');
  if (!isKey(curve.publicKey) || !isKey(curve.secretKey)) throw new TypeError('cluster.curve.publicKey and secretKey must be 40-character Z85 keys (see curveKeyPair())');
  return { publicKey: curve.publicKey, secretKey: curve.secretKey };
}

/** One link to another node. */
export interface Link {
  readonly endpoint: string;
  /** The far node's CURVE key, when its link is encrypted. */
  readonly publicKey: string | undefined;
  /** The proof of the directory entry it was made for (checked then). */
  readonly proof: string | undefined;
  readonly client: Client;
  up: boolean;
  /** It was up once: down now means the node went away, not that it is still connecting. */
  everUp: boolean;
}

/** What the links need of their node. */
export interface NodeLinksSettings {
  /** The server id (the links' Clients are `<id>.cluster`). */
  readonly id: string;
  /** This node's name. */
  readonly node: string;
  readonly secret: string;
  readonly logger: Logger;
  /** This node's CURVE key pair; undefined: its own link is clear text. */
  readonly keys: LinkKeys | undefined;
  /** The link to `node` went down. */
  down(node: string): void;
}

export class NodeLinks {
  readonly #settings: NodeLinksSettings;
  readonly #links = new Map<string, Link>();
  /** The key pair of this node's link clients when its own link is clear text (a far node's may not be). */
  #clientKeys: LinkKeys | undefined;
  /** Nodes whose directory entry failed its proof, warned about once each. */
  readonly #warnedEntries = new Set<string>();

  constructor(settings: NodeLinksSettings) {
    this.#settings = settings;
  }

  /** The link to `node`, if one was made. */
  of(node: string): Link | undefined {
    return this.#links.get(node);
  }

  /**
   * The link to the node `where` names. Throws UnauthorizedError when its directory entry is not
   * vouched for by the secret (written by someone who can reach Redis but is no node).
   */
  to(where: ClusterNodeInfo): Link {
    const existing = this.#links.get(where.node);
    // The same entry as the link was made for: vouched for already (no HMAC per call).
    if (existing && existing.endpoint === where.endpoint && existing.publicKey === where.publicKey && existing.proof === where.proof) return existing;
    const { id, node, secret, logger } = this.#settings;
    if (!checkNodeEntryProof(secret, id, where.node, where.endpoint, where.publicKey, where.proof) ||
        (where.publicKey !== undefined && !isKey(where.publicKey))) {
      if (this.#warnedEntries.size < 1000 && !this.#warnedEntries.has(where.node)) {
        this.#warnedEntries.add(where.node);
        logger.warn('cluster: a directory entry is not vouched for by the cluster secret; refusing to link to it', { node, to: where.node });
      }
      throw new UnauthorizedError(`the directory entry of node "${where.node}" is not vouched for by the cluster secret: not linking to it`);
    }
    if (existing) this.#drop(where.node, existing, 'moved to a new endpoint or key');
    const clientOptions: ClientOptions = { security: clusterLinkSecurity(secret, node), logger, drainTimeoutMs: 200 };
    if (where.publicKey !== undefined) {
      const keys = this.#settings.keys ?? (this.#clientKeys ??= curveKeyPair());
      clientOptions.curve = { ...keys, serverPublicKey: where.publicKey };
    }
    const client = new Client(`${id}.cluster`, clientOptions);
    const link: Link = { endpoint: where.endpoint, publicKey: where.publicKey, proof: where.proof, client, up: false, everUp: false };
    client.on('connected', () => {
      link.up = true;
      link.everUp = true;
    });
    client.on('reconnected', () => (link.up = true));
    client.on('disconnected', () => {
      link.up = false;
      this.#settings.down(where.node);
    });
    this.#links.set(where.node, link);
    client.connect(where.endpoint);
    void client.start();
    return link;
  }

  /** Closes the links that are down to nodes no longer in `live` (they would keep reconnecting to a dead endpoint). */
  dropDownExcept(live: readonly ClusterNodeInfo[], why: string): void {
    for (const [node, link] of [...this.#links]) if (!link.up && !live.some((n) => n.node === node)) this.#drop(node, link, why);
  }

  /** Closes every link. */
  dropAll(why: string): void {
    for (const [node, link] of [...this.#links]) this.#drop(node, link, why);
  }

  #drop(node: string, link: Link, why: string): void {
    this.#links.delete(node);
    this.#settings.logger.debug('cluster: link closed', { node: this.#settings.node, to: node, why });
    link.client.stop().catch(() => undefined); // its calls in flight reject with ServiceClosedError (read as PeerNotConnectedError)
  }
}
