import { expect } from 'chai';
import { Client, Server, UnauthorizedError, type SecurityPlugin } from '../lib/index.js';
import { cleanup, recordingLogger, rejection, track } from './helpers.js';

/** A plugin of one's own that takes the password "good": what README's plugin table describes. */
function passwordPlugin(fields: { secretCredentials?: boolean; refreshable?: boolean }, passwords: string[]): SecurityPlugin {
  return {
    name: 'mine',
    ...(fields.secretCredentials !== undefined ? { secretCredentials: fields.secretCredentials } : {}),
    server: () => ({
      authenticate: (login, password) => {
        if (password !== 'good') throw new UnauthorizedError('wrong password');
        return login;
      },
      anonymousIdentity: () => undefined,
    }),
    client: () => ({
      credentials: () => ['alice', passwords.shift() ?? 'good'],
      requiresAuthentication: true,
      ...(fields.refreshable !== undefined ? { refreshable: fields.refreshable } : {}),
    }),
  };
}

async function pair(fields: { secretCredentials?: boolean; refreshable?: boolean }, passwords: string[] = []) {
  const plugin = passwordPlugin(fields, passwords);
  const serverLog = recordingLogger();
  const server = track(new Server('service', { security: plugin, logger: serverLog, drainTimeoutMs: 50 }));
  await server.bind('tcp://127.0.0.1:0');
  server.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
  await server.start();
  const clientLog = recordingLogger();
  const client = track(new Client('service', { security: plugin, logger: clientLog }));
  client.connect(server.endpoint);
  await client.start();
  return { server, client, serverLog, clientLog };
}

describe('a security plugin of your own', function () {
  this.timeout(20_000);
  afterEach(cleanup);

  it('secretCredentials: true gets the clear-text warning over tcp without CURVE, once per peer; without it, none', async () => {
    const secret = await pair({ secretCredentials: true });
    expect(await secret.client.call.whoami()).to.equal('alice');
    const warnings = (log: typeof secret.serverLog) => log.entries.filter((entry) => entry.message.includes('credentials travel in clear'));
    expect(warnings(secret.serverLog)).to.have.length(1);
    expect(warnings(secret.clientLog)).to.have.length(1);
    await cleanup();
    const plain = await pair({});
    expect(await plain.client.call.whoami()).to.equal('alice');
    expect(warnings(plain.serverLog)).to.have.length(0);
    expect(warnings(plain.clientLog)).to.have.length(0);
  });

  it('refreshable: true asks for credentials again after a refusal; without it, later calls fail at once', async () => {
    const refreshing = await pair({ refreshable: true }, ['bad']);
    expect(await rejection(refreshing.client.call.whoami())).to.be.instanceOf(UnauthorizedError);
    expect(await refreshing.client.call.whoami(), 'fresh credentials on the next call').to.equal('alice');
    await cleanup();
    const fixed = await pair({}, ['bad']);
    expect(await rejection(fixed.client.call.whoami())).to.be.instanceOf(UnauthorizedError);
    expect(await rejection(fixed.client.call.whoami()), 'the same credentials are not tried again').to.be.instanceOf(UnauthorizedError);
  });
});
