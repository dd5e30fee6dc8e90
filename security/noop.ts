/**
 * `noop`: no authentication (pseud's noop backend). Anybody may connect and call; a client's
 * identity is the `userId` it declares in HELLO, or, for a peer that never says HELLO (a pseud v1
 * client), its routing id: as text when it is printable (a routing id the peer chose), else as
 * `0x` and hex. Nothing here is verified: use it only where every peer is trusted.
 */
import { describeRoutingId } from '../lib/logger.js';
import type { ConnectionInfo, SecurityPlugin } from './plugin.js';

/** The identity noop gives a connection by its routing id. */
export function routingIdIdentity({ routingId }: ConnectionInfo): string {
  return describeRoutingId(routingId);
}

/** The `noop` plugin (the default): nothing verified; identity = the declared `userId`, else the routing id. */
export const noopSecurity: SecurityPlugin = {
  name: 'noop',
  server() {
    return {
      authenticate: (login, _password, connection) => login || routingIdIdentity(connection),
      anonymousIdentity: routingIdIdentity,
    };
  },
  client(settings) {
    const userId = settings['userId'];
    if (userId !== undefined && typeof userId !== 'string') throw new TypeError('options.userId must be a string');
    return {
      credentials: () => [userId ?? '', ''],
      requiresAuthentication: false,
    };
  },
};
