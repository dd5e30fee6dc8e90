/**
 * Proof that a client holds the CURVE secret key of a public key it names, bound to one challenge.
 *
 * zeromq.js tells a server nothing about which CURVE key a connection used (the ZAP `User-Id`
 * travels as message metadata it does not expose), so a server that binds identities to keys asks
 * for a proof in the handshake instead: it sends a fresh nonce, and the client answers with
 * HMAC-SHA256 over the nonce and its login, keyed by the X25519 secret the two keys share (CURVE
 * keys are X25519 keys). Only the holder of the client's secret key, or of the server's, can make
 * it; a nonce is used once, so a proof cannot be replayed on another connection.
 */
import { createHmac, createPrivateKey, createPublicKey, diffieHellman, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { z85Decode } from '../transport/curve.js';

/** The UNAUTHORIZED body that asks a zeropeer client for a key proof: this prefix, then the nonce in base64. */
export const KEY_CHALLENGE = 'zeropeer/1 key-proof ';

/** What a client adds to its HELLO to answer a challenge: its public key (Z85) and the proof. */
export interface KeyProof {
  readonly key: string;
  readonly proof: Buffer;
}

/** A CURVE key pair (Z85) of this side. */
export interface CurveKeys {
  readonly publicKey: string;
  readonly secretKey: string;
}

const CONTEXT = Buffer.from('zeropeer key proof v1\0');

function privateKey(keys: CurveKeys): KeyObject {
  return createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: z85Decode(keys.secretKey).toString('base64url'), x: z85Decode(keys.publicKey).toString('base64url') },
    format: 'jwk',
  });
}

function publicKey(z85: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: z85Decode(z85).toString('base64url') }, format: 'jwk' });
}

function mac(shared: Buffer, nonce: Buffer, login: string): Buffer {
  return createHmac('sha256', shared).update(CONTEXT).update(nonce).update('\0').update(login, 'utf8').digest();
}

/** A fresh challenge body and its nonce. */
export function keyChallenge(): { nonce: Buffer; body: string } {
  const nonce = randomBytes(24);
  return { nonce, body: KEY_CHALLENGE + nonce.toString('base64') };
}

/** The nonce of a challenge body, or undefined when `body` is not one. */
export function challengeNonce(body: string): Buffer | undefined {
  if (!body.startsWith(KEY_CHALLENGE)) return undefined;
  const nonce = Buffer.from(body.slice(KEY_CHALLENGE.length), 'base64');
  return nonce.length === 24 ? nonce : undefined;
}

/** The client's side: proves `keys` to the server whose public key is `serverPublicKey`. */
export class KeyProver {
  readonly #key: string;
  readonly #shared: Buffer;

  constructor(keys: CurveKeys, serverPublicKey: string) {
    this.#key = keys.publicKey;
    this.#shared = diffieHellman({ privateKey: privateKey(keys), publicKey: publicKey(serverPublicKey) });
  }

  prove(nonce: Buffer, login: string): KeyProof {
    return { key: this.#key, proof: mac(this.#shared, nonce, login) };
  }
}

/**
 * The server's side: which identities each client key may claim, and the check of a proof.
 * Shared secrets are computed once per key.
 */
export class KeyBinding {
  readonly #secret: KeyObject;
  readonly #identities: ReadonlyMap<string, ReadonlySet<string>>;
  readonly #shared = new Map<string, Buffer>();

  constructor(serverKeys: CurveKeys, identitiesByKey: Readonly<Record<string, readonly string[]>>) {
    this.#secret = privateKey(serverKeys);
    this.#identities = new Map(Object.entries(identitiesByKey).map(([key, identities]) => [key, new Set(identities)]));
  }

  /** Whether `proof` shows that its sender holds the secret key of `proof.key`, for this nonce and login. */
  verify(proof: KeyProof, nonce: Buffer, login: string): boolean {
    if (!this.#identities.has(proof.key) || proof.proof.length !== 32) return false;
    let shared = this.#shared.get(proof.key);
    if (!shared) {
      shared = diffieHellman({ privateKey: this.#secret, publicKey: publicKey(proof.key) });
      this.#shared.set(proof.key, shared);
    }
    return timingSafeEqual(mac(shared, nonce, login), proof.proof);
  }

  /** Whether the holder of `key` may be `identity`. */
  allows(key: string, identity: string): boolean {
    return this.#identities.get(key)?.has(identity) === true;
  }
}
