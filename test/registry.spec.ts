/**
 * Registration: the forms of registerRpc, dotted names, the global registry and local ones,
 * name validation, duplicates and replace, withIdentity, sync and async handlers, domains.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import {
  Registry,
  RegistrationError,
  ServiceNotFoundError,
  createLocalRegistry,
  globalRegistry,
  registerRpc,
  type Handler,
  type Registration,
} from '../lib/index.js';
import { cleanup, rejection, sleep, startClient, startServer } from './helpers.js';

/** Global names registered by a test, removed after it. */
const globalNames: string[] = [];

/** A name no other test (or spec file) uses: `prefix_<uuid>`. */
function unique(prefix: string): string {
  return `${prefix}_${randomUUID().replace(/-/g, '')}`;
}

/** A unique global name, remembered for removal after the test. */
function globalName(prefix: string): string {
  const name = unique(prefix);
  globalNames.push(name);
  return name;
}

describe('registry', () => {
  afterEach(async () => {
    for (const name of globalNames.splice(0)) {
      globalRegistry.unregisterRpc(name);
      globalRegistry.unregisterRpc(name, 'admin');
    }
    await cleanup();
  });

  describe('forms of registerRpc on a peer', () => {
    it('registerRpc(fn) registers under fn.name', async () => {
      const server = await startServer();
      server.registerRpc(function namedByItself(a: number) {
        return a + 1;
      });
      const client = await startClient(server);
      expect(await client.call.namedByItself(1)).to.equal(2);
      expect(server.registry.lookup('namedByItself')?.name).to.equal('namedByItself');
    });

    it("registerRpc('a.b.c', fn) is callable as client.call.a.b.c()", async () => {
      const server = await startServer();
      server.registerRpc('a.b.c', (x: string) => `abc:${x}`);
      server.registerRpc('a.b', () => 'ab');
      const client = await startClient(server);
      expect(await client.call.a.b.c('x')).to.equal('abc:x');
      expect(await client.call.a.b()).to.equal('ab');
      expect(await rejection(client.call.a())).to.be.instanceOf(ServiceNotFoundError);
    });

    it('registerRpc(fn, { name }) uses the given name, not fn.name', async () => {
      const server = await startServer();
      server.registerRpc(function original() {
        return 'renamed';
      }, { name: 'string.renamed' });
      const client = await startClient(server);
      expect(await client.call.string.renamed()).to.equal('renamed');
      expect(await rejection(client.call.original())).to.be.instanceOf(ServiceNotFoundError);
    });

    it('registerRpc returns the handler', () => {
      const registry = createLocalRegistry('returns');
      const fn = (): number => 1;
      expect(registry.registerRpc('ret', fn)).to.equal(fn);
    });

    it('sync and async handlers both answer', async () => {
      const server = await startServer();
      server.registerRpc('sync', (a: number, b: number) => a * b);
      server.registerRpc('async', async (a: number, b: number) => {
        await sleep(1);
        return a - b;
      });
      server.registerRpc('thenable', () => Promise.resolve({ done: true }));
      server.registerRpc('nothing', () => undefined);
      const client = await startClient(server);
      expect(await client.call.sync(6, 7)).to.equal(42);
      expect(await client.call.async(10, 3)).to.equal(7);
      expect(await client.call.thenable()).to.deep.equal({ done: true });
      // A handler that returns nothing answers (MessagePack has no undefined: null on the wire).
      expect(await client.call.nothing()).to.be.oneOf([null, undefined]);
    });
  });

  describe('the global registry', () => {
    it('a global registration is seen by every peer, both directions', async () => {
      const name = globalName('everywhere');
      registerRpc(name, (x: number) => x * 10);

      const server = await startServer();
      const client = await startClient(server, { userId: 'alice' });
      expect(await client.invoke(name, [1])).to.equal(10);
      expect(await server.invoke(name, [2], { to: 'alice' })).to.equal(20);

      const otherServer = await startServer({}, 'tcp', 'other');
      const otherClient = await startClient(otherServer);
      expect(await otherClient.invoke(name, [3])).to.equal(30);
    });

    it('global registerRpc(fn) and registerRpc(fn, { name }) forms, with dotted names', async () => {
      const plain = globalName('globalPlain');
      const dotted = `${globalName('ns')}.sub.fn`;
      globalNames.push(dotted);
      // A function whose own name is the unique name.
      const named = { [plain]: () => 'by fn.name' }[plain]!;
      expect(named.name).to.equal(plain);
      registerRpc(named);
      registerRpc(() => 'by option', { name: dotted });

      const server = await startServer();
      const client = await startClient(server);
      expect(await client.invoke(plain, [])).to.equal('by fn.name');
      const [ns] = dotted.split('.');
      expect(await client.call[ns!]!.sub.fn()).to.equal('by option');
    });

    it('a global registration made after the peers started is seen at once', async () => {
      const server = await startServer();
      const client = await startClient(server);
      const name = globalName('late');
      expect(await rejection(client.invoke(name, []))).to.be.instanceOf(ServiceNotFoundError);
      registerRpc(name, () => 'late');
      expect(await client.invoke(name, [])).to.equal('late');
    });

    it('unregisterRpc removes a global name', async () => {
      const name = unique('removed');
      registerRpc(name, () => 1);
      expect(globalRegistry.unregisterRpc(name)).to.equal(true);
      expect(globalRegistry.unregisterRpc(name)).to.equal(false);
      const server = await startServer();
      const client = await startClient(server);
      expect(await rejection(client.invoke(name, []))).to.be.instanceOf(ServiceNotFoundError);
    });
  });

  describe('local registries', () => {
    it('a local registry sees global names; the global registry never sees local names', async () => {
      const globalOnly = globalName('globalOnly');
      registerRpc(globalOnly, () => 'from global');
      const localName = unique('localOnly');
      const registry = createLocalRegistry('x');
      expect(registry).to.be.instanceOf(Registry);
      registry.registerRpc(localName, () => 'from local');

      const server = await startServer({ registry });
      expect(server.registry).to.equal(registry);
      const viaPeer = unique('viaPeer');
      server.registerRpc(viaPeer, () => 'via peer');
      const client = await startClient(server);

      expect(await client.invoke(localName, [])).to.equal('from local');
      expect(await client.invoke(viaPeer, [])).to.equal('via peer');
      expect(await client.invoke(globalOnly, [])).to.equal('from global');
      expect(registry.lookup(viaPeer)?.name).to.equal(viaPeer);

      expect(globalRegistry.lookup(localName)).to.equal(undefined);
      expect(globalRegistry.lookup(viaPeer)).to.equal(undefined);

      // Another peer, with its own default local registry, sees neither local name.
      const other = await startServer({}, 'tcp', 'other');
      const otherClient = await startClient(other);
      expect(await rejection(otherClient.invoke(localName, []))).to.be.instanceOf(ServiceNotFoundError);
      expect(await rejection(otherClient.invoke(viaPeer, []))).to.be.instanceOf(ServiceNotFoundError);
      expect(await otherClient.invoke(globalOnly, [])).to.equal('from global');
    });

    it("peer.registerRpc on one peer is not seen by another peer of the process", async () => {
      const name = unique('peerLocal');
      const first = await startServer({}, 'tcp', 'first');
      first.registerRpc(name, () => 'first');
      const second = await startServer({}, 'tcp', 'second');
      const firstClient = await startClient(first);
      const secondClient = await startClient(second);
      expect(await firstClient.invoke(name, [])).to.equal('first');
      expect(await rejection(secondClient.invoke(name, []))).to.be.instanceOf(ServiceNotFoundError);
      expect(globalRegistry.lookup(name)).to.equal(undefined);
    });

    it('a local registration shadows a global one of the same name', async () => {
      const name = globalName('shadowed');
      registerRpc(name, () => 'global');
      const registry = createLocalRegistry('shadowing');
      registry.registerRpc(name, () => 'local');

      const shadowing = await startServer({ registry }, 'tcp', 'shadowing');
      const plain = await startServer({}, 'tcp', 'plain');
      expect(await (await startClient(shadowing)).invoke(name, [])).to.equal('local');
      expect(await (await startClient(plain)).invoke(name, [])).to.equal('global');
      expect(globalRegistry.lookup(name)?.handler()).to.equal('global');
    });

    it('registrations() lists local then global, without duplicates', () => {
      const shared = globalName('shared');
      const g1 = globalName('g1');
      const localHandler: Handler = () => 'local shared';
      registerRpc(shared, () => 'global shared');
      registerRpc(g1, () => 'g1');
      const registry = createLocalRegistry('listing');
      const l1 = unique('l1');
      const l2 = unique('l2');
      registry.registerRpc(l1, () => 'l1');
      registry.registerRpc(shared, localHandler);
      registry.registerRpc(l2, () => 'l2');

      const mine = new Set([shared, g1, l1, l2]);
      const listed: Registration[] = [...registry.registrations()].filter((r) => mine.has(r.name));
      expect(listed.map((r) => r.name)).to.deep.equal([l1, shared, l2, g1]);
      expect(listed.find((r) => r.name === shared)!.handler).to.equal(localHandler);

      // Every local registration comes before every global one, across the whole listing.
      const all = [...registry.registrations()];
      const lastLocal = all.findIndex((r) => r.name === l2);
      expect(all.slice(0, lastLocal + 1).map((r) => r.name)).to.deep.equal([l1, shared, l2]);
      const keys = all.map((r) => `${r.domain}\0${r.name}`);
      expect(new Set(keys).size).to.equal(keys.length);

      // The global listing has the global names and none of the local ones.
      const globalListed = [...globalRegistry.registrations()].map((r) => r.name);
      expect(globalListed).to.include.members([shared, g1]);
      expect(globalListed).not.to.include.members([l1]);
      expect(globalListed).not.to.include(l2);
    });
  });

  describe('refused registrations', () => {
    const invalidNames: Array<[string, unknown]> = [
      ['the empty string', ''],
      ['a leading digit', '1abc'],
      ['an empty segment', 'a..b'],
      ['a dash', 'a-b'],
      ['a leading dot', '.a'],
      ['a trailing dot', 'a.'],
      ['a space', 'a b'],
      ['a 300-character name', 'a'.repeat(300)],
      ['a number', 42],
      ['null', null],
      ['an object', { name: 'x' }],
    ];

    for (const [label, name] of invalidNames) {
      it(`an invalid name (${label}) throws RegistrationError at registration time, and registers nothing`, () => {
        const registry = createLocalRegistry('invalid');
        const register = registry.registerRpc as (...args: unknown[]) => unknown;
        const before = [...registry.registrations()].length;
        if (typeof name === 'string') {
          expect(() => register(name, () => 1)).to.throw(RegistrationError);
          expect(() => (registerRpc as (...args: unknown[]) => unknown)(name, () => 1)).to.throw(RegistrationError);
          expect(registry.lookup(name)).to.equal(undefined);
          expect(globalRegistry.lookup(name)).to.equal(undefined);
        }
        expect(() => register(() => 1, { name })).to.throw(RegistrationError);
        expect([...registry.registrations()].length).to.equal(before);
      });
    }

    it('a non-string first argument that is not a function throws RegistrationError', () => {
      const register = createLocalRegistry('nonString').registerRpc as (...args: unknown[]) => unknown;
      expect(() => register(42, () => 1)).to.throw(RegistrationError);
      expect(() => register(null, () => 1)).to.throw(RegistrationError);
    });

    it('an anonymous function with no name option throws RegistrationError', async () => {
      const server = await startServer();
      const anonymous = [() => 1][0]!;
      expect(anonymous.name).to.equal('');
      expect(() => server.registerRpc(anonymous)).to.throw(RegistrationError);
    });

    it('invalid names are refused by peer.registerRpc too', async () => {
      const server = await startServer();
      for (const [, name] of invalidNames) {
        if (typeof name === 'string') expect(() => server.registerRpc(name, () => 1), name).to.throw(RegistrationError);
      }
    });

    for (const [label, handler] of [
      ['a number', 42],
      ['a string', 'fn'],
      ['undefined', undefined],
      ['an object', { call: () => 1 }],
    ] as Array<[string, unknown]>) {
      it(`a non-function handler (${label}) throws RegistrationError`, () => {
        const register = createLocalRegistry('nonFunction').registerRpc as (...args: unknown[]) => unknown;
        expect(() => register('valid.name', handler)).to.throw(RegistrationError);
        expect(() => register('valid.name', handler, {})).to.throw(RegistrationError);
        if (handler !== undefined) expect(() => register(handler, { name: 'valid.name' })).to.throw(RegistrationError);
      });
    }

    it('a duplicate registration throws RegistrationError naming the function; { replace: true } replaces', async () => {
      const server = await startServer();
      server.registerRpc('dup.fn', () => 'first');
      expect(() => server.registerRpc('dup.fn', () => 'second')).to.throw(RegistrationError, /dup\.fn/);
      const client = await startClient(server);
      expect(await client.call.dup.fn()).to.equal('first');

      server.registerRpc('dup.fn', () => 'replaced', { replace: true });
      expect(await client.call.dup.fn()).to.equal('replaced');
    });

    it('a duplicate via registerRpc(fn) form names the function too', () => {
      const registry = createLocalRegistry('dup');
      registry.registerRpc(function twice() {
        return 1;
      });
      expect(() => registry.registerRpc(function twice() {
        return 2;
      })).to.throw(RegistrationError, /twice/);
    });

    it('a duplicate global registration throws RegistrationError; { replace: true } replaces', async () => {
      const name = globalName('globalDup');
      registerRpc(name, () => 'first');
      expect(() => registerRpc(name, () => 'second')).to.throw(RegistrationError, new RegExp(name));
      registerRpc(name, () => 'replaced', { replace: true });
      const server = await startServer();
      const client = await startClient(server);
      expect(await client.invoke(name, [])).to.equal('replaced');
    });
  });

  describe('withIdentity', () => {
    it("a server handler gets the caller's identity first (client userId 'bob')", async () => {
      const server = await startServer();
      server.registerRpc('whoami', (identity: string, suffix: string) => `${identity}${suffix}`, { withIdentity: true });
      server.registerRpc('asyncWhoami', async (identity: string, ...rest: unknown[]) => [identity, ...rest], { withIdentity: true });
      server.registerRpc('plainArgs', (...args: unknown[]) => args);
      const client = await startClient(server, { userId: 'bob' });
      expect(await client.call.whoami('!')).to.equal('bob!');
      expect(await client.call.asyncWhoami(1, 2)).to.deep.equal(['bob', 1, 2]);
      expect(await client.call.plainArgs(1, 2)).to.deep.equal([1, 2]);
    });

    it("a client handler with withIdentity called by the server sees the server's id", async () => {
      const server = await startServer();
      const client = await startClient(server, { userId: 'bob' });
      client.registerRpc('whoCalls', (identity: string, n: number) => ({ identity, n }), { withIdentity: true });
      expect(await server.sendTo('bob').whoCalls(3)).to.deep.equal({ identity: 'service', n: 3 });
    });

    it('a global withIdentity registration gets the identity too', async () => {
      const name = globalName('globalWho');
      registerRpc(name, (identity: string) => identity, { withIdentity: true });
      const server = await startServer();
      const client = await startClient(server, { userId: 'bob' });
      expect(await client.invoke(name, [])).to.equal('bob');
    });
  });

  describe('domains', () => {
    it('a name registered only in a non-default domain is not callable with the noop plugin', async () => {
      const server = await startServer();
      server.registerRpc('adminOnly', () => 'secret', { domain: 'admin' });
      expect(server.registry.lookup('adminOnly')?.domain).to.equal('admin');
      const client = await startClient(server);
      const error = await rejection(client.call.adminOnly());
      expect(error).to.be.instanceOf(ServiceNotFoundError);
    });

    it('the same name in the default domain stays callable beside a non-default one', async () => {
      const server = await startServer();
      server.registerRpc('both', () => 'admin', { domain: 'admin' });
      server.registerRpc('both', () => 'default');
      const client = await startClient(server);
      expect(await client.call.both()).to.equal('default');
    });

    it('a global name in a non-default domain is not callable either', async () => {
      const name = globalName('globalAdmin');
      registerRpc(name, () => 'secret', { domain: 'admin' });
      const server = await startServer();
      const client = await startClient(server);
      expect(await rejection(client.invoke(name, []))).to.be.instanceOf(ServiceNotFoundError);
      expect(globalRegistry.lookup(name)?.domain).to.equal('admin');
    });
  });
});
