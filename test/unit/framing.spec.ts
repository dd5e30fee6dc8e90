/**
 * encodeMessage / decodeFrames alone (no sockets): every message type round-trips in both
 * framings, this peer's v1 ids come back as its numbers, and every malformed receive comes back as
 * `malformed` with the right error and, when the message was readable enough, where to answer.
 */
import { expect } from 'chai';
import { encode as packPlain } from 'msgpackr';
import { randomUUID } from 'node:crypto';
import { MessageTooLargeError, MsgpackCodec, ProtocolError } from '../../lib/index.js';
import { decodeFrames, encodeMessage, type FramingContext, type Inbound } from '../../lib/wire/framing.js';
import { MessageIds, isZeropeerId } from '../../lib/wire/message-ids.js';
import { MAX_HELLO_BYTES, MESSAGES, MessageType, workBody, type Framing, type MessageTypeCode } from '../../lib/wire/messages.js';

const ROUTING_ID = Buffer.from('peer-1');

function context(maxMessageBytes = 1024 * 1024): FramingContext {
  return { codec: new MsgpackCodec(), ids: new MessageIds(), maxMessageBytes };
}

function uuidBytes(): Buffer {
  return Buffer.from(randomUUID().replace(/-/g, ''), 'hex');
}

/** A valid body for each type as sent, and as decodeFrames gives it back (per framing). */
const SAMPLES: Record<number, { sent: (framing: Framing) => unknown; read: (framing: Framing) => unknown }> = {
  [MessageType.OK]: {
    sent: () => ({ total: 3, items: ['a', 'b'], nested: { ok: true } }),
    read: () => ({ total: 3, items: ['a', 'b'], nested: { ok: true } }),
  },
  [MessageType.HELLO]: { sent: () => ['alice', 's3cret'], read: () => ({ login: 'alice', password: 's3cret' }) },
  [MessageType.WORK]: {
    sent: (framing) => workBody(framing, 'string.lower', ['ABC', 2], { flag: true }, { trace: 'abc' }, 1500),
    read: (framing) => ({
      name: 'string.lower', args: ['ABC', 2], kwargs: { flag: true },
      metadata: framing === 'compact' ? { trace: 'abc' } : undefined, timeoutMs: framing === 'compact' ? 1500 : undefined, stream: undefined, argStreams: undefined,
    }),
  },
  [MessageType.AUTHENTICATED]: { sent: () => 'zeropeer/1 compact', read: () => 'zeropeer/1 compact' },
  [MessageType.HEARTBEAT]: { sent: () => '', read: () => '' },
  [MessageType.GOODBYE]: { sent: () => 'stopping', read: () => 'stopping' },
  [MessageType.ERROR]: {
    sent: (framing) => (framing === 'v1' ? ['TypeError', 'bad', 'at x'] : ['TypeError', 'bad', 'at x', { fields: { code: 'E' } }]),
    read: (framing) => ({ name: 'TypeError', message: 'bad', stack: 'at x', details: framing === 'compact' ? { fields: { code: 'E' } } : undefined }),
  },
  [MessageType.UNAUTHORIZED]: { sent: () => 'expired', read: () => 'expired' },
  [MessageType.CANCEL]: { sent: () => 'user gave up', read: () => 'user gave up' },
  [MessageType.STREAM_ITEM]: { sent: () => [-1, { line: 'x' }], read: () => ({ slot: -1, value: { line: 'x' } }) },
  [MessageType.STREAM_END]: {
    sent: () => [-1, ['RangeError', 'bad', '']],
    read: () => ({ slot: -1, error: { name: 'RangeError', message: 'bad', stack: '', details: undefined } }),
  },
  [MessageType.STREAM_CREDIT]: { sent: () => [-1, 8, 8192], read: () => ({ slot: -1, items: 8, bytes: 8192 }) },
};

function expectMessage(inbound: Inbound): Extract<Inbound, { kind: 'message' }>['message'] {
  expect(inbound.kind, inbound.kind === 'malformed' ? inbound.error.message : '').to.equal('message');
  return (inbound as Extract<Inbound, { kind: 'message' }>).message;
}

function expectMalformed(inbound: Inbound): Extract<Inbound, { kind: 'malformed' }> {
  expect(inbound.kind).to.equal('malformed');
  return inbound as Extract<Inbound, { kind: 'malformed' }>;
}

/** v1 frames by hand: [routing id, '', version, id, type, body]. */
function v1Frames(id: Buffer, type: number, body: Buffer, version = 'v1'): Buffer[] {
  return [ROUTING_ID, Buffer.alloc(0), Buffer.from(version), id, Buffer.from([type]), body];
}

describe('framing: encodeMessage / decodeFrames', () => {
  it('has a sample for every row of the table (a new message type needs one)', () => {
    expect(Object.keys(SAMPLES).map(Number).sort((a, b) => a - b)).to.deep.equal([...MESSAGES.keys()].sort((a, b) => a - b));
  });

  for (const framing of ['v1', 'compact'] as const) {
    describe(`${framing} framing`, () => {
      for (const spec of MESSAGES.values()) {
        it(`${spec.name} round-trips: type, id, routing id and body`, () => {
          const ctx = context();
          const sample = SAMPLES[spec.code]!;
          const frames = encodeMessage(ctx, framing, ROUTING_ID, spec.code, 1234, sample.sent(framing));
          expect(frames, 'frame count').to.have.length(framing === 'v1' ? 6 : 2);
          const message = expectMessage(decodeFrames(frames, ctx));
          expect(message.type).to.equal(spec.code);
          expect(message.framing).to.equal(framing);
          expect(message.id).to.equal(1234);
          expect(message.routingId.equals(ROUTING_ID)).to.equal(true);
          expect(message.body).to.deep.equal(sample.read(framing));
        });
      }

      it('a null id travels as no id (empty in v1, 0 in compact)', () => {
        const ctx = context();
        const message = expectMessage(decodeFrames(encodeMessage(ctx, framing, ROUTING_ID, MessageType.HEARTBEAT, null, ''), ctx));
        if (framing === 'v1') expect(Buffer.isBuffer(message.id) && message.id.length === 0).to.equal(true);
        else expect(message.id).to.equal(0);
      });
    });
  }

  describe('v1 layout and ids', () => {
    it("is pseud's six frames: routing id, '', 'v1', a 16-byte id, one type byte, a body", () => {
      const ctx = context();
      const frames = encodeMessage(ctx, 'v1', ROUTING_ID, MessageType.WORK, 7, workBody('v1', 'f', [1], undefined, undefined));
      expect(frames[1]!.length).to.equal(0);
      expect(frames[2]!.toString()).to.equal('v1');
      expect(frames[3]!.length).to.equal(16);
      expect([...frames[4]!]).to.deep.equal([MessageType.WORK]);
      expect(frames[5]!.equals(packPlain(['f', [1], {}]))).to.equal(true);
    });

    it('text bodies travel as UTF-8 strings, not MessagePack', () => {
      const ctx = context();
      const frames = encodeMessage(ctx, 'v1', ROUTING_ID, MessageType.UNAUTHORIZED, 1, 'déjà vu');
      expect(frames[5]!.toString('utf8')).to.equal('déjà vu');
    });

    it("this peer's v1 ids come back as its numbers; another peer's, or pseud's, stay the bytes they were", () => {
      const ours = new MessageIds();
      const theirs = new MessageIds();
      const id = ours.next();
      const bytes = ours.toV1(id);
      expect(bytes.length).to.equal(16);
      expect(ours.fromV1(bytes)).to.equal(id);
      expect(theirs.fromV1(bytes), 'another MessageIds has another prefix').to.equal(undefined);
      expect(isZeropeerId(bytes)).to.equal(true);

      const pseud = uuidBytes();
      expect(ours.fromV1(pseud)).to.equal(undefined);
      expect(isZeropeerId(pseud), 'a UUID4 never looks like a zeropeer id').to.equal(false);

      const ctx: FramingContext = { codec: new MsgpackCodec(), ids: ours, maxMessageBytes: 1 << 20 };
      expect(expectMessage(decodeFrames(v1Frames(bytes, MessageType.OK, packPlain(1)), ctx)).id).to.equal(id);
      const foreign = expectMessage(decodeFrames(v1Frames(pseud, MessageType.OK, packPlain(1)), ctx)).id;
      expect(Buffer.isBuffer(foreign) && foreign.equals(pseud)).to.equal(true);
      const other = expectMessage(decodeFrames(v1Frames(theirs.toV1(id), MessageType.OK, packPlain(1)), ctx)).id;
      expect(Buffer.isBuffer(other), "another zeropeer peer's id is opaque here").to.equal(true);
    });

    it('ids are distinct and never 0 (0 means one-way)', () => {
      const ids = new MessageIds();
      const seen = new Set<number>();
      for (let i = 0; i < 1000; i++) {
        const id = ids.next();
        expect(id).to.be.within(1, 2 ** 32 - 1);
        seen.add(id);
      }
      expect(seen.size).to.equal(1000);
    });

    it('a pseud HELLO with bytes for login and password is read as UTF-8 text', () => {
      const ctx = context();
      const body = packPlain([Buffer.from('zoë'), Buffer.from('pässword')]);
      const message = expectMessage(decodeFrames(v1Frames(uuidBytes(), MessageType.HELLO, body), ctx));
      expect(message.body).to.deep.equal({ login: 'zoë', password: 'pässword' });
    });

    it('a HELLO with a login only reads an empty password', () => {
      const ctx = context();
      const message = expectMessage(decodeFrames(v1Frames(uuidBytes(), MessageType.HELLO, packPlain(['alice'])), ctx));
      expect(message.body).to.deep.equal({ login: 'alice', password: '' });
    });
  });

  it('a routing id and one empty frame is a ROUTER_NOTIFY', () => {
    expect(decodeFrames([ROUTING_ID, Buffer.alloc(0)], context())).to.deep.equal({ kind: 'notify', routingId: ROUTING_ID });
  });

  describe('malformed receives', () => {
    it('nothing after the routing id', () => {
      const bad = expectMalformed(decodeFrames([ROUTING_ID], context()));
      expect(bad.error).to.be.instanceOf(ProtocolError);
      expect(bad.replyTo).to.equal(undefined);
    });

    it('neither 2 nor 6 frames', () => {
      const bad = expectMalformed(decodeFrames([ROUTING_ID, Buffer.alloc(0), Buffer.from('v1')], context()));
      expect(bad.error.message).to.match(/expected 6 frames .* got 3/);
      expect(bad.routingId!.equals(ROUTING_ID)).to.equal(true);
    });

    it('a wrong protocol version, answered where the id says', () => {
      const ctx = context();
      const id = ctx.ids.next();
      const bad = expectMalformed(decodeFrames(v1Frames(ctx.ids.toV1(id), MessageType.WORK, packPlain(['f', [], {}]), 'v2'), ctx));
      expect(bad.error).to.be.instanceOf(ProtocolError);
      expect(bad.error.message).to.contain('unsupported protocol version "v2"');
      expect(bad.replyTo).to.deep.equal({ framing: 'v1', id, type: MessageType.WORK });
    });

    it('a v1 message without an id cannot be answered', () => {
      const bad = expectMalformed(decodeFrames(v1Frames(Buffer.alloc(0), MessageType.WORK, packPlain(['f', [], {}]), 'v9'), context()));
      expect(bad.replyTo).to.equal(undefined);
    });

    it('an unknown type, in v1 and in compact', () => {
      const ctx = context();
      const pseud = uuidBytes();
      const v1 = expectMalformed(decodeFrames(v1Frames(pseud, 0x42, packPlain(null)), ctx));
      expect(v1.error).to.be.instanceOf(ProtocolError);
      expect(v1.error.message).to.equal('unknown message type 0x42');
      expect(v1.replyTo!.type).to.equal(0x42);
      expect((v1.replyTo!.id as Buffer).equals(pseud)).to.equal(true);

      const compact = expectMalformed(decodeFrames([ROUTING_ID, ctx.codec.encode([0x42, 9, null], 'rich')], ctx));
      expect(compact.error.message).to.equal('unknown message type 0x42');
      expect(compact.replyTo).to.deep.equal({ framing: 'compact', id: 9, type: 0x42 });
    });

    it('a type frame of two bytes is an unknown type', () => {
      const frames = v1Frames(uuidBytes(), 0, packPlain(null));
      frames[4] = Buffer.from([0x03, 0x03]);
      expect(expectMalformed(decodeFrames(frames, context())).error.message).to.contain('a type frame of 2 bytes');
    });

    for (const framing of ['v1', 'compact'] as const) {
      it(`${framing}: a message over maxMessageBytes -> MessageTooLargeError, with where to answer`, () => {
        const big = context(4096);
        const sender = { ...context(1 << 20), ids: big.ids };
        const id = big.ids.next();
        const frames = encodeMessage(sender, framing, ROUTING_ID, MessageType.WORK, id, workBody(framing, 'f', ['x'.repeat(10_000)], undefined, undefined));
        const bad = expectMalformed(decodeFrames(frames, big));
        expect(bad.error).to.be.instanceOf(MessageTooLargeError);
        expect(bad.error.message).to.contain('maxMessageBytes (4096)');
        expect(bad.replyTo).to.deep.equal({ framing, id, type: MessageType.WORK });
      });

      it(`${framing}: a HELLO over MAX_HELLO_BYTES is refused before its body is decoded`, () => {
        const ctx = context();
        const frames = encodeMessage(ctx, framing, ROUTING_ID, MessageType.HELLO, 5, ['alice', 'p'.repeat(MAX_HELLO_BYTES + 1)]);
        const bad = expectMalformed(decodeFrames(frames, ctx));
        expect(bad.error).to.be.instanceOf(MessageTooLargeError);
        expect(bad.error.message).to.match(/a HELLO body of \d+ bytes exceeds its limit \(16384\)/);
      });

      it(`${framing}: a HELLO just under MAX_HELLO_BYTES (a JWT with many claims) is accepted`, () => {
        const ctx = context();
        const token = 't'.repeat(MAX_HELLO_BYTES - 64);
        const frames = encodeMessage(ctx, framing, ROUTING_ID, MessageType.HELLO, 5, ['', token]);
        expect(expectMessage(decodeFrames(frames, ctx)).body).to.deep.equal({ login: '', password: token });
      });
    }

    /** A bad body per type, and the reason it is refused. */
    const badBodies: Array<[string, MessageTypeCode, unknown, RegExp]> = [
      ['WORK, not an array', MessageType.WORK, 'f', /a WORK body must be \[name, args, kwargs\?\]/],
      ['WORK, a number for a name', MessageType.WORK, [1, []], /a WORK body must be/],
      ['WORK, args not an array', MessageType.WORK, ['f', 'x'], /a WORK body must be/],
      ['WORK, kwargs a list', MessageType.WORK, ['f', [], [1]], /a WORK body must be/],
      ['WORK, extras neither a map nor a deadline', MessageType.WORK, ['f', [], null, 'x'], /WORK extras must be a map/],
      ['WORK, a negative deadline alone', MessageType.WORK, ['f', [], null, -1], /deadline must be a number of ms from 0 to/],
      ['WORK, metadata a list', MessageType.WORK, ['f', [], null, { m: ['a'] }], /metadata must be a map of strings/],
      ['WORK, a metadata value not a string', MessageType.WORK, ['f', [], null, { m: { n: 1 } }], /metadata values must be strings/],
      ['STREAM_ITEM, no slot', MessageType.STREAM_ITEM, ['x'], /STREAM_ITEM body must be \[slot, value\]/],
      ['STREAM_END, a bad error', MessageType.STREAM_END, [-1, 'x'], /an ERROR body must be/],
      ['STREAM_CREDIT, zero items but bytes', MessageType.STREAM_CREDIT, [-1, 0, 10], /STREAM_CREDIT body must be/],
      ['WORK, an argument stream past the arguments', MessageType.WORK, ['f', [null], null, { a: [1] }], /argument streams must be/],
      ['WORK, an argument stream twice', MessageType.WORK, ['f', [null, null], null, { a: [0, 0] }], /argument streams must be/],
      ['WORK, a stream window of zero', MessageType.WORK, ['f', [], null, { s: [0, 10] }], /stream window must be/],
      ['WORK, a negative deadline', MessageType.WORK, ['f', [], null, { d: -1 }], /deadline must be a number of ms from 0 to/],
      ['WORK, a deadline not a number', MessageType.WORK, ['f', [], null, { d: '5' }], /deadline must be a number of ms from 0 to/],
      ['WORK, five elements', MessageType.WORK, ['f', [], null, {}, 1], /a WORK body must be/],
      ['ERROR, a number for the message', MessageType.ERROR, ['E', 1, ''], /an ERROR body must be \[class name, message, stack\]/],
      ['ERROR, one element', MessageType.ERROR, ['E'], /an ERROR body must be/],
      ['ERROR, details a list', MessageType.ERROR, ['E', 'm', '', [1]], /an ERROR body must be/],
      ['HELLO, empty', MessageType.HELLO, [], /a HELLO body must be \[login, password\]/],
      ['HELLO, a number for a login', MessageType.HELLO, [1, 'p'], /a HELLO body must be/],
      ['HELLO, not an array', MessageType.HELLO, { login: 'a' }, /a HELLO body must be/],
      ['AUTHENTICATED, a number', MessageType.AUTHENTICATED, 5, /the body must be a string/],
      ['UNAUTHORIZED, a map', MessageType.UNAUTHORIZED, { a: 1 }, /the body must be a string/],
      ['GOODBYE, a list', MessageType.GOODBYE, ['x'], /the body must be a string/],
    ];
    for (const [label, type, body, reason] of badBodies) {
      it(`compact, ${label} -> ProtocolError, answered to its id`, () => {
        const ctx = context();
        const bad = expectMalformed(decodeFrames([ROUTING_ID, ctx.codec.encode([type, 77, body], 'rich')], ctx));
        expect(bad.error).to.be.instanceOf(ProtocolError);
        expect(bad.error.message).to.match(reason);
        expect(bad.replyTo).to.deep.equal({ framing: 'compact', id: 77, type });
      });
    }

    it('v1, a WORK with a fourth element (compact only) -> ProtocolError', () => {
      const bad = expectMalformed(decodeFrames(v1Frames(uuidBytes(), MessageType.WORK, packPlain(['f', [], {}, { m: {} }])), context()));
      expect(bad.error.message).to.match(/a WORK body must be/);
    });

    it('v1, a MessagePack body that is garbage -> ProtocolError, with where to answer', () => {
      const id = uuidBytes();
      const bad = expectMalformed(decodeFrames(v1Frames(id, MessageType.WORK, Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])), context()));
      expect(bad.error).to.be.instanceOf(ProtocolError);
      expect(bad.error.message).to.contain('garbage MessagePack body');
      expect((bad.replyTo!.id as Buffer).equals(id)).to.equal(true);
    });

    it('compact, a packet that is not [type, id, body] -> ProtocolError', () => {
      const ctx = context();
      for (const value of [[1, 2], 'text', [1, 'id', null], ['1', 2, null]]) {
        const bad = expectMalformed(decodeFrames([ROUTING_ID, ctx.codec.encode(value, 'rich')], ctx));
        expect(bad.error.message, JSON.stringify(value)).to.equal('a compact packet must be [type, id, body]');
      }
    });

    it('compact, a garbage packet with a readable head is answered to its id', () => {
      const ctx = context();
      // [WORK, 300, <a truncated array32>]
      const packet = Buffer.from([0x93, MessageType.WORK, 0xcd, 0x01, 0x2c, 0xdd, 0xff, 0xff, 0xff, 0xff]);
      const bad = expectMalformed(decodeFrames([ROUTING_ID, packet], ctx));
      expect(bad.error).to.be.instanceOf(ProtocolError);
      expect(bad.replyTo).to.deep.equal({ framing: 'compact', id: 300, type: MessageType.WORK });
    });

    it('never throws, whatever the frames', () => {
      const ctx = context();
      const shapes: Buffer[][] = [
        [],
        [ROUTING_ID, Buffer.from([0x93])],
        [ROUTING_ID, Buffer.from([0xc1])],
        [ROUTING_ID, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)],
        [ROUTING_ID, Buffer.from('x'), Buffer.from('v1'), Buffer.alloc(16), Buffer.from([1]), Buffer.alloc(0)],
      ];
      for (const frames of shapes) expect(() => decodeFrames(frames, ctx)).to.not.throw();
    });
  });
});
