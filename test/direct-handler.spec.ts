/**
 * Direct handlers (engine/work.ts): zeropeer's own relays take the unit of work itself and answer
 * through its responder, with no context, AsyncLocalStorage or promise (what cluster forwarding
 * pays on every call). What they still get from the engine: one answer, errors typed, and stop()
 * waiting for them as for any handler.
 */
import { expect } from 'chai';
import { ParameterError, currentCall } from '../lib/index.js';
import { directHandler, type Work } from '../lib/engine/work.js';
import { cleanup, rejection, sleep, startClient, startServer } from './helpers.js';

describe('direct handlers', () => {
  afterEach(cleanup);

  it('get the arguments and the caller as they came, run outside any call context, and answer through the responder', async () => {
    const server = await startServer();
    let seen: { args: unknown[]; identity: string; inContext: boolean } | undefined;
    server.registerRpc('relay.echo', directHandler((work: Work, done: () => void) => {
      seen = { args: work.args, identity: work.identity, inContext: currentCall() !== undefined };
      work.responder.ok(work.args.length);
      done();
    }));
    const client = await startClient(server, { userId: 'alice' });
    expect(await client.invoke('relay.echo', ['a', 2, { three: 3 }])).to.equal(3);
    expect(seen).to.deep.equal({ args: ['a', 2, { three: 3 }], identity: 'alice', inContext: false });
  });

  it('what one throws before answering is the caller\'s error, typed; answering and then throwing still answers once', async () => {
    const server = await startServer();
    server.registerRpc('relay.refuses', directHandler(() => {
      throw new ParameterError('relay.refuses: [identity]');
    }));
    let runs = 0;
    server.registerRpc('relay.late', directHandler((work: Work, done: () => void) => {
      runs++;
      work.responder.ok('first');
      done();
      throw new Error('after the answer');
    }));
    const client = await startClient(server);
    const error = await rejection(client.invoke('relay.refuses', []));
    expect(error).to.be.instanceOf(ParameterError);
    expect(error.message).to.equal('relay.refuses: [identity]');
    expect(await client.invoke('relay.late', [])).to.equal('first');
    expect(await client.invoke('relay.late', [])).to.equal('first');
    expect(runs).to.equal(2);
    expect(client.stats().droppedAnswers, 'one answer per call, no second one').to.equal(0);
  });

  it('count as running until done: stop() waits for one (within drainTimeoutMs), and its answer still goes out', async () => {
    const server = await startServer({ drainTimeoutMs: 5000 });
    let finish: (() => void) | undefined;
    server.registerRpc('relay.slow', directHandler((work: Work, done: () => void) => {
      finish = () => {
        work.responder.ok('finished');
        done();
        done(); // a second done is ignored: the count goes down once
      };
    }));
    const client = await startClient(server);
    const answer = client.invoke('relay.slow', [], { timeoutMs: 5000 });
    for (let tries = 0; tries < 200 && !finish; tries++) await sleep(5);
    expect(finish, 'the handler ran').to.be.a('function');
    let stopped = false;
    const stopping = server.stop().then(() => (stopped = true));
    await sleep(100);
    expect(stopped, 'stop() waits for the running direct handler').to.equal(false);
    finish!();
    expect(await answer).to.equal('finished');
    await stopping;
    expect(stopped).to.equal(true);
  });
});
