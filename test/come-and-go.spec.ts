/**
 * Peers that come and go, zeropeer on both sides: a client that disconnects and connects again, a
 * server process paused (SIGSTOP) and resumed, a JWT that expires on a live connection.
 */
import { expect } from 'chai';
import { Client, type Server } from '../lib/index.js';
import { cleanup, once, recordingLogger, sleep, startServer, track, until } from './helpers.js';
import { killChildren, spawnPeer } from './peer-child.js';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** ipc paths made by this file, removed after each test. */
const ipcPaths: string[] = [];
function ipcEndpoint(): string {
  const path = join(tmpdir(), `zeropeer-cg-${randomUUID()}.sock`);
  ipcPaths.push(path);
  return `ipc://${path}`;
}

/** A deadline no test should reach: a call that ends with TimeoutError failed the test. */
const LONG = 15_000;

async function clientOf(server: Server, extra: Record<string, unknown> = {}): Promise<Client> {
  const client = track(new Client(server.id, { logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs: LONG, ...extra }));
  const connected = once(client, 'connected', 10_000);
  client.connect(server.endpoint);
  await client.start();
  await connected;
  return client;
}

describe('peers that come and go', function () {
  this.timeout(30_000);

  afterEach(async () => {
    await killChildren();
    await cleanup();
    for (const path of ipcPaths.splice(0)) rmSync(path, { force: true });
  });

  describe('client.disconnect() then client.connect() to the same endpoint', () => {
    it('the client comes back: it is connected again, emits disconnected then reconnected, and calls go through', async () => {
      const server = await startServer({ heartbeat: { intervalMs: 100, timeoutMs: 400 } });
      server.registerRpc('echo', (value: unknown) => value);
      const client = await clientOf(server, { heartbeat: { intervalMs: 100, timeoutMs: 400 } });
      client.registerRpc('ping', () => 'pong');
      expect(await client.call.echo('before')).to.equal('before');
      const events: string[] = [];
      client.on('disconnected', () => events.push('disconnected'));
      client.on('reconnected', () => events.push('reconnected'));

      for (let round = 0; round < 3; round++) {
        const reconnected = once(client, 'reconnected', 10_000);
        client.disconnect(server.endpoint);
        client.connect(server.endpoint);
        await reconnected;
        expect(client.connected, `round ${round}`).to.equal(true);
        expect(await client.callWith({ timeoutMs: 5000 }).echo(round)).to.equal(round);
      }
      expect(events).to.deep.equal(['disconnected', 'reconnected', 'disconnected', 'reconnected', 'disconnected', 'reconnected']);
      // The server let each old connection go: one peer listed, and it is the one that answers.
      await until(() => server.connectedPeers().length === 1, 5000, 'one connected peer');
      expect(await server.sendTo(server.connectedPeers()[0]!).ping()).to.equal('pong');
    });
  });

  describe('a server process paused (SIGSTOP) longer than the heartbeat timeout, then resumed', () => {
    it('the client reconnects and stays connected: calls after the pause go through, no second verdict of silence', async () => {
      const hb = { intervalMs: 200, timeoutMs: 1000 };
      const endpoint = ipcEndpoint();
      const child = spawnPeer('server', endpoint, JSON.stringify({ heartbeat: hb }));
      await child.line((l) => l.startsWith('ready '));
      const client = track(new Client('service', { logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs: LONG, heartbeat: hb, userId: 'sleeper' }));
      client.connect(endpoint);
      const connected = once(client, 'connected', 10_000);
      await client.start();
      await connected;
      expect(await client.call.whoami()).to.equal('sleeper');
      const events: string[] = [];
      client.on('disconnected', () => events.push('disconnected'));
      client.on('reconnected', () => events.push('reconnected'));

      const disconnected = once(client, 'disconnected', 10_000);
      child.proc.kill('SIGSTOP');
      await disconnected; // the client noticed the silence
      await sleep(2 * hb.timeoutMs); // paused well past the timeout
      const reconnected = once(client, 'reconnected', 10_000);
      child.proc.kill('SIGCONT');
      await reconnected;
      // Three heartbeat timeouts after the resume: a second verdict of silence would have come by now.
      await sleep(3 * hb.timeoutMs);
      expect(events, child.stderr()).to.deep.equal(['disconnected', 'reconnected']);
      expect(client.connected).to.equal(true);
      expect(await client.callWith({ timeoutMs: 5000 }).whoami()).to.equal('sleeper');
    });
  });
});
