/**
 * The message table alone: one row per message type, unique codes, the flags each row documents,
 * and the wire shape of a WORK body in each framing.
 */
import { expect } from 'chai';
import { MESSAGES, MessageType } from '../../lib/index.js';
import {
  Invalid,
  MAX_HELLO_BYTES,
  MAX_METADATA_ENTRIES,
  isOneWayId,
  typeName,
  workBody,
  type MessageSpec,
} from '../../lib/wire/messages.js';

const rows = (): MessageSpec[] => [...MESSAGES.values()];

describe('message table (MESSAGES)', () => {
  it('has exactly one row per MessageType, keyed by its code and named after it', () => {
    const types = Object.entries(MessageType);
    expect(MESSAGES.size).to.equal(types.length);
    for (const [name, code] of types) {
      const row = MESSAGES.get(code);
      expect(row, `a row for ${name}`).to.not.equal(undefined);
      expect(row!.code).to.equal(code);
      expect(row!.name).to.equal(name);
    }
  });

  it('codes are unique and each fits in the one-byte type frame', () => {
    const codes = rows().map((row) => row.code);
    expect(new Set(codes).size).to.equal(codes.length);
    for (const code of codes) expect(code).to.be.within(1, 0x7f); // also a positive fixint in compact framing
  });

  it("keeps pseud's codes for pseud's types", () => {
    expect(MessageType).to.include({ OK: 0x01, HELLO: 0x02, WORK: 0x03, AUTHENTICATED: 0x04, HEARTBEAT: 0x06, ERROR: 0x10, UNAUTHORIZED: 0x11 });
  });

  it('answer: every type but WORK and HELLO is an answer or a notice (never answered with an ERROR)', () => {
    const answers = rows().filter((row) => row.answer).map((row) => row.name).sort();
    expect(answers).to.deep.equal(['AUTHENTICATED', 'CANCEL', 'ERROR', 'GOODBYE', 'HEARTBEAT', 'OK', 'STREAM_CREDIT', 'STREAM_END', 'STREAM_ITEM', 'UNAUTHORIZED']);
    expect(MESSAGES.get(MessageType.WORK)!.answer).to.equal(false);
    expect(MESSAGES.get(MessageType.HELLO)!.answer).to.equal(false);
  });

  it('compactOnly: GOODBYE, CANCEL and the stream messages (pseud does not know them)', () => {
    expect(rows().filter((row) => row.compactOnly).map((row) => row.name)).to.deep.equal(['GOODBYE', 'CANCEL', 'STREAM_ITEM', 'STREAM_END', 'STREAM_CREDIT']);
  });

  it('v1 bodies: MessagePack for OK, HELLO, WORK, ERROR (and the compact-only stream messages); UTF-8 text for the others', () => {
    const packed = rows().filter((row) => row.v1Body === 'msgpack').map((row) => row.name).sort();
    expect(packed).to.deep.equal(['ERROR', 'HELLO', 'OK', 'STREAM_CREDIT', 'STREAM_END', 'STREAM_ITEM', 'WORK']);
    for (const row of rows()) expect(row.v1Body).to.be.oneOf(['msgpack', 'text']);
  });

  it('what a peer may send before it authenticated is capped small; calls and answers are not capped here', () => {
    expect(MESSAGES.get(MessageType.HELLO)!.maxBodyBytes).to.equal(MAX_HELLO_BYTES);
    for (const type of [MessageType.AUTHENTICATED, MessageType.UNAUTHORIZED, MessageType.HEARTBEAT, MessageType.GOODBYE]) {
      const cap = MESSAGES.get(type)!.maxBodyBytes;
      expect(cap, typeName(type)).to.be.a('number').and.at.most(MAX_HELLO_BYTES);
    }
    for (const type of [MessageType.OK, MessageType.WORK, MessageType.ERROR]) {
      expect(MESSAGES.get(type)!.maxBodyBytes, typeName(type)).to.equal(undefined);
    }
  });

  it('typeName names known types and shows unknown ones in hex', () => {
    expect(typeName(MessageType.WORK)).to.equal('WORK');
    expect(typeName(0x42)).to.equal('0x42');
    expect(typeName(5)).to.equal('0x05');
  });

  describe('read: each row checks a decoded body', () => {
    const read = (type: number, body: unknown, framing: 'v1' | 'compact' = 'compact'): unknown => MESSAGES.get(type)!.read(body, framing);

    it('OK takes any value as it is', () => {
      for (const value of [null, 0, 'x', [1, 2], { a: 1 }]) expect(read(MessageType.OK, value)).to.equal(value);
    });

    it('text types take a string, bytes (as UTF-8) or nothing; anything else is Invalid', () => {
      for (const type of [MessageType.AUTHENTICATED, MessageType.UNAUTHORIZED, MessageType.HEARTBEAT, MessageType.GOODBYE]) {
        expect(read(type, 'hi')).to.equal('hi');
        expect(read(type, Buffer.from('héllo'))).to.equal('héllo');
        expect(read(type, null)).to.equal('');
        const bad = read(type, 42);
        expect(bad).to.be.instanceOf(Invalid);
        expect((bad as Invalid).reason).to.equal('the body must be a string');
      }
    });

    it('WORK: a compact body may carry a fourth element, v1 may not', () => {
      expect(read(MessageType.WORK, ['f', [], null, { m: { a: 'b' } }], 'compact')).to.deep.equal({ name: 'f', args: [], kwargs: undefined, metadata: { a: 'b' }, timeoutMs: undefined, stream: undefined, argStreams: undefined });
      expect(read(MessageType.WORK, ['f', [], {}, { m: { a: 'b' } }], 'v1')).to.be.instanceOf(Invalid);
    });

    it(`WORK metadata: at most ${MAX_METADATA_ENTRIES} entries`, () => {
      const many = Object.fromEntries(Array.from({ length: MAX_METADATA_ENTRIES + 1 }, (_, i) => [`k${i}`, 'v']));
      const exact = Object.fromEntries(Object.entries(many).slice(0, MAX_METADATA_ENTRIES));
      expect((read(MessageType.WORK, ['f', [], null, { m: exact }]) as { metadata: unknown }).metadata).to.deep.equal(exact);
      const bad = read(MessageType.WORK, ['f', [], null, { m: many }]);
      expect((bad as Invalid).reason).to.equal(`metadata has more than ${MAX_METADATA_ENTRIES} entries`);
    });

    it('WORK: empty kwargs read as none', () => {
      expect(read(MessageType.WORK, ['f', [1], {}], 'v1')).to.deep.equal({ name: 'f', args: [1], kwargs: undefined, metadata: undefined, timeoutMs: undefined, stream: undefined, argStreams: undefined });
      expect(read(MessageType.WORK, ['f', [1], { k: 2 }], 'v1')).to.deep.equal({ name: 'f', args: [1], kwargs: { k: 2 }, metadata: undefined, timeoutMs: undefined, stream: undefined, argStreams: undefined });
    });
  });

  describe('workBody: the wire form of a call', () => {
    it('v1 is always [name, args, kwargs], kwargs {} when none, and never carries metadata', () => {
      expect(workBody('v1', 'f', [1], undefined, undefined)).to.deep.equal(['f', [1], {}]);
      expect(workBody('v1', 'f', [1], { k: 1 }, undefined)).to.deep.equal(['f', [1], { k: 1 }]);
      expect(workBody('v1', 'f', [1], undefined, { trace: 'x' })).to.deep.equal(['f', [1], {}]);
    });

    it('compact drops what is empty: [name, args], [name, args, kwargs], [name, args, kwargs|null, { m }]', () => {
      expect(workBody('compact', 'f', [1], undefined, undefined)).to.deep.equal(['f', [1]]);
      expect(workBody('compact', 'f', [1], { k: 1 }, undefined)).to.deep.equal(['f', [1], { k: 1 }]);
      expect(workBody('compact', 'f', [1], undefined, { trace: 'x' })).to.deep.equal(['f', [1], null, { m: { trace: 'x' } }]);
      expect(workBody('compact', 'f', [1], { k: 1 }, { trace: 'x' })).to.deep.equal(['f', [1], { k: 1 }, { m: { trace: 'x' } }]);
    });

    it('compact says which arguments are streams (a) and the window of a streamed result (s)', () => {
      expect(workBody('compact', 'f', [null, 2], undefined, undefined, 100, { items: 8, bytes: 64 }, [0])).to.deep.equal(['f', [null, 2], null, { s: [8, 64], a: [0], d: 100 }]);
      const read = MESSAGES.get(MessageType.WORK)!.read(workBody('compact', 'f', [null], undefined, undefined, undefined, undefined, [0]), 'compact');
      expect(read).to.deep.include({ argStreams: [0], stream: undefined });
    });

    it('compact carries the time the caller still waits as d (ms), or as the number alone when nothing else goes with it; v1 never does', () => {
      expect(workBody('compact', 'f', [1], undefined, undefined, 250)).to.deep.equal(['f', [1], null, 250]);
      expect(workBody('compact', 'f', [1], { k: 1 }, undefined, 0)).to.deep.equal(['f', [1], { k: 1 }, 0]);
      expect(workBody('compact', 'f', [1], undefined, { trace: 'x' }, 250)).to.deep.equal(['f', [1], null, { m: { trace: 'x' }, d: 250 }]);
      expect(workBody('v1', 'f', [1], undefined, undefined, 250)).to.deep.equal(['f', [1], {}]);
      const read = MESSAGES.get(MessageType.WORK)!.read(workBody('compact', 'f', [], undefined, undefined, 250), 'compact');
      expect((read as { timeoutMs: number }).timeoutMs).to.equal(250);
    });

    it('a compact deadline reads the same alone (a number) or in a map (as earlier versions send it); a bad one is refused', () => {
      const read = (body: unknown, framing: 'v1' | 'compact' = 'compact'): unknown => MESSAGES.get(MessageType.WORK)!.read(body, framing);
      const expected = { name: 'f', args: [], kwargs: undefined, metadata: undefined, timeoutMs: 250, stream: undefined, argStreams: undefined };
      expect(read(['f', [], null, 250], 'compact')).to.deep.equal(expected);
      expect(read(['f', [], null, { d: 250 }], 'compact')).to.deep.equal(expected);
      // Past 2^31 - 1 ms a timer fires at once (and 1e16 ms is no valid date): refused like a negative one.
      for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, 1e16, 1e300]) {
        for (const extras of [bad, { d: bad }]) {
          const refused = read(['f', [], null, extras], 'compact');
          expect(refused, JSON.stringify(extras)).to.be.instanceOf(Invalid);
          expect((refused as Invalid).reason).to.match(/deadline/);
        }
      }
      expect(read(['f', [], null, 2 ** 31 - 1], 'compact')).to.deep.equal({ ...expected, timeoutMs: 2 ** 31 - 1 });
      expect(read(['f', [], null, 'soon'], 'compact')).to.be.instanceOf(Invalid);
      expect(read(['f', [], {}, 250], 'v1')).to.be.instanceOf(Invalid);
    });

    it('what workBody writes, the WORK row reads back, in both framings', () => {
      const work = MESSAGES.get(MessageType.WORK)!;
      for (const framing of ['v1', 'compact'] as const) {
        const body = work.read(workBody(framing, 'a.b', [1, 'x'], { k: true }, { trace: 't' }), framing);
        expect(body, framing).to.deep.equal({ name: 'a.b', args: [1, 'x'], kwargs: { k: true }, metadata: framing === 'compact' ? { trace: 't' } : undefined, timeoutMs: undefined, stream: undefined, argStreams: undefined });
      }
    });
  });

  it('isOneWayId: 0 in compact, an empty id in v1; nothing else', () => {
    expect(isOneWayId(0)).to.equal(true);
    expect(isOneWayId(Buffer.alloc(0))).to.equal(true);
    expect(isOneWayId(1)).to.equal(false);
    expect(isOneWayId(Buffer.alloc(16))).to.equal(false);
  });
});
