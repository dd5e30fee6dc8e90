/**
 * Outbox.idle(key): whether a message handed straight to the socket now (a heartbeat) could
 * overtake one of the outbox's. Over the Sender seam, a sender that keeps each send in flight
 * until the test lets it go.
 */
import { expect } from 'chai';
import { Outbox, type Sender } from '../../lib/transport/outbox.js';

class HoldingSender implements Sender {
  readonly #held: Array<() => void> = [];

  send(): Promise<void> {
    return new Promise((resolve) => this.#held.push(resolve));
  }

  get inFlight(): number {
    return this.#held.length;
  }

  /** Lets every send in flight complete. */
  releaseAll(): void {
    for (const release of this.#held.splice(0)) release();
  }
}

const frames = (label: string): Buffer[] => [Buffer.from('peer'), Buffer.from(label)];
const limits = { messages: 10, bytes: Infinity, totalBytes: Infinity };

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
  expect(condition(), what).to.equal(true);
}

describe('Outbox.idle', () => {
  it('is true with nothing sent; false while a direct send has not settled or messages are queued; true again once all settled', async () => {
    const sender = new HoldingSender();
    const outbox = new Outbox(sender, limits);
    expect(outbox.idle('a')).to.equal(true);
    outbox.sendNow('a', frames('m1'));
    expect(outbox.idle('a'), 'a direct send in flight').to.equal(false);
    expect(outbox.idle('b'), 'another connection').to.equal(true);
    outbox.sendNow('a', frames('m2')); // waits behind m1: queued
    sender.releaseAll();
    await until(() => sender.inFlight === 1, 'm2 handed over');
    expect(outbox.idle('a'), 'm2 in flight').to.equal(false);
    sender.releaseAll();
    await until(() => outbox.idle('a'), 'idle once everything settled');
  });

  it('is false while a compact message is held for a batch, true once the batch has left and settled', async () => {
    const sender = new HoldingSender();
    const outbox = new Outbox(sender, limits, { messages: 16, bytes: 65536 });
    outbox.sendNow('a', frames('m1'));
    expect(outbox.idle('a'), 'held until the microtasks run dry').to.equal(false);
    await until(() => sender.inFlight === 1, 'the batch of one left');
    expect(outbox.idle('a'), 'its send in flight').to.equal(false);
    sender.releaseAll();
    await until(() => outbox.idle('a'), 'idle after the flush settled');
  });

  it('is false once closed', () => {
    const outbox = new Outbox(new HoldingSender(), limits);
    outbox.close();
    expect(outbox.idle('a')).to.equal(false);
  });
});
