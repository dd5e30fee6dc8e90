/**
 * JWT expiry on a live connection: a client with a token function authenticates again before
 * `exp` (tokenRefreshMarginMs), calls in flight both ways go on, and the server's table sees no
 * departure; a fixed token that expired is refused with an error that says so.
 */
import { expect } from 'chai';
import { SignJWT } from 'jose';
import { Client, curveKeyPair, UnauthorizedError, type Server } from '../lib/index.js';
import { cleanup, once, recordingLogger, rejection, startServer, track, until } from './helpers.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const secretKey = new TextEncoder().encode(SECRET);
const LONG = 15_000;

function token(lifetimeMs: number, sub = 'alice'): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime(Math.floor((Date.now() + lifetimeMs) / 1000)).sign(secretKey);
}

function jwtServer(): Promise<Server> {
  return startServer({ security: 'jwt', jwt: { secret: SECRET, algorithms: ['HS256'] }, timeoutMs: LONG });
}

describe('jwt: a token that ends on a live connection', function () {
  this.timeout(20_000);
  afterEach(cleanup);

  it('a token function is asked again before exp; calls in flight both ways across exp settle; no peer:gone, no second peer:authenticated', async () => {
    const server = await jwtServer();
    const events: string[] = [];
    server.on('peer:authenticated', (id) => events.push(`authenticated ${id}`));
    server.on('peer:gone', (id, reason) => events.push(`gone ${id} ${reason}`));
    server.on('peer:reauthenticated', (id) => events.push(`reauthenticated ${id}`));
    const exps: number[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    server.registerRpc('wait', async () => {
      await released;
      return 'server done';
    });
    const client = track(new Client(server.id, {
      logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs: LONG, security: 'jwt', tokenRefreshMarginMs: 1000,
      token: async () => {
        const t = await token(3000);
        exps.push(Math.floor((Date.now() + 3000) / 1000) * 1000);
        return t;
      },
    }));
    client.registerRpc('wait', async () => {
      await released;
      return 'client done';
    });
    const connected = once(client, 'connected', 5000);
    client.connect(server.endpoint);
    await client.start();
    await connected;
    const toServer = client.call.wait();
    const toClient = server.sendTo('alice').wait();
    const firstExp = exps[0]!;
    // Past the first token's end: both calls are still in flight.
    await until(() => Date.now() > firstExp + 300, 6000, 'the first token ended');
    release();
    expect(await toServer).to.equal('server done');
    expect(await toClient).to.equal('client done');
    expect(exps.length, 'a fresh token was asked for').to.be.greaterThan(1);
    expect(events.filter((e) => !e.startsWith('reauthenticated'))).to.deep.equal(['authenticated alice']);
    expect(events).to.include('reauthenticated alice');
    expect(server.connectedPeers()).to.deep.equal(['alice']);
    expect(await client.call.wait()).to.equal('server done');
  });

  it('with identities bound to CURVE keys, the refresh answers the key challenge as the first login did: no departure at exp, a call in flight settles', async () => {
    const serverKeys = curveKeyPair();
    const aliceKeys = curveKeyPair();
    const serverLogger = recordingLogger();
    const server = await startServer({
      security: 'jwt', jwt: { secret: SECRET, algorithms: ['HS256'] }, timeoutMs: LONG, logger: serverLogger,
      curve: { ...serverKeys, allowedClientKeys: { [aliceKeys.publicKey]: ['alice'] } },
    });
    const events: string[] = [];
    server.on('peer:authenticated', (id) => events.push(`authenticated ${id}`));
    server.on('peer:gone', (id, reason) => events.push(`gone ${id} ${reason}`));
    server.on('peer:reauthenticated', (id) => events.push(`reauthenticated ${id}`));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    server.registerRpc('wait', async () => {
      await released;
      return 'server done';
    });
    const exps: number[] = [];
    const clientLogger = recordingLogger();
    const client = track(new Client(server.id, {
      logger: clientLogger, drainTimeoutMs: 50, timeoutMs: LONG, security: 'jwt', tokenRefreshMarginMs: 1000,
      curve: { ...aliceKeys, serverPublicKey: serverKeys.publicKey },
      token: async () => {
        exps.push(Math.floor((Date.now() + 3000) / 1000) * 1000);
        return token(3000);
      },
    }));
    const connected = once(client, 'connected', 5000);
    client.connect(server.endpoint);
    await client.start();
    await connected;
    const inFlight = client.call.wait();
    const firstExp = exps[0]!;
    await until(() => Date.now() > firstExp + 300, 6000, 'the first token ended');
    release();
    expect(await inFlight).to.equal('server done');
    expect(exps.length, 'a fresh token was asked for').to.be.greaterThan(1);
    expect(events.filter((e) => !e.startsWith('reauthenticated')), 'no departure, no second login').to.deep.equal(['authenticated alice']);
    expect(events).to.include('reauthenticated alice');
    expect(clientLogger.text(), 'the refresh was not refused').to.not.contain('refused the refreshed credentials');
    expect(serverLogger.text()).to.not.contain('authentication refused');
    expect(await client.call.wait()).to.equal('server done');
  });

  it('a fixed token that expired: UnauthorizedError saying the token expired', async () => {
    const server = await jwtServer();
    server.registerRpc('hello', () => 'hi');
    const client = track(new Client(server.id, { logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs: 5000, security: 'jwt', token: await token(-60_000) }));
    client.connect(server.endpoint);
    await client.start();
    const error = await rejection(client.call.hello());
    expect(error).to.be.instanceOf(UnauthorizedError);
    expect(error.message).to.match(/token expired/);
  });

  it('refuses a bad tokenRefreshMarginMs with a TypeError', () => {
    expect(() => new Client('service', { security: 'jwt', token: 'x', tokenRefreshMarginMs: -1 })).to.throw(TypeError, /tokenRefreshMarginMs/);
    expect(() => new Client('service', { security: 'jwt', token: 'x', tokenRefreshMarginMs: 1.5 })).to.throw(TypeError, /tokenRefreshMarginMs/);
  });
});
