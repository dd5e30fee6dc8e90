/**
 * The one call a call scope relays (CallScope.relay, lib/engine/call-scope.ts): what cluster
 * forwarding gives the far node's call to its client instead of a signal. The calling node's
 * CANCEL and this node's stop cancel it, once, with their reason; an ended scope cancels nothing.
 * And the list of armed scopes a stop walks (a scope leaves it when it ends, in any order).
 * Across nodes (a real redis-server): a far node that stops mid-call.
 */
import { expect } from 'chai';
import { CancelledError, Client, PeerNotConnectedError, ServiceClosedError, ServiceNotFoundError, type Server } from '../lib/index.js';
import { CallScope } from '../lib/engine/call-scope.js';
import { cleanup, rejection, startClient, startServer, until } from './helpers.js';
import { listedOn, startNode, waiter } from './cluster-in-process.js';
import { suiteRedis } from './redis-server.js';

/** A relay target that records each cancel. */
function target(): { cancel(reason: unknown): void; heard: unknown[] } {
  const heard: unknown[] = [];
  return { heard, cancel: (reason) => void heard.push(reason) };
}

describe('call scope: the call it relays', () => {
  it('is cancelled once, with the reason, when the scope aborts (a CANCEL); the scope says why', () => {
    const scope = new CallScope(new AbortController().signal, Date.now() + 60_000);
    const relayed = target();
    scope.relay(relayed);
    expect(scope.reason).to.equal(undefined);
    const reason = new CancelledError('the caller cancelled');
    scope.abort(reason);
    scope.abort(new CancelledError('a second time'));
    expect(relayed.heard).to.deep.equal([reason]);
    expect(scope.reason).to.equal(reason);
    expect(scope.signal.reason, 'ctx.signal, asked for later, agrees').to.equal(reason);
  });

  it('is cancelled with ServiceClosedError when the peer stops; not once the scope ended, nor when given to an ended scope', () => {
    const stopping = new AbortController();
    const live = new CallScope(stopping.signal, undefined);
    const ended = new CallScope(stopping.signal, undefined);
    const late = new CallScope(stopping.signal, undefined);
    const [a, b, c] = [target(), target(), target()];
    live.relay(a);
    ended.relay(b);
    ended.end();
    late.end();
    late.relay(c);
    stopping.abort(new ServiceClosedError('peer stopped'));
    expect(a.heard).to.have.length(1);
    expect(a.heard[0]).to.be.instanceOf(ServiceClosedError);
    expect(live.reason).to.be.instanceOf(ServiceClosedError);
    expect(b.heard).to.deep.equal([]);
    expect(c.heard).to.deep.equal([]);
  });

  it('a stop reaches exactly the scopes not ended yet, however many ended before it and in whatever order', () => {
    const stopping = new AbortController();
    const scopes = Array.from({ length: 200 }, () => new CallScope(stopping.signal, Date.now() + 60_000));
    const targets = scopes.map((scope, i) => {
      const relayed = target();
      // Some relay a call, some have a signal (both arm the scope), some both.
      if (i % 3 !== 1) scope.relay(relayed);
      if (i % 3 !== 0) void scope.signal;
      return relayed;
    });
    // End them out of order (every 7th first, then odd ones from the back): each leaves the list.
    const ended = new Set<number>();
    for (let i = 0; i < scopes.length; i += 7) ended.add(i);
    for (let i = scopes.length - 1; i >= 0; i -= 2) ended.add(i);
    for (const i of ended) scopes[i]!.end();
    stopping.abort(new ServiceClosedError('peer stopped'));
    scopes.forEach((scope, i) => {
      const relays = i % 3 !== 1;
      const signalled = i % 3 !== 0;
      if (ended.has(i)) {
        expect(targets[i]!.heard, `scope ${i} (ended)`).to.deep.equal([]);
        if (signalled) expect(scope.signal.aborted, `scope ${i}'s signal (ended)`).to.equal(false);
      } else {
        expect(targets[i]!.heard, `scope ${i}`).to.have.length(relays ? 1 : 0);
        if (signalled) expect(scope.signal.reason, `scope ${i}'s signal`).to.be.instanceOf(ServiceClosedError);
      }
    });
    for (const scope of scopes) scope.end();
  });
});

describe('cluster mode: a far node that stops with a relayed call in flight', function () {
  const suite = suiteRedis();

  afterEach(cleanup);

  it('the caller gets PeerNotConnectedError, and the client there hears the call cancelled (its ctx.signal aborts)', async () => {
    const a: Server = await startNode(suite.url, 'a');
    const b: Server = await startNode(suite.url, 'b');
    const { seen } = await waiter(b, 'bob');
    await listedOn(a, 'bob', 'b');
    const failed = rejection(a.invoke('wait', [], { to: 'bob', timeoutMs: 5000 }));
    await until(() => seen.length === 1);
    await b.stop();
    const error = await failed;
    expect(error).to.be.instanceOf(PeerNotConnectedError);
    expect(error.message).to.match(/node "b", which (stopped|went away) before "wait" settled/);
    await until(() => seen[0]!.signal.aborted);
    // The CANCEL b sent as its link stopped, before the connection went.
    expect(seen[0]!.signal.reason).to.be.instanceOf(CancelledError);
  });
});

describe('client: a call settled through callbacks (invokeSettled, what a cluster link uses)', () => {
  afterEach(cleanup);

  /** A promise settled by the callbacks invokeSettled is given; `made`: whether the client took the call. */
  function settled(client: Client, name: string, args: unknown[]): { made: boolean; outcome: Promise<unknown> } {
    let made = false;
    const outcome = new Promise((resolve, reject) => {
      made = client.invokeSettled(name, args, { timeoutMs: 2000 }, { resolve, reject });
    });
    return { made, outcome };
  }

  it('settles with the result, or the typed error, once; with outgoing interceptors it declines and sends nothing', async () => {
    const server = await startServer();
    let calls = 0;
    server.registerRpc('twice', (n: number) => {
      calls++;
      return 2 * n;
    });
    const client = await startClient(server);
    const ok = settled(client, 'twice', [21]);
    expect(ok.made).to.equal(true);
    expect(await ok.outcome).to.equal(42);
    const missing = settled(client, 'absent', []);
    expect(await rejection(missing.outcome)).to.be.instanceOf(ServiceNotFoundError);
    const intercepted = await startClient(server, { interceptors: { outgoing: [(next) => (call) => next(call)] } });
    const declined = settled(intercepted, 'twice', [1]);
    expect(declined.made).to.equal(false);
    expect(await intercepted.invoke('twice', [2])).to.equal(4);
    expect(calls).to.equal(2);
  });
});
