/**
 * `jwt`: a bearer token, checked with jose. The identity is the token's `sub`.
 *
 * Server settings (`options.jwt`): one of `secret` (HMAC), `publicKey` (RSA, EC or EdDSA: a PEM
 * string, a KeyObject, a CryptoKey or a JWK) or `jwks` (a local JSON Web Key Set); `algorithms`,
 * an explicit list that may not contain `none`; optional `issuer`, `audience` and
 * `clockToleranceSec` (default 0). `exp` and `nbf` are checked; a token without `exp` is refused
 * unless `requireExpiry: false`.
 *
 * A client with a `token` function asks it for a fresh token `tokenRefreshMarginMs` before `exp`
 * and authenticates again on the live connection: calls in flight both ways go on, and the server
 * emits 'peer:reauthenticated' (no 'peer:gone'). A token that does expire: the server stops
 * accepting the client's work (calls it made to the client go on); the client asks for a fresh
 * token and the call goes through. A fixed token that expired is refused with an
 * UnauthorizedError that says so.
 */
import { createPublicKey, webcrypto, type KeyObject } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose';
import { UnauthorizedError } from '../lib/errors.js';
import type { Authentication, SecurityPlugin, SecuritySettings } from './plugin.js';

/** What `options.jwt` holds on a server. */
export interface JwtSettings {
  /** The shared secret of HMAC algorithms (HS256, ...). One of `secret`, `publicKey`, `jwks`. */
  secret?: string | Uint8Array;
  /** A public key (PEM, KeyObject, CryptoKey or JWK) for RS*, PS*, ES* or EdDSA. */
  publicKey?: string | KeyObject | CryptoKey | JWK;
  /** A JSON Web Key Set: the key is chosen by the token's `kid`. */
  jwks?: JSONWebKeySet;
  /** The algorithms accepted, e.g. ['HS256'] or ['RS256', 'ES256', 'EdDSA']. Required; never 'none'. */
  algorithms: string[];
  /** The `iss` (or one of them) a token must have. */
  issuer?: string | string[];
  /** The `aud` (or one of them) a token must have. */
  audience?: string | string[];
  /** Clock skew allowed on `exp` and `nbf`, in seconds. Default 0. */
  clockToleranceSec?: number;
  /** Refuse tokens without `exp`. Default true. */
  requireExpiry?: boolean;
}

/** A client's `token` option: the token, or a function called whenever a fresh one is needed. */
export type TokenSource = string | (() => string | Promise<string>);

type VerifyKey = Uint8Array | KeyObject | CryptoKey | JWK | JWTVerifyGetKey;

function verificationKey(settings: JwtSettings): VerifyKey {
  const given = [settings.secret, settings.publicKey, settings.jwks].filter((key) => key !== undefined);
  if (given.length !== 1) throw new TypeError('options.jwt needs exactly one of secret, publicKey or jwks');
  if (settings.secret !== undefined) {
    return typeof settings.secret === 'string' ? new TextEncoder().encode(settings.secret) : settings.secret;
  }
  if (settings.jwks !== undefined) return createLocalJWKSet(settings.jwks);
  return typeof settings.publicKey === 'string' ? createPublicKey(settings.publicKey) : settings.publicKey!;
}

/** The keys `options.jwt` may have: any other is refused (a misspelled `audience` must not turn the check off). */
export const JWT_SETTING_KEYS: readonly string[] = ['secret', 'publicKey', 'jwks', 'algorithms', 'issuer', 'audience', 'clockToleranceSec', 'requireExpiry'];

function readSettings(settings: SecuritySettings): JwtSettings {
  const jwt = settings['jwt'] as JwtSettings | undefined;
  if (!jwt || typeof jwt !== 'object') throw new TypeError("security 'jwt' needs options.jwt on the server");
  for (const key of Object.keys(jwt)) {
    if (!JWT_SETTING_KEYS.includes(key)) throw new TypeError(`unknown setting "${key}" in options.jwt; known: ${JWT_SETTING_KEYS.join(', ')}`);
  }
  const { algorithms } = jwt;
  if (!Array.isArray(algorithms) || algorithms.length === 0 || !algorithms.every((a) => typeof a === 'string' && a.length > 0)) {
    throw new TypeError('options.jwt.algorithms must list the accepted algorithms explicitly, e.g. ["HS256"]');
  }
  if (algorithms.some((a) => a.toLowerCase() === 'none')) throw new TypeError("options.jwt.algorithms may not contain 'none'");
  return jwt;
}

/** The `jwt` plugin: bearer tokens verified with jose (settings: `jwt`, client `token`). */
export const jwtSecurity: SecurityPlugin = {
  name: 'jwt',
  secretCredentials: true,
  server(settings) {
    const jwt = readSettings(settings);
    const key = verificationKey(jwt);
    const tolerance = jwt.clockToleranceSec ?? 0;
    return {
      async authenticate(_login, token): Promise<Authentication> {
        if (!token) throw new UnauthorizedError('no token');
        let payload;
        try {
          ({ payload } = await jwtVerify(token, key as Uint8Array, {
            algorithms: jwt.algorithms,
            clockTolerance: tolerance,
            ...(jwt.issuer !== undefined ? { issuer: jwt.issuer } : {}),
            ...(jwt.audience !== undefined ? { audience: jwt.audience } : {}),
            ...(jwt.requireExpiry === false ? {} : { requiredClaims: ['exp'] }),
          }));
        } catch (error) {
          throw new UnauthorizedError(`token refused: ${(error as Error).message}`);
        }
        if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw new UnauthorizedError('token has no sub');
        return {
          identity: payload.sub,
          ...(typeof payload.exp === 'number' ? { expiresAt: (payload.exp + tolerance) * 1000 } : {}),
        };
      },
      anonymousIdentity: () => undefined,
    };
  },
  client(settings) {
    const token = settings['token'] as TokenSource | undefined;
    const userId = typeof settings['userId'] === 'string' ? settings['userId'] : '';
    if (typeof token !== 'string' && typeof token !== 'function') {
      throw new TypeError("security 'jwt' needs options.token: a string, or a function returning one");
    }
    return {
      credentials() {
        if (typeof token === 'string') return [userId, token];
        return Promise.resolve(token()).then((fresh) => {
          if (typeof fresh !== 'string' || fresh.length === 0) throw new TypeError('the token function returned no token');
          return [userId, fresh] as [string, string];
        });
      },
      requiresAuthentication: true,
      refreshable: typeof token === 'function',
      // Read, not verified (the server verifies): only to know when to ask for a fresh one.
      expiresAt(password) {
        try {
          const { exp } = decodeJwt(password);
          return typeof exp === 'number' ? exp * 1000 : undefined;
        } catch {
          return undefined;
        }
      },
    };
  },
};
