/**
 * Interoperation with the real Python pseud, in both roles, over tcp and ipc: pseud's async Client
 * and SyncClient calling a zeropeer Server (and answering its pushes), and a zeropeer Client calling
 * a pseud Server (without authentication, and with pseud's on-demand `untrusted_curve` test plugin).
 *
 * Runs when `/usr/bin/python3` imports zmq, msgpack and zope.component (Debian packages) and
 * PSEUD_DIR names a pseud checkout (scripts/fetch-pseud.sh); otherwise prints one line and skips.
 * pseud predates msgpack 1.0: a copy of it is patched in a temporary directory at test time.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client, curveKeyPair, hashPassword, RemoteError, Server, UnauthorizedError, type PeerOptions } from '../lib/index.js';
import { endpointFor, once, recordingLogger, rejection, sleep, until } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const DRIVER = fileURLToPath(new URL('../../test/fixtures/pseud-driver.py', import.meta.url));
const ENABLE = 'apt-get install -y python3-zmq python3-msgpack python3-zope.component; bash scripts/fetch-pseud.sh /tmp/pseud-src; PSEUD_DIR=/tmp/pseud-src npm test';

/** Why the real-pseud tests cannot run here, or undefined when they can. */
function missing(): string | undefined {
  const dir = process.env['PSEUD_DIR'];
  if (!dir) return 'PSEUD_DIR is not set';
  if (!existsSync(join(dir, 'pseud', 'common.py')) || !existsSync(join(dir, 'tests', 'conftest.py'))) return `PSEUD_DIR=${dir} is not a pseud checkout`;
  const probe = spawnSync(PYTHON, ['-c', 'import zmq, msgpack, zope.component'], { encoding: 'utf8', timeout: 20_000 });
  if (probe.status !== 0) return `${PYTHON} cannot import zmq, msgpack and zope.component`;
  return undefined;
}

/** A copy of PSEUD_DIR's pseud package and test plugins, adapted to msgpack 1.0 (no `encoding=`). */
function patchedCopy(dir: string): string {
  const copy = mkdtempSync(join(tmpdir(), 'zeropeer-pseud-'));
  cpSync(join(dir, 'pseud'), join(copy, 'pseud'), { recursive: true });
  cpSync(join(dir, 'tests', 'conftest.py'), join(copy, 'tests', 'conftest.py'));
  const packer = join(copy, 'pseud', 'packer.py');
  const edits: [string, string][] = [
    ["encoding='utf-8', use_bin_type=True", 'use_bin_type=True'],
    ["use_list=False, encoding='utf-8'", 'use_list=False, raw=False, strict_map_key=False'],
  ];
  let text = readFileSync(packer, 'utf8');
  for (const [from, to] of edits) {
    if (!text.includes(from)) throw new Error(`pseud/packer.py no longer has ${JSON.stringify(from)}: adapt patchedCopy()`);
    text = text.replace(from, to);
  }
  writeFileSync(packer, text);
  return copy;
}

interface Described { type: string; repr: string }
type Answer = { ok: Described } | { error: { type: string; message: string } };

/** One Python process running test/fixtures/pseud-driver.py; stdin closed = it stops. */
class PyPeer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  private stderr = '';
  private exited = false;
  readonly exit: Promise<number | null>;

  constructor(pseudPath: string, args: string[]) {
    this.child = spawn(PYTHON, ['-u', DRIVER, ...args], { env: { ...process.env, PSEUD_PATH: pseudPath }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4000)));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.lines.push(line);
      this.waiter?.();
    });
    this.exit = new Promise((resolve) => this.child.on('exit', (code) => {
      this.exited = true;
      this.waiter?.();
      resolve(code);
    }));
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** The next JSON line on stdout, within `timeoutMs`. */
  async next(timeoutMs = 8000): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.exited) throw new Error(`pseud driver exited; stderr:\n${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer from the pseud driver within ${timeoutMs} ms; stderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return JSON.parse(this.lines.shift()!);
  }

  /** Python calls `name(*args, **kwargs)` on its peer; args and kwargs are Python literals. */
  async call(name: string, args = '()', kwargs = '{}'): Promise<Answer> {
    this.child.stdin.write(`${JSON.stringify({ op: 'call', name, args, kwargs })}\n`);
    return (await this.next()) as Answer;
  }

  async ok(name: string, args?: string, kwargs?: string): Promise<Described> {
    const answer = await this.call(name, args, kwargs);
    if (!('ok' in answer)) expect.fail(`${name}: ${JSON.stringify(answer)}\nstderr:\n${this.stderr}`);
    return answer.ok;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.stdin.end(`${JSON.stringify({ op: 'quit' })}\n`);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exit;
    clearTimeout(timer);
  }
}

/** Peers and processes made in before-all hooks: kept off helpers' list, which a root-level afterEach(cleanup) empties. */
const mine: { stop(): Promise<void> }[] = [];
function keep<T extends { stop(): Promise<void> }>(thing: T): T {
  mine.push(thing);
  return thing;
}
async function stopMine(): Promise<void> {
  await Promise.all(mine.splice(0).map((thing) => thing.stop()));
}

async function ownServer(options: PeerOptions, transport: 'tcp' | 'ipc'): Promise<Server> {
  const server = keep(new Server('service', { logger: recordingLogger(), drainTimeoutMs: 50, ...options }));
  await server.bind(endpointFor(transport));
  await server.start();
  return server;
}

const why = missing();
if (why !== undefined) {
  console.log(`  pseud (real Python): skipped, ${why}. To run it: ${ENABLE}`);
} else {
  describe('pseud (real Python)', function () {
    this.timeout(20_000);
    let pseudPath: string;

    before(() => {
      pseudPath = patchedCopy(process.env['PSEUD_DIR']!);
    });
    after(() => rmSync(pseudPath, { recursive: true, force: true }));

    async function py(...args: string[]): Promise<{ peer: PyPeer; ready: { endpoint: string; publicKey?: string } }> {
      const peer = keep(new PyPeer(pseudPath, args));
      const line = (await peer.next(15_000)) as { ready: { endpoint: string; publicKey?: string } };
      return { peer, ready: line.ready };
    }

    for (const transport of ['tcp', 'ipc'] as const) {
      describe(`pseud clients of a zeropeer Server over ${transport}`, () => {
        let server: Server;
        let client: PyPeer;
        let clientId: string;
        let kept: unknown[] = [];

        before(async () => {
          // Short heartbeat settings: an idle pseud peer must outlive several of them.
          server = await ownServer({ heartbeat: { intervalMs: 100, timeoutMs: 300 } }, transport);
          server.registerRpc('string.lower', (s: string) => s.toLowerCase());
          server.registerRpc('greet', (name: string, greeting = 'hello', punctuation = '!') => `${greeting} ${name}${punctuation}`);
          server.registerRpc('fail', (what: string) => {
            throw new TypeError(`cannot handle ${what}`);
          });
          server.registerRpc('keep', (...args: unknown[]) => {
            kept = args;
            return args.length;
          });
          server.registerRpc('echo', (value: unknown) => value);
          server.registerRpc('values', () => [new Set([1, 2]), new Uint8Array([1, 2, 255]), 2 ** 40, 2n ** 60n, undefined, -(2 ** 40)]);
          ({ peer: client } = await py('client', server.endpoint, server.id));
          // A pseud client's PROBE_ROUTER hello does not make it a known peer; its first call does.
          expect((await client.ok('string.lower', "('READY',)")).repr).to.equal("'ready'");
          await until(() => server.connectedPeers().length === 1, 5000, 'the pseud client known by the server');
          clientId = server.connectedPeers()[0]!;
        });
        after(stopMine);

        it('async Client: a call, kwargs by name, an error as the Python exception of that name', async () => {
          expect(await client.ok('string.lower', "('ABC',)")).to.deep.equal({ type: 'str', repr: "'abc'" });
          expect((await client.ok('greet', "('bob',)", "{'punctuation': '?'}")).repr).to.equal("'hello bob?'");
          expect(await client.call('fail', "('x',)")).to.deep.equal({ error: { type: 'TypeError', message: 'cannot handle x' } });
          const unknown = await client.call('greet', "('bob',)", "{'nope': 1}");
          expect(unknown, 'an unknown keyword: ParameterError, which Python has no class for').to.have.nested.property('error.type', 'Exception');
          expect(JSON.stringify(unknown)).to.match(/nope/);
        });

        it('values per the README table, both ways', async () => {
          expect((await client.ok('values')).repr).to.equal("((1, 2), b'\\x01\\x02\\xff', 1099511627776, 1152921504606846976, None, -1099511627776)");
          expect(await client.ok('echo', '(1099511627776,)')).to.deep.equal({ type: 'int', repr: '1099511627776' });
          expect(await client.ok('echo', "(b'\\x00\\xff',)")).to.deep.equal({ type: 'bytes', repr: "b'\\x00\\xff'" });
          expect((await client.ok('keep', "(b'\\x00\\xff', 1099511627776, 9007199254740993, (1, 'a'), {'k': None})")).repr).to.equal('5');
          expect(kept).to.deep.equal([Buffer.from([0, 255]), 2 ** 40, 9007199254740993n, [1, 'a'], { k: null }]);
        });

        it('the server pushes work to the pseud client by identity: result, kwargs, error', async () => {
          expect(await server.sendTo(clientId).addition(2, 4)).to.equal(6);
          expect(await server.invoke('greet', ['ann'], { to: clientId, kwargs: { greeting: 'hi' } })).to.equal('hi ann!');
          const error = await rejection(server.sendTo(clientId).fail('y'));
          expect(error).to.be.instanceOf(RemoteError);
          expect((error as RemoteError).remoteName).to.equal('ValueError');
          expect(error.message).to.equal('cannot handle y');
        });

        it('an idle pseud client outlives the heartbeat timeout, and a push of longer than it completes', async () => {
          const gone: unknown[] = [];
          server.on('peer:gone', (...args: unknown[]) => gone.push(args));
          await sleep(1000); // > 3 heartbeat timeouts of silence
          expect(server.connectedPeers()).to.include(clientId);
          expect(await server.sendTo(clientId).nap(0.8)).to.equal('rested');
          expect(gone).to.deep.equal([]);
        });

        it('SyncClient (REQ): calls after idle heartbeat rounds get their own answers', async () => {
          const { peer: sync } = await py('sync-client', server.endpoint, server.id);
          expect((await sync.ok('string.lower', "('ABC',)")).repr).to.equal("'abc'");
          await sleep(500); // the server sends nothing unsolicited, so the REQ socket's next read is its answer
          expect((await sync.ok('greet', "('bob',)", "{'greeting': 'hey'}")).repr).to.equal("'hey bob!'");
          expect(await sync.call('fail', "('z',)")).to.deep.equal({ error: { type: 'TypeError', message: 'cannot handle z' } });
          expect((await sync.ok('echo', '(1099511627776,)')).repr).to.equal('1099511627776');
          await sync.stop();
          expect(await sync.exit).to.equal(0);
        });
      });

      describe(`a zeropeer Client of a pseud Server over ${transport}`, () => {
        let pyServer: PyPeer;
        let client: Client;

        before(async () => {
          const bind = transport === 'tcp' ? 'tcp://127.0.0.1:*' : endpointFor('ipc');
          const { peer, ready } = await py('server', bind);
          pyServer = peer;
          client = keep(new Client('pyserver', { logger: recordingLogger(), heartbeat: { intervalMs: 100, timeoutMs: 300 }, drainTimeoutMs: 50 }));
          client.connect(ready.endpoint);
          const connected = once(client, 'connected', 8000);
          await client.start();
          await connected;
        });
        after(stopMine);

        it('a call, kwargs, an error as RemoteError with the Python class name', async () => {
          expect(await client.call.string.lower('ABC')).to.equal('abc');
          expect(await client.invoke('greet', ['bob'], { kwargs: { punctuation: '?' } })).to.equal('hello bob?');
          const error = await rejection(client.call.fail('x'));
          expect(error).to.be.instanceOf(RemoteError);
          expect((error as RemoteError).remoteName).to.equal('ValueError');
          expect(error.message).to.equal('cannot handle x');
        });

        it('values per the README table: what Python sees, and what comes back', async () => {
          const [kinds, reprs] = (await client.call.describe(new Set([1, 2]), new Uint8Array([1, 2]), 2 ** 40, 2n ** 60n, undefined)) as [string[], string[]];
          expect(kinds).to.deep.equal(['tuple', 'bytes', 'int', 'int', 'NoneType']);
          expect(reprs).to.deep.equal(['(1, 2)', "b'\\x01\\x02'", '1099511627776', '1152921504606846976', 'None']);
          expect(await client.call.echo(2 ** 40)).to.equal(2 ** 40);
          expect(await client.call.echo(new Uint8Array([9, 8]))).to.deep.equal(Buffer.from([9, 8]));
          expect(await client.call.echo(new Set(['a']))).to.deep.equal(['a']);
        });

        it('a pseud server that never heartbeats stays up through a call longer than the heartbeat timeout, and through idleness', async () => {
          expect(await client.call.nap(0.8)).to.equal('rested');
          await sleep(700);
          expect(await client.call.addition(1, 2)).to.equal(3);
          expect(pyServer.alive, 'the pseud server process').to.equal(true);
        });

        it('proxyTo this pseud server: a zeropeer Server relays what it cannot serve as plain v1 calls (values per the table, errors, kwargs)', async () => {
          const edge = await ownServer({ proxyTo: client }, transport);
          edge.registerRpc('local', () => 'edge');
          const caller = keep(new Client('service', { logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs: 8000 }));
          caller.connect(edge.endpoint);
          await caller.start();
          expect(await caller.call.local()).to.equal('edge');
          expect(await caller.call.string.lower('ABC')).to.equal('abc');
          expect(await caller.invoke('greet', ['bob'], { kwargs: { punctuation: '?' } })).to.equal('hello bob?');
          const [kinds] = (await caller.call.describe(new Set([1, 2]), 2n ** 60n, undefined)) as [string[], string[]];
          expect(kinds, 'what Python got through the relay').to.deep.equal(['tuple', 'int', 'NoneType']);
          const error = await rejection(caller.call.fail('x'));
          expect(error).to.be.instanceOf(RemoteError);
          expect((error as RemoteError).remoteName).to.equal('ValueError');
          expect(pyServer.alive, 'the pseud server process').to.equal(true);
        });
      });
    }

    it("pseud's Client with its untrusted_curve plugin logs in to a zeropeer plain-over-CURVE Server (HELLO with bytes) and calls", async () => {
      const keys = curveKeyPair();
      const server = await ownServer({ security: 'plain', users: { john: await hashPassword('s3cret!') }, curve: keys }, 'tcp');
      server.registerRpc('string.lower', (s: string) => s.toLowerCase());
      server.registerRpc('who', (identity: string) => identity, { withIdentity: true });
      try {
        const { peer } = await py('client', server.endpoint, server.id, 'untrusted_curve', keys.publicKey);
        expect((await peer.ok('string.lower', "('ABC',)")).repr).to.equal("'abc'");
        expect((await peer.ok('who')).repr).to.equal("'john'");
        expect(server.connectedPeers()).to.deep.equal(['john']);
        expect(await server.sendTo('john').addition(1, 1)).to.equal(2);
      } finally {
        await stopMine();
      }
    });

    describe("a zeropeer Client of a pseud Server with pseud's on-demand authentication (untrusted_curve test plugin)", () => {
      let endpoint: string;
      let serverPublicKey: string;
      let pyServer: PyPeer;

      before(async () => {
        const { peer, ready } = await py('server', 'tcp://127.0.0.1:*', 'untrusted_curve');
        pyServer = peer;
        endpoint = ready.endpoint;
        serverPublicKey = ready.publicKey!;
      });
      after(stopMine);

      function clientWith(password: string): Client {
        const keys = curveKeyPair();
        const client = keep(new Client('pyserver', {
          logger: recordingLogger(), drainTimeoutMs: 50, timeoutMs: 8000, security: 'plain', userId: 'john', password,
          curve: { publicKey: keys.publicKey, secretKey: keys.secretKey, serverPublicKey },
        }));
        client.connect(endpoint);
        return client;
      }

      it('WORK -> UNAUTHORIZED -> HELLO -> AUTHENTICATED -> the call is answered; a wrong password is refused and the server lives on', async () => {
        const wrong = clientWith('not-it');
        await wrong.start();
        const refused = await rejection(wrong.call.string.lower('NO'));
        expect(refused).to.be.instanceOf(UnauthorizedError);
        await wrong.stop();

        const right = clientWith('s3cret!');
        await right.start();
        expect(await right.call.string.lower('ABC')).to.equal('abc');
        expect(await right.call.addition(20, 22)).to.equal(42);
        expect(pyServer.alive, 'the pseud server process').to.equal(true);
      });
    });
  });
}
