/**
 * The outbox's batching alone, over its Sender seam: the compact messages to a connection made in
 * one run of the microtask queue leave together when it ends, within the count and byte bounds, in
 * order, and every message hears what became of the batch that carried it.
 */
import { expect } from 'chai';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Outbox, type BatchLimits, type OutgoingHooks, type Sender } from '../../lib/transport/outbox.js';
import { BATCH_MARKER, MAX_BATCH_BYTES, MAX_BATCH_PACKETS, batchBytes, batchPackets, decodeFrames, encodeBatch, isBatch } from '../../lib/wire/framing.js';
import { MsgpackCodec, ProtocolError } from '../../lib/index.js';
import { MessageIds } from '../../lib/wire/message-ids.js';

const PEER = Buffer.from('peer');
const LIMITS = { messages: 10_000, bytes: Infinity, totalBytes: Infinity };
const context = { codec: new MsgpackCodec(), ids: new MessageIds(), maxMessageBytes: 1 << 20 };

/** Splits what was sent back into labels: one ZeroMQ message -> the labels it carried. */
function labelsOf(frames: Buffer[]): string[] {
  const inbound = decodeFrames(frames, context);
  if (inbound.kind === 'batch') return batchPackets(inbound).map((packet) => packet.toString());
  return frames.length === 2 ? [frames[1]!.toString()] : [`v1:${frames.at(-1)!.toString()}`];
}

/** Records every ZeroMQ message as the labels it carried; fails the sends listed in `fail`. */
class RecordingSender implements Sender {
  /** Every attempt, as the labels it carried. */
  readonly sends: string[][] = [];
  /** The attempts that succeeded. */
  readonly delivered: string[][] = [];
  readonly counts: number[] = [];
  /** Whether each attempt was a batch. */
  readonly batched: boolean[] = [];
  fail: { code: string } | undefined;

  send(frames: Buffer[], messages: number): Promise<void> {
    this.sends.push(labelsOf(frames));
    this.counts.push(messages);
    this.batched.push(isBatch(frames));
    if (this.fail) return Promise.reject(Object.assign(new Error(this.fail.code), this.fail));
    this.delivered.push(labelsOf(frames));
    return Promise.resolve();
  }
}

/** A compact message whose packet is its label (the outbox never looks inside). */
const compact = (label: string): Buffer[] => [PEER, Buffer.from(label)];
/** A v1 message: six frames, never batched. */
const v1 = (label: string): Buffer[] => [PEER, Buffer.alloc(0), Buffer.from('v1'), Buffer.alloc(0), Buffer.from([3]), Buffer.from(label)];

function recorder(log: string[], label: string, extra: Partial<OutgoingHooks> = {}): OutgoingHooks {
  return { onSent: () => log.push(`sent ${label}`), onError: (error) => log.push(`error ${label}: ${(error as { code?: string }).code ?? error.name}`), ...extra };
}

function outbox(batch: BatchLimits = { messages: 128, bytes: 65536 }): { box: Outbox; sender: RecordingSender } {
  const sender = new RecordingSender();
  return { box: new Outbox(sender, LIMITS, batch), sender };
}

describe('Outbox batching', () => {
  it('the messages to a connection made in one run of the microtask queue leave as one batch, in order', async () => {
    const { box, sender } = outbox();
    for (let i = 0; i < 5; i++) box.sendNow('a', compact(`m${i}`));
    expect(sender.sends, 'held while the run goes on').to.deep.equal([]);
    await nextTurn();
    expect(sender.sends).to.deep.equal([['m0', 'm1', 'm2', 'm3', 'm4']]);
    expect(sender.counts).to.deep.equal([5]);
    expect(sender.batched).to.deep.equal([true]);
    box.close();
  });

  it('a message alone leaves as itself (not a batch), before any I/O or timer', async () => {
    const { box, sender } = outbox();
    box.sendNow('a', compact('first'));
    const sentBeforeImmediate = await new Promise<number>((resolve) => setImmediate(() => resolve(sender.sends.length)));
    expect(sentBeforeImmediate, 'sent before the next macrotask').to.equal(1);
    expect(sender.sends).to.deep.equal([['first']]);
    expect(sender.batched).to.deep.equal([false]);
    box.close();
  });

  it('a message made a few microtask hops later (an async loop, a stream producer) joins the batch', async () => {
    const { box, sender } = outbox();
    async function* items(): AsyncGenerator<string> {
      for (let i = 0; i < 5; i++) yield `item${i}`;
    }
    for await (const item of items()) box.sendNow('a', compact(item));
    await nextTurn();
    expect(sender.sends).to.deep.equal([['item0', 'item1', 'item2', 'item3', 'item4']]);
    box.close();
  });

  it('connections batch apart', async () => {
    const { box, sender } = outbox();
    box.sendNow('a', compact('a0'));
    box.sendNow('b', compact('b0'));
    box.sendNow('a', compact('a1'));
    box.sendNow('b', compact('b1'));
    box.sendNow('a', compact('a2'));
    await nextTurn();
    expect(sender.sends).to.deep.equal([['a0', 'a1', 'a2'], ['b0', 'b1']]);
    box.close();
  });

  it('a batch that reaches `messages` leaves at once, and the run goes on in a new one', async () => {
    const { box, sender } = outbox({ messages: 3, bytes: 65536 });
    for (let i = 0; i < 8; i++) box.sendNow('a', compact(`m${i}`));
    // The first full batch goes at once; what follows waits until ZeroMQ has said it took it.
    expect(sender.sends).to.deep.equal([['m0', 'm1', 'm2']]);
    const deadline = Date.now() + 2000;
    while (sender.delivered.flat().length < 8 && Date.now() < deadline) await nextTurn();
    expect(sender.delivered.flat()).to.deep.equal(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
    expect(sender.delivered[1]).to.deep.equal(['m3', 'm4', 'm5']);
    for (const sent of sender.delivered) expect(sent.length).to.be.at.most(3);
    box.close();
  });

  it('a batch is split at the byte bound; a message larger than the bound leaves alone', async () => {
    const { box, sender } = outbox({ messages: 128, bytes: 40 });
    for (const label of ['first', 'aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc', 'x'.repeat(40), 'dddddddddd']) box.sendNow('a', compact(label));
    await nextTurn();
    expect(sender.sends).to.deep.equal([['first', 'aaaaaaaaaa', 'bbbbbbbbbb'], ['cccccccccc'], ['x'.repeat(40)], ['dddddddddd']]);
    expect(sender.batched).to.deep.equal([true, false, false, false]);
    // The bound is the whole frame: marker and lengths count (1 + 3 x 4 + 25 bytes here).
    expect(1 + 3 * 4 + 25).to.be.at.most(40);
    box.close();
  });

  it('a message that cannot be batched (v1) sends what is held first: order is kept', async () => {
    const { box, sender } = outbox();
    box.sendNow('a', compact('c0'));
    box.sendNow('a', compact('c1'));
    box.sendNow('a', compact('c2'));
    box.sendNow('a', v1('plain'));
    box.sendNow('a', compact('c3'));
    await nextTurn();
    expect(sender.sends).to.deep.equal([['c0', 'c1', 'c2'], ['v1:plain'], ['c3']]);
    box.close();
  });

  it('each message of a batch hears that it was sent, or the error that stopped the batch', async () => {
    const { box, sender } = outbox();
    const log: string[] = [];
    box.sendNow('a', compact('m0'), recorder(log, 'm0'));
    box.sendNow('a', compact('m1'), recorder(log, 'm1'));
    await nextTurn();
    expect(log).to.deep.equal(['sent m0', 'sent m1']);
    log.length = 0;
    box.sendNow('a', compact('n0'), recorder(log, 'n0'));
    box.sendNow('a', compact('n1'), recorder(log, 'n1'));
    sender.fail = { code: 'EHOSTUNREACH' }; // the peer left before the batch went
    await nextTurn();
    expect(log).to.deep.equal(['error n0: EHOSTUNREACH', 'error n1: EHOSTUNREACH']);
    box.close();
  });

  it('a batch that meets a full pipe (EAGAIN) is queued message by message and sent in order after it drains', async () => {
    const { box, sender } = outbox();
    const log: string[] = [];
    for (const label of ['m0', 'm1', 'm2']) box.sendNow('a', compact(label), recorder(log, label));
    sender.fail = { code: 'EAGAIN' };
    await nextTurn();
    expect(box.queuedMessages, 'the batch waits as its messages, each counted').to.equal(3);
    sender.fail = undefined;
    box.sendNow('a', compact('m3'), recorder(log, 'm3')); // goes behind the queued batch
    const deadline = Date.now() + 2000;
    while (log.length < 4 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(log).to.deep.equal(['sent m0', 'sent m1', 'sent m2', 'sent m3']);
    expect(sender.delivered).to.deep.equal([['m0'], ['m1'], ['m2'], ['m3']]);
    box.close();
  });

  it('under a full pipe each message of a batch meets the queue limit as it would alone: a call is exempt, an answer is not', async () => {
    const sender = new RecordingSender();
    const box = new Outbox(sender, { messages: 1, bytes: Infinity, totalBytes: Infinity }, { messages: 128, bytes: 65536 });
    const log: string[] = [];
    box.sendNow('a', compact('w0'), recorder(log, 'w0'));
    sender.fail = { code: 'EAGAIN' };
    await nextTurn(); // w0 waits in the queue: it is full now
    box.sendNow('a', compact('answer'), recorder(log, 'answer'));
    box.sendNow('a', compact('call'), recorder(log, 'call', { exempt: true }));
    await nextTurn();
    expect(log).to.deep.equal(['error answer: QueueFullError']);
    sender.fail = undefined;
    const deadline = Date.now() + 2000;
    while (log.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(log).to.deep.equal(['error answer: QueueFullError', 'sent w0', 'sent call']);
    box.close();
  });

  it('a lone message already stale when it would leave is not sent', async () => {
    const { box, sender } = outbox();
    box.sendNow('a', compact('settled'), { stale: () => true });
    await nextTurn();
    expect(sender.sends).to.deep.equal([]);
    box.close();
  });

  it('flushHeld() sends what is held at once (before a message that bypasses the outbox)', () => {
    const { box, sender } = outbox();
    box.sendNow('a', compact('m0'));
    box.sendNow('a', compact('m1'));
    box.flushHeld();
    expect(sender.sends).to.deep.equal([['m0', 'm1']]);
    box.close();
  });

  it('messages already stale when the batch leaves are left out of it', async () => {
    const { box, sender } = outbox();
    box.sendNow('a', compact('m0'));
    box.sendNow('a', compact('m1'), { stale: () => true });
    box.sendNow('a', compact('m2'));
    box.sendNow('a', compact('m3'), { stale: () => true });
    box.sendNow('a', compact('m4'));
    await nextTurn();
    expect(sender.sends).to.deep.equal([['m0', 'm2', 'm4']]);
    box.close();
  });

  it('drop() forgets what a connection holds; close() sends nothing more', async () => {
    const { box, sender } = outbox();
    box.sendNow('gone', compact('g0'));
    box.sendNow('gone', compact('g1'));
    box.sendNow('stays', compact('s0'));
    box.sendNow('stays', compact('s1'));
    box.drop('gone');
    await nextTurn();
    expect(sender.sends).to.deep.equal([['s0', 's1']]);
    box.sendNow('stays', compact('s2'));
    box.close();
    await nextTurn();
    expect(sender.sends).to.deep.equal([['s0', 's1']]);
  });

  it('batch: false sends every message alone, in order', async () => {
    const { box, sender } = outbox(false);
    for (let i = 0; i < 3; i++) box.sendNow('a', compact(`m${i}`));
    const deadline = Date.now() + 2000;
    while (sender.delivered.length < 3 && Date.now() < deadline) await nextTurn();
    expect(sender.delivered).to.deep.equal([['m0'], ['m1'], ['m2']]);
    expect(sender.batched).to.deep.equal([false, false, false]);
    box.close();
  });
});

describe('batch framing', () => {
  const routing = Buffer.from('r');

  it('encodeBatch and decodeFrames round-trip packets of any size within a batch\'s bound, in order', () => {
    const packets = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(60_000, 7), Buffer.from('last')];
    const bytes = packets.reduce((n, p) => n + p.length, 0);
    const batch = encodeBatch(packets, bytes);
    expect(batch[0]).to.equal(BATCH_MARKER);
    expect(isBatch([routing, batch])).to.equal(true);
    const inbound = decodeFrames([routing, batch], context);
    expect(inbound.kind).to.equal('batch');
    if (inbound.kind !== 'batch') return;
    expect(inbound.routingId.equals(routing)).to.equal(true);
    expect(batchPackets(inbound).map((p) => p.length)).to.deep.equal([1, 0, 60_000, 4]);
    expect(batchPackets(inbound).every((p, i) => p.equals(packets[i]!))).to.equal(true);
  });

  it('a batch frame over MAX_BATCH_BYTES is refused whole (no sender makes one; its packets are read in the frame)', () => {
    const packets = [Buffer.from('a'), Buffer.alloc(MAX_BATCH_BYTES, 7)];
    const inbound = decodeFrames([routing, encodeBatch(packets, 1 + MAX_BATCH_BYTES)], context);
    expect(inbound.kind).to.equal('malformed');
    if (inbound.kind !== 'malformed') return;
    expect(inbound.error.message).to.equal(`a batch of ${batchBytes(2, 1 + MAX_BATCH_BYTES)} bytes, over ${MAX_BATCH_BYTES}`);
  });

  it('a v1 message and a compact packet are never taken for a batch', () => {
    expect(isBatch([routing, Buffer.from([0x93, 1, 2, 3])])).to.equal(false);
    expect(isBatch([routing, Buffer.alloc(0)])).to.equal(false);
    expect(isBatch([routing, Buffer.alloc(0), Buffer.from('v1'), Buffer.alloc(0), Buffer.from([1]), Buffer.from([0xc1])])).to.equal(false);
  });

  const malformed: Array<[string, Buffer, RegExp]> = [
    ['the marker alone', Buffer.from([0xc1]), /empty batch/],
    ['a length cut short', Buffer.from([0xc1, 0, 0]), /cut short in a length/],
    ['a length past the end', Buffer.from([0xc1, 0, 0, 0, 9, 1, 2]), /cut short in a message/],
    ['a second packet cut short', Buffer.concat([encodeBatch([Buffer.from('ok')], 2), Buffer.from([0, 0, 1, 0])]), /cut short in a message/],
    [`more than ${MAX_BATCH_PACKETS} packets`, encodeBatch(Array.from({ length: MAX_BATCH_PACKETS + 1 }, () => Buffer.from('x')), MAX_BATCH_PACKETS + 1), /more than 256/],
  ];
  for (const [label, batch, message] of malformed) {
    it(`a batch with ${label} is malformed as a whole (ProtocolError), with nowhere to answer`, () => {
      const inbound = decodeFrames([routing, batch], context);
      expect(inbound.kind).to.equal('malformed');
      if (inbound.kind !== 'malformed') return;
      expect(inbound.error).to.be.instanceOf(ProtocolError);
      expect(inbound.error.message).to.match(message);
      expect(inbound.replyTo).to.equal(undefined);
    });
  }
});
