import { expect } from 'chai';
import { CallScope, deadlineOf } from '../../lib/engine/call-scope.js';
import { CancelledError, ServiceClosedError, TimeoutError } from '../../lib/index.js';

function waitAbort(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
}

describe('CallScope', () => {
  it('a cancel before the signal is read: the signal, made later, is aborted with that reason', () => {
    const scope = new CallScope(new AbortController().signal, undefined);
    const reason = new CancelledError('gone');
    scope.abort(reason);
    expect(scope.aborted).to.equal(true);
    expect(scope.signal.aborted).to.equal(true);
    expect(scope.signal.reason).to.equal(reason);
  });

  it('a cancel after the signal is read aborts it; the first reason wins', () => {
    const scope = new CallScope(new AbortController().signal, undefined);
    const { signal } = scope;
    const first = new CancelledError('first');
    scope.abort(first);
    scope.abort(new CancelledError('second'));
    expect(signal.reason).to.equal(first);
  });

  it('the deadline aborts the signal with TimeoutError, and deadlineOf(signal) tells it', async () => {
    const deadline = Date.now() + 30;
    const scope = new CallScope(new AbortController().signal, deadline);
    expect(deadlineOf(scope.signal)).to.equal(deadline);
    expect(await waitAbort(scope.signal)).to.be.instanceOf(TimeoutError);
    expect(deadlineOf(new AbortController().signal)).to.equal(undefined);
  });

  it('a deadline already passed when the signal is read: aborted at once', () => {
    const scope = new CallScope(new AbortController().signal, Date.now() - 1);
    expect(scope.signal.aborted).to.equal(true);
    expect(scope.signal.reason).to.be.instanceOf(TimeoutError);
  });

  it('the peer stopping aborts every scope whose signal exists, and refuses the ones not read yet', async () => {
    const stopping = new AbortController();
    const read = new CallScope(stopping.signal, undefined);
    const unread = new CallScope(stopping.signal, undefined);
    const aborted = waitAbort(read.signal);
    stopping.abort(new ServiceClosedError('stopped'));
    expect(await aborted).to.be.instanceOf(ServiceClosedError);
    expect(unread.aborted).to.equal(true);
    expect(unread.signal.reason).to.be.instanceOf(ServiceClosedError);
  });

  it('end() releases the timer: a scope that answered never aborts at its deadline', async () => {
    const scope = new CallScope(new AbortController().signal, Date.now() + 20);
    const { signal } = scope;
    scope.end();
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(signal.aborted).to.equal(false);
  });
});
