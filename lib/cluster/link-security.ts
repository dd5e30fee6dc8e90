/**
 * How two nodes of a cluster prove to each other that they belong to it: a shared secret that
 * never travels. The connecting node sends `[node, "<ms>.<nonce>.<hmac>"]`, the HMAC-SHA256 of its
 * name, the time and a fresh nonce under the secret; the listening node recomputes it, compares in
 * constant time, refuses a time more than a minute away and a nonce it has already seen.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { UnauthorizedError } from '../errors.js';
import type { SecurityPlugin } from '../../security/plugin.js';

/** The shortest secret accepted. */
export const MIN_SECRET_LENGTH = 32;
/** How far a proof's time may be from ours. */
const CLOCK_WINDOW_MS = 60_000;
/** Nonces remembered (each for twice the clock window); past it, the oldest are forgotten. */
const MAX_NONCES = 100_000;

function mac(secret: string, node: string, time: string, nonce: string): Buffer {
  return createHmac('sha256', secret).update(`zeropeer-cluster-link\0${node}\0${time}\0${nonce}`).digest();
}

/** Throws unless `secret` is a string of at least {@link MIN_SECRET_LENGTH} characters. */
export function checkSecret(secret: unknown): asserts secret is string {
  if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
    throw new TypeError(`cluster.secret must be a string of at least ${MIN_SECRET_LENGTH} characters shared by every node`);
  }
}

/**
 * The security plugin of the links between nodes: `node` is the name this node proves.
 * The server half's identity for a link is the name of the node that connected.
 */
export function clusterLinkSecurity(secret: string, node: string): SecurityPlugin {
  checkSecret(secret);
  return {
    name: 'zeropeer-cluster-link',
    server() {
      const seen = new Map<string, number>();
      return {
        authenticate(login, password) {
          const [time, nonce, given, extra] = password.split('.');
          const now = Date.now();
          const at = Number(time);
          if (extra !== undefined || !given || !nonce || !/^[0-9a-f]{32}$/.test(nonce) || !/^[0-9a-f]{64}$/.test(given) ||
              !Number.isSafeInteger(at) || Math.abs(now - at) > CLOCK_WINDOW_MS || login.length === 0 || login.length > 128) {
            throw new UnauthorizedError('malformed or stale cluster link proof');
          }
          if (!timingSafeEqual(mac(secret, login, time!, nonce), Buffer.from(given, 'hex'))) throw new UnauthorizedError('bad cluster link proof');
          if (seen.has(nonce)) throw new UnauthorizedError('cluster link proof replayed');
          for (const [old, when] of seen) {
            if (seen.size < MAX_NONCES && when > now - 2 * CLOCK_WINDOW_MS) break;
            seen.delete(old);
          }
          seen.set(nonce, now);
          return login;
        },
        anonymousIdentity: () => undefined,
      };
    },
    client() {
      return {
        credentials() {
          const time = String(Date.now());
          const nonce = randomBytes(16).toString('hex');
          return [node, `${time}.${nonce}.${mac(secret, node, time, nonce).toString('hex')}`];
        },
        requiresAuthentication: true,
      };
    },
  };
}

function entryMac(secret: string, namespace: string, node: string, endpoint: string, publicKey: string | undefined): Buffer {
  return createHmac('sha256', secret).update(`zeropeer-cluster-node\0${namespace}\0${node}\0${endpoint}\0${publicKey ?? ''}`).digest();
}

/**
 * The proof a node publishes with its directory entry: an HMAC under the shared secret of its
 * name, link endpoint and CURVE public key. Whoever can write to Redis but lacks the secret cannot
 * send the other nodes' calls to an endpoint or a key of their own.
 */
export function nodeEntryProof(secret: string, namespace: string, node: string, endpoint: string, publicKey: string | undefined): string {
  return entryMac(secret, namespace, node, endpoint, publicKey).toString('hex');
}

/** Whether `proof` is {@link nodeEntryProof} of this entry (constant-time). */
export function checkNodeEntryProof(secret: string, namespace: string, node: string, endpoint: string, publicKey: string | undefined, proof: string | undefined): boolean {
  if (typeof proof !== 'string' || !/^[0-9a-f]{64}$/.test(proof)) return false;
  return timingSafeEqual(entryMac(secret, namespace, node, endpoint, publicKey), Buffer.from(proof, 'hex'));
}
