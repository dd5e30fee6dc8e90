import { expect } from 'chai';
import { currentCall, type CallContext } from '../lib/index.js';
import { DIRECTIONS, connectedPair } from './directions.js';
import { RawPeer, cleanup, sleep, startClient, startServer, until, uuidBytes } from './helpers.js';
import { MessageType } from '../lib/index.js';
import { decode } from 'msgpackr';

describe('call context', () => {
  afterEach(cleanup);

  for (const direction of DIRECTIONS) {
    describe(direction, () => {
      it('withContext: true passes identity, method, metadata, address, deadline and signal first', async () => {
        const { callee, caller, invoke } = await connectedPair(direction);
        let seen: CallContext | undefined;
        callee.registerRpc('jobs.run', (ctx: CallContext, n: number) => {
          seen = ctx;
          return n * 2;
        }, { withContext: true });
        const before = Date.now();
        expect(await invoke('jobs.run', [21], { metadata: { tenant: 'acme' }, timeoutMs: 3000 })).to.equal(42);
        expect(seen!.identity).to.equal(direction === 'client -> server' ? 'alice' : callee.id);
        expect(seen!.method).to.equal('jobs.run');
        expect(seen!.metadata).to.deep.equal({ tenant: 'acme' });
        expect(seen!.address).to.be.a('string').and.not.equal('');
        // The deadline is the caller's: about 3 s from when the call was made, never later.
        expect(seen!.deadline).to.be.a('number');
        expect(seen!.deadline!).to.be.at.most(Date.now() + 3000);
        expect(seen!.deadline!).to.be.at.least(before + 1000);
        expect(seen!.signal).to.be.instanceOf(AbortSignal);
        expect(seen!.signal.aborted).to.equal(false);
        expect(caller.stats().droppedAnswers).to.equal(0);
      });

      it('currentCall() finds the same context anywhere in the handler\'s async flow', async () => {
        const { callee, invoke } = await connectedPair(direction);
        const deep = async (): Promise<CallContext | undefined> => {
          await sleep(5);
          return new Promise((resolve) => setTimeout(() => resolve(currentCall()), 5));
        };
        const seen: Array<CallContext | undefined> = [];
        callee.registerRpc('nested', async (ctx: CallContext) => {
          seen.push(ctx, currentCall(), await deep());
          return currentCall()?.metadata['k'];
        }, { withContext: true });
        callee.registerRpc('plain', async () => (await deep())?.method);
        const [a, b] = await Promise.all([invoke('nested', [], { metadata: { k: 'one' } }), invoke('plain', [])]);
        expect(a).to.equal('one');
        expect(b).to.equal('plain');
        expect(seen[1]).to.equal(seen[0]);
        expect(seen[2]).to.equal(seen[0]);
        expect(currentCall()).to.equal(undefined);
      });
    });
  }

  it('a pseud v1 caller: no deadline, empty metadata, a signal that never aborts', async () => {
    const { callee } = await connectedPair('client -> server');
    let seen: CallContext | undefined;
    callee.registerRpc('ctx', (ctx: CallContext) => {
      seen = ctx;
      return 'ok';
    }, { withContext: true });
    const raw = new RawPeer(callee.id, { routingId: 'pseud-client' });
    await raw.connect((callee as unknown as { endpoint: string }).endpoint);
    const id = uuidBytes();
    await raw.sendV1(id, MessageType.WORK, ['ctx', [], {}]);
    const frames = await raw.next();
    expect([...frames[3]!]).to.deep.equal([MessageType.OK]);
    expect(decode(frames[4]!)).to.equal('ok');
    expect(seen!.deadline).to.equal(undefined);
    expect(seen!.metadata).to.deep.equal({});
    expect(seen!.signal.aborted).to.equal(false);
  });
});

describe('call context: one-way work', () => {
  afterEach(cleanup);

  it('ends with its handler: a stop afterwards aborts no signal of one-way work that is over (nothing stays armed until the stop)', async () => {
    const server = await startServer();
    const signals: AbortSignal[] = [];
    server.registerRpc('jobs.note', (ctx: CallContext) => {
      signals.push(ctx.signal); // asked for: the scope is armed for the stop until the work ends
    }, { withContext: true });
    const client = await startClient(server);
    for (let i = 0; i < 3; i++) await client.invokeOneWay('jobs.note', []);
    await until(() => signals.length === 3, 3000, 'the one-way handlers ran');
    await server.stop();
    expect(signals.map((signal) => signal.aborted), 'ended before the stop: not aborted by it').to.deep.equal([false, false, false]);
  });
});
