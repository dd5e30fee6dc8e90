import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

function typeCheck(project: string): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [tsc, '-p', project], { cwd: root, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('typed proxies', function () {
  this.timeout(60_000);

  it('accept the calls an interface allows and reject the others at compile time', () => {
    const { status, output } = typeCheck(join(root, 'test/types/tsconfig.json'));
    expect(output).to.equal('');
    expect(status).to.equal(0);
  });

  it('a wrong call without @ts-expect-error fails the build (the check above can fail)', () => {
    const name = `wrong-${process.pid}-${Date.now()}`;
    const source = join(root, 'test/types', `${name}.check.ts`);
    const project = join(root, 'test/types', `tsconfig.${name}.json`);
    try {
      writeFileSync(
        source,
        `import { Client } from '../../lib/index.js';\n` +
          `interface Api { add(a: number, b: number): number }\n` +
          `export const p = new Client<Api>('s').call.add('1', 2);\n`,
      );
      writeFileSync(project, JSON.stringify({ extends: './tsconfig.json', include: [`${name}.check.ts`] }));
      const { status, output } = typeCheck(project);
      expect(status).to.not.equal(0);
      expect(output).to.match(/wrong-.*\.check\.ts.*TS2345/);
    } finally {
      rmSync(source, { force: true });
      rmSync(project, { force: true });
    }
  });
});
