/**
 * A timing and logging interceptor: one line per call on each side, saying how the call ended and
 * how long it took. The same interceptor serves both directions: on the server it wraps incoming
 * work (the handler's time), on the client outgoing calls (the round trip).
 * Run: `node dist/examples/interceptors-timing.js`.
 */
import { Client, Server, type Interceptor } from '../lib/index.js';

/** Logs `<side> <direction> <method> ok|failed (<error name>) in <ms> ms` once each call settles. */
export function timing(side: string, log: (line: string) => void): Interceptor {
  return (next) => async (call) => {
    const started = performance.now();
    let outcome = 'ok';
    try {
      return await next(call);
    } catch (error) {
      outcome = `failed (${error instanceof Error ? error.name : typeof error})`;
      throw error;
    } finally {
      log(`${side} ${call.direction} ${call.method} ${outcome} in ${(performance.now() - started).toFixed(1)} ms`);
    }
  };
}

export async function runInterceptorsTiming(log: (line: string) => void = console.log): Promise<void> {
  const server = new Server('timed', { interceptors: { incoming: [timing('server', log)] } });
  server.registerRpc('string.lower', (s: string) => s.toLowerCase());
  server.registerRpc('report.build', async (rows: number) => {
    await new Promise((resolve) => setTimeout(resolve, 20)); // some real work
    return `${rows} rows`;
  });
  server.registerRpc('report.broken', () => {
    throw new RangeError('no such report');
  });
  await server.bind('tcp://127.0.0.1:0');
  await server.start();

  const client = new Client('timed', { userId: 'alice', interceptors: { outgoing: [timing('client', log)] } });
  client.connect(server.endpoint);
  try {
    await client.start();
    await client.call.string.lower('ABC');
    await client.call.report.build(3);
    await client.call.report.broken().catch(() => undefined); // logged as failed on both sides
  } finally {
    await client.stop();
    await server.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runInterceptorsTiming();
