// What checkMessagePack adds to msgpackr's unpack per body: `npm run build && node dist/bench/msgpack-guard.js`.
import { Packr, Unpackr } from 'msgpackr';
import { checkMessagePack } from '../lib/wire/msgpack-guard.js';

const packers = { rich: new Packr({ useRecords: true, moreTypes: true }), plain: new Packr({ useRecords: false, moreTypes: true }) };
const unpackers = {
  rich: new Unpackr({ moreTypes: true, mapsAsObjects: false }),
  plain: new Unpackr({ moreTypes: true, mapsAsObjects: true }),
};

const bodies: Array<[string, unknown]> = [
  ["['string.lower', ['ABC'], {}]", ['string.lower', ['ABC'], {}]],
  ['64 KiB string (the bench payload)', ['echo', ['x'.repeat(64 * 1024)], {}]],
  ['64 KiB bin', ['echo', [Buffer.alloc(64 * 1024, 7)], {}]],
  ['64 KiB of small ints (one token per byte or two)', ['echo', [Array.from({ length: 32 * 1024 }, (_, i) => i % 200)], {}]],
  ['64 KiB of objects', ['echo', [Array.from({ length: 2048 }, (_, i) => ({ id: i, name: `item ${i}`, ok: true }))], {}]],
];

// Keeps results alive, so that no loop is optimised away.
let sink = 0;

/** Nanoseconds per call of `fn`: the best of 15 timed runs of enough calls to last ~20 ms each (best, as the machine may be busy). */
function nsPerOp(fn: () => void): number {
  let n = 1;
  for (let t0 = performance.now(); performance.now() - t0 < 20; n *= 2) for (let i = 0; i < n; i++) fn();
  let best = Infinity;
  for (let run = 0; run < 15; run++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    best = Math.min(best, ((performance.now() - t0) * 1e6) / n);
  }
  return best;
}

// The overhead is check / unpack, each timed alone: the difference of two noisy timings is noisier.
const rows: string[][] = [['dialect', 'body', 'bytes', 'check ns', 'unpack ns', 'check+unpack ns', 'check / unpack']];
for (const dialect of ['rich', 'plain'] as const) {
  for (const [label, value] of bodies) {
    const bytes = packers[dialect].pack(value);
    if (checkMessagePack(bytes) !== undefined) throw new Error(`refused: ${label}`);
    const unpacker = unpackers[dialect];
    const check = nsPerOp(() => { sink += checkMessagePack(bytes) === undefined ? 1 : 0; });
    const unpack = nsPerOp(() => { sink += unpacker.unpack(bytes) ? 1 : 0; });
    const both = nsPerOp(() => { if (checkMessagePack(bytes) === undefined) sink += unpacker.unpack(bytes) ? 1 : 0; });
    rows.push([dialect, label, String(bytes.length), check.toFixed(0), unpack.toFixed(0), both.toFixed(0),
      `${((check / unpack) * 100).toFixed(1)}%`]);
  }
}
const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join('  '));
if (sink === 0) console.log('');
