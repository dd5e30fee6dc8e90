/**
 * Identities bound to CURVE keys (`curve.allowedClientKeys` as a map of key -> identities): a
 * holder of an allowed key can only authenticate as the identities listed for it, so bob's key
 * cannot claim to be alice, take her connection, or receive her pushes; a proxy's name is its key's.
 *
 * Real CURVE sockets on loopback; a raw CURVE peer plays the attacker who speaks the handshake by hand.
 */
import { expect } from 'chai';
import { KeyProver, KEY_CHALLENGE } from '../lib/auth/key-proof.js';
import { Client, MessageType, Server, UnauthorizedError, curveKeyPair, type ClientOptions, type ServerOptions } from '../lib/index.js';
import { MessageIds } from '../lib/wire/message-ids.js';
import { RawPeer, cleanup, endpointFor, once, recordingLogger, track, until } from './helpers.js';

type KeyPair = { publicKey: string; secretKey: string };
type RecordingLogger = ReturnType<typeof recordingLogger>;

const T = MessageType;

describe('identities bound to CURVE keys', () => {
  let serverKeys: KeyPair;
  let aliceKeys: KeyPair;
  let bobKeys: KeyPair;
  let edgeKeys: KeyPair;

  before(() => {
    serverKeys = curveKeyPair();
    aliceKeys = curveKeyPair();
    bobKeys = curveKeyPair();
    edgeKeys = curveKeyPair();
  });

  afterEach(cleanup);

  async function boundServer(options: ServerOptions = {}, id = 'service'): Promise<{ server: Server; logger: RecordingLogger }> {
    const logger = recordingLogger();
    const server = track(new Server(id, {
      security: 'trusted_peer',
      curve: { ...serverKeys, allowedClientKeys: { [aliceKeys.publicKey]: ['alice'], [bobKeys.publicKey]: ['bob'], [edgeKeys.publicKey]: ['edge', 'edge-2'] } },
      logger,
      drainTimeoutMs: 50,
      ...options,
    }));
    await server.bind(endpointFor('tcp'));
    await server.start();
    return { server, logger };
  }

  function client(server: Server, keys: KeyPair, options: ClientOptions): Client {
    const made = track(new Client(server.id, {
      security: 'trusted_peer', curve: { ...keys, serverPublicKey: serverKeys.publicKey }, logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs: 4000, ...options,
    }));
    made.connect(server.endpoint);
    return made;
  }

  async function connected(server: Server, keys: KeyPair, options: ClientOptions): Promise<Client> {
    const made = client(server, keys, options);
    const ready = once(made, 'connected', 5000);
    await made.start();
    await ready;
    return made;
  }

  it('a key authenticates as an identity listed for it; calls work both ways', async () => {
    const { server } = await boundServer();
    server.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
    const alice = await connected(server, aliceKeys, { userId: 'alice' });
    alice.registerRpc('hello', () => 'alice here');
    expect(await alice.call.whoami()).to.equal('alice');
    expect(await server.sendTo('alice').hello()).to.equal('alice here');
  });

  it('a key mapped to several identities may use each of them', async () => {
    const { server } = await boundServer();
    server.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
    const one = await connected(server, edgeKeys, { userId: 'edge' });
    const two = await connected(server, edgeKeys, { userId: 'edge-2' });
    expect(await one.call.whoami()).to.equal('edge');
    expect(await two.call.whoami()).to.equal('edge-2');
  });

  it("bob's allowed key claiming to be alice is refused; alice keeps her connection and her pushes", async () => {
    const { server, logger } = await boundServer();
    server.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
    const alice = await connected(server, aliceKeys, { userId: 'alice' });
    let aliceRan = 0;
    alice.registerRpc('secret', () => {
      aliceRan++;
      return 'for alice';
    });
    const gone: unknown[][] = [];
    server.on('peer:gone', (...args: unknown[]) => gone.push(args));

    const bob = client(server, bobKeys, { userId: 'alice' });
    let bobRan = 0;
    bob.registerRpc('secret', () => {
      bobRan++;
      return 'stolen';
    });
    await bob.start();
    const error = await bob.call.whoami().then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(UnauthorizedError);
    expect(logger.entries.some((e) => e.message === 'authentication refused' && String(e.context?.['reason']).includes('may not authenticate as "alice"')),
      logger.text()).to.equal(true);

    expect(gone, 'alice was not replaced').to.deep.equal([]);
    expect(server.connectedPeers()).to.deep.equal(['alice']);
    expect(await server.sendTo('alice').secret()).to.equal('for alice');
    expect([aliceRan, bobRan]).to.deep.equal([1, 0]);
    expect(await alice.call.whoami()).to.equal('alice');
  });

  it('a trusted proxy is its key: another key cannot claim its name (and so cannot run calls as anyone)', async () => {
    const { server: core } = await boundServer({ trustedProxies: ['edge'] }, 'core');
    core.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
    const impostor = client(core, bobKeys, { userId: 'edge' });
    await impostor.start();
    const error = await impostor.call.whoami().then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(UnauthorizedError);
    expect(core.connectedPeers()).to.deep.equal([]);
    // The real proxy, with its key, is admitted under its name.
    const edge = await connected(core, edgeKeys, { userId: 'edge' });
    expect(await edge.call.whoami()).to.equal('edge');
  });

  describe('the handshake spoken by hand', () => {
    /** A raw CURVE peer holding `keys`, connected to `server`. */
    async function rawPeer(server: Server, keys: KeyPair): Promise<RawPeer> {
      const raw = new RawPeer(server.id, { routingId: `raw-${Math.random().toString(36).slice(2)}` });
      raw.socket.curveServerKey = serverKeys.publicKey;
      raw.socket.curvePublicKey = keys.publicKey;
      raw.socket.curveSecretKey = keys.secretKey;
      await raw.connect(server.endpoint);
      return raw;
    }

    const ids = new MessageIds();

    /** Sends a zeropeer-style HELLO (the id marks a zeropeer client) and returns the answer's type and body. */
    async function hello(raw: RawPeer, body: unknown[]): Promise<{ type: number; body: string }> {
      const id = ids.next();
      await raw.sendV1(ids.toV1(id), T.HELLO, body);
      for (;;) {
        const frames = await raw.next(5000);
        if (frames.length === 5 && frames[3]![0] !== T.HEARTBEAT) return { type: frames[3]![0]!, body: frames[4]!.toString() };
      }
    }

    function nonceOf(body: string): Buffer {
      expect(body.startsWith(KEY_CHALLENGE), `a key challenge: ${body}`).to.equal(true);
      return Buffer.from(body.slice(KEY_CHALLENGE.length), 'base64');
    }

    it('a HELLO without a proof gets a fresh challenge each time; a proof made with another key is refused', async () => {
      const { server } = await boundServer();
      const raw = await rawPeer(server, bobKeys);
      const first = await hello(raw, ['alice', '']);
      expect(first.type).to.equal(T.UNAUTHORIZED);
      const second = await hello(raw, ['alice', '']);
      expect(nonceOf(second.body).equals(nonceOf(first.body)), 'a new nonce').to.equal(false);
      // Bob names alice's key but can only make the proof with his own secret.
      const forged = new KeyProver(bobKeys, serverKeys.publicKey).prove(nonceOf(second.body), 'alice');
      const answer = await hello(raw, ['alice', '', { k: aliceKeys.publicKey, p: forged.proof }]);
      expect(answer).to.deep.equal({ type: T.UNAUTHORIZED, body: 'authentication failed' });
      expect(server.connectedPeers()).to.deep.equal([]);
    });

    it('a proof answers one challenge once: replayed, it is refused', async () => {
      const { server } = await boundServer();
      const raw = await rawPeer(server, aliceKeys);
      const challenge = await hello(raw, ['alice', '']);
      const proof = new KeyProver(aliceKeys, serverKeys.publicKey).prove(nonceOf(challenge.body), 'alice');
      const accepted = await hello(raw, ['alice', '', { k: proof.key, p: proof.proof }]);
      expect(accepted.type).to.equal(T.AUTHENTICATED);
      await until(() => server.connectedPeers().includes('alice'), 3000, 'alice is in the table');
      const replayed = await hello(raw, ['alice', '', { k: proof.key, p: proof.proof }]);
      expect(replayed).to.deep.equal({ type: T.UNAUTHORIZED, body: 'authentication failed' });
    });

    it('a proof is bound to its login: made for bob, it does not admit "alice"', async () => {
      const { server } = await boundServer({ curve: { ...serverKeys, allowedClientKeys: { [bobKeys.publicKey]: ['bob', 'alice'] } } });
      const raw = await rawPeer(server, bobKeys);
      const challenge = await hello(raw, ['alice', '']);
      const proof = new KeyProver(bobKeys, serverKeys.publicKey).prove(nonceOf(challenge.body), 'bob');
      const answer = await hello(raw, ['alice', '', { k: proof.key, p: proof.proof }]);
      expect(answer.type).to.equal(T.UNAUTHORIZED);
      expect(server.connectedPeers()).to.deep.equal([]);
    });

    it('a pseud-style HELLO (no zeropeer id) and work without HELLO are refused: nobody is anonymous', async () => {
      const { server } = await boundServer();
      server.registerRpc('ping', () => 'pong');
      const raw = await rawPeer(server, aliceKeys);
      await raw.sendV1(Buffer.alloc(16, 7), T.HELLO, ['alice', '']);
      let frames = await raw.next(5000);
      while (frames[3]![0] === T.HEARTBEAT) frames = await raw.next(5000);
      expect([frames[3]![0], frames[4]!.toString()]).to.deep.equal([T.UNAUTHORIZED, 'authentication failed']);
      await raw.sendV1(Buffer.alloc(16, 8), T.WORK, ['ping', [], {}]);
      frames = await raw.next(5000);
      while (frames[3]![0] === T.HEARTBEAT) frames = await raw.next(5000);
      expect(frames[3]![0]).to.equal(T.UNAUTHORIZED);
      expect(server.connectedPeers()).to.deep.equal([]);
    });
  });

  describe('construction', () => {
    it('a map with a bad key, or a key with no identities, is refused at construction', () => {
      expect(() => new Server('s', { security: 'trusted_peer', curve: { ...serverKeys, allowedClientKeys: { 'not-a-key': ['alice'] } } }))
        .to.throw(TypeError, /Z85/);
      expect(() => new Server('s', { security: 'trusted_peer', curve: { ...serverKeys, allowedClientKeys: { [aliceKeys.publicKey]: [] } } }))
        .to.throw(TypeError, /non-empty array of identities/);
    });

    it("a map with 'noop' security is refused: noop names nobody", () => {
      expect(() => new Server('s', { curve: { ...serverKeys, allowedClientKeys: { [aliceKeys.publicKey]: ['alice'] } } }))
        .to.throw(TypeError, /needs a security plugin that authenticates/);
    });
  });
});
