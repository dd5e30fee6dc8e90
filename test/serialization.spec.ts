/**
 * Values through a real Server + Client pair (compact framing, the `rich` dialect), in both
 * directions: what goes in comes back with the same content and the same type. Values that cannot
 * be encoded, and messages over maxMessageBytes, fail at the caller and are never sent.
 */
import { expect } from 'chai';
import {
  EncodingError,
  MessageTooLargeError,
  MsgpackCodec,
  ProtocolError,
  RpcError,
  type Client,
  type Server,
} from '../lib/index.js';
import { cleanup, rejection, startClient, startServer } from './helpers.js';

/** A class of ours carried by a translator (type 42). */
class Point {
  constructor(readonly x: number, readonly y: number) {}
  norm(): number {
    return Math.hypot(this.x, this.y);
  }
}

/** A second class of ours (type 43), whose packed form is an object holding rich values. */
class Reading {
  constructor(readonly sensor: string, readonly at: Date, readonly tags: Map<number, string>) {}
}

/** A class that tries to take type 42 away from Point. */
class Impostor {
  constructor(readonly value = 0) {}
}

const pointTranslator = {
  Class: Point,
  type: 42,
  pack: (p: Point) => [p.x, p.y],
  unpack: ([x, y]: [number, number]) => new Point(x, y),
};
const readingTranslator = {
  Class: Reading,
  type: 43,
  pack: (r: Reading) => ({ sensor: r.sensor, at: r.at, tags: r.tags }),
  unpack: (o: { sensor: string; at: Date; tags: Map<number, string> }) => new Reading(o.sensor, o.at, o.tags),
};

describe('serialization', () => {
  let server: Server;
  let client: Client;
  /** The last argument each side's echo received. */
  let seenByServer: unknown;
  let seenByClient: unknown;

  beforeEach(async () => {
    server = await startServer();
    server.registerRpc('echo', (x: unknown) => {
      seenByServer = x;
      return x;
    });
    client = await startClient(server, { userId: 'alice' });
    client.registerRpc('echo', (x: unknown) => {
      seenByClient = x;
      return x;
    });
    seenByServer = seenByClient = undefined;
  });

  afterEach(cleanup);

  /** Echoes `value` client -> server -> client and server -> client -> server; returns both results. */
  async function roundTrips(value: unknown): Promise<{ viaServer: unknown; viaClient: unknown }> {
    const viaServer: unknown = await client.call.echo(value);
    const viaClient: unknown = await server.sendTo('alice').echo(value);
    return { viaServer, viaClient };
  }

  /** Every copy (both results, and what each handler received) deep-equals `value` and passes `check`. */
  async function expectExactRoundTrip(value: unknown, check: (copy: unknown) => void): Promise<void> {
    const { viaServer, viaClient } = await roundTrips(value);
    for (const [where, copy] of [
      ['handler on the server', seenByServer],
      ['result via the server', viaServer],
      ['handler on the client', seenByClient],
      ['result via the client', viaClient],
    ] as const) {
      expect(copy, where).to.deep.equal(value);
      check(copy);
    }
  }

  describe('round trips in both directions', () => {
    it('Date: a Date with the same instant', async () => {
      const date = new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789));
      await expectExactRoundTrip(date, (copy) => {
        expect(copy).to.be.instanceOf(Date);
        expect((copy as Date).getTime()).to.equal(date.getTime());
      });
    });

    it('Buffer: a Buffer with the same bytes', async () => {
      const buffer = Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]);
      await expectExactRoundTrip(buffer, (copy) => {
        expect(Buffer.isBuffer(copy)).to.equal(true);
        expect(Buffer.compare(copy as Buffer, buffer)).to.equal(0);
      });
    });

    it('an empty Buffer stays an empty Buffer', async () => {
      await expectExactRoundTrip(Buffer.alloc(0), (copy) => {
        expect(Buffer.isBuffer(copy)).to.equal(true);
        expect((copy as Buffer).length).to.equal(0);
      });
    });

    it('Uint8Array: comes back a plain Uint8Array (not a Buffer) with the same bytes', async () => {
      const bytes = new Uint8Array([9, 8, 7, 0, 255, 128]);
      await expectExactRoundTrip(bytes, (copy) => {
        expect(Object.getPrototypeOf(copy)).to.equal(Uint8Array.prototype);
        expect(Buffer.isBuffer(copy)).to.equal(false);
        expect([...(copy as Uint8Array)]).to.deep.equal([...bytes]);
      });
    });

    it('Map with non-string keys and nested objects: a Map, with Maps and objects inside as they left', async () => {
      const map = new Map<unknown, unknown>([
        [1, { a: 1, nested: { deep: [1, 2, { x: 'y' }] } }],
        [true, 'yes'],
        [null, 'nothing'],
        [2.5, [1, 'two']],
        ['text', new Map<unknown, unknown>([[3, { inner: true }]])],
      ]);
      await expectExactRoundTrip(map, (copy) => {
        expect(copy).to.be.instanceOf(Map);
        const m = copy as Map<unknown, unknown>;
        expect([...m.keys()]).to.deep.equal([1, true, null, 2.5, 'text']);
        expect(m.get(1)).to.deep.equal({ a: 1, nested: { deep: [1, 2, { x: 'y' }] } });
        expect(Object.getPrototypeOf(m.get(1))).to.equal(Object.prototype);
        expect(m.get('text')).to.be.instanceOf(Map);
        expect((m.get('text') as Map<unknown, unknown>).get(3)).to.deep.equal({ inner: true });
      });
    });

    it('Set: a Set with the same members', async () => {
      const set = new Set<unknown>([1, 'a', true, null, 2 ** 40]);
      await expectExactRoundTrip(set, (copy) => {
        expect(copy).to.be.instanceOf(Set);
        expect([...(copy as Set<unknown>)]).to.deep.equal([...set]);
      });
    });

    for (const [label, big] of [
      ['small', 5n],
      ['zero', 0n],
      ['large (2^63 - 1)', 2n ** 63n - 1n],
      ['negative', -5n],
      ['large negative (-2^63)', -(2n ** 63n)],
    ] as const) {
      it(`BigInt, ${label}: a bigint of the same value`, async () => {
        await expectExactRoundTrip(big, (copy) => {
          expect(typeof copy).to.equal('bigint');
          expect(copy === big).to.equal(true);
        });
      });
    }

    it('BigInts inside an array and an object stay bigints', async () => {
      const value = { list: [1n, -(2n ** 40n), 2n ** 63n - 1n], one: 7n };
      await expectExactRoundTrip(value, (copy) => {
        const c = copy as typeof value;
        for (const item of [...c.list, c.one]) expect(typeof item).to.equal('bigint');
      });
    });

    it('plain nested objects and arrays: plain objects and arrays (never Maps)', async () => {
      const value = {
        name: 'x',
        list: [1, [2, [3, []]], { a: { b: { c: [null, false] } } }],
        empty: {},
        emptyList: [],
        same: [{ k: 1 }, { k: 2 }, { other: 3 }],
      };
      await expectExactRoundTrip(value, (copy) => {
        const c = copy as typeof value;
        expect(Object.getPrototypeOf(c)).to.equal(Object.prototype);
        expect(Object.getPrototypeOf(c.empty)).to.equal(Object.prototype);
        expect(Object.getPrototypeOf(c.list[2])).to.equal(Object.prototype);
        expect(Object.getPrototypeOf(c.same[2])).to.equal(Object.prototype);
        expect(Array.isArray(c.list)).to.equal(true);
        expect(Array.isArray(c.emptyList)).to.equal(true);
        expect(Object.keys(c)).to.deep.equal(['name', 'list', 'empty', 'emptyList', 'same']);
      });
    });

    it('strings with unicode (accents, CJK, emoji, astral, NUL) come back identical', async () => {
      const text = 'héllo wörld — 日本語 🌍👩‍👩‍👧 \u0000 end \uD834\uDD1E';
      await expectExactRoundTrip(text, (copy) => {
        expect(typeof copy).to.equal('string');
        expect(copy).to.equal(text);
      });
      await expectExactRoundTrip('', (copy) => expect(copy).to.equal(''));
    });

    it('numbers: floats, negatives, 2**40 and friends come back as the same numbers', async () => {
      const numbers = [0, 1, -1, 1.5, -3.25, 0.1, Math.PI, 2 ** 31, 2 ** 32 + 1, 2 ** 40, -(2 ** 40), Number.MAX_SAFE_INTEGER,
        Number.MIN_SAFE_INTEGER, 1e-300, 1.7976931348623157e308];
      await expectExactRoundTrip(numbers, (copy) => {
        for (const n of copy as unknown[]) expect(typeof n).to.equal('number');
      });
      await expectExactRoundTrip(2 ** 40, (copy) => expect(copy).to.equal(2 ** 40));
      await expectExactRoundTrip(-0.5, (copy) => expect(copy).to.equal(-0.5));
    });

    it('null and booleans', async () => {
      await expectExactRoundTrip(null, (copy) => expect(copy).to.equal(null));
      await expectExactRoundTrip(true, (copy) => expect(copy).to.equal(true));
      await expectExactRoundTrip(false, (copy) => expect(copy).to.equal(false));
      await expectExactRoundTrip([null, true, false], (copy) => expect(copy).to.deep.equal([null, true, false]));
    });

    it('everything at once, nested in one object', async () => {
      const value = {
        when: new Date(0),
        bytes: Buffer.from('abc'),
        raw: new Uint8Array([1, 2]),
        map: new Map<unknown, unknown>([[1n, new Set(['s'])]]),
        text: 'ünï',
        n: -(2 ** 40),
        yes: true,
        no: null,
      };
      await expectExactRoundTrip(value, (copy) => {
        const c = copy as typeof value;
        expect(c.when).to.be.instanceOf(Date);
        expect(Buffer.isBuffer(c.bytes)).to.equal(true);
        expect(Object.getPrototypeOf(c.raw)).to.equal(Uint8Array.prototype);
        expect(c.map).to.be.instanceOf(Map);
        expect(c.map.get(1n)).to.be.instanceOf(Set);
      });
    });

    it('several arguments each keep their type', async () => {
      server.registerRpc('types', (...args: unknown[]) => args.map((a) => Object.prototype.toString.call(a)));
      const answer: unknown = await client.call.types(new Date(1), new Map(), new Set(), {}, [], 1n, Buffer.from('x'));
      expect(answer).to.deep.equal([
        '[object Date]', '[object Map]', '[object Set]', '[object Object]', '[object Array]', '[object BigInt]', '[object Uint8Array]',
      ]);
    });
  });

  describe('custom classes with translators (per peer)', () => {
    const translators = [pointTranslator, readingTranslator] as never[];
    const registerTranslator = (translator: object): void => new MsgpackCodec({ translators }).addTranslator(translator as never);

    beforeEach(async () => {
      server = await startServer({ translators }, 'tcp', 'translating');
      server.registerRpc('echo', (x: unknown) => (seenByServer = x));
      client = await startClient(server, { userId: 'alice', translators });
      client.registerRpc('echo', (x: unknown) => (seenByClient = x));
    });

    it('peers of one process do not see each other\'s translators', async () => {
      const plain = await startClient(server, { userId: 'bob' });
      // bob's codec has no translator: his Point leaves as a plain object...
      server.registerRpc('kind', (value: unknown) => (value instanceof Point ? 'Point' : typeof value));
      expect(await plain.call.kind(new Point(1, 2))).to.equal('object');
      // ...and a Point the server sends him is refused on receipt, never decoded by somebody else's translator.
      server.registerRpc('origin', () => new Point(0, 0));
      const error = await rejection(plain.call.origin());
      expect(error).to.be.instanceOf(ProtocolError);
    });

    it('an instance comes back as an instance of its class, with its fields, both ways', async () => {
      const point = new Point(3, 4);
      await expectExactRoundTrip(point, (copy) => {
        expect(copy).to.be.instanceOf(Point);
        expect((copy as Point).x).to.equal(3);
        expect((copy as Point).y).to.equal(4);
        expect((copy as Point).norm()).to.equal(5);
      });
    });

    it('handlers receive instances and may return them; nested instances too', async () => {
      server.registerRpc('norm', (p: unknown) => (p instanceof Point ? p.norm() : `not a Point: ${Object.prototype.toString.call(p)}`));
      server.registerRpc('makePoint', (x: number, y: number) => new Point(x, y));
      client.registerRpc('norm', (p: unknown) => (p instanceof Point ? p.norm() : `not a Point: ${Object.prototype.toString.call(p)}`));

      expect(await client.call.norm(new Point(6, 8))).to.equal(10);
      expect(await server.sendTo('alice').norm(new Point(5, 12))).to.equal(13);
      const made: unknown = await client.call.makePoint(1, 2);
      expect(made).to.be.instanceOf(Point);
      expect(made).to.deep.equal(new Point(1, 2));

      const nested = { points: [new Point(1, 1), new Point(2, 2)], byId: new Map([[7, new Point(7, 0)]]) };
      await expectExactRoundTrip(nested, (copy) => {
        const c = copy as typeof nested;
        for (const p of c.points) expect(p).to.be.instanceOf(Point);
        expect(c.byId.get(7)).to.be.instanceOf(Point);
      });
    });

    it('a second class (type 43) whose packed form holds rich values comes back intact', async () => {
      const reading = new Reading('t1', new Date(Date.UTC(2020, 0, 1)), new Map([[1, 'hot'], [2, 'dry']]));
      await expectExactRoundTrip(reading, (copy) => {
        expect(copy).to.be.instanceOf(Reading);
        const r = copy as Reading;
        expect(r.sensor).to.equal('t1');
        expect(r.at).to.be.instanceOf(Date);
        expect(r.at.getTime()).to.equal(reading.at.getTime());
        expect(r.tags).to.be.instanceOf(Map);
        expect([...r.tags]).to.deep.equal([[1, 'hot'], [2, 'dry']]);
      });
    });

    it('registering the same translator again is accepted (a no-op)', () => {
      expect(() => registerTranslator(pointTranslator)).not.to.throw();
    });

    it('registering a taken type for a different class throws TypeError', () => {
      expect(() => registerTranslator({ Class: Impostor, type: 42, pack: (i: Impostor) => i.value, unpack: (v: number) => new Impostor(v) }))
        .to.throw(TypeError, /42/);
    });

    it('the refused class did not take over the type: Point still round-trips as a Point', async () => {
      try {
        registerTranslator({ Class: Impostor, type: 43, pack: (i: Impostor) => i.value, unpack: (v: number) => new Impostor(v) });
      } catch {
        // expected: type 43 is Reading's
      }
      const copy: unknown = await client.call.echo(new Point(1, 0));
      expect(copy).to.be.instanceOf(Point);
    });

    for (const type of [0, -1, 101, 1000, 1.5, Number.NaN]) {
      it(`a type out of 1..100 (${type}) throws TypeError`, () => {
        expect(() => registerTranslator({ Class: Impostor, type, pack: (i: Impostor) => i.value, unpack: (v: number) => new Impostor(v) }))
          .to.throw(TypeError);
      });
    }
  });

  describe('values that cannot be encoded', () => {
    let invoked: number;

    beforeEach(() => {
      invoked = 0;
      server.registerRpc('count', (x: unknown) => {
        invoked++;
        return x;
      });
      client.registerRpc('count', (x: unknown) => {
        invoked++;
        return x;
      });
    });

    const cyclic = (): unknown => {
      const node: Record<string, unknown> = { name: 'loop' };
      node['self'] = { back: node };
      return node;
    };
    const unencodable: Array<[string, () => unknown]> = [
      ['a function inside args', () => ({ callback: () => 1 })],
      ['a bare function', () => function named() {}],
      ['a Symbol', () => Symbol('nope')],
      ['a Symbol inside an array', () => [1, Symbol.iterator]],
      ['a cyclic object', cyclic],
    ];

    for (const [label, make] of unencodable) {
      it(`${label}: client -> server rejects with EncodingError and nothing is sent`, async () => {
        const error = await rejection(client.call.count(make()));
        expect(error).to.be.instanceOf(EncodingError);
        expect(error).to.be.instanceOf(RpcError);
        expect(client.pendingCalls).to.equal(0);
        // Messages on one connection arrive in order: had the bad call been sent, the handler
        // would have run for it before this one.
        expect(await client.call.count('after')).to.equal('after');
        expect(invoked).to.equal(1);
        expect(client.pendingCalls).to.equal(0);
      });

      it(`${label}: server -> client rejects with EncodingError and nothing is sent`, async () => {
        const error = await rejection(server.sendTo('alice').count(make()));
        expect(error).to.be.instanceOf(EncodingError);
        expect(server.pendingCalls).to.equal(0);
        expect(await server.sendTo('alice').count('after')).to.equal('after');
        expect(invoked).to.equal(1);
        expect(server.pendingCalls).to.equal(0);
      });
    }

    it('the codec stays healthy after failures: rich values still round-trip afterwards', async () => {
      for (const [, make] of unencodable) await rejection(client.call.count({ ok: [1, 2], bad: make() }));
      const value = { a: [{ b: 1 }, { b: 2 }], m: new Map([[1, { c: 3 }]]) };
      expect(await client.call.echo(value)).to.deep.equal(value);
      expect(await server.sendTo('alice').echo(value)).to.deep.equal(value);
      expect(invoked).to.equal(0);
    });

    for (const [label, result] of [
      ['a function', () => ({ f() {} })],
      ['a Symbol', () => Symbol('result')],
      ['a cyclic object', cyclic],
    ] as Array<[string, () => unknown]>) {
      it(`a handler whose result is ${label} -> the caller gets EncodingError (remote), not a timeout`, async () => {
        server.registerRpc('badResult', () => result());
        client.registerRpc('badResult', async () => result());
        const quick = { timeoutMs: 3000 };

        const fromServer = await rejection(client.callWith(quick).badResult());
        expect(fromServer).to.be.instanceOf(EncodingError);
        expect(fromServer.message).to.include('badResult');
        expect(client.pendingCalls).to.equal(0);

        const fromClient = await rejection(server.sendTo('alice', quick).badResult());
        expect(fromClient).to.be.instanceOf(EncodingError);
        expect(fromClient.message).to.include('badResult');
        expect(server.pendingCalls).to.equal(0);

        // The connection is still good.
        expect(await client.call.echo('still fine')).to.equal('still fine');
      });
    }
  });

  describe('maxMessageBytes', () => {
    it('an argument over the caller\'s maxMessageBytes -> MessageTooLargeError, nothing sent', async () => {
      let invoked = 0;
      server.registerRpc('count', (x: unknown) => {
        invoked++;
        return typeof x === 'string' ? x.length : (x as Buffer).length;
      });
      const small = await startClient(server, { userId: 'carol', maxMessageBytes: 1024 });

      for (const big of ['x'.repeat(2000), Buffer.alloc(2000, 1), { nested: ['y'.repeat(1100)] }]) {
        const error = await rejection(small.call.count(big));
        expect(error).to.be.instanceOf(MessageTooLargeError);
        expect(error).to.be.instanceOf(RpcError);
        expect(small.pendingCalls).to.equal(0);
      }
      expect(await small.call.count('x'.repeat(100))).to.equal(100);
      expect(invoked).to.equal(1);
    });

    it('a result over the answering side\'s maxMessageBytes -> MessageTooLargeError at the caller', async () => {
      const tight = await startServer({ maxMessageBytes: 1024 }, 'tcp', 'tight');
      tight.registerRpc('big', () => 'z'.repeat(4000));
      tight.registerRpc('fine', () => 'z'.repeat(10));
      const other = await startClient(tight);
      const error = await rejection(other.callWith({ timeoutMs: 3000 }).big());
      expect(error).to.be.instanceOf(MessageTooLargeError);
      expect(await other.call.fine()).to.equal('z'.repeat(10));
    });
  });
});
