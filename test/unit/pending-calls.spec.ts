/**
 * The table of calls in flight, alone: deadlines kept per timeout lane with one timer, calls
 * leaving the table as they settle, the limit, rejectWhere, rejectOn and unsent. Time is a fake clock (Date.now,
 * setTimeout and clearTimeout swapped for the length of each test), so nothing depends on how
 * busy the machine is.
 */
import { expect } from 'chai';
import { PendingCall, PendingCalls, type PendingCallsOwner } from '../../lib/engine/pending-calls.js';

/** A manual clock: time moves only when a test says so, and due timers run in deadline order. */
class FakeClock {
  now = 1_000_000;
  #nextId = 1;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  readonly #saved = { now: Date.now, setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };

  install(): void {
    Date.now = () => this.now;
    globalThis.setTimeout = ((fn: () => void, ms = 0) => {
      const id = this.#nextId++;
      this.#timers.set(id, { at: this.now + Math.max(0, ms), fn });
      return id;
    }) as unknown as typeof setTimeout;
    globalThis.clearTimeout = ((id: unknown) => {
      this.#timers.delete(id as number);
    }) as typeof clearTimeout;
  }

  uninstall(): void {
    Date.now = this.#saved.now;
    globalThis.setTimeout = this.#saved.setTimeout;
    globalThis.clearTimeout = this.#saved.clearTimeout;
  }

  /** Timers armed and not yet run or cleared. */
  get armed(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, running each timer that comes due, in order. */
  tick(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.now = Math.max(this.now, next[1].at);
      next[1].fn();
    }
    this.now = end;
  }
}

/** A table whose owner rejects expired calls the way the engine does, and records what happened. */
function makeTable(limit = 100): { table: PendingCalls; expired: string[]; sendFailures: Array<[string, Error]> } {
  const expired: string[] = [];
  const sendFailures: Array<[string, Error]> = [];
  let table: PendingCalls;
  const owner: PendingCallsOwner = {
    expire(call) {
      expired.push(call.name);
      table.reject(call.id, new Error(`${call.name} timed out`));
    },
    sendFailed(call, error) {
      sendFailures.push([call.name, error]);
      table.reject(call.id, error);
    },
    cancelled(call, reason) {
      table.reject(call.id, reason as Error);
    },
  };
  table = new PendingCalls(limit, owner);
  return { table, expired, sendFailures };
}

let nextId = 1;

/** Adds a call and returns it with its promise, settled into `outcome` (no unhandled rejections). */
function addCall(table: PendingCalls, name: string, timeoutMs: number, extra: { key?: string; oneWay?: boolean; signal?: AbortSignal } = {}) {
  const call = new PendingCall(table, nextId++, extra.key ?? 'conn', name, [], undefined, undefined, undefined, timeoutMs, extra.oneWay ?? false);
  const outcome: { value?: unknown; error?: Error; settled: boolean } = { settled: false };
  const promise = new Promise<unknown>((resolve, reject) => call.bind(resolve, reject, extra.signal)).then(
    (value) => Object.assign(outcome, { value, settled: true }),
    (error: Error) => Object.assign(outcome, { error, settled: true }),
  );
  table.add(call);
  return { call, outcome, promise };
}

/** Lets the promise callbacks of settled calls run. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('PendingCalls', () => {
  let clock: FakeClock;
  beforeEach(() => {
    clock = new FakeClock();
    clock.install();
  });
  afterEach(() => clock.uninstall());

  it('deadlines fire in deadline order across several timeout lanes, one timer at a time', async () => {
    const { table, expired } = makeTable();
    addCall(table, 'slow-a', 300);
    addCall(table, 'fast-a', 100);
    addCall(table, 'mid-a', 200);
    clock.tick(10);
    addCall(table, 'fast-b', 100); // due at 110
    addCall(table, 'slow-b', 300); // due at 310
    expect(clock.armed, 'one timer for the whole table').to.equal(1);

    clock.tick(89); // t = 99
    expect(expired).to.deep.equal([]);
    clock.tick(1); // t = 100
    expect(expired).to.deep.equal(['fast-a']);
    clock.tick(10); // t = 110
    expect(expired).to.deep.equal(['fast-a', 'fast-b']);
    clock.tick(90); // t = 200
    expect(expired).to.deep.equal(['fast-a', 'fast-b', 'mid-a']);
    clock.tick(110); // t = 310
    expect(expired).to.deep.equal(['fast-a', 'fast-b', 'mid-a', 'slow-a', 'slow-b']);
    expect(table.size).to.equal(0);
    expect(clock.armed, 'no timer left once the table is empty').to.equal(0);
  });

  it('a call with a shorter timeout made later expires before earlier calls with longer ones', () => {
    const { table, expired } = makeTable();
    addCall(table, 'long', 1000);
    clock.tick(5);
    addCall(table, 'short', 10);
    clock.tick(10);
    expect(expired).to.deep.equal(['short']);
    expect(table.size).to.equal(1);
  });

  it('nothing expires before its deadline', () => {
    const { table, expired } = makeTable();
    addCall(table, 'a', 100);
    clock.tick(99);
    expect(expired).to.deep.equal([]);
    clock.tick(1);
    expect(expired).to.deep.equal(['a']);
  });

  it('a settled call leaves the table at once and never expires; its result reaches the promise', async () => {
    const { table, expired } = makeTable();
    const first = addCall(table, 'first', 100);
    const second = addCall(table, 'second', 100);
    table.resolve(first.call.id, 'ok');
    expect(table.size).to.equal(1);
    expect(table.get(first.call.id)).to.equal(undefined);
    expect(table.get(second.call.id)).to.equal(second.call);
    clock.tick(100);
    expect(expired).to.deep.equal(['second']);
    await flush();
    expect(first.outcome).to.deep.equal({ value: 'ok', settled: true });
    expect(second.outcome.error!.message).to.equal('second timed out');
  });

  it('settling twice is a no-op: the first outcome wins', async () => {
    const { table } = makeTable();
    const { call, outcome } = addCall(table, 'once', 100);
    table.resolve(call.id, 1);
    table.reject(call.id, new Error('late'));
    table.resolve(call.id, 2);
    await flush();
    expect(outcome).to.deep.equal({ value: 1, settled: true });
  });

  it('when every call settled, the timer is cleared', () => {
    const { table } = makeTable();
    const a = addCall(table, 'a', 100);
    const b = addCall(table, 'b', 50);
    expect(clock.armed).to.equal(1);
    table.resolve(a.call.id, undefined);
    table.resolve(b.call.id, undefined);
    expect(clock.armed).to.equal(0);
  });

  it('a settled call in the middle of a lane is skipped when its neighbours expire', () => {
    const { table, expired } = makeTable();
    const calls = ['a', 'b', 'c', 'd'].map((name) => addCall(table, name, 100));
    table.resolve(calls[1]!.call.id, undefined);
    table.reject(calls[2]!.call.id, new Error('failed'));
    clock.tick(100);
    expect(expired).to.deep.equal(['a', 'd']);
  });

  it('get() only knows number ids (a v1 id of bytes is never one of ours)', () => {
    const { table } = makeTable();
    const { call } = addCall(table, 'a', 100);
    expect(table.get(call.id)).to.equal(call);
    expect(table.get(Buffer.alloc(16))).to.equal(undefined);
  });

  it('full once `limit` calls are in flight; not full again when one settles', () => {
    const { table } = makeTable(2);
    const a = addCall(table, 'a', 100);
    expect(table.full).to.equal(false);
    addCall(table, 'b', 100);
    expect(table.full).to.equal(true);
    expect(table.limit).to.equal(2);
    table.resolve(a.call.id, undefined);
    expect(table.full).to.equal(false);
  });

  it('rejectWhere rejects the matching calls only, each with an error of its own', async () => {
    const { table } = makeTable();
    const x1 = addCall(table, 'x1', 100, { key: 'x' });
    const y1 = addCall(table, 'y1', 100, { key: 'y' });
    const x2 = addCall(table, 'x2', 100, { key: 'x' });
    const made: string[] = [];
    table.rejectWhere((call) => call.connectionKey === 'x', (call) => {
      made.push(call.name);
      return new Error(`lost ${call.name}`);
    });
    expect(made).to.deep.equal(['x1', 'x2']);
    expect(table.size).to.equal(1);
    expect(table.get(y1.call.id)).to.equal(y1.call);
    await flush();
    expect(x1.outcome.error!.message).to.equal('lost x1');
    expect(x2.outcome.error!.message).to.equal('lost x2');
    expect(x1.outcome.error).to.not.equal(x2.outcome.error);
    expect(y1.outcome.settled).to.equal(false);
  });

  it('rejectOn looks only at the calls of its connection (a lost connection costs its own calls, not everyone\'s)', async () => {
    const { table } = makeTable(10_000);
    const others = Array.from({ length: 500 }, (_, i) => addCall(table, `other-${i}`, 100, { key: `peer-${i}` }));
    const mine = [addCall(table, 'mine-1', 100, { key: 'lost' }), addCall(table, 'mine-2', 100, { key: 'lost' })];
    mine[0]!.call.sent = true;
    const looked: string[] = [];
    table.rejectOn('lost', (call) => {
      looked.push(call.name);
      return call.sent;
    }, (call) => new Error(`lost ${call.name}`));
    expect(looked, 'the match ran on the lost connection\'s calls only').to.deep.equal(['mine-1', 'mine-2']);
    expect(table.size).to.equal(501);
    table.rejectOn('lost', () => true, (call) => new Error(`lost ${call.name}`));
    expect(table.size).to.equal(500);
    table.rejectOn('nobody', () => true, () => new Error('never'));
    expect(table.size).to.equal(500);
    await flush();
    expect(mine.map((m) => m.outcome.error?.message)).to.deep.equal(['lost mine-1', 'lost mine-2']);
    expect(others.every((o) => !o.outcome.settled)).to.equal(true);
    for (const other of others) table.resolve(other.call.id, undefined);
    expect(table.size).to.equal(0);
    expect(table.unsent('peer-0')).to.deep.equal([]);
  });

  it('unsent lists the calls of one connection not yet handed over, oldest first', () => {
    const { table } = makeTable();
    const a = addCall(table, 'a', 100, { key: 'k' });
    const b = addCall(table, 'b', 100, { key: 'k' });
    addCall(table, 'other', 100, { key: 'elsewhere' });
    const c = addCall(table, 'c', 100, { key: 'k' });
    b.call.sent = true;
    expect(table.unsent('k').map((call) => call.name)).to.deep.equal(['a', 'c']);
    table.resolve(a.call.id, undefined);
    expect(table.unsent('k')).to.deep.equal([c.call]);
    expect(table.unsent('nobody')).to.deep.equal([]);
  });

  it('a call is stale (not worth sending) once settled', () => {
    const { table } = makeTable();
    const { call } = addCall(table, 'a', 100);
    expect(call.stale()).to.equal(false);
    expect(call.exempt, 'calls do not count against the send queue').to.equal(true);
    table.resolve(call.id, undefined);
    expect(call.stale()).to.equal(true);
  });

  it('a one-way call settles (undefined) when handed to the transport; a normal call does not listen', async () => {
    const { table } = makeTable();
    const oneWay = addCall(table, 'notify', 100, { oneWay: true });
    const normal = addCall(table, 'call', 100);
    expect(normal.call.onSent).to.equal(undefined);
    oneWay.call.onSent!();
    await flush();
    expect(oneWay.outcome).to.deep.equal({ value: undefined, settled: true });
    expect(table.size).to.equal(1);
  });

  it('a send failure goes to the owner, unless the call settled already', () => {
    const { table, sendFailures } = makeTable();
    const a = addCall(table, 'a', 100);
    const b = addCall(table, 'b', 100);
    table.resolve(b.call.id, undefined);
    a.call.onError(new Error('no route'));
    b.call.onError(new Error('no route'));
    expect(sendFailures.map(([name]) => name)).to.deep.equal(['a']);
  });

  it('an abort signal asks the owner to cancel the call (here: rejects with its reason) and the call leaves; later settling changes nothing', async () => {
    const { table, expired } = makeTable();
    const controller = new AbortController();
    const { call, outcome } = addCall(table, 'a', 100, { signal: controller.signal });
    const reason = new Error('user gave up');
    controller.abort(reason);
    expect(table.size).to.equal(0);
    table.resolve(call.id, 'late');
    clock.tick(200);
    expect(expired).to.deep.equal([]);
    await flush();
    expect(outcome.error).to.equal(reason);
  });

  it('settling removes the abort listener (a long-lived signal does not keep the call)', async () => {
    const { table } = makeTable();
    const controller = new AbortController();
    const { call, outcome } = addCall(table, 'a', 100, { signal: controller.signal });
    table.resolve(call.id, 'done');
    controller.abort(new Error('after the fact'));
    await flush();
    expect(outcome).to.deep.equal({ value: 'done', settled: true });
  });

  it('an expiry that settles other calls (the owner rejects more) does not break the walk', () => {
    const expired: string[] = [];
    let other: PendingCall | undefined;
    const table: PendingCalls = new PendingCalls(100, {
      expire(call) {
        expired.push(call.name);
        table.reject(call.id, new Error('timeout'));
        if (other) table.reject(other.id, new Error('collateral'));
      },
      sendFailed() {},
      cancelled() {},
    });
    addCall(table, 'a', 100);
    other = addCall(table, 'b', 100).call;
    addCall(table, 'c', 300);
    clock.tick(100);
    expect(expired).to.deep.equal(['a']);
    expect(table.size).to.equal(1);
    clock.tick(200);
    expect(expired).to.deep.equal(['a', 'c']);
    expect(table.size).to.equal(0);
    expect(clock.armed).to.equal(0);
  });

  it('many calls in one lane, mostly settled in order, expire correctly (the lane is compacted)', () => {
    const { table, expired } = makeTable(10_000);
    const calls = Array.from({ length: 3000 }, (_, i) => addCall(table, `c${i}`, 100));
    for (const { call } of calls.slice(0, 2990)) table.resolve(call.id, undefined);
    addCall(table, 'late', 100);
    clock.tick(100);
    expect(expired).to.deep.equal([...calls.slice(2990).map(({ call }) => call.name), 'late']);
    expect(table.size).to.equal(0);
  });

  it('lanes emptied and used again (the table filling and emptying batch after batch) keep every deadline', () => {
    const { table, expired } = makeTable();
    for (let batch = 0; batch < 3; batch++) {
      const calls = [addCall(table, `a${batch}`, 100), addCall(table, `b${batch}`, 200), addCall(table, `c${batch}`, 100)];
      for (const { call } of calls) table.resolve(call.id, batch); // the table empties: lanes are emptied, kept
      expect(table.size).to.equal(0);
    }
    addCall(table, 'first', 100);
    addCall(table, 'second', 200);
    clock.tick(50);
    const settled = addCall(table, 'settled', 100); // a kept lane, head past the settled one after it goes
    table.resolve(settled.call.id, 'x');
    addCall(table, 'third', 100);
    clock.tick(50); // t = 100
    expect(expired).to.deep.equal(['first']);
    clock.tick(50); // t = 150
    expect(expired).to.deep.equal(['first', 'third']);
    clock.tick(50); // t = 200
    expect(expired).to.deep.equal(['first', 'third', 'second']);
    expect(table.size).to.equal(0);
    expect(clock.armed).to.equal(0);
  });

  it('calls with all different timeouts (more lanes than are kept) expire in deadline order', () => {
    const { table, expired } = makeTable();
    const timeouts = [70, 10, 50, 30, 90, 20, 80, 40, 60, 100];
    for (const ms of timeouts) addCall(table, `t${ms}`, ms);
    const early = addCall(table, 'resolved', 25);
    table.resolve(early.call.id, 'ok');
    clock.tick(100);
    expect(expired).to.deep.equal([...timeouts].sort((a, b) => a - b).map((ms) => `t${ms}`));
    expect(table.size).to.equal(0);
    for (const ms of timeouts) addCall(table, `again${ms}`, ms);
    clock.tick(100);
    expect(expired.slice(timeouts.length)).to.deep.equal([...timeouts].sort((a, b) => a - b).map((ms) => `again${ms}`));
  });
  it('calls with all different timeouts, settling out of order while others stay, keep every deadline, and emptied lanes do not pile up', () => {
    const { table, expired } = makeTable(10_000);
    // A relayed call's timeout is what is left of its deadline: one lane a call, here 400 of them,
    // with one slow call per 50 still in flight while the others settle (newest first).
    const calls = Array.from({ length: 400 }, (_, i) => addCall(table, `r${i}`, 1000 + i));
    for (let i = calls.length - 1; i >= 0; i--) if (i % 50 !== 0) table.resolve(calls[i]!.call.id, i);
    expect(table.lanes, 'emptied lanes go, a few at a time').to.be.at.most(8 + 17);
    const later = Array.from({ length: 20 }, (_, i) => addCall(table, `l${i}`, 500 + i * 37));
    clock.tick(2000);
    const due = [...calls.filter((_, i) => i % 50 === 0).map(({ call }) => call), ...later.map(({ call }) => call)];
    expect(expired).to.deep.equal(due.sort((a, b) => a.deadline - b.deadline).map((call) => call.name));
    expect(table.size).to.equal(0);
    expect(clock.armed).to.equal(0);
  });
});
