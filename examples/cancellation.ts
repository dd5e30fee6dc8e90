/**
 * Call context, cancellation and deadlines that travel: a report service whose handler stops when
 * its caller cancels, and a gateway that passes its own deadline on (`{ signal: ctx.signal }`), so
 * the call it makes never outlives the one it serves. Run: `node dist/examples/cancellation.js`.
 */
import { CancelledError, Client, Server, TimeoutError, currentCall, type CallContext } from '../lib/index.js';

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    }, { once: true });
  });
}

export async function runCancellation(log: (line: string) => void = console.log): Promise<void> {
  // The report service: each page takes a while; the handler checks its signal between pages.
  const reports = new Server('reports', { security: 'trusted_peer' });
  await reports.bind('tcp://127.0.0.1:0');
  const stopped = new Promise<string>((resolve) => {
    reports.registerRpc('build', async (ctx: CallContext, pages: number) => {
      try {
        for (let page = 0; page < pages; page++) await pause(20, ctx.signal);
        return `${pages} pages for ${ctx.identity}`;
      } catch (error) {
        resolve(`reports: "${ctx.method}" for ${ctx.identity} stopped: ${(error as Error).name}`);
        throw error;
      }
    }, { withContext: true });
  });
  await reports.start();

  // The gateway serves its clients by calling the report service, passing its ctx.signal on.
  const upstream = new Client('reports', { security: 'trusted_peer', userId: 'gateway' });
  upstream.connect(reports.endpoint);
  await upstream.start();
  const gateway = new Server('gateway', { security: 'trusted_peer' });
  await gateway.bind('tcp://127.0.0.1:0');
  gateway.registerRpc('report', async (pages: number) => {
    const ctx = currentCall()!; // the same context withContext would pass
    return upstream.invoke('build', [pages], { signal: ctx.signal });
  });
  await gateway.start();

  const client = new Client('gateway', { security: 'trusted_peer', userId: 'alice' });
  client.connect(gateway.endpoint);
  try {
    await client.start();
    log(`report(2) = ${String(await client.call.report(2))}`);

    // alice gives up after 50 ms: her call rejects at once, and the cancel reaches the report service.
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('alice gave up')), 50);
    const cancelled = await client.invoke('report', [100], { signal: controller.signal }).catch((error: unknown) => error);
    log(`report(100), cancelled: ${cancelled instanceof CancelledError ? 'CancelledError' : String(cancelled)}`);
    log(await stopped);

    // A 100 ms deadline: the gateway's call upstream inherits it, so nothing runs past it.
    const late = await client.invoke('report', [100], { timeoutMs: 100 }).catch((error: unknown) => error);
    log(`report(100) with a 100 ms deadline: ${late instanceof TimeoutError ? 'TimeoutError' : String(late)}`);
  } finally {
    await client.stop();
    await gateway.stop();
    await upstream.stop();
    await reports.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runCancellation();
