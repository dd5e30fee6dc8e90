import { expect } from 'chai';
import { decode } from 'msgpackr';
import { CancelledError, MessageType, type CallContext, type Interceptor } from '../lib/index.js';
import { DIRECTIONS, connectedPair } from './directions.js';
import { cleanup, clientOnRawServer, rejection, sleep, startClient, startServer, until } from './helpers.js';

/** Resolves when `signal` aborts, with its reason. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}

describe('cancellation', () => {
  afterEach(cleanup);

  for (const direction of DIRECTIONS) {
    describe(direction, () => {
      it('an abort rejects the caller at once with CancelledError and aborts the handler\'s ctx.signal with the reason', async () => {
        const { callee, caller, invoke } = await connectedPair(direction);
        let reasonThere: Promise<unknown> | undefined;
        const started = new Promise<void>((resolve) => {
          callee.registerRpc('job.run', (ctx: CallContext) => {
            reasonThere = aborted(ctx.signal);
            resolve();
            return reasonThere.then(() => 'too late');
          }, { withContext: true });
        });
        const controller = new AbortController();
        const call = invoke('job.run', [], { signal: controller.signal, timeoutMs: 5000 });
        await started;
        controller.abort(new Error('user gave up'));
        const error = await rejection(call);
        expect(error).to.be.instanceOf(CancelledError);
        expect(error).to.include({ code: 'cancelled' });
        const reason = (await reasonThere) as Error;
        expect(reason).to.be.instanceOf(CancelledError);
        expect(reason.message).to.include('user gave up');
        // The handler's answer ('too late') is dropped over there: nothing late arrives here.
        await until(() => callee.stats().runningHandlers === 0);
        await sleep(20);
        expect(caller.stats().droppedAnswers).to.equal(0);
        expect(caller.stats().pendingCalls).to.equal(0);
      });

      it('a handler that ignores the signal still finishes; its result is dropped', async () => {
        const { callee, caller, invoke } = await connectedPair(direction);
        let finished = false;
        let signalled: AbortSignal | undefined;
        callee.registerRpc('stubborn', async (ctx: CallContext) => {
          signalled = ctx.signal;
          await sleep(80);
          finished = true;
          return 'result nobody wants';
        }, { withContext: true });
        const controller = new AbortController();
        const call = invoke('stubborn', [], { signal: controller.signal });
        await until(() => signalled !== undefined);
        controller.abort();
        expect(await rejection(call)).to.be.instanceOf(CancelledError);
        await until(() => signalled!.aborted);
        expect(finished).to.equal(false);
        await until(() => finished);
        await sleep(20);
        expect(caller.stats().droppedAnswers).to.equal(0);
        // The next call is answered as usual.
        callee.registerRpc('echo', (x: number) => x);
        expect(await invoke('echo', [7])).to.equal(7);
      });

      it('work not started yet (held by an incoming interceptor) never starts', async () => {
        const { callee, invoke } = await connectedPair(direction);
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        const held: Interceptor = (next) => async (call) => {
          await gate;
          return next(call);
        };
        callee.use({ incoming: held });
        let ran = 0;
        callee.registerRpc('queued', () => ++ran);
        const controller = new AbortController();
        const call = invoke('queued', [], { signal: controller.signal });
        await sleep(30); // the WORK is over there, waiting at the gate
        controller.abort();
        expect(await rejection(call)).to.be.instanceOf(CancelledError);
        await sleep(30); // the CANCEL is over there too
        release();
        await sleep(30);
        expect(ran).to.equal(0);
      });

      it('an already aborted signal sends nothing: the handler never runs', async () => {
        const { callee, invoke } = await connectedPair(direction);
        let ran = false;
        callee.registerRpc('never', () => (ran = true));
        const error = await rejection(invoke('never', [], { signal: AbortSignal.abort(new Error('before')) }));
        expect(error).to.be.instanceOf(CancelledError);
        expect((error.cause as Error).message).to.equal('before');
        callee.registerRpc('echo', (x: number) => x);
        expect(await invoke('echo', [1])).to.equal(1); // the one after it went and came back: 'never' did not go
        expect(ran).to.equal(false);
      });
    });
  }

  it('a chain of three peers cancels end to end: A -> B -> C, C\'s signal aborts', async () => {
    // C: the far server. B: a server whose handler calls C through its own client of C. A: B's client.
    const c = await startServer({}, 'tcp', 'c');
    let cSignal: AbortSignal | undefined;
    let cReason: Promise<unknown> | undefined;
    c.registerRpc('deep', (ctx: CallContext) => {
      cSignal = ctx.signal;
      cReason = aborted(ctx.signal);
      return new Promise(() => {});
    }, { withContext: true });
    const bToC = await startClient(c, { userId: 'b' });
    const b = await startServer({}, 'tcp', 'b');
    let bError: Promise<Error> | undefined;
    b.registerRpc('middle', (ctx: CallContext) => {
      const call = bToC.invoke('deep', [], { signal: ctx.signal });
      bError = rejection(call);
      return call;
    }, { withContext: true });
    const a = await startClient(b, { userId: 'a' });
    const controller = new AbortController();
    const call = a.invoke('middle', [], { signal: controller.signal });
    await until(() => cSignal !== undefined);
    controller.abort(new Error('A gave up'));
    expect(await rejection(call)).to.be.instanceOf(CancelledError);
    const reasonAtC = (await cReason) as Error;
    expect(reasonAtC).to.be.instanceOf(CancelledError);
    expect(await bError).to.be.instanceOf(CancelledError);
    expect(bToC.stats().pendingCalls).to.equal(0);
  });

  it('nothing is sent to a pseud v1 server on cancel (CANCEL is compact framing only)', async () => {
    const { rawServer, client } = await clientOnRawServer();
    const controller = new AbortController();
    const call = client.invoke('compute', [1], { signal: controller.signal });
    const work = await rawServer.next();
    expect([...work[4]!]).to.deep.equal([MessageType.WORK]);
    expect(decode(work[5]!)).to.deep.equal(['compute', [1], {}]); // no deadline in v1 either
    controller.abort();
    expect(await rejection(call)).to.be.instanceOf(CancelledError);
    // Only heartbeats (if any) may follow: never a CANCEL, never a frame pseud cannot read.
    const next = await rawServer.next(200).catch(() => undefined);
    if (next) expect([...next[4]!]).to.deep.equal([MessageType.HEARTBEAT]);
  });

  it('a late answer (after a cancel raced it) is dropped and counted', async () => {
    const server = await startServer();
    const client = await startClient(server);
    // The handler (in this process) cancels the client's call as it answers: the CANCEL arrives
    // after the answer was sent, and the answer comes back to no pending call. (A call cancelled
    // before its WORK left is not sent at all: see the next test.)
    const controller = new AbortController();
    server.registerRpc('fast', () => {
      controller.abort();
      return 'fast';
    });
    const call = client.invoke('fast', [], { signal: controller.signal });
    expect(await rejection(call)).to.be.instanceOf(CancelledError);
    await until(() => client.stats().droppedAnswers === 1);
    expect(client.stats().pendingCalls).to.equal(0);
  });

  it('a client that leaves aborts the signals of its own running calls only', async () => {
    const server = await startServer();
    const signals = new Map<string, AbortSignal[]>();
    server.registerRpc('wait', (ctx: CallContext, tag: string) => {
      signals.set(tag, [...(signals.get(tag) ?? []), ctx.signal]);
      return new Promise((resolve) => setTimeout(() => resolve(tag), 300));
    }, { withContext: true });
    const leaving = await startClient(server, { userId: 'leaving' } as never);
    const staying = await startClient(server, { userId: 'staying' } as never);
    const lost = [1, 2, 3].map(() => leaving.call.wait('leaving').catch(() => undefined));
    const kept = [1, 2, 3].map(() => staying.call.wait('staying'));
    await until(() => (signals.get('leaving')?.length ?? 0) === 3 && (signals.get('staying')?.length ?? 0) === 3);
    await leaving.stop();
    await until(() => signals.get('leaving')!.every((signal) => signal.aborted), 3000, 'the leaving client\'s calls to be abandoned');
    expect(signals.get('staying')!.some((signal) => signal.aborted)).to.equal(false);
    expect(await Promise.all(kept)).to.deep.equal(['staying', 'staying', 'staying']);
    await Promise.all(lost);
  });

  it('a call cancelled in the tick it was made never reaches the handler', async () => {
    const server = await startServer();
    const client = await startClient(server);
    let ran = 0;
    server.registerRpc('counted', () => ++ran);
    const controller = new AbortController();
    const call = client.invoke('counted', [], { signal: controller.signal });
    controller.abort();
    expect(await rejection(call)).to.be.instanceOf(CancelledError);
    expect(await client.call.counted(), 'the next call is the first to run').to.equal(1);
    expect(client.stats().droppedAnswers).to.equal(0);
  });
});
