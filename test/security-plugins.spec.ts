/**
 * Security plugins end to end, through real Server/Client pairs on tcp://127.0.0.1:0:
 * plain (argon2, verify functions, throttling, no secrets in logs), trusted_peer, jwt (jose:
 * HMAC, RSA, EC and EdDSA keys, claims, algorithm allow-lists, refresh on expiry) and custom
 * plugins (objects and registered names). Raw pseud v1 sockets check the wire answers.
 */
import { MessageType } from '../lib/index.js';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import {
  Client,
  Server,
  UnauthorizedError,
  hashPassword,
  registerSecurityPlugin,
  type PeerOptions,
  type SecurityPlugin,
} from '../lib/index.js';
import { cleanup, once, quickHash, RawPeer, recordingLogger, startClient, startServer, track, until, uuidBytes } from './helpers.js';

/** Message types, from the exported table (never copied constants). */
const T = MessageType;

/** Peers a test constructs by hand (ones that never get 'connected'), stopped after each test. */

afterEach(cleanup);

/** A started server with `whoami` (returns the caller's identity) registered. */
async function identityServer(options: PeerOptions): Promise<Server> {
  const server = await startServer(options);
  server.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
  return server;
}

/**
 * A client that may never be let in: started, connected, not awaited for 'connected'. Its
 * deadline is long, so an UnauthorizedError (rather than a TimeoutError) shows the refusal came promptly.
 */
async function hopefulClient(server: Server, options: PeerOptions, timeoutMs = 8000): Promise<Client> {
  const client = track(new Client(server.id, { logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs, ...options }));
  client.connect(server.endpoint);
  await client.start();
  return client;
}

/** What a promise settled with: `{ value }` or `{ error }`. */
async function settle(promise: Promise<unknown>): Promise<{ value?: unknown; error?: unknown }> {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
}

async function expectUnauthorized(promise: Promise<unknown>): Promise<UnauthorizedError> {
  const outcome = await settle(promise);
  expect(outcome.error, `expected an UnauthorizedError, got ${JSON.stringify(outcome.value ?? String(outcome.error))}`)
    .to.be.instanceOf(UnauthorizedError);
  return outcome.error as UnauthorizedError;
}

/** Calls `whoami` on a client that should be refused, and checks that it is. */
async function expectRefused(server: Server, options: PeerOptions): Promise<void> {
  const client = await hopefulClient(server, options);
  await expectUnauthorized(client.call.whoami());
}

/** Calls `whoami` on a client that should be let in; returns the identity the server saw. */
async function whoami(server: Server, options: PeerOptions): Promise<unknown> {
  const client = await hopefulClient(server, options);
  return client.call.whoami();
}

/** A v1 answer (frames after the routing id): its type, the id it echoes and its UTF-8 body. */
function v1Answer(frames: Buffer[]): { type: number; id: Buffer; body: string } {
  expect(frames, 'a v1 answer has 5 frames after the routing id').to.have.length(5);
  expect(frames[1]!.toString()).to.equal('v1');
  expect(frames[3]!.length).to.equal(1);
  return { type: frames[3]![0]!, id: frames[2]!, body: frames[4]!.toString('utf8') };
}

/** Sends a raw HELLO and returns the server's answer, checking the id is echoed. */
async function rawHello(raw: RawPeer, login: string, password: string): Promise<{ type: number; body: string }> {
  const id = uuidBytes();
  await raw.sendV1(id, T.HELLO, [login, password]);
  const answer = v1Answer(await raw.next(5000));
  expect(answer.id.equals(id), 'the HELLO id is echoed').to.equal(true);
  return answer;
}

const nowSec = (): number => Math.floor(Date.now() / 1000);

// ------------------------------------------------------------------------------------------------

describe('security: plain', () => {
  const PASSWORD = 'Pw-alice-7f3Kq!x';
  const WRONG = 'Wrong-pw-Zz91!q';
  let aliceHash: string;

  before(async () => {
    aliceHash = await quickHash(PASSWORD);
  });

  const plainServer = (extra: PeerOptions = {}): Promise<Server> =>
    identityServer({ security: 'plain', users: { alice: aliceHash }, ...extra });

  it('hashPassword makes an argon2id hash that a users map accepts', async () => {
    const one = await hashPassword(PASSWORD);
    expect(one.startsWith('$argon2id$'), one).to.equal(true);
    const other = await hashPassword(PASSWORD);
    expect(other, 'salted: two hashes of one password differ').to.not.equal(one);
    expect(() => track(new Server('plain-ok', { security: 'plain', users: { alice: other } }))).to.not.throw();
  });

  it('a users map holding a clear-text password is refused at construction with TypeError', () => {
    expect(() => new Server('plain-clear', { security: 'plain', users: { alice: PASSWORD } })).to.throw(TypeError);
  });

  it('a plain client without a userId is refused at construction with TypeError', () => {
    expect(() => new Client('service', { security: 'plain', userId: '', password: PASSWORD })).to.throw(TypeError);
  });

  it('the right password: the handler sees the userId; peer:authenticated and connectedPeers() name it', async () => {
    const server = await plainServer();
    const authenticated = once(server, 'peer:authenticated', 5000);
    const client = await startClient(server, { security: 'plain', userId: 'alice', password: PASSWORD });
    expect(await authenticated).to.deep.equal(['alice']);
    expect(server.connectedPeers()).to.deep.equal(['alice']);
    expect(await client.call.whoami()).to.equal('alice');
  });

  it('a wrong password: the call rejects with UnauthorizedError (not at its deadline)', async () => {
    const server = await plainServer();
    await expectRefused(server, { security: 'plain', userId: 'alice', password: WRONG });
    expect(server.connectedPeers()).to.deep.equal([]);
  });

  it('an unknown user: UnauthorizedError', async () => {
    const server = await plainServer();
    await expectRefused(server, { security: 'plain', userId: 'mallory', password: PASSWORD });
  });

  it('after a refusal, a further call rejects at once with UnauthorizedError', async () => {
    const server = await plainServer();
    const client = await hopefulClient(server, { security: 'plain', userId: 'alice', password: WRONG });
    await expectUnauthorized(client.call.whoami());
    const seen: unknown[] = [];
    server.registerRpc('record', (x: unknown) => seen.push(x));
    await expectUnauthorized(client.call.record(1));
    expect(seen, 'the refused client ran nothing').to.deep.equal([]);
  });

  it('users as an async verify(userId, password) function', async () => {
    const asked: Array<[string, string]> = [];
    const verify = async (userId: string, password: string): Promise<boolean> => {
      asked.push([userId, password]);
      return userId === 'bob' && password === 'bob-secret';
    };
    const server = await identityServer({ security: 'plain', users: verify });
    expect(await whoami(server, { security: 'plain', userId: 'bob', password: 'bob-secret' })).to.equal('bob');
    await expectRefused(server, { security: 'plain', userId: 'bob', password: 'nope' });
    expect(asked).to.deep.include(['bob', 'bob-secret']);
    expect(asked).to.deep.include(['bob', 'nope']);
  });

  it('the password appears in no log entry of server or clients, on success or failure', async () => {
    const serverLog = recordingLogger();
    const server = await plainServer({ logger: serverLog, logExceptions: true });
    const goodLog = recordingLogger();
    const badLog = recordingLogger();
    const good = await startClient(server, { security: 'plain', userId: 'alice', password: PASSWORD, logger: goodLog });
    expect(await good.call.whoami()).to.equal('alice');
    const bad = await hopefulClient(server, { security: 'plain', userId: 'alice', password: WRONG, logger: badLog });
    await expectUnauthorized(bad.call.whoami());
    const raw = new RawPeer(server.id, { routingId: 'raw-logger-check' });
    await raw.connect(server.endpoint);
    expect((await rawHello(raw, 'alice', WRONG)).type).to.equal(T.UNAUTHORIZED);

    expect(serverLog.entries.some((e) => e.message.includes('refused')), 'the server logged the refusals').to.equal(true);
    expect(badLog.entries.some((e) => e.message.includes('refused')), 'the client logged its refusal').to.equal(true);
    for (const [who, log] of [['server', serverLog], ['good client', goodLog], ['bad client', badLog]] as const) {
      const all = `${JSON.stringify(log.entries)}\n${log.text()}`;
      expect(all, `${who} log`).to.not.include(PASSWORD);
      expect(all, `${who} log`).to.not.include(WRONG);
    }
  });

  it('over tcp without CURVE, each peer warns exactly once that credentials travel in clear', async () => {
    const serverLog = recordingLogger();
    const clientLog = recordingLogger();
    const server = await plainServer({ logger: serverLog });
    const client = await startClient(server, { security: 'plain', userId: 'alice', password: PASSWORD, logger: clientLog });
    expect(await client.call.whoami()).to.equal('alice');
    const clearWarnings = (log: typeof serverLog): number =>
      log.entries.filter((e) => e.level === 'warn' && /in clear|without CURVE/i.test(e.message)).length;
    expect(clearWarnings(serverLog), serverLog.text()).to.equal(1);
    expect(clearWarnings(clientLog), clientLog.text()).to.equal(1);
  });

  it('work from a raw v1 peer that never said HELLO: UNAUTHORIZED (0x11) echoing the WORK id; the handler never runs', async () => {
    const server = await plainServer();
    let ran = 0;
    server.registerRpc('touch', () => ++ran);
    const raw = new RawPeer(server.id, { routingId: 'raw-no-hello' });
    await raw.connect(server.endpoint);
    const id = uuidBytes();
    await raw.sendV1(id, T.WORK, ['touch', [], {}]);
    const answer = v1Answer(await raw.next(5000));
    expect(answer.type, 'UNAUTHORIZED').to.equal(T.UNAUTHORIZED);
    expect(answer.id.equals(id), 'the WORK id is echoed').to.equal(true);
    expect(ran).to.equal(0);
    expect(server.connectedPeers()).to.deep.equal([]);
  });

  describe('throttling failed logins (maxFailedLogins: 2, failedLoginDelayMs: 50)', () => {
    let verifyCalls: number;
    const verify = async (userId: string, password: string): Promise<boolean> => {
      verifyCalls++;
      return userId === 'carol' && password === 'carol-pw';
    };

    beforeEach(() => {
      verifyCalls = 0;
    });

    async function throttledServerAndRaw(): Promise<{ server: Server; raw: RawPeer }> {
      const server = await identityServer({ security: 'plain', users: verify, maxFailedLogins: 2, failedLoginDelayMs: 50 });
      const raw = new RawPeer(server.id, { routingId: `raw-throttle-${randomUUID().slice(0, 8)}` });
      await raw.connect(server.endpoint);
      return { server, raw };
    }

    it('after 2 failures, HELLOs are refused without being verified (even the right password)', async () => {
      const { raw } = await throttledServerAndRaw();
      expect((await rawHello(raw, 'carol', 'bad-1')).type).to.equal(T.UNAUTHORIZED);
      expect((await rawHello(raw, 'carol', 'bad-2')).type).to.equal(T.UNAUTHORIZED);
      expect(verifyCalls, 'the first two are verified').to.equal(2);
      expect((await rawHello(raw, 'carol', 'bad-3')).type).to.equal(T.UNAUTHORIZED);
      expect((await rawHello(raw, 'carol', 'carol-pw')).type, 'throttled: refused unchecked').to.equal(T.UNAUTHORIZED);
      expect(verifyCalls, 'throttled HELLOs are not verified').to.equal(2);
    });

    it('a successful login before the limit resets the count', async () => {
      const { server, raw } = await throttledServerAndRaw();
      expect((await rawHello(raw, 'carol', 'bad-1')).type).to.equal(T.UNAUTHORIZED);
      expect((await rawHello(raw, 'carol', 'carol-pw')).type).to.equal(T.AUTHENTICATED);
      expect(server.connectedPeers()).to.include('carol');
      expect((await rawHello(raw, 'carol', 'bad-2')).type).to.equal(T.UNAUTHORIZED);
      expect((await rawHello(raw, 'carol', 'bad-3')).type).to.equal(T.UNAUTHORIZED);
      expect(verifyCalls, 'count reset by the success: all four verified').to.equal(4);
      expect((await rawHello(raw, 'carol', 'bad-4')).type).to.equal(T.UNAUTHORIZED);
      expect(verifyCalls, 'two failures since the success: now throttled').to.equal(4);
    });
  });
});

// ------------------------------------------------------------------------------------------------

describe('security: trusted_peer', () => {
  const trustedServer = (): Promise<Server> => identityServer({ security: 'trusted_peer' });

  it('the server takes the userId without a password', async () => {
    const server = await trustedServer();
    const authenticated = once(server, 'peer:authenticated', 5000);
    const client = await startClient(server, { security: 'trusted_peer', userId: 'dave' });
    expect(await authenticated).to.deep.equal(['dave']);
    expect(await client.call.whoami()).to.equal('dave');
    expect(server.connectedPeers()).to.deep.equal(['dave']);
  });

  it('a client with an empty userId is refused at construction with TypeError', () => {
    expect(() => new Client('service', { security: 'trusted_peer', userId: '' })).to.throw(TypeError);
    expect(() => new Client('service', { security: 'trusted_peer' })).to.throw(TypeError);
  });

  it('a raw HELLO with an empty login gets UNAUTHORIZED', async () => {
    const server = await trustedServer();
    const raw = new RawPeer(server.id, { routingId: 'raw-empty-login' });
    await raw.connect(server.endpoint);
    expect((await rawHello(raw, '', '')).type).to.equal(T.UNAUTHORIZED);
    expect(server.connectedPeers()).to.deep.equal([]);
    expect((await rawHello(raw, 'erin', '')).type, 'control: a login is taken').to.equal(T.AUTHENTICATED);
    expect(server.connectedPeers()).to.deep.equal(['erin']);
  });

  it('work without HELLO gets UNAUTHORIZED and runs nothing', async () => {
    const server = await trustedServer();
    let ran = 0;
    server.registerRpc('touch', () => ++ran);
    const raw = new RawPeer(server.id, { routingId: 'raw-trusted-no-hello' });
    await raw.connect(server.endpoint);
    const id = uuidBytes();
    await raw.sendV1(id, T.WORK, ['touch', [], {}]);
    const answer = v1Answer(await raw.next(5000));
    expect(answer.type).to.equal(T.UNAUTHORIZED);
    expect(answer.id.equals(id)).to.equal(true);
    expect(ran).to.equal(0);
  });

  it('server.sendTo(userId) reaches the client', async () => {
    const server = await trustedServer();
    const client = await startClient(server, { security: 'trusted_peer', userId: 'frank' });
    client.registerRpc('addition', (a: number, b: number) => a + b);
    expect(await server.sendTo('frank').addition(2, 4)).to.equal(6);
  });
});

// ------------------------------------------------------------------------------------------------

describe('security: jwt', () => {
  const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
  const secretKey = new TextEncoder().encode(SECRET);

  function hs256(claims: Record<string, unknown> = {}, { sub = 'alice', expSec = 600 } = {}): Promise<string> {
    let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(nowSec() + expSec);
    if (sub) jwt = jwt.setSubject(sub);
    return jwt.sign(secretKey);
  }

  const hsServer = (jwt: Record<string, unknown> = {}): Promise<Server> =>
    identityServer({ security: 'jwt', jwt: { secret: SECRET, algorithms: ['HS256'], ...jwt } });

  it('HS256: accepted, the identity is the sub', async () => {
    const server = await hsServer();
    const authenticated = once(server, 'peer:authenticated', 5000);
    const client = await startClient(server, { security: 'jwt', token: await hs256() });
    expect(await authenticated).to.deep.equal(['alice']);
    expect(await client.call.whoami()).to.equal('alice');
  });

  describe('asymmetric keys', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

    const rs256 = (): Promise<string> =>
      new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('rsa-user').setExpirationTime('10m').sign(rsa.privateKey);

    it('RS256 with publicKey as a KeyObject', async () => {
      const server = await identityServer({ security: 'jwt', jwt: { publicKey: rsa.publicKey, algorithms: ['RS256'] } });
      expect(await whoami(server, { security: 'jwt', token: await rs256() })).to.equal('rsa-user');
    });

    it('RS256 with publicKey as PEM; a token signed by another key is refused', async () => {
      const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const server = await identityServer({ security: 'jwt', jwt: { publicKey: pem, algorithms: ['RS256'] } });
      expect(await whoami(server, { security: 'jwt', token: await rs256() })).to.equal('rsa-user');
      const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const forged = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('rsa-user').setExpirationTime('10m').sign(other.privateKey);
      await expectRefused(server, { security: 'jwt', token: forged });
    });

    async function jwksCase(alg: 'ES256' | 'EdDSA'): Promise<void> {
      const pair = alg === 'EdDSA' ? await generateKeyPair('EdDSA', { crv: 'Ed25519' }) : await generateKeyPair('ES256');
      const decoy = alg === 'EdDSA' ? await generateKeyPair('EdDSA', { crv: 'Ed25519' }) : await generateKeyPair('ES256');
      const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: `${alg}-key`, alg };
      const decoyJwk: JWK = { ...(await exportJWK(decoy.publicKey)), kid: `${alg}-decoy`, alg };
      const server = await identityServer({ security: 'jwt', jwt: { jwks: { keys: [decoyJwk, jwk] }, algorithms: [alg] } });
      const token = await new SignJWT({}).setProtectedHeader({ alg, kid: `${alg}-key` }).setSubject(`${alg}-user`).setExpirationTime('10m').sign(pair.privateKey);
      expect(await whoami(server, { security: 'jwt', token })).to.equal(`${alg}-user`);
      // Signed by the right key but naming the decoy's kid: refused.
      const mislabelled = await new SignJWT({}).setProtectedHeader({ alg, kid: `${alg}-decoy` }).setSubject(`${alg}-user`).setExpirationTime('10m').sign(pair.privateKey);
      await expectRefused(server, { security: 'jwt', token: mislabelled });
    }

    it('ES256 with a local jwks', () => jwksCase('ES256'));
    it('EdDSA (Ed25519) with a local jwks', () => jwksCase('EdDSA'));
  });

  it('a token signed with the wrong secret: UnauthorizedError', async () => {
    const server = await hsServer();
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('10m')
      .sign(new TextEncoder().encode('another-secret-of-at-least-32-bytes!'));
    await expectRefused(server, { security: 'jwt', token });
  });

  it('an expired token: UnauthorizedError', async () => {
    const server = await hsServer();
    await expectRefused(server, { security: 'jwt', token: await hs256({}, { expSec: -60 }) });
  });

  it('a not-yet-valid token (nbf ahead): UnauthorizedError; accepted when clockToleranceSec covers the skew', async () => {
    const token = await hs256({ nbf: nowSec() + 30 });
    const strict = await hsServer();
    await expectRefused(strict, { security: 'jwt', token });
    const tolerant = await hsServer({ clockToleranceSec: 60 });
    expect(await whoami(tolerant, { security: 'jwt', token })).to.equal('alice');
  });

  it('audience and issuer: wrong ones refused, right ones accepted', async () => {
    const server = await hsServer({ issuer: 'https://issuer.test', audience: 'zeropeer-service' });
    const signed = (iss: string, aud: string): Promise<string> =>
      new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuer(iss).setAudience(aud).setExpirationTime('10m').sign(secretKey);
    await expectRefused(server, { security: 'jwt', token: await signed('https://issuer.test', 'someone-else') });
    await expectRefused(server, { security: 'jwt', token: await signed('https://evil.test', 'zeropeer-service') });
    expect(await whoami(server, { security: 'jwt', token: await signed('https://issuer.test', 'zeropeer-service') })).to.equal('alice');
  });

  it('an algorithm not listed (HS512 when only HS256 is): UnauthorizedError', async () => {
    const server = await hsServer();
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS512' }).setSubject('alice').setExpirationTime('10m')
      .sign(new TextEncoder().encode(SECRET + SECRET)); // HS512 needs 64 bytes; the server's secret is a prefix
    await expectRefused(server, { security: 'jwt', token });
    const sameKey = await new SignJWT({}).setProtectedHeader({ alg: 'HS512' }).setSubject('alice').setExpirationTime('10m')
      .sign(secretKey).catch(() => undefined); // jose may refuse a short HS512 key; if not, the server must
    if (sameKey) await expectRefused(server, { security: 'jwt', token: sameKey });
  });

  it("an unsigned alg: 'none' token: UnauthorizedError", async () => {
    const server = await hsServer();
    const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', exp: nowSec() + 600 })}.`;
    await expectRefused(server, { security: 'jwt', token });
  });

  it("algorithms containing 'none', empty, or missing: TypeError at Server construction", () => {
    const make = (jwt: unknown) => (): unknown => new Server('jwt-bad', { security: 'jwt', jwt });
    expect(make({ secret: SECRET, algorithms: ['none'] })).to.throw(TypeError);
    expect(make({ secret: SECRET, algorithms: ['HS256', 'none'] })).to.throw(TypeError);
    expect(make({ secret: SECRET, algorithms: ['HS256', 'NONE'] })).to.throw(TypeError);
    expect(make({ secret: SECRET, algorithms: [] })).to.throw(TypeError);
    expect(make({ secret: SECRET })).to.throw(TypeError);
    expect(make(undefined)).to.throw(TypeError);
  });

  it('a token without sub: UnauthorizedError', async () => {
    const server = await hsServer();
    await expectRefused(server, { security: 'jwt', token: await hs256({}, { sub: '' }) });
  });

  it('refresh on expiry: a call after the token expired succeeds; the token function was asked again', async () => {
    const server = await hsServer();
    const gone: unknown[][] = [];
    server.on('peer:gone', (...args: unknown[]) => gone.push(args));
    let calls = 0;
    let lastExp = 0;
    const token = async (): Promise<string> => {
      calls++;
      lastExp = nowSec() + 2; // valid for 1 to 2 s
      return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(lastExp).sign(secretKey);
    };
    const client = await startClient(server, { security: 'jwt', token, timeoutMs: 8000, tokenRefreshMarginMs: 0 });
    expect(await client.call.whoami()).to.equal('alice');
    expect(calls).to.equal(1);
    const firstExp = lastExp;
    await until(() => Date.now() > firstExp * 1000 + 100, 5000, 'the first token expired');
    expect(await client.call.whoami(), 'the caller sees no error').to.equal('alice');
    expect(calls, 'a fresh token was asked for').to.equal(2);
    expect(gone).to.deep.equal([['alice', 'expired']]);
    expect(server.connectedPeers()).to.deep.equal(['alice']);
  });

  it('a token function that throws: a call waiting for the connection rejects with UnauthorizedError', async () => {
    const server = await hsServer();
    let calls = 0;
    const client = track(new Client(server.id, {
      logger: recordingLogger(),
      drainTimeoutMs: 50,
      timeoutMs: 8000,
      security: 'jwt',
      token: () => {
        calls++;
        throw new Error('identity provider down');
      },
    }));
    const waiting = settle(client.call.whoami()); // queued before the connection exists
    client.connect(server.endpoint);
    await client.start();
    const outcome = await waiting;
    expect(outcome.error, String(outcome.error)).to.be.instanceOf(UnauthorizedError);
    expect(calls).to.equal(1);
  });

  it('a token function that throws: a call made after the failure asks again, and rejects with UnauthorizedError, not at its deadline', async () => {
    const server = await hsServer();
    let calls = 0;
    const client = await hopefulClient(server, {
      security: 'jwt',
      token: () => {
        calls++;
        throw new Error('identity provider down');
      },
    }, 3000);
    // The token function throws synchronously inside the HELLO attempt: once it has been called,
    // the failure has been handled.
    await until(() => calls > 0, 5000, 'the token function was asked');
    const outcome = await settle(client.call.whoami());
    expect(outcome.error, String(outcome.error)).to.be.instanceOf(UnauthorizedError);
  });
});

// ------------------------------------------------------------------------------------------------

describe('security: custom plugins', () => {
  /** An API-key plugin: the client sends its key as the password; the server maps keys (its `users` option) to identities. */
  const apiKeyPlugin: SecurityPlugin = {
    name: 'api-key',
    server(settings) {
      const keys = new Map(Object.entries((settings['users'] ?? {}) as Record<string, string>));
      return {
        authenticate(_login, key) {
          const identity = keys.get(key);
          if (!identity) throw new UnauthorizedError('unknown API key');
          return identity;
        },
        anonymousIdentity: () => undefined,
      };
    },
    client(settings) {
      const key = settings['password'];
      if (typeof key !== 'string' || key.length === 0) throw new TypeError('api-key needs options.password');
      return { credentials: () => ['', key], requiresAuthentication: true };
    },
  };
  const KEYS = { 'key-123': 'svc-a' };

  it('a plugin object works on both sides', async () => {
    const server = await identityServer({ security: apiKeyPlugin, users: KEYS });
    const client = await startClient(server, { security: apiKeyPlugin, password: 'key-123' });
    expect(await client.call.whoami()).to.equal('svc-a');
    expect(server.connectedPeers()).to.deep.equal(['svc-a']);
    await expectRefused(server, { security: apiKeyPlugin, password: 'key-999' });
    expect(() => new Client('service', { security: apiKeyPlugin })).to.throw(TypeError);
  });

  it('registerSecurityPlugin makes it usable by name; a second registration needs { replace: true }', async () => {
    const name = `api-key-${randomUUID()}`;
    registerSecurityPlugin(name, apiKeyPlugin);
    const server = await identityServer({ security: name, users: KEYS });
    const client = await startClient(server, { security: name, password: 'key-123' });
    expect(await client.call.whoami()).to.equal('svc-a');
    await expectRefused(server, { security: name, password: 'wrong-key' });

    expect(() => registerSecurityPlugin(name, apiKeyPlugin)).to.throw(TypeError);
    expect(() => registerSecurityPlugin('plain', apiKeyPlugin), 'a built-in is not silently replaced').to.throw(TypeError);
    expect(() => registerSecurityPlugin(name, apiKeyPlugin, { replace: true })).to.not.throw();
  });

  it('an unknown plugin name: TypeError at construction', () => {
    const name = `no-such-plugin-${randomUUID()}`;
    expect(() => new Server('unknown-plugin', { security: name })).to.throw(TypeError);
    expect(() => new Client('unknown-plugin', { security: name })).to.throw(TypeError);
  });
});
