/**
 * A security plugin of your own: API keys. The client half sends its key in HELLO; the server
 * half compares it, in constant time, with the keys it knows, and names the peer after it.
 * Run: `node dist/examples/custom-auth.js`. Settings of your plugin go in `securitySettings`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Server, UnauthorizedError, registerSecurityPlugin, silentLogger, type SecurityPlugin } from '../lib/index.js';

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** Server settings: `apiKeys: { [keyName]: key }`. Client settings: `apiKey`. */
export const apiKeySecurity: SecurityPlugin = {
  name: 'api_key',
  secretCredentials: true, // the key crosses the wire: warn over tcp without CURVE
  server(settings) {
    const known = Object.entries(settings['apiKeys'] as Record<string, string>).map(([name, key]) => [name, digest(key)] as const);
    return {
      authenticate(_login, apiKey) {
        const offered = digest(apiKey);
        // Compare against every key, so the time taken says nothing about which matched.
        let identity: string | undefined;
        for (const [name, key] of known) if (timingSafeEqual(key, offered)) identity ??= name;
        if (!identity) throw new UnauthorizedError('unknown API key');
        return identity;
      },
      anonymousIdentity: () => undefined, // no key, no work
    };
  },
  client(settings) {
    const apiKey = settings['apiKey'];
    if (typeof apiKey !== 'string') throw new TypeError("security 'api_key' needs options.apiKey");
    return { credentials: () => ['', apiKey], requiresAuthentication: true };
  },
};

registerSecurityPlugin('api_key', apiKeySecurity, { replace: true });

export async function runCustomAuth(log: (line: string) => void = console.log): Promise<void> {
  // The refusal below is logged by both peers; keep this example's output to its own lines.
  const logger = silentLogger;
  const apiKeys = { billing: 'k-7f3a91', reports: 'k-22c0de' };
  const server = new Server('service', { security: 'api_key', securitySettings: { apiKeys }, logger });
  await server.bind(`ipc://${join(tmpdir(), `zeropeer-custom-auth-${process.pid}.sock`)}`);
  server.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
  await server.start();

  const good = new Client('service', { security: 'api_key', securitySettings: { apiKey: 'k-22c0de' }, logger });
  const bad = new Client('service', { security: 'api_key', securitySettings: { apiKey: 'guess' }, logger });
  try {
    for (const client of [good, bad]) {
      client.connect(server.endpoint);
      await client.start();
    }
    log(`with a known key: whoami() = ${await good.call.whoami()}`);
    await bad.call.whoami().catch((error: Error) => log(`with an unknown key: ${error.name}`));
  } finally {
    await Promise.all([good.stop(), bad.stop(), server.stop()]);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runCustomAuth();
