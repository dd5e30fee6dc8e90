/**
 * MsgpackCodec alone: the two dialects, translators that belong to one codec, the structural guard
 * on decode, and what cannot be encoded.
 */
import { expect } from 'chai';
import { unpack as genericUnpack } from 'msgpackr';
import { EncodingError, MsgpackCodec, ProtocolError, type Translator } from '../../lib/index.js';

class Point {
  constructor(readonly x: number, readonly y: number) {}
}
class Colour {
  constructor(readonly name: string) {}
}
class Point3 extends Point {
  constructor(x: number, y: number, readonly z: number) {
    super(x, y);
  }
}

/** Type 17 means Point to one codec and Colour to another. */
const TYPE = 17;
const pointTranslator: Translator<Point, [number, number]> = { Class: Point, type: TYPE, pack: (p) => [p.x, p.y], unpack: ([x, y]) => new Point(x, y) };
const colourTranslator: Translator<Colour, string> = { Class: Colour, type: TYPE, pack: (c) => c.name, unpack: (name) => new Colour(name) };

function thrownBy(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  expect.fail('expected a throw');
}

describe('MsgpackCodec', () => {
  describe('dialects', () => {
    it('rich keeps a Map a Map and an object an object', () => {
      const codec = new MsgpackCodec();
      const value = { map: new Map<unknown, unknown>([[1, 'one'], ['k', { n: 2 }]]), object: { a: 1 }, set: new Set([1, 2]) };
      const back = codec.decode(codec.encode(value, 'rich'), 'rich') as typeof value;
      expect(back.map).to.be.instanceOf(Map);
      expect([...back.map]).to.deep.equal([[1, 'one'], ['k', { n: 2 }]]);
      expect(back.object).to.deep.equal({ a: 1 });
      expect(back.object).to.not.be.instanceOf(Map);
      expect(back.set).to.be.instanceOf(Set);
    });

    it('plain writes objects as MessagePack maps (no msgpackr records) that any library reads', () => {
      const codec = new MsgpackCodec();
      const bytes = codec.encode({ a: 1, b: [true, null] }, 'plain');
      const head = bytes[0]!;
      expect((head >= 0x80 && head <= 0x8f) || head === 0xde || head === 0xdf, `a MessagePack map, not a record (0x${head.toString(16)})`).to.equal(true);
      expect(genericUnpack(bytes)).to.deep.equal({ a: 1, b: [true, null] });
      expect(codec.decode(bytes, 'plain')).to.deep.equal({ a: 1, b: [true, null] });
    });

    it('rich writes repeated object shapes as records: smaller than plain', () => {
      const codec = new MsgpackCodec();
      const rows = Array.from({ length: 50 }, (_, i) => ({ identifier: i, description: 'x', available: true }));
      const rich = codec.encode(rows, 'rich');
      const plain = codec.encode(rows, 'plain');
      expect(rich.length).to.be.below(plain.length);
      expect(codec.decode(rich, 'rich')).to.deep.equal(rows);
      expect(codec.decode(plain, 'plain')).to.deep.equal(rows);
    });

    it('plain reads maps as plain objects (pseud sends dicts)', () => {
      const codec = new MsgpackCodec();
      const back = codec.decode(codec.encode(new Map([['k', 1]]), 'plain'), 'plain');
      expect(back).to.deep.equal({ k: 1 });
      expect(back).to.not.be.instanceOf(Map);
    });

    it('BigInt, Date and Buffer survive both dialects (a BigInt beyond 64 bits only in rich)', () => {
      const codec = new MsgpackCodec({ translators: [pointTranslator] });
      const value = [2n ** 63n + 5n, new Date(1_700_000_000_000), Buffer.from([1, 2, 3])];
      for (const dialect of ['rich', 'plain'] as const) {
        const [big, date, bytes] = codec.decode(codec.encode(value, dialect), dialect) as [bigint, Date, Buffer];
        expect(big, dialect).to.equal(2n ** 63n + 5n);
        expect(date.getTime(), dialect).to.equal(1_700_000_000_000);
        expect([...bytes], dialect).to.deep.equal([1, 2, 3]);
      }
      expect(codec.decode(codec.encode([2n ** 70n], 'rich'), 'rich')).to.deep.equal([2n ** 70n]);
    });
  });

  describe('plain (pseud v1) is standard MessagePack, byte for byte', () => {
    const codec = new MsgpackCodec();
    const hex = (value: unknown): string => codec.encode(value, 'plain').toString('hex');

    it('a Set is an array, undefined is nil, a Uint8Array is bin', () => {
      expect(hex(new Set([1, 2]))).to.equal('920102');
      expect(hex(undefined)).to.equal('c0');
      expect(hex([undefined, null])).to.equal('92c0c0');
      expect(hex(new Uint8Array([1, 2]))).to.equal('c4020102');
      expect(hex(Buffer.from([7]))).to.equal('c40107');
    });

    it('integers beyond 32 bits are int64 / uint64, not floats; fractions stay float64', () => {
      expect(hex(2 ** 33)).to.equal('d30000000200000000');
      expect(hex(-(2 ** 33))).to.equal('d3fffffffe00000000');
      expect(hex(Number.MAX_SAFE_INTEGER)).to.equal('d3001fffffffffffff');
      expect(hex(2 ** 32 - 1)).to.equal('ceffffffff');
      expect(hex(1.5)).to.equal('cb3ff8000000000000');
      // Nested, in arrays, maps and objects, without touching the caller's values.
      const nested = { a: [2 ** 40], m: new Map([['k', 2 ** 40]]), s: 'x' };
      expect(genericUnpack(codec.encode(nested, 'plain'), { int64AsType: 'bigint' } as never)).to.deep.equal({ a: [2n ** 40n], m: { k: 2n ** 40n }, s: 'x' });
      expect(nested.a[0]).to.equal(2 ** 40);
    });

    it('a BigInt within 64 bits is an integer; beyond, EncodingError before anything is sent', () => {
      expect(hex(5n)).to.equal('d30000000000000005');
      expect(hex(2n ** 64n - 1n)).to.equal('cfffffffffffffffff');
      expect(thrownBy(() => codec.encode([2n ** 64n], 'plain'))).to.be.instanceOf(EncodingError);
      expect(thrownBy(() => codec.encode([-(2n ** 63n) - 1n], 'plain'))).to.be.instanceOf(EncodingError);
    });

    it('a Date is the timestamp extension -1', () => {
      expect(hex(new Date(0))).to.equal('d6ff00000000');
      expect(hex(new Date(1500))).to.match(/^d7ff/); // timestamp 64: nanoseconds and seconds
    });

    it('64-bit integers received decode to number when safe, BigInt otherwise', () => {
      expect(codec.decode(Buffer.from('cf0000000200000000', 'hex'), 'plain')).to.equal(2 ** 33);
      expect(codec.decode(Buffer.from('d3fffffffe00000000', 'hex'), 'plain')).to.equal(-(2 ** 33));
      expect(codec.decode(Buffer.from('cfffffffffffffffff', 'hex'), 'plain')).to.equal(2n ** 64n - 1n);
    });

    it('a cyclic value is an EncodingError', () => {
      const cyclic: unknown[] = [];
      cyclic.push(cyclic);
      expect(thrownBy(() => codec.encode(cyclic, 'plain'))).to.be.instanceOf(EncodingError);
    });
  });

  describe('translators belong to one codec', () => {
    it('an instance comes back as its class, nested and subclassed', () => {
      const codec = new MsgpackCodec({ translators: [pointTranslator] });
      const back = codec.decode(codec.encode({ at: [new Point(1, 2)] }, 'rich'), 'rich') as { at: Point[] };
      expect(back.at[0]).to.be.instanceOf(Point);
      expect(back.at[0]).to.deep.include({ x: 1, y: 2 });
      // A subclass is packed by its parent's translator (and so comes back as the parent).
      const sub = codec.decode(codec.encode(new Point3(1, 2, 3), 'rich'), 'rich');
      expect(sub).to.be.instanceOf(Point);
      expect(sub).to.deep.include({ x: 1, y: 2 });
    });

    it('two codecs with different translators for the same type code do not see each other\'s', () => {
      const points = new MsgpackCodec({ translators: [pointTranslator] });
      const colours = new MsgpackCodec({ translators: [colourTranslator] });

      const point = points.decode(points.encode(new Point(3, 4), 'rich'), 'rich');
      const colour = colours.decode(colours.encode(new Colour('teal'), 'rich'), 'rich');
      expect(point).to.be.instanceOf(Point);
      expect(colour).to.be.instanceOf(Colour);
      expect(colour).to.deep.include({ name: 'teal' });

      // Each codec packs the other's class as a plain object, not with the other's translator.
      const plainPoint = points.decode(colours.encode(new Point(3, 4), 'rich'), 'rich');
      expect(plainPoint).to.not.be.instanceOf(Point);
      expect(plainPoint).to.deep.equal({ x: 3, y: 4 });
      const plainColour = colours.decode(points.encode(new Colour('red'), 'rich'), 'rich');
      expect(plainColour).to.not.be.instanceOf(Colour);
      expect(plainColour).to.deep.equal({ name: 'red' });

      // The same tag means what the decoding codec's translator says: Point bytes read as a Colour there.
      const misread = colours.decode(points.encode(new Point(5, 6), 'rich'), 'rich');
      expect(misread).to.be.instanceOf(Colour);
    });

    it('a codec without a translator for the type refuses it with ProtocolError', () => {
      const points = new MsgpackCodec({ translators: [pointTranslator] });
      const none = new MsgpackCodec();
      const error = thrownBy(() => none.decode(points.encode(new Point(1, 2), 'rich'), 'rich'));
      expect(error).to.be.instanceOf(ProtocolError);
    });

    it('a codec without translators packs an instance as a plain object', () => {
      new MsgpackCodec({ translators: [pointTranslator] }); // Point is known to msgpackr now, process-wide
      const none = new MsgpackCodec();
      expect(none.decode(none.encode(new Point(7, 8), 'rich'), 'rich')).to.deep.equal({ x: 7, y: 8 });
    });

    it('adding the same translator twice is a no-op; another class on a taken type throws', () => {
      const codec = new MsgpackCodec({ translators: [pointTranslator] });
      expect(() => codec.addTranslator(pointTranslator)).to.not.throw();
      const error = thrownBy(() => codec.addTranslator(colourTranslator));
      expect(error).to.be.instanceOf(TypeError);
      expect(error.message).to.contain(`type ${TYPE} is already used by Point`);
    });

    it("type 66 (0x42) is msgpackr's own BigInt: refused, in the constructor and in addTranslator", () => {
      const bigintType = { ...pointTranslator, type: 66 };
      const fromConstructor = thrownBy(() => new MsgpackCodec({ translators: [bigintType] }));
      expect(fromConstructor).to.be.instanceOf(TypeError);
      expect(fromConstructor.message).to.contain("msgpackr's own (BigInt)");
      expect(() => new MsgpackCodec().addTranslator(bigintType)).to.throw(TypeError, /BigInt/);
      // And BigInts still travel as BigInts.
      const codec = new MsgpackCodec({ translators: [pointTranslator] });
      expect(codec.decode(codec.encode(-(2n ** 80n), 'rich'), 'rich')).to.equal(-(2n ** 80n));
    });

    for (const type of [0, 101, 127, -1, 1.5, Number.NaN]) {
      it(`type ${type} is out of 1..100: TypeError`, () => {
        expect(() => new MsgpackCodec({ translators: [{ ...pointTranslator, type }] })).to.throw(TypeError, /from 1 to 100/);
      });
    }

    it('a translator without pack or unpack is refused', () => {
      const broken = { Class: Point, type: 20, pack: (p: Point) => p } as unknown as Translator<never, never>;
      expect(() => new MsgpackCodec({ translators: [broken] })).to.throw(TypeError, /Class, pack and unpack/);
    });
  });

  describe('the guard on decode', () => {
    const bombs: Array<[string, number[]]> = [
      ['an array32 declaring 4 billion elements', [0xdd, 0xff, 0xff, 0xff, 0xff]],
      ['a map32 declaring 4 billion entries', [0xdf, 0xff, 0xff, 0xff, 0xff]],
      ['an array16 declaring 65535 elements in 3 bytes', [0xdc, 0xff, 0xff]],
      ['a str32 longer than the body', [0xdb, 0x7f, 0xff, 0xff, 0xff, 0x61]],
      ['a bin32 longer than the body', [0xc6, 0x7f, 0xff, 0xff, 0xff]],
      ['an ext32 longer than the body', [0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01]],
    ];
    for (const [label, bytes] of bombs) {
      for (const dialect of ['rich', 'plain'] as const) {
        it(`${label} (${dialect}) -> ProtocolError before anything is allocated`, () => {
          const error = thrownBy(() => new MsgpackCodec().decode(Buffer.from(bytes), dialect));
          expect(error).to.be.instanceOf(ProtocolError);
          expect(error.message).to.match(/^garbage MessagePack body: /);
        });
      }
    }

    it('nesting deeper than the limits -> ProtocolError; custom limits apply', () => {
      const deep = Buffer.from([...Array(65).fill(0x91), 0x00]);
      expect(() => new MsgpackCodec().decode(deep, 'rich')).to.throw(ProtocolError, /nested deeper than 64/);
      const shallow = new MsgpackCodec({ limits: { maxDepth: 3, maxElements: 100 } });
      expect(shallow.decode(Buffer.from([0x91, 0x91, 0x91, 0x00]), 'rich')).to.deep.equal([[[0]]]);
      expect(() => shallow.decode(Buffer.from([0x91, 0x91, 0x91, 0x91, 0x00]), 'rich')).to.throw(ProtocolError, /nested deeper than 3/);
      const few = new MsgpackCodec({ limits: { maxDepth: 64, maxElements: 3 } });
      expect(() => few.decode(Buffer.from([0x94, 1, 2, 3, 4]), 'plain')).to.throw(ProtocolError, /more than 3 elements/);
    });

    it('trailing bytes, an empty body and the reserved byte are refused', () => {
      const codec = new MsgpackCodec();
      expect(() => codec.decode(Buffer.from([0x01, 0x02]), 'rich')).to.throw(ProtocolError, /trailing/);
      expect(() => codec.decode(Buffer.alloc(0), 'rich')).to.throw(ProtocolError, /empty/);
      expect(() => codec.decode(Buffer.from([0xc1]), 'plain')).to.throw(ProtocolError, /reserved/);
    });
  });

  describe('what cannot be encoded', () => {
    it('a function -> EncodingError, at the top and nested', () => {
      const codec = new MsgpackCodec();
      for (const dialect of ['rich', 'plain'] as const) {
        const top = thrownBy(() => codec.encode(() => 1, dialect));
        expect(top, dialect).to.be.instanceOf(EncodingError);
        expect(top.message).to.equal('a function cannot be sent');
        expect(() => codec.encode({ deep: [{ handler() {} }] }, dialect), dialect).to.throw(EncodingError);
      }
    });

    it('a cyclic value -> EncodingError that says so', () => {
      const cyclic: Record<string, unknown> = { name: 'loop' };
      cyclic['self'] = cyclic;
      const error = thrownBy(() => new MsgpackCodec().encode(cyclic, 'plain'));
      expect(error).to.be.instanceOf(EncodingError);
      expect(error.message).to.contain('cyclic or nested too deeply');
    });

    it('a translator whose pack throws -> EncodingError, and the codec still works afterwards', () => {
      const broken: Translator<Colour, string> = {
        Class: Colour, type: 23, pack: () => {
          throw new Error('cannot pack this colour');
        }, unpack: (name) => new Colour(name),
      };
      const codec = new MsgpackCodec({ translators: [broken] });
      const error = thrownBy(() => codec.encode(new Colour('x'), 'rich'));
      expect(error).to.be.instanceOf(EncodingError);
      expect(error.message).to.contain('cannot pack this colour');
      expect(codec.decode(codec.encode([1, 'two'], 'rich'), 'rich')).to.deep.equal([1, 'two']);
    });
  });
});

describe('MsgpackCodec.decodeRange (a packet of a batch, read in its frame)', () => {
  it('decodes the value in [start, end) as decode() does a copy of it, whatever lies around it', () => {
    const codec = new MsgpackCodec();
    const value = [3, 70_000, ['jobs.run', [1, 'two', { three: [3] }, new Map([['k', 'v']])], null, 60_000]];
    const body = codec.encode(value, 'rich');
    const frame = Buffer.concat([Buffer.from([0xc1, 0xdd, 0xff]), body, Buffer.from([0xc1, 0xdc])]);
    expect(codec.decodeRange(frame, 3, 3 + body.length, 'rich')).to.deep.equal(codec.decode(body, 'rich'));
    // The same frame read again (msgpackr keeps its view of the frame): still the same value.
    expect(codec.decodeRange(frame, 3, 3 + body.length, 'rich')).to.deep.equal(value);
  });

  it('garbage in the range is a ProtocolError naming the byte from the range\'s start; a value cut short too', () => {
    const codec = new MsgpackCodec();
    const frame = Buffer.from([0x01, 0x93, 0x01, 0x02, 0x03, 0x04, 0x05]);
    const trailing = (() => {
      try {
        codec.decodeRange(frame, 1, 6, 'rich');
      } catch (error) {
        return error as Error;
      }
      return undefined;
    })();
    expect(trailing).to.be.instanceOf(ProtocolError);
    expect(trailing!.message).to.match(/trailing bytes after the value, at byte 4$/);
    expect(() => codec.decodeRange(frame, 1, 3, 'rich')).to.throw(ProtocolError, /fixarray at byte 0 declares 3 elements, only 1 bytes left/);
  });
});

describe('MsgpackCodec: msgpackr extensions that jump outside the value', () => {
  // msgpackr reads bundled strings (0x62) and structured-clone references (0x69, 0x70) at positions
  // their payload names: read in a batch frame, a 13-byte packet made it decode the rest of the
  // frame as one string. zeropeer never writes them; they are refused before msgpackr runs.
  const hostile = [
    ['bundled strings hiding a str32 of 4 GiB', 'd6 62 00 00 00 06 c4 05 db ff ff ff ff'],
    ['bundled strings with a negative offset', 'd6 62 ff ff ff b1 c0'],
    ['a structured-clone id', 'd4 69 00 c0'],
    ['a structured-clone pointer', 'd6 70 00 00 00 00'],
  ] as const;
  for (const [what, bytes] of hostile) {
    it(`${what}: ProtocolError, alone and as a packet of a frame`, () => {
      const codec = new MsgpackCodec();
      const body = Buffer.from(bytes.replaceAll(' ', ''), 'hex');
      expect(() => codec.decode(body, 'rich')).to.throw(ProtocolError, /msgpackr extension 0x(62|69|70)/);
      const frame = Buffer.concat([Buffer.from([0xc1, 0, 0, 0, body.length]), body, Buffer.alloc(100_000, 0x61)]);
      expect(() => codec.decodeRange(frame, 5, 5 + body.length, 'rich')).to.throw(ProtocolError, /msgpackr extension 0x(62|69|70)/);
    });
  }

  it('a translator may not take type 98 (msgpackr\'s bundled strings), as it may not take 66', () => {
    class Thing {}
    expect(() => new MsgpackCodec({ translators: [{ Class: Thing, type: 98, pack: () => 1, unpack: () => new Thing() }] })).to.throw(TypeError, /bundled strings/);
  });
});
