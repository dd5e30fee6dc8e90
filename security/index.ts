/** The built-in security plugins: by name, and as typed factories with their settings bound. */
import { jwtSecurity, JWT_SETTING_KEYS, type JwtSettings, type TokenSource } from './jwt.js';
import { noopSecurity } from './noop.js';
import { plainSecurity, type VerifyPassword } from './plain.js';
import { registeredSecurityPlugin, registeredSecurityPluginNames, withSettings, type SecurityPlugin } from './plugin.js';
import { trustedPeerSecurity } from './trusted-peer.js';

const BUILTIN: Readonly<Record<string, SecurityPlugin>> = {
  noop: noopSecurity,
  plain: plainSecurity,
  trusted_peer: trustedPeerSecurity,
  jwt: jwtSecurity,
};

/** The plugin a `security` option designates: a built-in or registered name, or a plugin object. */
export function resolveSecurityPlugin(security: string | SecurityPlugin | undefined): SecurityPlugin {
  if (security === undefined) return noopSecurity;
  if (typeof security !== 'string') {
    if (typeof security?.server !== 'function' || typeof security?.client !== 'function') {
      throw new TypeError('options.security must be a plugin name or an object with server() and client()');
    }
    return security;
  }
  const plugin = registeredSecurityPlugin(security) ?? (Object.hasOwn(BUILTIN, security) ? BUILTIN[security] : undefined);
  if (!plugin) {
    throw new TypeError(`unknown security plugin "${security}"; known: ${[...Object.keys(BUILTIN), ...registeredSecurityPluginNames()].join(', ')}`);
  }
  return plugin;
}

/** No authentication: `noop()`, or `noop({ userId })` on a client to declare who it is. */
export function noop(settings: { userId?: string } = {}): SecurityPlugin {
  return withSettings(noopSecurity, settings, ['userId']);
}

/** User id and password, checked against argon2 hashes: `plain({ users })` on a server, `plain({ userId, password })` on a client. */
export function plain(settings: { users: Record<string, string> | VerifyPassword | { verify: VerifyPassword } } | { userId: string; password: string }): SecurityPlugin {
  return withSettings(plainSecurity, settings, ['users', 'userId', 'password']);
}

/** The server takes the user id the client gives (trusted networks only): `trustedPeer()`, `trustedPeer({ userId })`. */
export function trustedPeer(settings: { userId?: string; password?: string } = {}): SecurityPlugin {
  return withSettings(trustedPeerSecurity, settings, ['userId', 'password']);
}

/**
 * JSON Web Tokens: `jwt({ secret, algorithms, audience, issuer })` on a server,
 * `jwt({ token })` on a client (a string, or a function called whenever a fresh one is needed).
 */
export function jwt(settings: JwtSettings | { token: TokenSource; userId?: string }): SecurityPlugin {
  if ('token' in settings) return withSettings(jwtSecurity, settings, ['token', 'userId']);
  for (const key of Object.keys(settings)) {
    if (!JWT_SETTING_KEYS.includes(key)) throw new TypeError(`unknown setting "${key}" for security "jwt"; known: ${JWT_SETTING_KEYS.join(', ')}`);
  }
  return withSettings(jwtSecurity, { jwt: settings }, ['jwt']);
}

export { jwtSecurity, type JwtSettings, type TokenSource } from './jwt.js';
export { noopSecurity } from './noop.js';
export { hashPassword, plainSecurity, type VerifyPassword } from './plain.js';
export { trustedPeerSecurity } from './trusted-peer.js';
export * from './plugin.js';
