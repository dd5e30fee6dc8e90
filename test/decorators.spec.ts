import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { Client, rpcMethod } from '../lib/index.js';
import { cleanup, rejection, startServer, track } from './helpers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** A service class written for `experimentalDecorators`, as a NestJS project would. */
const LEGACY_SOURCE = `
import { rpcMethod } from ${JSON.stringify(pathToFileURL(join(root, 'dist/lib/index.js')).href)};
export class Calculator {
  factor = 2;
  @rpcMethod scale(x: number) { return x * this.factor; }
  @rpcMethod async add(a: number, b: number) { return a + b; }
  reset() { return 'not exposed'; }
}
`;

describe('rpcMethod under experimentalDecorators', function () {
  this.timeout(60_000);
  afterEach(cleanup);

  it('type-checks as a legacy decorator (tsconfig with experimentalDecorators)', () => {
    const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'test/types/tsconfig.legacy-decorators.json')], { cwd: root, encoding: 'utf8' });
    expect(`${result.stdout}${result.stderr}`).to.equal('');
    expect(result.status).to.equal(0);
  });

  it('exposes the methods TypeScript decorated the legacy way, bound to the instance', async () => {
    const { outputText } = ts.transpileModule(LEGACY_SOURCE, {
      compilerOptions: { experimentalDecorators: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
    });
    expect(outputText, 'compiled with the legacy helper').to.contain('__decorate');
    const dir = mkdtempSync(join(tmpdir(), 'zeropeer-decorators-'));
    try {
      const file = join(dir, 'calculator.mjs');
      writeFileSync(file, outputText);
      const { Calculator } = (await import(pathToFileURL(file).href)) as { Calculator: new () => { factor: number } };
      const server = await startServer();
      const calc = new Calculator();
      expect(server.registerService('calc', calc).sort()).to.deep.equal(['calc.add', 'calc.scale']);
      const client = track(new Client('service'));
      client.connect(server.endpoint);
      await client.start();
      calc.factor = 5;
      expect(await client.call.calc.scale(3)).to.equal(15);
      expect(await client.call.calc.add(1, 2)).to.equal(3);
      expect((await rejection(client.call.calc.reset())).name).to.equal('ServiceNotFoundError');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a legacy decoration of something that is not a method', () => {
    expect(() => rpcMethod({}, 'field', { value: 42 })).to.throw(TypeError, /"field" is not one/);
    expect(() => rpcMethod(42 as never)).to.throw(TypeError, /marks a function/);
  });

});
