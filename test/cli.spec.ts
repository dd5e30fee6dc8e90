import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import argon2 from 'argon2';
import { Client } from '../lib/index.js';
import { cleanup, quickHash, recordingLogger, startServer, track } from './helpers.js';

const BIN = fileURLToPath(new URL('../lib/cli/main.js', import.meta.url));
const FUNCTIONS_MODULE = fileURLToPath(new URL('./fixtures/cli-functions.js', import.meta.url));

interface Outcome { status: number | null; stdout: string; stderr: string }

/** Runs the built `zeropeer` binary to its end (bounded: killed after 20 s), with `input` on stdin. */
function zeropeer(args: string[], input = ''): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

describe('the zeropeer command', function () {
  this.timeout(30_000);
  afterEach(cleanup);

  it('without a command, or with an unknown one, prints the usage and exits 2', async () => {
    for (const args of [[], ['frobnicate']]) {
      const { status, stderr } = await zeropeer(args);
      expect(status, args.join(' ')).to.equal(2);
      expect(stderr).to.contain('Usage: zeropeer <command>');
    }
    const help = await zeropeer(['--help']);
    expect(help.status).to.equal(0);
    expect(help.stdout).to.contain('hash-password');
  });

  describe('call', () => {
    it('prints the result as JSON, its arguments parsed as JSON', async () => {
      const server = await startServer();
      server.registerRpc('echo', (...args: unknown[]) => args);
      server.registerRpc('values', () => ({ big: 2n ** 70n, map: new Map([['k', 1]]), set: new Set([1, 2]), bytes: Buffer.from('hi'), none: undefined }));
      const echo = await zeropeer(['call', server.endpoint, 'service', 'echo', '1', '"two"', '{"three":[3]}', 'null']);
      expect(echo.stderr).to.equal('');
      expect(echo.status).to.equal(0);
      expect(JSON.parse(echo.stdout)).to.deep.equal([1, 'two', { three: [3] }, null]);
      const values = await zeropeer(['call', server.endpoint, 'service', 'values']);
      expect(JSON.parse(values.stdout)).to.deep.equal({ big: '1180591620717411303424', map: { k: 1 }, set: [1, 2], bytes: 'aGk=' });
    });

    it('exits with the status of the error code, the error on stderr', async () => {
      const server = await startServer();
      server.registerRpc('broken', () => {
        throw new RangeError('out of range');
      });
      const missing = await zeropeer(['call', server.endpoint, 'service', 'nothing.here']);
      expect(missing.status).to.equal(10);
      expect(missing.stderr).to.match(/service_not_found: .*nothing\.here/);
      expect(missing.stdout).to.equal('');
      const thrown = await zeropeer(['call', server.endpoint, 'service', 'broken']);
      expect(thrown.status).to.equal(16);
      expect(thrown.stderr).to.contain('remote: RangeError: out of range');
      const wrongId = await zeropeer(['call', server.endpoint, 'nobody', 'broken', '--timeout', '60000']);
      expect(wrongId.status).to.equal(13);
      expect(wrongId.stderr).to.contain("peer_not_connected: PeerNotConnectedError: connected to");
      expect(wrongId.stderr).to.contain("the peer there is 'service', not 'nobody'");
      server.registerRpc('slow', () => new Promise((resolve) => setTimeout(resolve, 2000)));
      const slow = await zeropeer(['call', server.endpoint, 'service', 'slow', '--timeout', '300']);
      expect(slow.status).to.equal(12);
      expect(slow.stderr).to.contain('timeout');
    });

    it('refuses arguments that are not JSON, and a bad --timeout, with exit 2 and nothing sent', async () => {
      const server = await startServer();
      let calls = 0;
      server.registerRpc('count', () => ++calls);
      const bad = await zeropeer(['call', server.endpoint, 'service', 'count', 'text']);
      expect(bad.status).to.equal(2);
      expect(bad.stderr).to.contain('argument 1 is not JSON');
      const timeout = await zeropeer(['call', server.endpoint, 'service', 'count', '--timeout', 'soon']);
      expect(timeout.status).to.equal(2);
      expect(calls).to.equal(0);
    });

    it('logs in with --user/--password (plain) over CURVE with --server-key; a wrong password exits 11', async () => {
      const keys = JSON.parse((await zeropeer(['keygen'])).stdout) as { publicKey: string; secretKey: string };
      expect(keys.publicKey).to.have.length(40);
      expect(keys.secretKey).to.have.length(40);
      const server = await startServer({ security: 'plain', users: { alice: await quickHash('pw') }, curve: keys });
      server.registerRpc('whoami', (identity: string) => identity, { withIdentity: true });
      const ok = await zeropeer(['call', server.endpoint, 'service', 'whoami', '--user', 'alice', '--password', 'pw', '--server-key', keys.publicKey]);
      expect(ok.stderr).to.equal('');
      expect(JSON.parse(ok.stdout)).to.equal('alice');
      const refused = await zeropeer(['call', server.endpoint, 'service', 'whoami', '--user', 'alice', '--password', 'nope', '--server-key', keys.publicKey]);
      expect(refused.status).to.equal(11);
      expect(refused.stderr).to.contain('unauthorized');
      expect(refused.stderr).to.not.contain('nope');
    });

    it('reads --password - from stdin', async () => {
      const server = await startServer({ security: 'plain', users: { alice: await quickHash('from stdin') } });
      server.registerRpc('ping', () => 'pong');
      const { status, stdout } = await zeropeer(['call', server.endpoint, 'service', 'ping', '--user', 'alice', '--password', '-'], 'from stdin\n');
      expect(status).to.equal(0);
      expect(JSON.parse(stdout)).to.equal('pong');
    });
  });

  it('inspect lists the functions with their parameters and descriptions, or as JSON', async () => {
    const server = await startServer();
    server.registerRpc('math.add', (a: number, b: number) => a + b, { description: 'adds two numbers' });
    server.registerRpc('ping', () => 'pong');
    const text = await zeropeer(['inspect', server.endpoint, 'service']);
    expect(text.status).to.equal(0);
    expect(text.stdout.split('\n')).to.include.members(['math.add(a, b)  adds two numbers', 'ping()']);
    const json = await zeropeer(['inspect', server.endpoint, 'service', '--json']);
    expect(JSON.parse(json.stdout)).to.deep.include({ name: 'math.add', description: 'adds two numbers', params: ['a', 'b'] });
  });

  it('serve exposes the module\'s exported functions (not its classes or values) and stops on SIGTERM and SIGINT', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const child = spawn(process.execPath, [BIN, 'serve', FUNCTIONS_MODULE, '--bind', 'tcp://127.0.0.1:0', '--id', 'fns'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      try {
        const exited = new Promise<number | null>((resolve) => child.on('exit', (status) => resolve(status)));
        const lines = createInterface({ input: child.stdout });
        const line = String((await lines[Symbol.asyncIterator]().next()).value);
        lines.close();
        expect(line).to.match(/^tcp:\/\/127\.0\.0\.1:\d+$/);
        const client = track(new Client('fns', { logger: recordingLogger() }));
        client.connect(line);
        await client.start();
        expect(await client.call.add(2, 3)).to.equal(5);
        expect(await client.call.shout('hey')).to.equal('HEY!');
        expect((await client.inspect()).map((fn) => fn.name).sort()).to.deep.equal(['add', 'shout']);
        const viaCli = await zeropeer(['call', line, 'fns', 'add', '40', '2']);
        expect(viaCli.stdout.trim()).to.equal('42');
        child.kill(signal);
        expect(await exited, signal).to.equal(0);
      } finally {
        clearTimeout(killer);
        child.kill('SIGKILL');
      }
    }
  });

  it('serve --users serves with plain security: the right password gets through, a wrong one exits 11', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zeropeer-cli-'));
    writeFileSync(join(dir, 'users.json'), JSON.stringify({ alice: await quickHash('pw') }));
    const child = spawn(process.execPath, [BIN, 'serve', FUNCTIONS_MODULE, '--bind', 'tcp://127.0.0.1:0', '--users', join(dir, 'users.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      const exited = new Promise<number | null>((resolve) => child.on('exit', (status) => resolve(status)));
      const lines = createInterface({ input: child.stdout });
      const endpoint = String((await lines[Symbol.asyncIterator]().next()).value);
      lines.close();
      const ok = await zeropeer(['call', endpoint, 'cli-functions', 'add', '1', '2', '--user', 'alice', '--password', 'pw']);
      expect(ok.stdout.trim(), ok.stderr).to.equal('3');
      const refused = await zeropeer(['call', endpoint, 'cli-functions', 'add', '1', '2', '--user', 'alice', '--password', 'nope']);
      expect(refused.status).to.equal(11);
      child.kill('SIGTERM');
      expect(await exited).to.equal(0);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serve refuses a module without functions, and an endpoint it cannot bind, with a message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zeropeer-cli-'));
    try {
      writeFileSync(join(dir, 'values.mjs'), 'export const answer = 42;\nexport class Thing {}\n');
      const none = await zeropeer(['serve', join(dir, 'values.mjs'), '--bind', 'tcp://127.0.0.1:0']);
      expect(none.status).to.equal(2);
      expect(none.stderr).to.contain('exports no functions');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const server = await startServer();
    const busy = await zeropeer(['serve', FUNCTIONS_MODULE, '--bind', server.endpoint]);
    expect(busy.status).to.not.equal(0);
    expect(busy.stderr).to.contain(server.endpoint);
    expect(await zeropeer(['serve', FUNCTIONS_MODULE])).to.include({ status: 2 });
  });

  describe('hash-password', () => {
    it('hashes the first line of stdin (argon2id) when stdin is not a terminal', async () => {
      const { status, stdout } = await zeropeer(['hash-password'], 'correct horse\nignored\n');
      expect(status).to.equal(0);
      expect(stdout).to.match(/^\$argon2id\$/);
      expect(await argon2.verify(stdout.trim(), 'correct horse')).to.equal(true);
    });

    it('at a terminal, asks twice without echoing what is typed (run under script(1), which gives it a pty)', async function () {
      if (spawnSync('script', ['--version']).status !== 0) {
        console.log('    (skipped: no script(1) to give the command a terminal; apt-get install -y bsdutils)');
        this.skip();
      }
      const atTerminal = (first: string, second: string): Promise<Outcome> => new Promise((resolve, reject) => {
        const child = spawn('script', ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} hash-password`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.stdout.on('data', (chunk: Buffer) => {
          const before = stdout;
          stdout += chunk.toString();
          // Type only once the prompt is there: the terminal is in no-echo mode by then.
          if (!before.includes('Password: ') && stdout.includes('Password: ')) child.stdin.write(`${first}\r`);
          if (!before.includes('Again: ') && stdout.includes('Again: ')) child.stdin.write(`${second}\r`);
        });
        child.on('error', reject);
        child.on('close', (status) => {
          clearTimeout(timer);
          resolve({ status, stdout, stderr: '' });
        });
      });
      const typed = await atTerminal('tty s3cret', 'tty s3cret');
      expect(typed.status).to.equal(0);
      expect(typed.stdout).to.not.contain('s3cret');
      const hash = /\$argon2id\$\S+/.exec(typed.stdout)?.[0];
      expect(await argon2.verify(hash!, 'tty s3cret')).to.equal(true);
      const differ = await atTerminal('one', 'two');
      expect(differ.status).to.equal(2);
      expect(differ.stdout).to.contain('the passwords differ');
    });

    it('refuses an empty password', async () => {
      expect(await zeropeer(['hash-password'], '\n')).to.include({ status: 2 });
    });
  });
});
