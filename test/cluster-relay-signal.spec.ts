/**
 * The relay signal of a call scope (lib/engine/call-scope.ts): what a call made on behalf of a
 * handler's own call (cluster forwarding) is given instead of ctx.signal. It aborts when the
 * handler's call is cancelled or the peer stops, with the same reason as ctx.signal would, and
 * never on the deadline (the relayed call carries a timeout of its own). The cluster specs cover
 * it across nodes; these pin its own behaviour.
 */
import { expect } from 'chai';
import { CancelledError, PeerNotConnectedError, ServiceClosedError, TimeoutError, type CallOptions, type StreamOptions } from '../lib/index.js';
import { CallScope } from '../lib/engine/call-scope.js';
import { serveLink, type ClusterHost } from '../lib/cluster/link-server.js';
import { cleanup, recordingLogger, rejection, startClient, startServer } from './helpers.js';

describe('cluster: the relay signal of a call scope', () => {
  it('aborts once on a cancel, with its reason, calling each listener once; a removed listener is not called', () => {
    const stopping = new AbortController();
    const scope = new CallScope(stopping.signal, Date.now() + 60_000);
    const signal = scope.relaySignal;
    expect(scope.relaySignal).to.equal(signal);
    const heard: unknown[] = [];
    const removed = (): void => void heard.push('removed');
    signal.addEventListener('abort', () => heard.push(signal.reason), { once: true });
    signal.addEventListener('abort', { handleEvent: (event: Event) => heard.push(event.type) });
    signal.addEventListener('abort', removed);
    signal.removeEventListener('abort', removed);
    expect(signal.aborted).to.equal(false);
    expect(() => signal.throwIfAborted()).not.to.throw();
    const reason = new CancelledError('the caller cancelled');
    scope.abort(reason);
    scope.abort(new CancelledError('a second time'));
    expect(signal.aborted).to.equal(true);
    expect(signal.reason).to.equal(reason);
    expect(heard).to.deep.equal([reason, 'abort']);
    expect(() => signal.throwIfAborted()).to.throw(reason);
    // ctx.signal, asked for later, agrees.
    expect(scope.signal.reason).to.equal(reason);
  });

  it('aborts when the peer stops (ServiceClosedError), also when made after the stop', () => {
    const stopping = new AbortController();
    const early = new CallScope(stopping.signal, undefined);
    const signal = early.relaySignal;
    stopping.abort(new ServiceClosedError('peer stopped'));
    expect(signal.aborted).to.equal(true);
    expect(signal.reason).to.be.instanceOf(ServiceClosedError);
    const late = new CallScope(stopping.signal, undefined);
    expect(late.relaySignal.reason).to.be.instanceOf(ServiceClosedError);
  });

  it('does not abort on the deadline (no timer), nor after the work ended; one made past the deadline is aborted (TimeoutError)', async () => {
    const stopping = new AbortController();
    const scope = new CallScope(stopping.signal, Date.now() + 20);
    const signal = scope.relaySignal;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(signal.aborted).to.equal(false);
    scope.end();
    stopping.abort(new ServiceClosedError('peer stopped'));
    expect(signal.aborted).to.equal(false);
    const past = new CallScope(new AbortController().signal, Date.now() - 1);
    expect(past.relaySignal.reason).to.be.instanceOf(TimeoutError);
  });

  it('shares the stop listener with ctx.signal: both abort on a stop, whichever was made first', () => {
    const stopping = new AbortController();
    const scope = new CallScope(stopping.signal, undefined);
    const relay = scope.relaySignal;
    const signal = scope.signal;
    stopping.abort(new ServiceClosedError('peer stopped'));
    expect(relay.reason).to.be.instanceOf(ServiceClosedError);
    expect(signal.reason).to.equal(relay.reason);
  });
});

describe('cluster: what the far node waits for its client', () => {
  afterEach(cleanup);

  it('never longer than the link call\'s own deadline, whatever the calling node\'s arguments say (the relay signal carries no deadline)', async () => {
    // A call that waited in the calling node's queue has less time left than the arguments it was
    // made with: the link call's deadline (sent when it left) is the bound.
    const linkServer = await startServer();
    const calls: CallOptions[] = [];
    const streams: StreamOptions[] = [];
    const relayed: CallOptions[] = [];
    let interceptors = true;
    const host: ClusterHost = {
      id: 'far', logger: recordingLogger(), timeoutMs: 60_000, streamWindow: { items: 16, bytes: 65_536 },
      localInvoke: (_identity, _name, _args, options) => {
        calls.push(options);
        return Promise.resolve('done');
      },
      localStream: (_identity, _name, _args, options) => {
        streams.push(options);
        throw new PeerNotConnectedError('recorded only');
      },
      localRelay: (_identity, _name, _args, options, _oneWay, settle) => {
        if (interceptors) return false; // as a server with outgoing interceptors: localInvoke instead
        relayed.push(options);
        settle.resolve('relayed');
        return true;
      },
      localPublish: () => Promise.resolve(0),
      holds: () => true,
      evict: () => undefined,
      interceptsOutgoing: () => false,
      makeLinkServer: () => { throw new Error('not used here'); },
    };
    serveLink(linkServer, host, 'far', () => undefined);
    const link = await startClient(linkServer);
    const sent = Date.now();
    expect(await link.invoke('cluster.call', ['bob', 'work', null, 60_000, false], { timeoutMs: 500 })).to.equal('done');
    expect(calls[0]!.timeoutMs).to.be.within(1, 500);
    interceptors = false; // the call is made settled by callbacks (no promise), with the same bound
    expect(await link.invoke('cluster.call', ['bob', 'work', null, 60_000, false], { timeoutMs: 500 })).to.equal('relayed');
    expect(relayed[0]!.timeoutMs).to.be.within(1, 500);
    expect(await rejection(link.invoke('cluster.stream', ['bob', 'feed', null, 60_000, [16, 65_536], 60_000], { timeoutMs: 500 }))).to.be.instanceOf(PeerNotConnectedError);
    expect(streams[0]!.deadline).to.be.at.most(Date.now() + 500);
    expect(streams[0]!.deadline).to.be.at.least(sent);
    expect(streams[0]!.timeoutMs, 'a stream\'s own timeout is left as the calling node said').to.equal(60_000);
  });
});
