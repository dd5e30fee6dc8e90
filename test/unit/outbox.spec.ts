/**
 * The Outbox alone, over its own seam: a Sender is anything with `send(frames): Promise<void>`.
 * A scripted sender plays the socket (full pipe = EAGAIN, no route = EHOSTUNREACH, or a send that
 * stays in flight until the test lets it go).
 */
import { expect } from 'chai';
import { Outbox, QueueFullError, type OutboxLimits, type OutgoingHooks, type Sender } from '../../lib/transport/outbox.js';

/** A message limit, and byte limits that never bind (the byte limits have tests of their own). */
function limits(messages: number, bytes = Infinity, totalBytes = Infinity): OutboxLimits {
  return { messages, bytes, totalBytes };
}

type Outcome = 'ok' | 'EAGAIN' | 'EHOSTUNREACH' | 'hold';

/** A sender that answers each attempt as scripted (then 'ok'), and records every attempt. */
class ScriptedSender implements Sender {
  readonly attempts: string[] = [];
  readonly delivered: string[] = [];
  readonly #script: Outcome[];
  readonly #held: Array<() => void> = [];

  constructor(script: Outcome[] = []) {
    this.#script = [...script];
  }

  send(frames: Buffer[]): Promise<void> {
    const label = frames[1]!.toString();
    this.attempts.push(label);
    const outcome = this.#script.shift() ?? 'ok';
    if (outcome === 'ok') {
      this.delivered.push(label);
      return Promise.resolve();
    }
    if (outcome === 'hold') {
      return new Promise((resolve) => this.#held.push(() => {
        this.delivered.push(label);
        resolve();
      }));
    }
    return Promise.reject(Object.assign(new Error(outcome), { code: outcome }));
  }

  /** Lets the oldest held send complete. */
  release(): void {
    this.#held.shift()?.();
  }

  get holding(): number {
    return this.#held.length;
  }
}

const frames = (label: string): Buffer[] => [Buffer.from('peer'), Buffer.from(label)];

/** Hooks that record what the outbox said about one message. */
function hooks(log: string[], label: string, extra: Partial<OutgoingHooks> = {}): OutgoingHooks {
  return {
    onSent: () => log.push(`sent ${label}`),
    onError: (error) => log.push(`error ${label}: ${error instanceof QueueFullError ? 'QueueFullError' : (error as { code?: string }).code ?? error.message}`),
    ...extra,
  };
}

/** Waits (polling) until `condition` holds; fails after 2 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
  expect(condition(), what).to.equal(true);
}

describe('Outbox', () => {
  it('sendNow hands frames to the sender at once when nothing waits', async () => {
    const sender = new ScriptedSender();
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.sendNow('a', frames('m1'), hooks(log, 'm1'));
    expect(sender.attempts).to.deep.equal(['m1']);
    await until(() => log.length === 1, 'onSent');
    expect(log).to.deep.equal(['sent m1']);
  });

  it('a full pipe (EAGAIN) is retried, and what came after it waits its turn: order is kept', async () => {
    const sender = new ScriptedSender(['EAGAIN', 'EAGAIN', 'EAGAIN']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.sendNow('a', frames('m1'), hooks(log, 'm1'));
    await until(() => sender.attempts.length >= 2, 'the retry');
    outbox.sendNow('a', frames('m2'), hooks(log, 'm2'));
    outbox.send('a', frames('m3'), hooks(log, 'm3'));
    await until(() => log.length === 3, 'all three sent');
    expect(sender.delivered).to.deep.equal(['m1', 'm2', 'm3']);
    expect(log).to.deep.equal(['sent m1', 'sent m2', 'sent m3']);
    expect(sender.attempts.filter((label) => label === 'm1')).to.have.length(4);
  });

  it('a message sent right after one that meets a full pipe does not overtake it (the EAGAIN comes a microtask later)', async () => {
    const sender = new ScriptedSender(['EAGAIN']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.sendNow('a', frames('m1'), hooks(log, 'm1'));
    outbox.sendNow('a', frames('m2'), hooks(log, 'm2'));
    outbox.sendNow('a', frames('m3'), hooks(log, 'm3'));
    await until(() => log.length === 3, 'all three sent');
    expect(sender.delivered).to.deep.equal(['m1', 'm2', 'm3']);
    expect(log).to.deep.equal(['sent m1', 'sent m2', 'sent m3']);
  });

  it('a connection whose pipe is full does not hold up another connection', async () => {
    const sender = new ScriptedSender(['hold']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.send('slow', frames('s1'), hooks(log, 's1'));
    outbox.send('slow', frames('s2'), hooks(log, 's2'));
    outbox.send('fast', frames('f1'), hooks(log, 'f1'));
    await until(() => log.includes('sent f1'), 'the other connection');
    expect(log).to.deep.equal(['sent f1']);
    sender.release();
    await until(() => log.length === 3, 'the slow connection');
    expect(log).to.deep.equal(['sent f1', 'sent s1', 'sent s2']);
  });

  it('past `limit` waiting messages a send fails at once with QueueFullError; others still go', async () => {
    const sender = new ScriptedSender(['hold']);
    const outbox = new Outbox(sender, limits(2));
    const log: string[] = [];
    outbox.send('a', frames('m1'), hooks(log, 'm1')); // in flight (held), still counts
    outbox.send('a', frames('m2'), hooks(log, 'm2'));
    outbox.send('a', frames('m3'), hooks(log, 'm3'));
    expect(log).to.deep.equal(['error m3: QueueFullError']);
    outbox.send('b', frames('b1'), hooks(log, 'b1')); // another connection has its own queue
    sender.release();
    await until(() => log.length === 4, 'the rest');
    expect(sender.delivered).to.deep.equal(['b1', 'm1', 'm2']);
  });

  it('a QueueFullError says which limit and why', () => {
    const error = new QueueFullError('7 messages');
    expect(error).to.be.instanceOf(Error);
    expect(error.name).to.equal('QueueFullError');
    expect(error.message).to.contain('(7 messages)');
  });

  it('exempt messages (calls, bounded elsewhere) are queued past the limit', async () => {
    const sender = new ScriptedSender(['hold']);
    const outbox = new Outbox(sender, limits(1));
    const log: string[] = [];
    outbox.send('a', frames('m1'), hooks(log, 'm1'));
    outbox.send('a', frames('call1'), hooks(log, 'call1', { exempt: true }));
    outbox.send('a', frames('call2'), hooks(log, 'call2', { exempt: true }));
    outbox.send('a', frames('m2'), hooks(log, 'm2'));
    expect(log).to.deep.equal(['error m2: QueueFullError']);
    sender.release();
    await until(() => log.length === 4, 'the calls');
    expect(sender.delivered).to.deep.equal(['m1', 'call1', 'call2']);
  });

  it('a stale message (its call settled meanwhile) is skipped, never sent', async () => {
    const sender = new ScriptedSender(['hold']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    let settled = false;
    outbox.send('a', frames('m1'), hooks(log, 'm1'));
    outbox.send('a', frames('call'), hooks(log, 'call', { stale: () => settled }));
    outbox.send('a', frames('m2'), hooks(log, 'm2'));
    settled = true;
    sender.release();
    await until(() => log.length === 2, 'the rest');
    expect(sender.attempts).to.deep.equal(['m1', 'm2']);
    expect(log).to.deep.equal(['sent m1', 'sent m2']);
  });

  it('another failure than EAGAIN goes to that message\'s onError, and the queue moves on', async () => {
    const sender = new ScriptedSender(['hold', 'EHOSTUNREACH']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.send('a', frames('m1'), hooks(log, 'm1'));
    outbox.send('a', frames('m2'), hooks(log, 'm2'));
    outbox.send('a', frames('m3'), hooks(log, 'm3'));
    sender.release();
    await until(() => log.length === 3, 'all three settled');
    expect(log).to.deep.equal(['sent m1', 'error m2: EHOSTUNREACH', 'sent m3']);
    expect(sender.attempts).to.deep.equal(['m1', 'm2', 'm3']);
  });

  it('hooks that are methods of a class, as a call\'s are, are heard in the queue: a stale one is skipped, a failure is told', async () => {
    // A PendingCall is its own hooks: stale() and onError() live on its prototype, which a copy of
    // its own properties would lose (the call would be sent after it settled, or wait for its timeout).
    class Call implements OutgoingHooks {
      readonly exempt = true;
      settled = false;
      constructor(readonly log: string[], readonly label: string) {}
      stale(): boolean {
        return this.settled;
      }
      onError(error: Error): void {
        this.log.push(`error ${this.label}: ${(error as { code?: string }).code}`);
      }
    }
    const sender = new ScriptedSender(['hold', 'ok', 'EHOSTUNREACH']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    const settled = new Call(log, 'settled');
    outbox.send('a', frames('m1'), hooks(log, 'm1'));
    outbox.send('a', frames('settled'), settled);
    outbox.send('a', frames('m2'), hooks(log, 'm2'));
    outbox.send('a', frames('lost'), new Call(log, 'lost'));
    settled.settled = true;
    sender.release();
    await until(() => log.length === 3, 'all of them heard of');
    expect(sender.attempts, 'the settled call is never sent').to.deep.equal(['m1', 'm2', 'lost']);
    expect(log).to.deep.equal(['sent m1', 'sent m2', 'error lost: EHOSTUNREACH']);
  });

  it('keeps a connection\'s entry from one send to the next, but not for good: keys no longer in use are swept', async () => {
    const sender = new ScriptedSender();
    let now = 0;
    const outbox = new Outbox(sender, limits(10), { messages: 64, bytes: 65_536 }, { sweepMs: 100, now: () => now });
    // Connections that each send once and are gone, 100 a tick (no drop: as if nobody said they
    // left), while one connection sends every tick.
    for (let tick = 0; tick < 50; tick++) {
      for (let i = tick * 100; i < (tick + 1) * 100; i++) outbox.sendNow(`peer-${i}`, [Buffer.from(`peer-${i}`), Buffer.from('x')]);
      outbox.sendNow('steady', [Buffer.from('steady'), Buffer.from(String(tick))]);
      outbox.flushHeld();
      await new Promise((resolve) => setImmediate(resolve));
      now += 10;
    }
    expect(sender.delivered).to.have.length(5050);
    expect(outbox.keysKept, 'the last two intervals\' keys at most (1,000 each), and the steady one').to.be.at.most(2001);
    const kept = outbox.keysKept;
    outbox.sendNow('steady', [Buffer.from('steady'), Buffer.from('again')]);
    outbox.flushHeld();
    expect(outbox.keysKept, 'the same connection again: no new entry').to.equal(kept);
    outbox.drop('steady');
    await new Promise((resolve) => setImmediate(resolve));
    outbox.drop('steady'); // its last send has settled now: the entry goes
    expect(outbox.keysKept).to.equal(kept - 1);
  });

  it('a connection whose queue waits is never swept, however many sweeps pass: what it sends next waits its turn', async () => {
    const sender = new ScriptedSender(['hold']);
    let now = 0;
    const outbox = new Outbox(sender, limits(10), false, { sweepMs: 100, now: () => now });
    const log: string[] = [];
    outbox.send('a', frames('a1'), hooks(log, 'a1')); // in flight, held: the peer does not read
    outbox.send('a', frames('a2'), hooks(log, 'a2'));
    for (let sweep = 0; sweep < 3; sweep++) {
      now += 100;
      outbox.sendNow(`other-${sweep}`, [Buffer.from(`other-${sweep}`), Buffer.from('o')]); // a new key: a sweep runs
      await new Promise((resolve) => setImmediate(resolve));
    }
    outbox.sendNow('a', frames('a3'), hooks(log, 'a3'));
    expect(outbox.queuedMessages, 'a3 waits behind a1 and a2').to.equal(3);
    sender.release();
    await until(() => log.length === 3, 'all three');
    expect(log).to.deep.equal(['sent a1', 'sent a2', 'sent a3']);
    expect(sender.attempts.filter((label) => label.startsWith('a'))).to.deep.equal(['a1', 'a2', 'a3']);
  });

  it('drop while the head of the queue is in flight, then a new connection with the key: its message is sent, not taken for the old one', async () => {
    const sender = new ScriptedSender(['hold']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.send('k', frames('old1'), hooks(log, 'old1'));
    outbox.send('k', frames('old2'), hooks(log, 'old2'));
    outbox.drop('k'); // the connection went; old1 is in flight
    outbox.send('k', frames('new1'), hooks(log, 'new1')); // a new connection with the same key
    sender.release();
    await until(() => log.includes('sent new1'), 'the new connection\'s message');
    expect(sender.attempts).to.deep.equal(['old1', 'new1']);
    expect(outbox.queuedMessages).to.equal(0);
    expect(outbox.queuedBytes).to.equal(0);
  });

  it('a direct send that meets a full pipe after its connection was dropped is not queued for a new connection with the key', async () => {
    const sender = new ScriptedSender(['EAGAIN']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.sendNow('k', frames('old'), hooks(log, 'old')); // its EAGAIN comes a microtask later
    outbox.drop('k');
    await until(() => log.length === 1, 'the old message\'s end');
    expect(log).to.deep.equal(['error old: EAGAIN']);
    outbox.sendNow('k', frames('new'), hooks(log, 'new'));
    await until(() => log.length === 2, 'the new message');
    expect(sender.attempts).to.deep.equal(['old', 'new']);
    expect(sender.delivered).to.deep.equal(['new']);
  });

  it('sendNow reports a failure other than EAGAIN without queueing', async () => {
    const sender = new ScriptedSender(['EHOSTUNREACH']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.sendNow('a', frames('m1'), hooks(log, 'm1'));
    await until(() => log.length === 1, 'the error');
    expect(log).to.deep.equal(['error m1: EHOSTUNREACH']);
    expect(sender.attempts).to.deep.equal(['m1']);
  });

  it('drop forgets what waits for a connection (the message in flight completes)', async () => {
    const sender = new ScriptedSender(['hold']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.send('a', frames('m1'), hooks(log, 'm1'));
    outbox.send('a', frames('m2'), hooks(log, 'm2'));
    outbox.send('a', frames('m3'), hooks(log, 'm3'));
    outbox.drop('a');
    sender.release();
    await until(() => sender.holding === 0 && sender.delivered.length === 1, 'the held send');
    await new Promise((resolve) => setImmediate(resolve));
    expect(sender.attempts).to.deep.equal(['m1']);
    // The queue is gone: a new message goes straight through.
    outbox.sendNow('a', frames('m4'), hooks(log, 'm4'));
    await until(() => log.includes('sent m4'), 'a new message');
    expect(sender.delivered).to.deep.equal(['m1', 'm4']);
  });

  it('past the bytes of one connection, or of all, a send fails with QueueFullError naming the limit', async () => {
    const sender = new ScriptedSender(['hold', 'hold']); // the head of each queue stays in flight
    const log: string[] = [];
    const errors: string[] = [];
    const outbox = new Outbox(sender, limits(100, 10, 15));
    const frames = (n: number): Buffer[] => [Buffer.alloc(0), Buffer.alloc(n)];
    const hooks = (label: string): OutgoingHooks => ({ onSent: () => log.push(label), onError: (error) => errors.push(`${label}: ${error.message}`) });
    outbox.send('a', frames(6), hooks('a1'));
    outbox.send('a', frames(6), hooks('a2')); // 12 > 10 for connection a
    outbox.send('b', frames(8), hooks('b1')); // 6 + 8 = 14 <= 15 in all
    outbox.send('b', frames(2), hooks('b2')); // 16 > 15 in all
    expect(errors).to.deep.equal([
      'a2: the send queue is full (10 bytes for this connection): the peer does not read',
      'b2: the send queue is full (15 bytes in all): the peer does not read',
    ]);
    expect(outbox.queuedBytes).to.equal(14);
    outbox.drop('a');
    expect(outbox.queuedBytes, 'a dropped queue gives its bytes back').to.equal(8);
    outbox.close();
    expect(outbox.queuedBytes).to.equal(0);
  });

  it('drop of an unknown connection is a no-op', () => {
    const outbox = new Outbox(new ScriptedSender(), limits(10));
    expect(() => outbox.drop('nobody')).to.not.throw();
  });

  it('drained resolves once every queue is empty', async () => {
    const sender = new ScriptedSender(['hold']);
    const outbox = new Outbox(sender, limits(10));
    outbox.send('a', frames('m1'));
    outbox.send('a', frames('m2'));
    let drained = false;
    const done = outbox.drained(5000).then(() => {
      drained = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(drained).to.equal(false);
    sender.release();
    await done;
    expect(sender.delivered).to.deep.equal(['m1', 'm2']);
  });

  it('after close nothing is sent, and what waited is dropped', async () => {
    const sender = new ScriptedSender(['hold']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.send('a', frames('m1'), hooks(log, 'm1'));
    outbox.send('a', frames('m2'), hooks(log, 'm2'));
    outbox.close();
    outbox.send('a', frames('m3'), hooks(log, 'm3'));
    outbox.sendNow('b', frames('b1'), hooks(log, 'b1'));
    sender.release();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(sender.attempts).to.deep.equal(['m1']);
    await outbox.drained(); // resolves at once when closed
  });

  it('EAGAIN after close is not retried', async () => {
    const sender = new ScriptedSender(['EAGAIN']);
    const outbox = new Outbox(sender, limits(10));
    const log: string[] = [];
    outbox.send('a', frames('m1'), hooks(log, 'm1'));
    outbox.close();
    await until(() => log.length === 1, 'the failure');
    expect(log).to.deep.equal(['error m1: EAGAIN']);
    expect(sender.attempts).to.deep.equal(['m1']);
  });
});
