/**
 * Summarizes a V8 CPU profile (`node --cpu-prof`, or `bench/run.js --profile DIR`): the functions
 * with the most self time, and self time per file.
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [--top N] [--calls N]
 *
 * Lines are those of the JavaScript that ran (dist/), with `--calls` self time per call too.
 * Native work called from JavaScript (zeromq.js's send and receive) counts as the caller's self time.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
  positionTicks?: { line: number; ticks: number }[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + '/node_modules/'.length);
  const dist = path.lastIndexOf('/dist/');
  if (dist >= 0) return path.slice(dist + '/dist/'.length);
  return path;
}

/**
 * @param calls when given, self time is also shown in µs per call (calls the process made or served).
 */
export function summarizeProfile(profile: Profile, top = 25, calls?: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // Self time per node: from samples and time deltas when present, else hit counts.
  const selfUs = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    for (let i = 0; i < profile.samples.length; i++) {
      const id = profile.samples[i]!;
      const delta = profile.timeDeltas[i + 1] ?? 0; // a sample's time is the gap to the next one
      selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
    }
  } else {
    const interval = (profile.endTime - profile.startTime) / Math.max(1, profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0));
    for (const n of profile.nodes) selfUs.set(n.id, (n.hitCount ?? 0) * interval);
  }
  // Percentages are of busy time: the samples where the thread was idle (waiting in epoll) are left out.
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    if (byId.get(id)?.callFrame.functionName === '(idle)') {
      idleUs += us;
      selfUs.delete(id);
    }
  }
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map<string, number>();
  const lineTicks = new Map<string, Map<number, number>>();
  const byFile = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = shortUrl(url) || '(native / VM)';
    const key = `${functionName || '(anonymous)'}  ${url ? `${file}:${lineNumber + 1}` : ''}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    for (const { line, ticks } of node.positionTicks ?? []) {
      const lines = lineTicks.get(key) ?? new Map<number, number>();
      lines.set(line, (lines.get(line) ?? 0) + ticks);
      lineTicks.set(key, lines);
    }
    byFile.set(file, (byFile.get(file) ?? 0) + us);
  }
  const pct = (us: number): string =>
    `${((us / total) * 100).toFixed(1).padStart(5)}%${calls ? `  ${(us / calls).toFixed(2).padStart(6)} µs/call` : ''}`;
  /** The hottest lines of a function, from the profile's line ticks: `line 64 (97%)`. */
  const hotLines = (key: string): string => {
    const lines = lineTicks.get(key);
    if (!lines) return '';
    const sum = [...lines.values()].reduce((a, b) => a + b, 0);
    const best = [...lines].sort((a, b) => b[1] - a[1]).slice(0, 2).filter(([, t]) => t / sum >= 0.1);
    return best.length ? `   [hot: ${best.map(([line, t]) => `line ${line} ${Math.round((t / sum) * 100)}%`).join(', ')}]` : '';
  };
  const lines: string[] = [];
  lines.push(`profile: ${(total / 1e6).toFixed(2)} s busy, ${(idleUs / 1e6).toFixed(2)} s idle; percentages are of busy time`);
  lines.push('');
  lines.push(`top ${top} functions by self time`);
  for (const [key, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(us)}  ${key}${hotLines(key)}`);
  lines.push('');
  lines.push('self time by file');
  for (const [file, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(us)}  ${file}`);
  return lines.join('\n');
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) || 25 : 25;
  const callsAt = args.indexOf('--calls');
  const calls = callsAt >= 0 ? Number(args.splice(callsAt, 2)[1]) || undefined : undefined;
  if (args.length === 0) {
    console.error('usage: node dist/bench/profile-summary.js FILE.cpuprofile [--top N] [--calls N]');
    process.exit(2);
  }
  for (const file of args) {
    console.log(`== ${file}`);
    console.log(summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as Profile, top, calls));
    console.log('');
  }
}
