/** The built-in security plugins, registered by name. */
import { noopSecurity } from './noop.js';
import { registerSecurityPlugin } from './plugin.js';

registerSecurityPlugin('noop', noopSecurity);

export { noopSecurity } from './noop.js';
export * from './plugin.js';
