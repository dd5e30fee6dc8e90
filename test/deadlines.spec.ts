import { expect } from 'chai';
import { deadlineApplied } from '../lib/engine/caller.js';
import { TimeoutError, type CallContext, type Interceptor } from '../lib/index.js';
import { DIRECTIONS, connectedPair } from './directions.js';
import { cleanup, rejection, startClient, startServer, until } from './helpers.js';

describe('deadlines that travel', () => {
  afterEach(cleanup);

  for (const direction of DIRECTIONS) {
    describe(direction, () => {
      it('the deadline reached inside a handler aborts its ctx.signal with TimeoutError', async () => {
        const { callee, invoke } = await connectedPair(direction);
        let reason: unknown;
        let deadline: number | undefined;
        callee.registerRpc('slow', (ctx: CallContext) => {
          deadline = ctx.deadline;
          // Stops at the signal, with its reason (the caller's own timer may fire a moment later).
          return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => {
            reason = ctx.signal.reason;
            reject(reason as Error);
          }, { once: true }));
        }, { withContext: true });
        const error = await rejection(invoke('slow', [], { timeoutMs: 150 }));
        expect(error).to.be.instanceOf(TimeoutError);
        await until(() => reason !== undefined);
        expect(reason).to.be.instanceOf(TimeoutError);
        expect((reason as Error).message).to.include('deadline');
        expect(Date.now()).to.be.at.least(deadline!);
      });
    });
  }

  it('a call made with { signal: ctx.signal } inherits the deadline: A -> B -> C never outlives A', async () => {
    const c = await startServer({}, 'tcp', 'c');
    let cDeadline: number | undefined;
    let cReason: unknown;
    c.registerRpc('deep', (ctx: CallContext) => {
      cDeadline = ctx.deadline;
      return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => {
        cReason = ctx.signal.reason;
        reject(cReason as Error);
      }, { once: true }));
    }, { withContext: true });
    // B's own client of C would wait 10 s; inheriting A's deadline, it waits no longer than A.
    const bToC = await startClient(c, { userId: 'b', timeoutMs: 10_000 });
    const b = await startServer({ timeoutMs: 10_000 }, 'tcp', 'b');
    let bError: Error | undefined;
    let bDeadline: number | undefined;
    b.registerRpc('middle', async (ctx: CallContext) => {
      bDeadline = ctx.deadline;
      try {
        return await bToC.invoke('deep', [], { signal: ctx.signal });
      } catch (error) {
        bError = error as Error;
        throw error;
      }
    }, { withContext: true });
    const a = await startClient(b, { userId: 'a' });
    const made = Date.now();
    const error = await rejection(a.invoke('middle', [], { timeoutMs: 300 }));
    expect(error).to.be.instanceOf(TimeoutError);
    await until(() => cReason !== undefined && bError !== undefined);
    expect(bDeadline!).to.be.at.most(made + 300 + 1000); // plus transit (time left travels, see below)
    // The wire carries time left, not a clock reading (clocks need not agree): each hop's deadline
    // is later by that hop's transit time, a few ms on loopback, and never the 10 s B would wait.
    expect(cDeadline!).to.be.at.most(bDeadline! + 1000);
    // C's own deadline, or B's CANCEL at B's deadline: whichever comes first.
    expect((cReason as Error).name).to.be.oneOf(['TimeoutError', 'CancelledError']);
    expect(bError).to.be.instanceOf(TimeoutError); // B's call to C ended at the inherited deadline, not after 10 s
    expect(bToC.stats().pendingCalls).to.equal(0);
  });

  it('a call from a handler whose deadline already passed is not sent', async () => {
    const server = await startServer();
    const client = await startClient(server);
    let sent = 0;
    server.registerRpc('target', () => ++sent);
    // The handler waits out its own deadline, then tries to call: refused at once.
    let inner: Promise<Error> | undefined;
    server.registerRpc('probe', (ctx: CallContext) => {
      inner = new Promise((resolve) => ctx.signal.addEventListener('abort', () => {
        resolve(rejection(client.invoke('target', [], { signal: ctx.signal })));
      }, { once: true }));
      return new Promise(() => {}); // never answers: the caller's own deadline decides its outcome
    }, { withContext: true });
    await rejection(client.invoke('probe', [], { timeoutMs: 100 }));
    await until(() => inner !== undefined);
    const error = await inner!;
    expect(error).to.be.instanceOf(TimeoutError);
    expect(sent).to.equal(0);
  });

  it('internal: a call told its deadline is applied (a cluster link) keeps the signal\'s cancel but not its deadline', async () => {
    // A cluster link call waits a margin longer than the call it forwards (so that the far node's
    // own TimeoutError answers first): it must not inherit the deadline of the signal it carries.
    const c = await startServer({}, 'tcp', 'c');
    c.registerRpc('deadline', (ctx: CallContext) => ctx.deadline, { withContext: true });
    const seen: Array<number | undefined> = [];
    const watch: Interceptor = (next) => (call) => {
      seen.push(call.deadline);
      return next(call);
    };
    const bToC = await startClient(c, { userId: 'b', interceptors: { outgoing: [watch] } });
    const b = await startServer({}, 'tcp', 'b');
    b.registerRpc('middle', async (ctx: CallContext) => {
      const inherited = await bToC.invoke('deadline', [], { signal: ctx.signal, timeoutMs: 5000 });
      const applied = await bToC.invoke('deadline', [], { signal: ctx.signal, timeoutMs: 5000, [deadlineApplied]: true } as object);
      return [ctx.deadline, inherited, applied];
    }, { withContext: true });
    const a = await startClient(b, { userId: 'a' });
    const made = Date.now();
    const [middle, inherited, applied] = await a.invoke('middle', [], { timeoutMs: 1000 }) as number[];
    expect(middle).to.be.at.most(made + 1000 + 500);
    expect(inherited, 'a plain call inherits the handler\'s deadline').to.be.at.most(middle! + 500);
    expect(applied, 'told it is applied: its own 5 s').to.be.at.least(made + 4000);
    expect(seen[0]).to.be.at.most(middle! + 50);
    expect(seen[1], 'outgoing interceptors see the same').to.be.at.least(made + 4000);
  });

  it('internal: a call told its deadline is applied still carries the signal\'s cancel to the callee', async () => {
    const c = await startServer({}, 'tcp', 'c');
    let aborted: unknown;
    c.registerRpc('wait', (ctx: CallContext) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => {
      aborted = ctx.signal.reason;
      reject(aborted as Error);
    }, { once: true })), { withContext: true });
    const bToC = await startClient(c, { userId: 'b' });
    const b = await startServer({}, 'tcp', 'b');
    let started = false;
    b.registerRpc('middle', (ctx: CallContext) => {
      started = true;
      return bToC.invoke('wait', [], { signal: ctx.signal, timeoutMs: 5000, [deadlineApplied]: true } as object);
    }, { withContext: true });
    const a = await startClient(b, { userId: 'a' });
    const controller = new AbortController();
    const call = a.invoke('middle', [], { timeoutMs: 4000, signal: controller.signal });
    await until(() => started && c.stats().runningHandlers === 1);
    controller.abort(new Error('a gave up'));
    await rejection(call);
    await until(() => aborted !== undefined);
    expect((aborted as Error).name, 'the cancel reached c, long before any deadline').to.equal('CancelledError');
  });
});
