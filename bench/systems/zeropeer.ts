/**
 * Systems 2-4: zeropeer.
 *
 * - `zeropeer`: client -> server, `client.call.upper(s)`, `trusted_peer`, heartbeats on (defaults).
 * - `zeropeer-s2c`: server -> client, `server.sendTo(id).upper(s)`, same settings.
 * - `zeropeer-curve`: client -> server with `plain` (argon2 hash) over CURVE.
 *
 * Every peer logs to `silentLogger`; limits (`maxPendingCalls`, `maxSendQueue`) are the defaults,
 * far above the 64 calls in flight the scenarios use.
 */
import { Client, Server, curveKeyPair, hashPassword, silentLogger } from '../../lib/index.js';
import { expectUpper, retryUntil, upper, type Caller, type NodeSystem, type Rendezvous, type Responder } from './types.js';

const SERVICE = 'bench';
const CALLER_ID = 'caller';
const RESPONDER_ID = 'responder';
const common = { logger: silentLogger } as const;

function closer(peer: { stop(): Promise<void> }): () => Promise<void> {
  return () => peer.stop();
}

async function bindServer(server: Server): Promise<string> {
  await server.bind('tcp://127.0.0.1:0');
  return server.endpoint;
}

/** client -> server, trusted_peer. */
/** A started client of the bench server, calling `upper`. */
async function clientCaller(client: Client, rendezvous: Rendezvous | undefined, readyTimeoutMs: number, label: string): Promise<Caller> {
  client.connect(rendezvous!.endpoint!);
  await client.start();
  return {
    call: (s: string) => client.call.upper(s),
    async ready(timeoutMs) {
      await retryUntil(async () => expectUpper('ready?', await client.callWith({ timeoutMs: readyTimeoutMs }).upper('ready?')), timeoutMs, label);
    },
    close: closer(client),
  };
}

export const zeropeerClientToServer: NodeSystem = {
  binder: 'responder',
  async startResponder(): Promise<Responder> {
    const server = new Server(SERVICE, { ...common, security: 'trusted_peer' });
    const endpoint = await bindServer(server);
    server.registerRpc('upper', upper);
    await server.start();
    return { rendezvous: { endpoint }, close: closer(server) };
  },
  async startCaller(rendezvous: Rendezvous | undefined): Promise<Caller> {
    const client = new Client(SERVICE, { ...common, security: 'trusted_peer', userId: CALLER_ID });
    return clientCaller(client, rendezvous, 500, 'zeropeer');
  },
};

/** Diagnostic: client -> server as `zeropeer`, with batching off on both sides (what batching buys). */
export const zeropeerUnbatched: NodeSystem = {
  binder: 'responder',
  async startResponder(): Promise<Responder> {
    const server = new Server(SERVICE, { ...common, security: 'trusted_peer', batch: false });
    const endpoint = await bindServer(server);
    server.registerRpc('upper', upper);
    await server.start();
    return { rendezvous: { endpoint }, close: closer(server) };
  },
  async startCaller(rendezvous: Rendezvous | undefined): Promise<Caller> {
    const client = new Client(SERVICE, { ...common, security: 'trusted_peer', userId: CALLER_ID, batch: false });
    return clientCaller(client, rendezvous, 500, 'zeropeer unbatched');
  },
};

/** server -> client: the server pushes the calls to the client that registered `upper`. */
export const zeropeerServerToClient: NodeSystem = {
  binder: 'caller',
  async startCaller(): Promise<Caller> {
    const server = new Server(SERVICE, { ...common, security: 'trusted_peer' });
    const endpoint = await bindServer(server);
    await server.start();
    return {
      rendezvous: { endpoint },
      call: (s: string) => server.sendTo(RESPONDER_ID).upper(s),
      async ready(timeoutMs) {
        await retryUntil(
          async () => expectUpper('ready?', await server.sendTo(RESPONDER_ID, { timeoutMs: 500 }).upper('ready?')),
          timeoutMs,
          'zeropeer server -> client',
        );
      },
      close: closer(server),
    };
  },
  async startResponder(rendezvous: Rendezvous | undefined): Promise<Responder> {
    const client = new Client(SERVICE, { ...common, security: 'trusted_peer', userId: RESPONDER_ID });
    client.registerRpc('upper', upper);
    client.connect(rendezvous!.endpoint!);
    await client.start();
    return { close: closer(client) };
  },
};

/** client -> server, `plain` (argon2-hashed password) over CURVE. */
export const zeropeerPlainCurve: NodeSystem = {
  binder: 'responder',
  async startResponder(): Promise<Responder> {
    const keys = curveKeyPair();
    const server = new Server(SERVICE, {
      ...common,
      security: 'plain',
      users: { [CALLER_ID]: await hashPassword('bench-password') },
      curve: keys,
    });
    const endpoint = await bindServer(server);
    server.registerRpc('upper', upper);
    await server.start();
    return { rendezvous: { endpoint, serverPublicKey: keys.publicKey }, close: closer(server) };
  },
  async startCaller(rendezvous: Rendezvous | undefined): Promise<Caller> {
    const client = new Client(SERVICE, {
      ...common,
      security: 'plain',
      userId: CALLER_ID,
      password: 'bench-password',
      curve: { ...curveKeyPair(), serverPublicKey: rendezvous!.serverPublicKey! },
    });
    return clientCaller(client, rendezvous, 1000, 'zeropeer plain+CURVE');
  },
};
