/**
 * Regressions for what a review of the engine found: answers that could reach the wrong
 * connection, a login limit outrun by a burst, tokens that expired unnoticed, timeouts out of a
 * timer's range, listeners that throw.
 */
import { expect } from 'chai';
import { SignJWT } from 'jose';
import { encode as packPlain } from 'msgpackr';
import * as zmq from 'zeromq';
import { BusyError, Client, MessageType, TimeoutError, type SecurityPlugin } from '../lib/index.js';
import { RawPeer, cleanup, once, recordingLogger, rejection, sleep, startClient, startServer, track, until, uuidBytes } from './helpers.js';

describe('hardening', () => {
  const sockets: zmq.Socket[] = [];
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await cleanup();
  });

  it('an answer never reaches a newcomer that took the routing id of the caller who left', async () => {
    const server = await startServer({ security: 'trusted_peer' });
    let finish: () => void = () => {};
    server.registerRpc('slow', () => new Promise<string>((resolve) => (finish = () => resolve('alice-secret'))));
    const alice = await startClient(server, { security: 'trusted_peer', userId: 'alice', routingId: 'rid-1' });
    void alice.call.slow().catch(() => {});
    await until(() => finish.toString() !== '() => {}', 3000, 'the slow handler runs');
    await alice.stop();

    const mallory = new zmq.Dealer({ routingId: 'rid-1', linger: 0 });
    sockets.push(mallory);
    mallory.connect(server.endpoint);
    // Prove the route, then let the old handler answer.
    await mallory.send(['', 'v1', '', Buffer.from([0x06]), '']);
    await sleep(100);
    finish();
    const received: Buffer[][] = [];
    const reading = (async () => {
      for (;;) received.push(await mallory.receive());
    })().catch(() => {});
    await sleep(300);
    const answers = received.filter((frames) => frames[3]?.[0] === 0x01);
    expect(answers, 'no OK for a call mallory never made').to.have.length(0);
    expect(received.map((frames) => frames.map((f) => f.toString('latin1')).join('|')).join('\n')).not.to.contain('alice-secret');
    mallory.close();
    await reading;
  });

  it('a burst of HELLOs on one connection cannot outrun maxFailedLogins', async () => {
    let checks = 0;
    const server = await startServer({
      security: 'plain',
      users: async () => {
        checks++;
        await sleep(20);
        return false;
      },
      maxFailedLogins: 3,
      failedLoginDelayMs: 10,
    });
    const raw = new RawPeer(server.id, { routingId: 'burst' });
    await raw.connect(server.endpoint);
    for (let i = 0; i < 50; i++) await raw.sendV1(uuidBytes(), 0x02, ['alice', `guess-${i}`]);
    await sleep(500);
    expect(checks).to.be.at.most(3);
  });

  it('a token that expires takes its peer out of the table at once, and the client comes back with a fresh one', async function () {
    this.timeout(15_000);
    const secret = 'a-secret-of-at-least-32-bytes-length!';
    let tokens = 0;
    const token = async (): Promise<string> => {
      tokens++;
      return new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('alice')
        .setExpirationTime(Math.floor(Date.now() / 1000) + 2)
        .sign(new TextEncoder().encode(secret));
    };
    const server = await startServer({ security: 'jwt', jwt: { secret, algorithms: ['HS256'] } });
    const gone = once(server, 'peer:gone', 8000);
    await startClient(server, { security: 'jwt', token, tokenRefreshMarginMs: 0 }); // the expiry path itself
    expect(server.connectedPeers()).to.deep.equal(['alice']);
    const back = once(server, 'peer:authenticated', 8000);
    expect(await gone).to.deep.equal(['alice', 'expired']);
    expect(await back).to.deep.equal(['alice']);
    expect(tokens).to.equal(2);
    expect(server.connectedPeers()).to.deep.equal(['alice']);
  });

  it('calls with all-different timeouts each expire, and the table empties', async () => {
    const server = await startServer();
    server.registerRpc('hang', () => new Promise(() => {}));
    const client = await startClient(server);
    const calls = Array.from({ length: 300 }, (_, i) => client.invoke('hang', [], { timeoutMs: 50 + i }).catch((e: unknown) => e));
    const outcomes = await Promise.all(calls);
    expect(outcomes.every((outcome) => outcome instanceof TimeoutError)).to.equal(true);
    expect(client.pendingCalls).to.equal(0);
  });

  it('a timeout beyond what a timer can hold is refused, not turned into a 1 ms one', async () => {
    expect(() => new Client('s', { timeoutMs: 3e9 })).to.throw(TypeError, /timeoutMs/);
    expect(() => new Client('s', { timeoutMs: Infinity })).to.throw(TypeError, /timeoutMs/);
    const server = await startServer();
    server.registerRpc('ping', () => 'pong');
    const client = await startClient(server);
    expect(await rejection(client.invoke('ping', [], { timeoutMs: 3e9 }))).to.be.instanceOf(TypeError);
    expect(await client.invoke('ping', [], { timeoutMs: 2 ** 31 - 1 })).to.equal('pong');
  });

  it('a listener that throws is logged and the peer goes on', async () => {
    const logger = recordingLogger();
    const server = await startServer({ logger, security: 'plain', users: async () => true });
    server.registerRpc('ping', () => 'pong');
    server.on('peer:authenticated', () => {
      throw new Error('listener bug');
    });
    const client = await startClient(server, { security: 'plain', userId: 'alice', password: 'pw' });
    expect(await client.call.ping()).to.equal('pong');
    expect(logger.text()).to.contain('listener threw');
  });

  it('one-way work from a peer that asked with a raw pseud WORK still answers nothing once authenticated', async () => {
    // (the plain case: an id-less WORK after HELLO runs, and no answer comes back)
    const server = await startServer({ security: 'trusted_peer' });
    let runs = 0;
    server.registerRpc('tick', () => {
      runs++;
    });
    const raw = new RawPeer(server.id, { routingId: 'pseud-ish' });
    await raw.connect(server.endpoint);
    await raw.sendV1(uuidBytes(), 0x02, ['bob', '']);
    expect((await raw.next())[3]![0]).to.equal(0x04);
    await raw.sendFrames('', 'v1', '', Buffer.from([0x03]), packPlain(['tick', [], {}]));
    await until(() => runs === 1);
    await raw.sendV1(uuidBytes(), 0x03, ['tick', [], {}]);
    const next = await raw.next();
    expect(next[3]![0], 'the next message is the answer to the normal WORK').to.equal(0x01);
  });
});

describe('hardening: logins under a flood', () => {
  afterEach(cleanup);

  /** A plain server whose password check takes `ms` and counts how often it ran. */
  async function slowCheckServer(ms: number): Promise<{ server: Awaited<ReturnType<typeof startServer>>; checks: () => number }> {
    let checks = 0;
    const server = await startServer({
      security: 'plain',
      users: async (userId: string, password: string) => {
        checks++;
        await sleep(ms);
        return userId === 'alice' && password === 'alice-pw';
      },
    });
    server.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
    return { server, checks: () => checks };
  }

  it('a HELLO queued by a connection that has closed is never checked; a real login gets through', async () => {
    const { server, checks } = await slowCheckServer(100);
    const flood: RawPeer[] = [];
    for (let i = 0; i < 12; i++) {
      const raw = new RawPeer(server.id);
      await raw.connect(server.endpoint);
      await raw.sendV1(uuidBytes(), MessageType.HELLO, ['mallory', `guess-${i}`]);
      flood.push(raw);
    }
    for (const raw of flood) raw.socket.close();
    const alice = await startClient(server, { security: 'plain', userId: 'alice', password: 'alice-pw', timeoutMs: 8000 });
    expect(await alice.call.whoami()).to.equal('alice');
    // At most two checks run at once: those two, maybe a third that started as they closed, and alice's.
    expect(checks(), 'checks of closed connections were dropped').to.be.at.most(5);
  });

  it('stop() cancels the checks still queued: none runs after it', async () => {
    const { server, checks } = await slowCheckServer(150);
    for (let i = 0; i < 10; i++) {
      const raw = new RawPeer(server.id);
      await raw.connect(server.endpoint);
      await raw.sendV1(uuidBytes(), MessageType.HELLO, ['mallory', `guess-${i}`]);
    }
    await until(() => checks() >= 1, 3000, 'the first check runs');
    await server.stop();
    const atStop = checks();
    await sleep(400);
    expect(checks(), 'no queued check ran after stop()').to.equal(atStop);
    expect(atStop).to.be.at.most(3);
  });

  it('a server that answers HELLO with "busy" is asked again later; the waiting call then goes through', async () => {
    let asked = 0;
    const busyTwice: SecurityPlugin = {
      name: 'busy-twice',
      server: () => ({
        authenticate(login) {
          asked++;
          if (asked <= 2) throw new BusyError('too many logins in progress');
          return login;
        },
        anonymousIdentity: () => undefined,
      }),
      client: () => ({ credentials: () => ['alice', ''], requiresAuthentication: true }),
    };
    const server = await startServer({ security: busyTwice });
    server.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
    const alice = new Client(server.id, { security: busyTwice, logger: recordingLogger(), timeoutMs: 8000 });
    track(alice);
    alice.connect(server.endpoint);
    await alice.start();
    expect(await alice.call.whoami()).to.equal('alice');
    expect(asked, 'refused as busy twice, then checked').to.equal(3);
  });
});
