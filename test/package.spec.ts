import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * What npm would publish: the file list of `npm pack --dry-run` of this checkout (dist/ was built
 * by pretest) and the manifest it ships. The package at work, as a user gets it, is CI's
 * scripts/check-package.sh (not run by `npm test`: it packs a clean clone, whose `prepare` builds
 * dist/, and installs the tarball with npm): there a fresh project imports it (ESM) and requires
 * it (CommonJS, through require(esm)), making a real call each way, and runs its `zeropeer` command.
 */
describe('the npm package', function () {
  this.timeout(60_000);
  let files: string[];
  let manifest: { main: string; types: string; dependencies: Record<string, string>; engines: { node: string }; bin?: Record<string, string> };

  before(async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], { cwd: ROOT });
    const [packed] = JSON.parse(stdout) as [{ files: { path: string }[] }];
    files = packed.files.map((file) => file.path);
    manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as typeof manifest;
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

  it('claims the Node.js versions where require(esm) works without a flag', () => {
    expect(manifest.engines.node).to.equal('>=20.19');
  });

  it('every file the package names (main, types, bin) is in it', () => {
    const named = [manifest.main, manifest.types, ...Object.values(manifest.bin ?? {})].map((file) => file.replace(/^\.\//, ''));
    expect(named).to.include('dist/lib/cli/main.js');
    for (const file of named) expect(files, file).to.include(file);
  });
});
