/**
 * Batching through real sockets: messages to one peer made together leave as one ZeroMQ
 * message and are read in order as if each had come alone. A raw compact peer sees the frames
 * themselves; v1 peers never see a batch; a bad packet in a batch is answered alone; a malformed
 * batch changes nothing; a peer that leaves with a batch in flight costs nothing.
 * Correctness only: what batching buys is measured in `npm run bench`.
 */
import { expect } from 'chai';
import { decode, encode } from 'msgpackr';
import { MessageType as T, MsgpackCodec, Server } from '../lib/index.js';
import { batchPackets, decodeFrames, encodeBatch } from '../lib/wire/framing.js';
import { MessageIds } from '../lib/wire/message-ids.js';
import { cleanup, RawPeer, recordingLogger, rejection, sleep, startClient, startServer, track, until, uuidBytes } from './helpers.js';

const context = { codec: new MsgpackCodec(), ids: new MessageIds(), maxMessageBytes: 1 << 24 };

/** The compact packets one receive carried (a batch: several), decoded as [type, id, body]. */
function packetsOf(frames: Buffer[]): Array<[number, number, unknown]> {
  expect(frames, 'compact framing: one frame after the routing id').to.have.length(1);
  const inbound = decodeFrames([Buffer.from('s'), frames[0]!], context);
  const packets = inbound.kind === 'batch' ? batchPackets(inbound) : [frames[0]!];
  return packets.map((packet) => decode(packet) as [number, number, unknown]);
}

/** Reads from the raw peer until `count` compact answers came; returns them and the receives that carried them. */
async function answers(raw: RawPeer, count: number): Promise<{ packets: Array<[number, number, unknown]>; receives: number[] }> {
  const packets: Array<[number, number, unknown]> = [];
  const receives: number[] = [];
  while (packets.length < count) {
    const carried = packetsOf(await raw.next(5000));
    receives.push(carried.length);
    packets.push(...carried);
  }
  return { packets, receives };
}

const work = (id: number, value: unknown, method = 'echo'): Buffer => encode([T.WORK, id, [method, [value]]]);

async function rawPeer(server: Server): Promise<RawPeer> {
  const raw = new RawPeer(server.id, { routingId: `raw-${Math.random().toString(36).slice(2)}` });
  await raw.connect(server.endpoint);
  return raw;
}

describe('batching', () => {
  afterEach(cleanup);

  it('a batch of calls is run in order, and the answers made together come back batched, in order', async () => {
    const server = await startServer();
    const order: number[] = [];
    server.registerRpc('echo', (n: number) => {
      order.push(n);
      return n * 10;
    });
    const raw = await rawPeer(server);
    const calls = Array.from({ length: 20 }, (_, i) => work(i + 1, i + 1));
    await raw.sendFrames(encodeBatch(calls, calls.reduce((n, c) => n + c.length, 0)));
    const { packets, receives } = await answers(raw, 20);
    expect(order).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(packets.map(([type, id, body]) => [type, id, body])).to.deep.equal(Array.from({ length: 20 }, (_, i) => [T.OK, i + 1, (i + 1) * 10]));
    expect(receives.length, `answers in ${receives.length} receives: ${receives.join(', ')}`).to.be.below(20);
    expect(server.stats().messagesIn, 'a batch counts as the messages it carries').to.be.at.least(20);
  });

  it('a bad packet in a batch is answered on its own; the others run as if it were not there', async () => {
    const logger = recordingLogger();
    const server = await startServer({ logger });
    server.registerRpc('echo', (value: unknown) => value);
    const raw = await rawPeer(server);
    const bad = encode([T.WORK, 2, 'not a work body']);
    const packets = [work(1, 'a'), bad, work(3, 'c')];
    await raw.sendFrames(encodeBatch(packets, packets.reduce((n, p) => n + p.length, 0)));
    const { packets: got } = await answers(raw, 3);
    expect(got.map(([type, id]) => [type, id])).to.deep.equal([[T.OK, 1], [T.ERROR, 2], [T.OK, 3]]);
    expect((got[1]![2] as string[])[0]).to.equal('ProtocolError');
    expect(got[2]![2]).to.equal('c');
    expect(logger.entries.some((e) => /bad message/.test(e.message))).to.equal(true);
  });

  it('a malformed batch is dropped whole: no answer, logged, still serving', async () => {
    const logger = recordingLogger();
    const server = await startServer({ logger });
    server.registerRpc('echo', (value: unknown) => value);
    const raw = await rawPeer(server);
    const good = work(1, 'never run');
    const cut = encodeBatch([good], good.length).subarray(0, good.length); // the last byte is missing
    await raw.sendFrames(cut);
    await raw.sendFrames(work(2, 'after'));
    const [[type, id, body]] = packetsOf(await raw.next(5000)) as [[number, number, unknown]];
    expect([type, id, body], 'the next answer is to the next call: nothing of the cut batch ran').to.deep.equal([T.OK, 2, 'after']);
    expect(logger.entries.some((e) => /bad message: a batch cut short/.test(e.message)), logger.text()).to.equal(true);
  });

  it('answers split at the byte bound: every batch within it, every answer there, in order', async () => {
    const server = await startServer({ batch: { bytes: 2000 } });
    server.registerRpc('echo', (value: unknown) => value);
    const raw = await rawPeer(server);
    const calls = Array.from({ length: 30 }, (_, i) => work(i + 1, `${i}:`.padEnd(300, 'x')));
    await raw.sendFrames(encodeBatch(calls, calls.reduce((n, c) => n + c.length, 0)));
    const packets: Array<[number, number, unknown]> = [];
    let batches = 0;
    while (packets.length < 30) {
      const [frame] = await raw.next(5000);
      if (frame![0] === 0xc1) {
        batches++;
        expect(frame!.length, 'a batch within the byte bound (plus 4 bytes per packet, 1 marker)').to.be.at.most(2000 + 1 + 4 * 10);
      }
      packets.push(...packetsOf([frame!]));
    }
    expect(batches, 'several batches').to.be.at.least(3);
    expect(packets.map(([, id, body]) => [id, (body as string).split(':')[0]])).to.deep.equal(Array.from({ length: 30 }, (_, i) => [i + 1, String(i)]));
  });

  it('client -> server and server -> client: 300 calls made in one tick run in order and all answer', async () => {
    const server = await startServer();
    const seenByServer: number[] = [];
    server.registerRpc('note', (n: number) => {
      seenByServer.push(n);
      return 1000 - n;
    });
    const client = await startClient(server, { userId: 'batcher' } as never);
    const seenByClient: number[] = [];
    client.registerRpc('note', (n: number) => {
      seenByClient.push(n);
      return n * 2;
    });
    const up = await Promise.all(Array.from({ length: 300 }, (_, i) => client.call.note(i)));
    expect(up).to.deep.equal(Array.from({ length: 300 }, (_, i) => 1000 - i));
    expect(seenByServer).to.deep.equal(Array.from({ length: 300 }, (_, i) => i));
    const identity = server.connectedPeers()[0]!;
    const down = await Promise.all(Array.from({ length: 300 }, (_, i) => server.sendTo(identity).note(i)));
    expect(down).to.deep.equal(Array.from({ length: 300 }, (_, i) => i * 2));
    expect(seenByClient).to.deep.equal(Array.from({ length: 300 }, (_, i) => i));
  });

  it('a batch never exceeds what the receiver\'s libzmq accepts, whatever its maxMessageBytes: 32 calls of 20 KiB in one tick all answer', async () => {
    const server = await startServer({ maxMessageBytes: 64 * 1024 });
    server.registerRpc('size', (text: string) => text.length);
    const client = await startClient(server);
    const sizes = await Promise.all(Array.from({ length: 32 }, (_, i) => client.call.size('x'.repeat(20 * 1024 + i))));
    expect(sizes).to.deep.equal(Array.from({ length: 32 }, (_, i) => 20 * 1024 + i));
  });

  it('the batch option is checked: bounds every receiver accepts, nothing else', () => {
    expect(() => new Server('s', { batch: { bytes: 65537 } })).to.throw(TypeError, /batch.bytes must be at most 65536/);
    expect(() => new Server('s', { batch: { messages: 257 } })).to.throw(TypeError, /batch.messages must be a whole number from 1 to 256/);
    expect(() => new Server('s', { batch: { messages: 0 } })).to.throw(TypeError, /batch.messages/);
    expect(() => new Server('s', { batch: [] as never })).to.throw(TypeError, /options.batch must be/);
    expect(() => new Server('s', { batch: { size: 3 } as never })).to.throw(TypeError, /size/);
    for (const ok of [false, {}, { messages: 256, bytes: 65536 }] as const) {
      const server = track(new Server('s', { batch: ok }));
      expect(server.id).to.equal('s');
    }
  });

  it('batch: false on one side: it sends every message alone and still reads the other side\'s batches', async () => {
    const server = await startServer({ batch: false });
    server.registerRpc('echo', (value: unknown) => value);
    const raw = await rawPeer(server);
    const calls = Array.from({ length: 10 }, (_, i) => work(i + 1, i));
    await raw.sendFrames(encodeBatch(calls, calls.reduce((n, c) => n + c.length, 0)));
    const { packets, receives } = await answers(raw, 10);
    expect(packets.map(([, id]) => id)).to.deep.equal(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(receives).to.deep.equal(Array.from({ length: 10 }, () => 1));
  });

  it('mixed framings: a v1 peer never receives a batch while a compact peer of the same server does', async () => {
    const server = await startServer();
    server.registerRpc('echo', (value: unknown) => value);
    const compact = await rawPeer(server);
    const v1 = await rawPeer(server);
    const ids = Array.from({ length: 10 }, () => uuidBytes());
    const calls = Array.from({ length: 10 }, (_, i) => work(i + 1, i));
    await Promise.all([
      compact.sendFrames(encodeBatch(calls, calls.reduce((n, c) => n + c.length, 0))),
      ...ids.map((id, i) => v1.sendV1(id, T.WORK, ['echo', [i], {}])),
    ]);
    const { receives } = await answers(compact, 10);
    expect(receives.length).to.be.below(10);
    for (const [i, id] of ids.entries()) {
      const frames = await v1.next(5000);
      expect(frames, 'a v1 answer: five frames after the routing id').to.have.length(5);
      expect(frames[2]!.equals(id), `answer ${i} in order`).to.equal(true);
      expect(decode(frames[4]!)).to.equal(i);
    }
  });

  it('a v1 message to a compact peer waits for what is held: order is kept', async () => {
    const server = await startServer();
    server.registerRpc('echo', (value: unknown) => value);
    const raw = await rawPeer(server);
    const calls = Array.from({ length: 5 }, (_, i) => work(i + 1, i));
    const v1Id = uuidBytes();
    await raw.sendFrames(encodeBatch(calls, calls.reduce((n, c) => n + c.length, 0)));
    await raw.sendV1(v1Id, T.WORK, ['echo', ['plain'], {}]);
    const { packets } = await answers(raw, 5);
    expect(packets.map(([, id]) => id)).to.deep.equal([1, 2, 3, 4, 5]);
    const last = await raw.next(5000);
    expect(last, 'the v1 answer comes after the batch').to.have.length(5);
    expect(last[2]!.equals(v1Id)).to.equal(true);
  });

  it('a peer that leaves with a batch of answers on its way: nothing hangs, nothing stays queued, others are served', async () => {
    const server = await startServer();
    server.registerRpc('slow', async (n: number) => {
      await sleep(30);
      return n;
    });
    server.registerRpc('echo', (value: unknown) => value);
    const leaving = await rawPeer(server);
    const calls = Array.from({ length: 50 }, (_, i) => work(i + 1, i, 'slow'));
    await leaving.sendFrames(encodeBatch(calls, calls.reduce((n, c) => n + c.length, 0)));
    await until(() => server.stats().callsIn >= 50, 3000, 'the batch to arrive');
    leaving.close(); // the 50 answers are made after the peer left
    await sleep(100);
    expect(server.stats().queuedMessages, "nothing left waiting for the peer that left").to.equal(0);
    const client = await startClient(server);
    expect(await client.call.echo('still serving')).to.equal('still serving');
  });

  it('calls to a peer that goes away with a batch in flight all settle with an error', async () => {
    const server = await startServer({ heartbeat: { intervalMs: 100, timeoutMs: 400 } });
    const client = await startClient(server, { userId: 'goner', heartbeat: { intervalMs: 100, timeoutMs: 400 } } as never);
    client.registerRpc('hang', () => new Promise(() => {}));
    await until(() => server.connectedPeers().length === 1, 3000, 'the client to log in');
    const identity = server.connectedPeers()[0]!;
    const calls = Array.from({ length: 40 }, () => server.sendTo(identity, { timeoutMs: 20_000 }).hang());
    await sleep(50);
    await client.stop();
    const errors = await Promise.all(calls.map((call) => rejection(call)));
    expect(errors.map((e) => e.name).filter((name, i, all) => all.indexOf(name) === i)).to.have.length(1);
    expect(errors[0]!.name).to.not.equal('TimeoutError');
  });
});
