/**
 * Options are checked once, at construction: an unknown key (a misspelling, or the other role's
 * option) is a TypeError naming it, never silently ignored; a number out of range names the option.
 * The compile-time half of this lives in test/types/options.check.ts.
 */
import { expect } from 'chai';
import { Client, jwt, plain, Server, trustedPeer, type ClientOptions, type Interceptor, type ServerOptions } from '../lib/index.js';
import { cleanup, recordingLogger, rejection, track } from './helpers.js';

/** The TypeError a construction throws; fails the test if it does not throw one. */
function constructionError(make: () => unknown): TypeError {
  let made: unknown;
  try {
    made = make();
  } catch (error) {
    expect(error).to.be.instanceOf(TypeError);
    return error as TypeError;
  }
  if (made && typeof (made as { stop?: unknown }).stop === 'function') track(made as { stop(): Promise<void> });
  expect.fail('expected the construction to throw a TypeError');
}

const quiet = { logger: recordingLogger() };
const server = (options: Record<string, unknown>) => () => new Server('svc', { ...quiet, ...options } as ServerOptions);
const client = (options: Record<string, unknown>) => () => new Client('svc', { ...quiet, ...options } as ClientOptions);

describe('options', () => {
  afterEach(cleanup);

  describe('unknown keys are refused at construction, by name', () => {
    it('Server: an unknown key', () => {
      const error = constructionError(server({ colour: 'blue' }));
      expect(error.message).to.equal('unknown option "colour" for Server');
    });

    it('Client: an unknown key', () => {
      const error = constructionError(client({ colour: 'blue' }));
      expect(error.message).to.equal('unknown option "colour" for Client');
    });

    it('a close misspelling names the key and suggests the option meant', () => {
      expect(constructionError(server({ timeotMs: 100 })).message).to.equal('unknown option "timeotMs" for Server (did you mean "timeoutMs"?)');
      expect(constructionError(client({ timeoutms: 100 })).message).to.contain('"timeoutms" for Client (did you mean "timeoutMs"?)');
      expect(constructionError(server({ sendStack: true })).message).to.contain('(did you mean "sendStacks"?)');
      expect(constructionError(client({ userID: 'alice' })).message).to.contain('(did you mean "userId"?)');
    });

    for (const key of ['users', 'remoteShutdown', 'jwt', 'trustedProxies', 'proxyTo', 'maxFailedLogins', 'failedLoginDelayMs']) {
      it(`a Client given the server-only option "${key}" throws, naming it`, () => {
        const error = constructionError(client({ [key]: key === 'remoteShutdown' ? true : {} }));
        expect(error.message).to.match(new RegExp(`^unknown option "${key}" for Client`));
      });
    }

    for (const key of ['routingId', 'userId', 'password', 'token', 'helloTimeoutMs']) {
      it(`a Server given the client-only option "${key}" throws, naming it`, () => {
        const error = constructionError(server({ [key]: key === 'helloTimeoutMs' ? 100 : 'x' }));
        expect(error.message).to.match(new RegExp(`^unknown option "${key}" for Server`));
      });
    }

    it('the common options and each role\'s own are accepted', async () => {
      const s = track(new Server('svc', { ...quiet, timeoutMs: 100, sendStacks: true, remoteShutdown: true, maxFailedLogins: 0, interceptors: {} }));
      const c = track(new Client('svc', { ...quiet, timeoutMs: 100, sendStacks: true, routingId: 'me', helloTimeoutMs: 50, userId: 'alice' }));
      expect(s.id).to.equal('svc');
      expect(c.id).to.equal('svc');
    });
  });

  describe('jwt settings: a misspelled claim check is refused, not ignored', () => {
    const settings = { secret: 'a-long-enough-secret-for-hs256-tests', algorithms: ['HS256'] };

    it('in the jwt({...}) factory: "audiance" is named', () => {
      let thrown: unknown;
      try {
        jwt({ ...settings, audiance: 'orders' } as never);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).to.be.instanceOf(TypeError);
      expect((thrown as Error).message).to.match(/^unknown setting "audiance" for security "jwt"/);
      expect((thrown as Error).message).to.contain('audience');
    });

    it('in options.jwt of a Server: "audiance" is named', () => {
      const error = constructionError(server({ security: 'jwt', jwt: { ...settings, audiance: 'orders' } }));
      expect(error.message).to.match(/^unknown setting "audiance" in options\.jwt/);
    });

    it('the client half of jwt({ token }) refuses unknown settings too', () => {
      expect(() => jwt({ token: 't', audiance: 'x' } as never)).to.throw(TypeError, /unknown setting "audiance"/);
    });

    it('correctly spelled settings are accepted', () => {
      const s = track(new Server('svc', { ...quiet, security: jwt({ ...settings, audience: 'orders', issuer: 'me' }) }));
      const t = track(new Server('svc2', { ...quiet, security: 'jwt', jwt: { ...settings, audience: 'orders' } }));
      expect([s.id, t.id]).to.deep.equal(['svc', 'svc2']);
    });

    it('other plugin factories refuse unknown settings: plain({ user }) and trustedPeer({ userid })', () => {
      expect(() => plain({ user: {} } as never)).to.throw(TypeError, /unknown setting "user" for security "plain"/);
      expect(() => trustedPeer({ userid: 'a' } as never)).to.throw(TypeError, /unknown setting "userid" for security "trusted_peer"/);
    });
  });

  describe('nested option objects refuse unknown keys too', () => {
    const noop: Interceptor = (next) => next;

    it('interceptors: a misspelled direction ("incomming") is named, on a Server and a Client', () => {
      expect(constructionError(server({ interceptors: { incomming: [noop] } })).message).to.contain('"incomming"');
      expect(constructionError(client({ interceptors: { outgoin: [noop] } })).message).to.contain('"outgoin"');
    });

    it('peer.use() with a misspelled direction throws, naming it', () => {
      const s = track(new Server('svc', quiet));
      expect(() => s.use({ incomming: noop } as never)).to.throw(TypeError, /"incomming"/);
    });

    it('curve: a misspelled allowedClientKeys (the allow-list) is named, not dropped', () => {
      const keys = { publicKey: 'x'.repeat(40), secretKey: 'y'.repeat(40) };
      expect(constructionError(server({ curve: { ...keys, allowedClientKey: [] } })).message).to.contain('"allowedClientKey"');
      expect(constructionError(client({ curve: { ...keys, serverPublickey: 'z'.repeat(40) } })).message).to.contain('"serverPublickey"');
    });

    it('heartbeat: a misspelled interval is named', () => {
      expect(constructionError(server({ heartbeat: { intervalMS: 100 } })).message).to.contain('"intervalMS"');
    });
  });

  describe('numbers out of range name their option', () => {
    const numeric = ['timeoutMs', 'maxMessageBytes', 'maxPendingCalls', 'drainTimeoutMs', 'maxSendQueue', 'sendHighWaterMark'];
    for (const name of numeric) {
      for (const value of [-1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, '100']) {
        it(`${name}: ${String(value)} -> TypeError naming options.${name} (Server and Client)`, () => {
          const forServer = constructionError(server({ [name]: value }));
          expect(forServer.message).to.match(new RegExp(`^options\\.${name} must be a positive number`));
          const forClient = constructionError(client({ [name]: value }));
          expect(forClient.message).to.match(new RegExp(`^options\\.${name} must be a positive number`));
        });
      }
    }

    it('0 is refused where a positive number is needed, accepted for drainTimeoutMs', () => {
      expect(constructionError(server({ timeoutMs: 0 })).message).to.contain('options.timeoutMs');
      expect(constructionError(client({ maxPendingCalls: 0 })).message).to.contain('options.maxPendingCalls');
      track(new Server('svc', { ...quiet, drainTimeoutMs: 0 }));
    });

    it('Server: maxFailedLogins must be a whole number, failedLoginDelayMs positive', () => {
      expect(constructionError(server({ maxFailedLogins: 1.5 })).message).to.equal('options.maxFailedLogins must be a whole number');
      expect(constructionError(server({ maxFailedLogins: -1 })).message).to.equal('options.maxFailedLogins must be a whole number');
      expect(constructionError(server({ failedLoginDelayMs: 0 })).message).to.match(/^options\.failedLoginDelayMs must be a positive number/);
    });

    it('Client: helloTimeoutMs must be positive', () => {
      expect(constructionError(client({ helloTimeoutMs: -5 })).message).to.match(/^options\.helloTimeoutMs must be a positive number/);
    });

    it('heartbeat: intervals must be positive, and the timeout longer than the interval', () => {
      expect(constructionError(server({ heartbeat: { intervalMs: -1 } })).message).to.contain('heartbeat.intervalMs');
      expect(constructionError(client({ heartbeat: { intervalMs: 500, timeoutMs: 400 } })).message).to.contain('heartbeat.timeoutMs must be longer');
    });

    it('a per-call timeoutMs out of range rejects the call, naming the option; nothing is left pending', async () => {
      const c = track(new Client('svc', quiet));
      for (const timeoutMs of [0, -1, Number.NaN, 2 ** 31]) {
        const error = await rejection(c.invoke('f', [], { timeoutMs }));
        expect(error).to.be.instanceOf(TypeError);
        expect(error.message).to.match(/^options\.timeoutMs must be a positive number/);
      }
      expect(c.pendingCalls).to.equal(0);
    });
  });

  it('other option shapes are checked too: codec, translators with codec, security', () => {
    expect(constructionError(server({ codec: { name: 'x' } })).message).to.equal('options.codec must have encode() and decode()');
    expect(constructionError(client({ security: 'kerberos' })).message).to.match(/^unknown security plugin "kerberos"/);
    expect(constructionError(server({ security: { name: 'half' } })).message).to.contain('server() and client()');
  });
});
