import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The benchmark's smoke run: `node dist/bench/run.js --quick --json` exits 0 and reports every
 * system (aiozmq measured or skipped with a note) and every scenario. The numbers are not checked.
 */
describe('benchmark (npm run bench -- --quick --json)', function () {
  this.timeout(120_000);
  this.slow(60_000);

  const runScript = fileURLToPath(new URL('../bench/run.js', import.meta.url));
  const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
  let child: ChildProcess | undefined;

  after(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  it('runs every system and scenario on loopback and exits 0', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      child = spawn(process.execPath, [runScript, '--quick', '--json'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.on('error', reject);
      child.on('close', (exitCode) => resolve({ code: exitCode, stdout: out, stderr: err }));
    });
    expect(code, `exit code; stderr:\n${stderr.slice(-3000)}`).to.equal(0);

    const report = JSON.parse(stdout) as {
      mode: string;
      systems: { key: string; label: string; status: string; note?: string }[];
      scenarios: { key: string }[];
      results: Record<string, { rounds: Record<string, unknown[]> }>;
      'million-calls': { calls: number } | null;
      'idle-clients': { clients: number; connected: number; push: { answered: number } } | null;
      targets: { name: string; met: boolean | null }[];
    };
    expect(report.mode).to.equal('quick');

    const systems = new Map(report.systems.map((s) => [s.key, s]));
    for (const key of ['raw', 'zeropeer', 'zeropeer-s2c', 'zeropeer-curve', 'grpc']) {
      expect(systems.get(key)?.status, `${key}: ${systems.get(key)?.note ?? ''}`).to.equal('ok');
    }
    const aiozmq = systems.get('aiozmq');
    expect(aiozmq, 'aiozmq is reported').to.exist;
    if (aiozmq!.status === 'skipped') expect(aiozmq!.note).to.match(/aiozmq/);
    else expect(aiozmq!.status).to.equal('ok');

    const scenarioKeys = report.scenarios.map((s) => s.key);
    expect(scenarioKeys).to.include.members(['sequential', 'in-flight-64', 'payload-64KiB', 'idle-clients', 'million-calls']);
    for (const [key, system] of systems) {
      if (system.status !== 'ok') continue;
      for (const scenario of ['sequential', 'in-flight-64', 'payload-64KiB']) {
        expect(report.results[key]?.rounds[scenario], `${key} ${scenario}`).to.have.length.greaterThan(0);
      }
    }
    expect(report['million-calls']?.calls).to.be.greaterThan(0);
    expect(report['idle-clients']?.connected).to.equal(report['idle-clients']?.clients);
    expect(report['idle-clients']?.push.answered).to.equal(report['idle-clients']?.clients);
    expect(report.targets).to.have.length(7);

    // The human-readable table (on stderr with --json) names every system, and aiozmq's fate.
    for (const system of report.systems) expect(stderr).to.contain(system.label);
    expect(stderr).to.match(/64 in flight calls\/s/);
    expect(stderr).to.match(/idle clients: server < 5% of one core/);
    expect(stderr).to.match(/RSS growth/);
  });
});
