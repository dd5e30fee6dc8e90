/** The built-in security plugins, registered by name. */
import { jwtSecurity } from './jwt.js';
import { noopSecurity } from './noop.js';
import { plainSecurity } from './plain.js';
import { registerSecurityPlugin } from './plugin.js';
import { trustedPeerSecurity } from './trusted-peer.js';

registerSecurityPlugin('noop', noopSecurity);
registerSecurityPlugin('plain', plainSecurity);
registerSecurityPlugin('trusted_peer', trustedPeerSecurity);
registerSecurityPlugin('jwt', jwtSecurity);

export { jwtSecurity, type JwtSettings, type TokenSource } from './jwt.js';
export { noopSecurity } from './noop.js';
export { hashPassword, plainSecurity, type VerifyPassword } from './plain.js';
export { trustedPeerSecurity } from './trusted-peer.js';
export * from './plugin.js';
