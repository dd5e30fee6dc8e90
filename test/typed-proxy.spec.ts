import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** tsc's diagnostics, one line each (`file(line,col): error TS...`), without their indented continuations. */
function diagnostics(output: string): string[] {
  return output.split('\n').filter((line) => line.trim() !== '' && !/^\s/.test(line));
}

/**
 * One tsc run (incremental: build info in dist/) over the files of test/types/tsconfig.json, with
 * its options, plus a file holding a wrong call: its error shows the check can fail, and no
 * other file may have any.
 */
function typeCheck(): { status: number | null; output: string } {
  const dir = join(root, 'dist', 'typed-proxy-check');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'wrong-call.check.ts'),
    `import { Client } from '../../lib/index.js';\n` +
      `interface Api { add(a: number, b: number): number }\n` +
      `export const p = new Client<Api>('s').call.add('1', 2);\n`,
  );
  const checked = (JSON.parse(readFileSync(join(root, 'test/types/tsconfig.json'), 'utf8')) as { include: string[] }).include;
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    extends: '../../test/types/tsconfig.json',
    compilerOptions: { tsBuildInfoFile: '../.typed-proxy-check.tsbuildinfo' },
    include: [...checked.map((file) => `../../test/types/${file}`), 'wrong-call.check.ts'],
  }));
  const result = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: root, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('typed proxies', function () {
  this.timeout(60_000);
  let checked: { status: number | null; output: string };

  before(() => {
    checked = typeCheck();
  });

  it('accept the calls an interface allows and reject the others at compile time', () => {
    // test/types/*.check.ts: every @ts-expect-error marks a real error (an unused one is an error itself).
    expect(diagnostics(checked.output).filter((line) => !line.includes('wrong-call.check.ts'))).to.deep.equal([]);
  });

  it('a wrong call without @ts-expect-error fails the build (the check above can fail)', () => {
    expect(checked.status).to.not.equal(0);
    expect(diagnostics(checked.output)).to.have.length.greaterThan(0);
    expect(diagnostics(checked.output).every((line) => /wrong-call\.check\.ts\(3,\d+\): error TS2345/.test(line)), checked.output).to.equal(true);
  });
});
