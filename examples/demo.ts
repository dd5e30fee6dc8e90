/**
 * `npm run demo`: one server and two clients in this process, on loopback. The clients prove who
 * they are (user id + password, checked against argon2 hashes) over a CURVE-encrypted connection,
 * then call the server; the server pushes work down to each client by its verified identity;
 * a wrong password, an error and a deadline show how calls fail. Exits by itself.
 */
import { Client, RemoteError, Server, TimeoutError, UnauthorizedError, curveKeyPair, hashPassword, silentLogger } from '../lib/index.js';

interface ServerApi {
  string: { lower(s: string): string };
  whoami(): string;
  fail(): never;
  slow(ms: number): Promise<string>;
}

interface ClientApi {
  addition(a: number, b: number): number;
  describe(): string;
}

class InventoryError extends Error {}

export async function runDemo(log: (line: string) => void = console.log): Promise<void> {
  const passwords = { alice: 'wonderland', bob: 'builder' };
  const serverKeys = curveKeyPair();
  const server = new Server<ClientApi>('service', {
    security: 'plain',
    users: { alice: await hashPassword(passwords.alice), bob: await hashPassword(passwords.bob) }, // hashes only, at rest
    curve: serverKeys, // encrypts everything, passwords included
    logger: { ...silentLogger, warn: (message) => log(`server log: ${message}`) },
  });
  await server.bind('tcp://127.0.0.1:0'); // port 0: the system picks a free port
  server.registerRpc('string.lower', (s: string) => s.toLowerCase());
  server.registerRpc('whoami', (identity: string) => `you are ${identity}`, { withIdentity: true });
  server.registerRpc('fail', () => {
    throw new InventoryError('out of stock');
  });
  server.registerRpc('slow', (ms: number) => new Promise((resolve) => setTimeout(() => resolve('finally'), ms)));
  server.on('peer:authenticated', (identity) => log(`server: ${identity} authenticated`));
  await server.start();
  log(`server: listening on ${server.endpoint}`);

  const clients = (['alice', 'bob'] as const).map((userId) => {
    const client = new Client<ServerApi>('service', {
      security: 'plain',
      userId,
      password: passwords[userId],
      curve: { ...curveKeyPair(), serverPublicKey: serverKeys.publicKey },
      timeoutMs: 10_000, // the first call waits for the CURVE handshake and an argon2 check: generous on a busy machine
    });
    client.connect(server.endpoint);
    client.registerRpc('addition', (a: number, b: number) => a + b);
    client.registerRpc('describe', () => `${userId} on node ${process.version}`);
    return client;
  });
  const [alice, bob] = clients as [Client<ServerApi>, Client<ServerApi>];
  // A client with the wrong password: its calls fail with UnauthorizedError, at once.
  const mallory = new Client<ServerApi>('service', {
    security: 'plain',
    userId: 'alice',
    password: 'guess',
    curve: { ...curveKeyPair(), serverPublicKey: serverKeys.publicKey },
    logger: silentLogger,
  });
  mallory.connect(server.endpoint);
  clients.push(mallory);
  try {
    await Promise.all(clients.map((client) => client.start()));

    log(`alice -> server: string.lower('ABC') = ${await alice.call.string.lower('ABC')}`);
    log(`bob   -> server: whoami() = ${await bob.call.whoami()}`);

    // The server pushes work to each authenticated client by identity.
    await waitFor(() => server.connectedPeers().length === 2);
    log(`server: connected peers = ${server.connectedPeers().sort().join(', ')}`);
    log(`server -> alice: addition(2, 4) = ${await server.sendTo('alice').addition(2, 4)}`);
    log(`server -> bob:   describe() = ${await server.sendTo('bob').describe()}`);

    try {
      await mallory.call.whoami();
    } catch (error) {
      if (error instanceof UnauthorizedError) log(`mallory -> server: whoami() with a wrong password: ${error.name}`);
    }

    // A handler's error arrives at the caller, class name and remote stack included.
    try {
      await alice.call.fail();
    } catch (error) {
      if (error instanceof RemoteError) log(`alice -> server: fail() threw ${error.remoteName}: ${error.message}`);
    }
    // Every call has a deadline; a per-call one overrides the client's default.
    try {
      await bob.callWith({ timeoutMs: 100 }).slow(1000);
    } catch (error) {
      if (error instanceof TimeoutError) log(`bob   -> server: slow(1000) with a 100 ms deadline: ${error.message}`);
    }
  } finally {
    await Promise.all(clients.map((client) => client.stop()));
    await server.stop();
  }
  log('done: every peer stopped');
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runDemo();
}
