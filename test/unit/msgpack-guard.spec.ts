/**
 * checkMessagePack, alone: every MessagePack format and what msgpackr writes pass; bodies that would
 * make msgpackr allocate for elements that are not there, nest too deep, or end early are refused,
 * with a reason; no input makes it throw.
 */
import { expect } from 'chai';
import { Packr, Unpackr, unpack } from 'msgpackr';
import {
  checkMessagePack,
  DEFAULT_MSGPACK_LIMITS,
  MSGPACKR_WRAPPING_EXTENSIONS,
} from '../../lib/wire/msgpack-guard.js';

const rich = new Packr({ useRecords: true, moreTypes: true });
const plain = new Packr({ useRecords: false, moreTypes: true });
const richReader = new Unpackr({ moreTypes: true, mapsAsObjects: false });
const plainReader = new Unpackr({ moreTypes: true, mapsAsObjects: true });

/** Bytes from hex, spaces allowed. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

/** `count` times `unit`, then `tail`. */
function repeat(unit: string, count: number, tail = ''): Buffer {
  return hex(unit.repeat(count) + tail);
}

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A value using most of what msgpackr writes: records (defined, then reused), Map, Set, Date, BigInt, undefined, bin. */
function richValue(): unknown {
  return {
    name: 'string.lower',
    args: ['ABC', 1, -1, 300, -300, 70_000, -70_000, 2 ** 40, -(2 ** 40), 1.5, true, false, null],
    nested: { a: { b: { c: [1, 2, { d: 'deep' }] } } },
    people: [{ first: 'Ada', last: 'Lovelace' }, { first: 'Alan', last: 'Turing' }],
    map: new Map<unknown, unknown>([[1, 'one'], ['two', { n: 2 }]]),
    set: new Set([1, 'two', 3]),
    date: new Date(1_700_000_000_123),
    big: 123n,
    huge: 2n ** 100n,
    none: undefined,
    bytes: Buffer.from([1, 2, 3]),
    text: 'é'.repeat(100),
    empty: [[], {}, '', new Map(), new Set()],
  };
}

describe('checkMessagePack', () => {
  describe('accepts', () => {
    it('every scalar format', () => {
      const scalars = [
        '00', '7f', // positive fixint
        'e0', 'ff', // negative fixint
        'c0', 'c2', 'c3', // nil, false, true
        'c4 02 aabb', 'c5 0002 aabb', 'c6 00000002 aabb', // bin8/16/32
        'c7 02 05 aabb', 'c8 0002 05 aabb', 'c9 00000002 05 aabb', // ext8/16/32 of type 5
        'ca 3fc00000', 'cb 3ff8000000000000', // float32, float64
        'cc ff', 'cd ffff', 'ce ffffffff', 'cf ffffffffffffffff', // uint8..64
        'd0 80', 'd1 8000', 'd2 80000000', 'd3 8000000000000000', // int8..64
        'd4 05 aa', 'd5 05 aabb', 'd6 05 aabbccdd', 'd7 05' + 'aa'.repeat(8), 'd8 05' + 'aa'.repeat(16), // fixext1..16
        'a3 616263', 'd9 03 616263', 'da 0003 616263', 'db 00000003 616263', // fixstr, str8/16/32
        'd4 00 00', // msgpackr's undefined
        'd6 ff 6553f100', // timestamp 32
      ];
      for (const scalar of scalars) {
        expect(checkMessagePack(hex(scalar)), scalar).to.equal(undefined);
      }
    });

    it('scalars as msgpackr writes them', () => {
      const values = [0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32, -1, -32, -33, -128, -129, -32_768, -32_769,
        -(2 ** 31), -(2 ** 31) - 1, 1.5, -0.25, Number.MAX_VALUE, NaN, 'x', 'x'.repeat(31), 'x'.repeat(32),
        'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(65_536), 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n,
        true, false, null, undefined, new Date(0), new Date(1_700_000_000_123), new Date(-1), Buffer.alloc(0),
        Buffer.alloc(300), Buffer.alloc(70_000)];
      for (const value of values) {
        expect(checkMessagePack(plain.pack(value)), String(value).slice(0, 20)).to.equal(undefined);
        expect(checkMessagePack(rich.pack(value)), String(value).slice(0, 20)).to.equal(undefined);
      }
    });

    it('nested arrays and maps', () => {
      expect(checkMessagePack(hex('93 01 92 02 81 a1 61 91 03 80'))).to.equal(undefined); // [1, [2, {a: [3]}], {}]
      expect(checkMessagePack(hex('dc 0002 de 0001 01 dd 00000001 c0 df 00000001 c0 90'))).to.equal(undefined);
      expect(checkMessagePack(plain.pack({ a: [1, { b: [2, 3, { c: new Map([[[1], { d: 4 }]]) }] }] }))).to.equal(undefined);
    });

    it('empty containers, strings and bins', () => {
      for (const empty of ['90', '80', 'dc 0000', 'dd 00000000', 'de 0000', 'df 00000000', 'a0', 'c4 00', 'd9 00', 'c7 00 05', '9a 90 80 90 80 90 80 90 80 90 80']) {
        expect(checkMessagePack(hex(empty)), empty).to.equal(undefined);
      }
    });

    it('big valid values', () => {
      const numbers = Array.from({ length: 100_000 }, (_, i) => i * 7919);
      expect(checkMessagePack(plain.pack(numbers))).to.equal(undefined);
      const wide = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`key${i}`, [i, String(i)]]));
      expect(checkMessagePack(plain.pack(wide))).to.equal(undefined);
      expect(checkMessagePack(rich.pack(wide))).to.equal(undefined);
      const rows = Array.from({ length: 10_000 }, (_, i) => ({ id: i, name: `row ${i}`, tags: [i % 3, i % 5] }));
      expect(checkMessagePack(rich.pack(rows))).to.equal(undefined);
    });

    it('nesting of exactly maxDepth', () => {
      expect(checkMessagePack(repeat('91', 64, 'c0'))).to.equal(undefined);
      expect(checkMessagePack(repeat('91', 63, '90'))).to.equal(undefined);
    });

    it('what msgpackr writes with useRecords: true (records, Map, Set, Date, BigInt, undefined, Buffer)', () => {
      const values: unknown[] = [
        { a: 1 },
        { x: { y: { z: 1 } } },
        [{ a: 1 }, { a: 2 }, { a: 3, b: 4 }, { a: 5 }], // a record defined, then referenced
        new Map<unknown, unknown>([[1, 'a'], [{ k: 1 }, { v: 2 }]]),
        new Set([1, { s: 2 }, new Set([3])]),
        new Date(1_700_000_000_123),
        123n,
        2n ** 100n,
        undefined,
        Buffer.from([1, 2, 3]),
        new Error('boom'),
        /a+b/gi,
        new Float32Array([1, 2]),
        // More shapes than one-byte record ids (64), so msgpackr reuses ids within the message.
        Array.from({ length: 150 }, (_, i) => ({ [`field${i}`]: i, shared: { depth: i } })),
        richValue(),
      ];
      for (const value of values) {
        const bytes = rich.pack(value);
        expect(checkMessagePack(bytes), bytes.toString('hex').slice(0, 40)).to.equal(undefined);
        richReader.unpack(bytes); // and msgpackr reads it back
      }
      // Each message stands alone: the second one defines its records again.
      expect(checkMessagePack(rich.pack(richValue()))).to.equal(undefined);
    });

    it('what msgpackr writes with useRecords: false', () => {
      for (const value of [{ a: 1 }, new Set([1, 2]), new Map([[1, 2]]), new Error('boom'), richValue()]) {
        const bytes = plain.pack(value);
        expect(checkMessagePack(bytes), bytes.toString('hex').slice(0, 40)).to.equal(undefined);
        plainReader.unpack(bytes);
      }
    });

    it('an extension that wraps a value, when its type is given (a translator: fixext 1, type, 0, value)', () => {
      const translated = hex('d4 2a 00 92 01 02'); // type 42 carrying [1, 2]
      expect(checkMessagePack(translated)).to.match(/^3 trailing bytes after the value, at byte 3$/);
      expect(checkMessagePack(translated, DEFAULT_MSGPACK_LIMITS, [...MSGPACKR_WRAPPING_EXTENSIONS, 42])).to.equal(undefined);
    });

    it('a 1 MiB bin', () => {
      const bytes = plain.pack(Buffer.alloc(1024 * 1024, 7));
      expect(bytes[0]).to.equal(0xc6);
      expect(checkMessagePack(bytes)).to.equal(undefined);
    });
  });

  describe('refuses', () => {
    it('the 179-byte nested array32 bomb, and returns', () => {
      const bomb = repeat('dd ffffffff', 35, 'c0c0c0c0');
      expect(bomb).to.have.length(179);
      expect(checkMessagePack(bomb)).to.match(/^array32 at byte 0 declares 4294967295 elements, only 174 bytes left$/);
    });

    it('what actually exhausts the heap of msgpackr 1.12 on Node 20: 1,000 nested array32 of 1,000,000', () => {
      // V8 makes new Array(0xffffffff) sparse, so the bomb above is cheap for msgpackr; a length of 1e6
      // is preallocated (8 MB a level), and 1,000 levels in 5,000 bytes took a test process to 4 GB and an abort.
      const bomb = repeat('dd 000f4240', 1000);
      expect(checkMessagePack(bomb)).to.match(/^array32 at byte 0 declares 1000000 elements, only 4995 bytes left$/);
    });

    it('a container or a str/bin/ext declaring more than the bytes left', () => {
      const cases: Array<[string, RegExp]> = [
        ['dd 00000003 01 02', /^array32 at byte 0 declares 3 elements, only 2 bytes left$/],
        ['dc 0003 01 02', /^array16 at byte 0 declares 3 elements, only 2 bytes left$/],
        ['93 01 02', /^fixarray at byte 0 declares 3 elements, only 2 bytes left$/],
        ['df 00000002 01 02 03', /^map32 at byte 0 declares 4 elements, only 3 bytes left$/],
        ['de 0002 01 02 03', /^map16 at byte 0 declares 4 elements, only 3 bytes left$/],
        ['df ffffffff', /^map32 at byte 0 declares 8589934590 elements, only 0 bytes left$/],
        ['db 00000004 616263', /^str32 at byte 0 declares 4 bytes, past the end of 8$/],
        ['db ffffffff 61', /^str32 at byte 0 declares 4294967295 bytes/],
        ['c6 ffffffff 61', /^bin32 at byte 0 declares 4294967295 bytes/],
        ['c9 ffffffff 05 61', /^ext32 at byte 0 declares 4294967295 bytes/],
        ['c4 02 61', /^bin8 at byte 0 declares 2 bytes/],
        ['a2 61', /^fixstr at byte 0 declares 2 bytes/],
        ['91 dd 00000002 c0', /^array32 at byte 1 declares 2 elements, only 1 bytes left$/],
        ['d4 72 40 dd ffffffff', /^record definition at byte 0 declares 8589934590 elements, only 0 bytes left$/],
        ['d4 72 40 93 a1 61 a1 62', /^record definition at byte 0 declares 6 elements, only 4 bytes left$/],
        ['d4 73 00', /^fixext1 at byte 0 declares 1 elements, only 0 bytes left$/], // a Set without its array
        ['c7 05 73 00', /^ext8 at byte 0 declares 5 bytes, past the end of 4$/],
      ];
      for (const [bytes, reason] of cases) {
        expect(checkMessagePack(hex(bytes)), bytes).to.match(reason);
      }
    });

    it('nesting deeper than maxDepth', () => {
      expect(checkMessagePack(repeat('91', 65, 'c0'))).to.match(/^nested deeper than 64 at byte 64$/);
      expect(checkMessagePack(repeat('91', 64, '90'))).to.match(/^nested deeper than 64 at byte 64$/);
      expect(checkMessagePack(repeat('91', 3, 'c0'), { maxDepth: 2, maxElements: 100 })).to.match(/^nested deeper than 2/);
      // Records nest too: 65 objects deep in the rich dialect.
      let deep: unknown = 1;
      for (let i = 0; i < 64; i++) deep = { d: deep };
      expect(checkMessagePack(rich.pack(deep))).to.equal(undefined);
      expect(checkMessagePack(rich.pack({ d: deep }))).to.match(/^nested deeper than 64/);
    });

    it('more than maxElements elements', () => {
      const limits = { maxDepth: 64, maxElements: 10 };
      expect(checkMessagePack(plain.pack(Array(10).fill(0)), limits)).to.equal(undefined);
      expect(checkMessagePack(plain.pack(Array(11).fill(0)), limits)).to.match(/^more than 10 elements$/);
      expect(checkMessagePack(plain.pack([[1, 2, 3], [4, 5, 6], [7, 8]]), limits)).to.match(/^more than 10 elements$/);
      expect(checkMessagePack(plain.pack({ a: 1, b: 2, c: 3, d: 4, e: 5 }), limits)).to.equal(undefined);
      expect(checkMessagePack(plain.pack({ a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 }), limits)).to.match(/^more than 10 elements$/);
    });

    it('the reserved byte 0xc1', () => {
      expect(checkMessagePack(hex('c1'))).to.match(/^reserved byte 0xc1 at byte 0$/);
      expect(checkMessagePack(hex('92 01 c1'))).to.match(/^reserved byte 0xc1 at byte 2$/);
    });

    it('every prefix of a valid value, without throwing', () => {
      for (const bytes of [rich.pack(richValue()), plain.pack(richValue())]) {
        expect(checkMessagePack(bytes)).to.equal(undefined);
        for (let length = 0; length < bytes.length; length++) {
          const prefix = bytes.subarray(0, length);
          let reason: string | undefined;
          expect(() => { reason = checkMessagePack(prefix); }, `prefix of ${length}`).not.to.throw();
          expect(reason, `prefix of ${length}`).to.match(length === 0 ? /^empty input$/ : /truncated|declares|past the end/);
        }
      }
    });

    it('trailing bytes', () => {
      expect(checkMessagePack(hex('01 02 03'))).to.match(/^2 trailing bytes after the value, at byte 1$/);
      expect(checkMessagePack(Buffer.concat([rich.pack(richValue()), hex('c0')]))).to.match(/^1 trailing bytes/);
    });

    it('only the bytes of the view it is given, not the rest of its ArrayBuffer', () => {
      const body = rich.pack(richValue());
      const backing = Buffer.concat([hex('dd ffffffff'), body, hex('c1 c1')]);
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 5, body.length);
      expect(checkMessagePack(view)).to.equal(undefined);
      expect(checkMessagePack(backing.subarray(5, 5 + body.length - 1))).to.match(/truncated|declares|past the end/);
    });

    it('empty input', () => {
      expect(checkMessagePack(new Uint8Array(0))).to.equal('empty input');
    });

    it('record definitions it cannot follow', () => {
      expect(checkMessagePack(hex('d5 72 60 01 91 a1 61 01'))).to.match(/^two-byte record id at byte 0$/);
      expect(checkMessagePack(hex('d4 72 40 a1 61 01'))).to.match(/^record definition without an array of keys at byte 0$/);
      expect(checkMessagePack(hex('d4 72 40'))).to.match(/^truncated: record definition without keys at byte 0$/);
      // A record of 2 fields referenced with only one value after it.
      expect(checkMessagePack(hex('92 d4 72 40 92 a1 61 a1 62 01 02 40 03'))).to.match(/^record at byte 11 declares 2 elements, only 1 bytes left$/);
      expect(checkMessagePack(hex('92 d4 72 40 92 a1 61 a1 62 01 02 40 03 04'))).to.equal(undefined);
    });
  });

  describe('never throws', () => {
    it('on 20,000 random buffers, and what it accepts msgpackr reads without allocating for absent elements', () => {
      const random = prng(0x5eed);
      let accepted = 0;
      for (let i = 0; i < 20_000; i++) {
        const bytes = new Uint8Array(Math.floor(random() * 65));
        for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256);
        let reason: string | undefined;
        expect(() => { reason = checkMessagePack(bytes); }, Buffer.from(bytes).toString('hex')).not.to.throw();
        if (reason === undefined) {
          accepted++;
          expectDecodes(bytes);
        } else {
          expect(reason).to.be.a('string').and.not.equal('');
        }
      }
      expect(accepted, 'some random buffers are valid MessagePack').to.be.greaterThan(100);
    });

    it('on 20,000 mutations of valid bodies', () => {
      const random = prng(0xb0d1e5);
      const seeds = [rich.pack(richValue()), plain.pack(richValue()), rich.pack([{ a: 1 }, { a: 2 }, new Set([{ b: 3 }])])];
      for (let i = 0; i < 20_000; i++) {
        const bytes = Uint8Array.from(seeds[i % seeds.length]!);
        for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--) {
          bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
        }
        let reason: string | undefined;
        expect(() => { reason = checkMessagePack(bytes); }, Buffer.from(bytes).toString('hex')).not.to.throw();
        if (reason === undefined) expectDecodes(bytes);
      }
    });
  });
});

/** msgpackr may refuse what the check accepts (an unknown extension, say), but never for want of memory. */
function expectDecodes(bytes: Uint8Array): void {
  for (const read of [(b: Uint8Array) => unpack(b), (b: Uint8Array) => richReader.unpack(b), (b: Uint8Array) => plainReader.unpack(b)]) {
    try {
      read(bytes);
    } catch (error) {
      const message = (error as Error).message;
      const allocation = error instanceof RangeError && /array length|allocation|memory|call stack|too large/i.test(message);
      expect(allocation, `${Buffer.from(bytes).toString('hex')}: ${message}`).to.equal(false);
    }
  }
}

describe('checkMessagePack over a part of a buffer (a packet of a batch, read where it lies)', () => {
  const framed = (body: Buffer): { bytes: Buffer; first: number; end: number } => {
    // Garbage on both sides: only [first, end) may be read.
    const bytes = Buffer.concat([hex('c1 c1 dc ff ff'), body, hex('c1 dd ff')]);
    return { bytes, first: 5, end: 5 + body.length };
  };

  it('judges the part alone, with the same reason (bytes counted from its start) as on a copy of it', () => {
    const bodies = [
      rich.pack(['a', [1, 2, { b: new Map([[1, 'c']]) }], null, 60_000]),
      hex('92 01'), // an array of two with one value: truncated
      hex('93 01 02 03 04'), // a trailing byte
      hex('c4 05 01 02'), // a bin running past the end
      hex('c1'),
    ];
    for (const body of bodies) {
      const { bytes, first, end } = framed(body);
      const alone = checkMessagePack(body);
      expect(checkMessagePack(bytes, DEFAULT_MSGPACK_LIMITS, MSGPACKR_WRAPPING_EXTENSIONS, first, end), body.toString('hex')).to.equal(alone);
    }
    expect(checkMessagePack(hex('93 01 02 03 04'))).to.match(/at byte 4$/);
  });

  it('an empty part is empty input, whatever is around it', () => {
    expect(checkMessagePack(hex('01 02 03'), DEFAULT_MSGPACK_LIMITS, MSGPACKR_WRAPPING_EXTENSIONS, 1, 1)).to.equal('empty input');
  });
});
