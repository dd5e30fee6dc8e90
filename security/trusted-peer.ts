/**
 * `trusted_peer`: the server takes the user id a client gives, without a password (pseud's
 * trusted_peer). For networks where something else decides who may connect at all: CURVE with a
 * key allow-list (`curve.allowedClientKeys`), or network policy. Work from a client that has not
 * said HELLO is refused.
 */
import { UnauthorizedError } from '../lib/errors.js';
import type { SecurityPlugin } from './plugin.js';

/** The `trusted_peer` plugin: identity = the declared `userId`, nothing checked (use behind CURVE allow-lists). */
export const trustedPeerSecurity: SecurityPlugin = {
  name: 'trusted_peer',
  server() {
    return {
      authenticate(userId) {
        if (!userId) throw new UnauthorizedError('no user id');
        return userId;
      },
      anonymousIdentity: () => undefined,
    };
  },
  client(settings) {
    const { userId, password } = settings;
    if (typeof userId !== 'string' || userId.length === 0) throw new TypeError("security 'trusted_peer' needs options.userId");
    return { credentials: () => [userId, typeof password === 'string' ? password : ''], requiresAuthentication: true };
  },
};
