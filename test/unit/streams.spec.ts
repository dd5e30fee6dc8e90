import { expect } from 'chai';
import { CallStream, StreamProducer, collect, isAsyncIterable } from '../../lib/engine/streams.js';
import { ProtocolError, TimeoutError } from '../../lib/index.js';

function consumer(window = { items: 4, bytes: 1000 }, itemTimeoutMs = 1000): { stream: CallStream<number>; credits: Array<[number, number]>; cancels: Error[] } {
  const credits: Array<[number, number]> = [];
  const cancels: Error[] = [];
  const stream = new CallStream<number>('t', window, itemTimeoutMs, { credit: (i, b) => credits.push([i, b]), cancel: (e) => cancels.push(e) });
  return { stream, credits, cancels };
}

describe('streams (unit)', () => {
  describe('CallStream', () => {
    it('delivers buffered items, then the end; gives credit back once half the window is consumed', async () => {
      const { stream, credits } = consumer();
      for (let i = 0; i < 4; i++) stream.push(i, 10);
      stream.end();
      const got: number[] = [];
      for await (const item of stream) got.push(item);
      expect(got).to.deep.equal([0, 1, 2, 3]);
      expect(credits).to.deep.equal([]); // ended: no credit needed after the end
      const live = consumer();
      live.stream.push(0, 10);
      live.stream.push(1, 10);
      await live.stream.next();
      expect(live.credits).to.deep.equal([]);
      await live.stream.next();
      expect(live.credits).to.deep.equal([[2, 20]]);
    });

    it('an error ends the stream after the items before it', async () => {
      const { stream } = consumer();
      stream.push(1, 1);
      stream.end(new RangeError('bad'));
      expect(await stream.next()).to.deep.equal({ done: false, value: 1 });
      const error = await stream.next().catch((e: unknown) => e);
      expect(error).to.be.instanceOf(RangeError);
      expect(await stream.next()).to.deep.equal({ done: true, value: undefined });
    });

    it('a producer that sends past the window is refused with ProtocolError (and stopped)', async () => {
      const { stream, cancels } = consumer({ items: 2, bytes: 1000 });
      stream.push(0, 1);
      stream.push(1, 1);
      stream.push(2, 1);
      expect(cancels[0]).to.be.instanceOf(ProtocolError);
      expect(await stream.next().catch((e: unknown) => e)).to.be.instanceOf(ProtocolError);
    });

    it('cancel() drops what is buffered and stops the producer once; return() does the same', async () => {
      const { stream, cancels } = consumer();
      stream.push(0, 1);
      await stream.cancel('enough');
      await stream.cancel();
      expect(cancels.map((e) => e.message)).to.deep.equal(['enough']);
      expect(await stream.next()).to.deep.equal({ done: true, value: undefined });
    });

    it('the wait for the next item is bounded: TimeoutError, and the producer is stopped', async () => {
      const { stream, cancels } = consumer(undefined, 20);
      const error = await stream.next().catch((e: unknown) => e);
      expect(error).to.be.instanceOf(TimeoutError);
      expect(cancels[0]).to.be.instanceOf(TimeoutError);
    });
  });

  describe('StreamProducer', () => {
    it('never pulls past the window; credit lets it pull more; return() runs at stop', async () => {
      let pulled = 0;
      let finished = false;
      const sent: number[] = [];
      const source = (async function* () {
        try {
          for (let i = 0; ; i++) {
            pulled++;
            yield i;
          }
        } finally {
          finished = true;
        }
      })();
      const ends: unknown[] = [];
      const producer = new StreamProducer(source, { items: 3, bytes: 1000 }, {
        item: (value) => {
          sent.push(value as number);
          return 10;
        },
        end: (error) => ends.push(error),
        finished: () => {},
        returnFailed: () => {},
      });
      producer.start();
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(sent).to.deep.equal([0, 1, 2]);
      expect(pulled).to.equal(3);
      producer.credit(2, 20);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(sent).to.deep.equal([0, 1, 2, 3, 4]);
      producer.stop();
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(finished).to.equal(true);
      expect(ends).to.deep.equal([]); // a quiet stop (cancel) sends no end
    });

    it('the byte window: pulls stop once the bytes sent reach it', async () => {
      const sent: number[] = [];
      const source = (async function* () {
        for (let i = 0; i < 100; i++) yield i;
      })();
      const producer = new StreamProducer(source, { items: 100, bytes: 250 }, {
        item: (value) => {
          sent.push(value as number);
          return 100;
        },
        end: () => {},
        finished: () => {},
        returnFailed: () => {},
      });
      producer.start();
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(sent).to.deep.equal([0, 1, 2]);
      expect(producer.outstanding).to.deep.equal({ items: 3, bytes: 300 });
    });
  });

  it('collect gathers a bounded list, stopping the iterator past the limit', async () => {
    let finished = false;
    const source = async function* (): AsyncGenerator<string> {
      try {
        for (let i = 0; i < 1000; i++) yield 'x'.repeat(100);
      } finally {
        finished = true;
      }
    };
    expect(await collect((async function* () { yield 1; yield 2; })(), 100, () => 1, () => new Error('over'))).to.deep.equal([1, 2]);
    const error = await collect(source(), 1000, (v) => (v as string).length, (bytes) => new Error(`over at ${bytes}`)).catch((e: unknown) => e);
    expect((error as Error).message).to.equal('over at 1100');
    expect(finished).to.equal(true);
    expect(isAsyncIterable(source())).to.equal(true);
    expect(isAsyncIterable([1])).to.equal(false);
  });
});
