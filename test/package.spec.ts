import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** What a consumer does: import the package, serve a function, call it through a real socket. */
const CONSUMER_ESM = `
import { Server, Client } from 'zeropeer';
const server = new Server('svc');
await server.bind('tcp://127.0.0.1:0');
server.registerRpc('up', (s) => s.toUpperCase());
await server.start();
const client = new Client('svc');
client.connect(server.endpoint);
await client.start();
console.log(await client.call.up('esm'));
await client.stop(); await server.stop();
`;
const CONSUMER_CJS = `
const { Server, Client } = require('zeropeer');
(async () => {
  const server = new Server('svc');
  await server.bind('tcp://127.0.0.1:0');
  server.registerRpc('up', (s) => s.toUpperCase());
  await server.start();
  const client = new Client('svc');
  client.connect(server.endpoint);
  await client.start();
  console.log(await client.call.up('cjs'));
  await client.stop(); await server.stop();
})();
`;

/**
 * The package as npm would publish it: `npm pack` of this checkout (dist/ was built by pretest;
 * a clean clone builds it in `prepare`, which .ci/run checks with a real `npm install`). Installed
 * here without the network: the tarball unpacked into a project's node_modules, its declared
 * runtime dependencies linked from ours, so a missing file or an undeclared dependency fails.
 */
describe('the npm package', function () {
  this.timeout(60_000);
  let dir: string;
  let files: string[];
  let manifest: { dependencies: Record<string, string>; engines: { node: string }; bin?: Record<string, string> };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'zeropeer-pack-'));
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT });
    const [packed] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
    files = packed.files.map((file) => file.path);
    const project = join(dir, 'project');
    const target = join(project, 'node_modules', 'zeropeer');
    await mkdir(target, { recursive: true });
    await run('tar', ['-xzf', join(dir, packed.filename), '-C', target, '--strip-components=1']);
    manifest = JSON.parse(await readFile(join(target, 'package.json'), 'utf8')) as typeof manifest;
    for (const dependency of Object.keys(manifest.dependencies)) {
      await mkdir(dirname(join(project, 'node_modules', dependency)), { recursive: true });
      await symlink(join(ROOT, 'node_modules', dependency), join(project, 'node_modules', dependency), 'dir');
    }
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    await writeFile(join(project, 'esm.mjs'), CONSUMER_ESM);
    await writeFile(join(project, 'cjs.cjs'), CONSUMER_CJS);
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('holds the built entry point, its types, and no tests, benchmarks or examples', () => {
    expect(files).to.include.members(['package.json', 'README.md', 'CHANGELOG.md', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/security/index.js']);
    expect(files.filter((file) => /^dist\/(test|bench|examples)\//.test(file))).to.deep.equal([]);
  });

  it('ships the source file every source map names', async () => {
    const maps = files.filter((file) => file.endsWith('.js.map'));
    expect(maps.length).to.be.greaterThan(10);
    const shipped = new Set(files);
    for (const map of maps) {
      const { sources } = JSON.parse(await readFile(join(ROOT, map), 'utf8')) as { sources: string[] };
      for (const source of sources) expect(shipped, `${map} names ${source}`).to.include(join(dirname(map), source));
    }
  });

  it('is imported (ESM) from another project, and a call goes through', async () => {
    const { stdout } = await run(process.execPath, ['esm.mjs'], { cwd: join(dir, 'project') });
    expect(stdout.trim()).to.equal('ESM');
  });

  it('is required (CommonJS, through require(esm)) from another project, and a call goes through', async () => {
    const { stdout } = await run(process.execPath, ['cjs.cjs'], { cwd: join(dir, 'project') });
    expect(stdout.trim()).to.equal('CJS');
  });

  it('runs its zeropeer command from the installed package', async () => {
    const { stdout } = await run(process.execPath, [join('node_modules', 'zeropeer', manifest.bin!['zeropeer']!), 'keygen'], { cwd: join(dir, 'project') });
    expect(JSON.parse(stdout)).to.have.keys(['publicKey', 'secretKey']);
  });

  it('claims the Node.js versions where require(esm) works without a flag', () => {
    expect(manifest.engines.node).to.equal('>=20.19');
  });

  it('every file the package names exists in it', () => {
    const named = [(manifest as unknown as { main: string }).main, (manifest as unknown as { types: string }).types, ...Object.values(manifest.bin ?? {})];
    for (const file of named) expect(existsSync(join(dir, 'project', 'node_modules', 'zeropeer', file)), file).to.equal(true);
  });
});
