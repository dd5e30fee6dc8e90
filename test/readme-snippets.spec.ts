import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/**
 * What README snippets use without declaring: the server and client of the tour, and the
 * application's own functions and data, declared with types so that the calls around them are checked.
 */
const AMBIENT = `
declare const server: Server;
declare const client: Client;
declare const opsClient: Client;
declare const users: Record<string, string>;
declare const predicates: Record<string, Predicate>;
declare const signal: AbortSignal;
declare const traceparent: string;
declare const secret: string;
declare const pem: string;
declare const sample: { at: number; value: number };
declare const staff: Set<string>;
declare const edgeKeys: { publicKey: string; secretKey: string };
declare const coreKeys: { publicKey: string; secretKey: string };
declare const serverKeys: { publicKey: string; secretKey: string };
declare const aliceKeys: { publicKey: string; secretKey: string };
declare const gateway: Server;
declare const upstream: Client;
declare function render(page: number, options: { signal: AbortSignal }): Promise<void>;
declare function readLine(signal: AbortSignal): Promise<string>;
declare function closeFile(): Promise<void>;
declare function readNumbers(): AsyncIterable<number>;
declare const job: unknown;
declare const queue: { full: boolean; push(job: unknown, on: { done(result: unknown): void; failed(error: Error): void }): void };
declare const redis: { hset(key: string, field: string, value: string): Promise<unknown>; hdel(key: string, field: string): Promise<unknown> };
declare function log(...values: unknown[]): void;
declare function runJob(job: unknown): Promise<unknown>;
declare function whoAmI(identity: string): string;
declare function betterAdd(a: number, b: number): number;
declare function deleteUser(name: string): void;
declare function fullReport(): string;
declare function publicReport(): string;
declare function fetchToken(): Promise<string>;
declare function store(at: number, value: number): void;
declare function record(symbol: string, bid: number): void;
declare class InventoryError extends Error {}
declare class Point { constructor(x: number, y: number); readonly x: number; readonly y: number }
`;

/** The names lib/index.ts exports (values and types), for the snippets that use them without importing. */
function exportedNames(): string[] {
  const index = readFileSync(join(root, 'lib/index.ts'), 'utf8');
  const names = new Set<string>();
  for (const [, list] of index.matchAll(/export (?:type )?\{([^}]*)\}/g)) {
    for (const item of list!.split(',')) {
      const name = item.trim().replace(/^type\s+/, '').split(/\s+as\s+/).pop()!.trim();
      if (/^[A-Za-z_$][\w$]*$/.test(name)) names.add(name);
    }
  }
  return [...names];
}

/** Each ```ts block of README.md as a module: its imports on top, its body in an async function. */
function readmeSnippets(readme: string): { name: string; source: string; line: number }[] {
  const exported = exportedNames();
  const snippets: { name: string; source: string; line: number }[] = [];
  for (const match of readme.matchAll(/```ts\n([\s\S]*?)```/g)) {
    const code = match[1]!;
    const line = readme.slice(0, match.index).split('\n').length + 1;
    const lines = code.split('\n');
    const imports = lines.filter((text) => text.startsWith('import '));
    const body = lines.filter((text) => !text.startsWith('import '));
    const imported = new Set(imports.flatMap((text) => [...text.matchAll(/\b([A-Za-z_$][\w$]*)\b/g)].map((m) => m[1]!)));
    const preludeNames = exported.filter((name) => !imported.has(name));
    snippets.push({
      name: `readme-line-${line}`,
      line,
      source: [
        ...imports,
        `import { ${preludeNames.join(', ')} } from 'zeropeer';`,
        AMBIENT,
        `export async function snippet(): Promise<void> {`,
        `// README.md line ${line}`,
        ...body,
        `}`,
      ].join('\n'),
    });
  }
  return snippets;
}

/** tsc's diagnostics, one line each (`file(line,col): error TS...`), without their indented continuations. */
function diagnostics(output: string): string[] {
  return output.split('\n').filter((line) => line.trim() !== '' && !/^\s/.test(line));
}

/** A README whose one snippet does not compile: its error shows the check can fail. */
const WRONG_README = 'Text.\n\n```ts\nimport { Server } from \'zeropeer\';\nconst port: number = new Server(\'s\').id;\n```\n';

/**
 * Writes the snippets of README.md, and those of {@link WRONG_README} (named `wrong-...`), to
 * dist/readme-snippets and type-checks them all in one tsc run (incremental: the build info lives
 * beside the directory).
 */
function typeCheck(): { count: number; wrongCount: number; status: number | null; output: string } {
  const dir = join(root, 'dist', 'readme-snippets');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // Checked against dist/lib/*.d.ts, what a user compiles against.
  const snippets = readmeSnippets(readFileSync(join(root, 'README.md'), 'utf8'));
  const wrong = readmeSnippets(WRONG_README);
  for (const { name, source } of snippets) writeFileSync(join(dir, `${name}.ts`), source);
  for (const { name, source } of wrong) writeFileSync(join(dir, `wrong-${name}.ts`), source);
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    extends: '../../tsconfig.json',
    compilerOptions: {
      noEmit: true, rootDir: '../..', incremental: true, tsBuildInfoFile: '../.readme-snippets.tsbuildinfo',
      noUnusedLocals: false, noUnusedParameters: false, paths: { zeropeer: ['../lib/index.d.ts'] },
    },
    include: ['*.ts'], exclude: [],
  }));
  const result = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: root, encoding: 'utf8' });
  return { count: snippets.length, wrongCount: wrong.length, status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('README', function () {
  this.timeout(60_000);
  let checked: ReturnType<typeof typeCheck>;

  before(() => {
    checked = typeCheck();
  });

  it('every TypeScript snippet type-checks (strict) against the built declarations', () => {
    expect(checked.count).to.be.greaterThan(20);
    expect(diagnostics(checked.output).filter((line) => !/\bwrong-readme-line-\d+\.ts/.test(line))).to.deep.equal([]);
  });

  it('a snippet that does not compile fails the check (the check above can fail)', () => {
    expect(checked.wrongCount).to.equal(1);
    expect(checked.status).to.not.equal(0);
    expect(diagnostics(checked.output)).to.have.length.greaterThan(0);
    expect(diagnostics(checked.output).every((line) => /wrong-readme-line-4\.ts\(\d+,\d+\): error TS2322/.test(line)), checked.output).to.equal(true);
  });
});
