/**
 * Streams: a handler that is an `async function*` streams its items; the caller reads them with
 * `for await`, the producer never more than a window ahead. Leaving the loop early stops the
 * producer (its `finally` runs). Both directions: the server pushes a stream to a client too.
 * Run: `node dist/examples/streams.js`.
 */
import { Client, Server, type CallContext } from '../lib/index.js';

interface LogApi {
  logs: { tail(n: number): AsyncGenerator<string> };
}
interface DeskApi {
  prices: { watch(symbol: string): AsyncGenerator<number> };
}

export async function runStreams(log: (line: string) => void = console.log): Promise<void> {
  const server = new Server<DeskApi>('logs', { security: 'trusted_peer' });
  await server.bind('tcp://127.0.0.1:0');
  let finished: () => void = () => {};
  server.registerRpc('logs.tail', async function* (ctx: CallContext, n: number) {
    try {
      for (let i = 1; i <= n && !ctx.signal.aborted; i++) yield `${ctx.identity}: line ${i}`;
    } finally {
      log(`logs.tail for ${ctx.identity} finished`);
      finished();
    }
  }, { withContext: true });
  await server.start();

  const client = new Client<LogApi>('logs', { security: 'trusted_peer', userId: 'desk', streamWindow: { items: 64, bytes: 256 * 1024 } });
  client.connect(server.endpoint);
  client.registerRpc('prices.watch', async function* (symbol: string) {
    for (let tick = 0; tick < 1_000_000; tick++) yield 100 + tick; // as many as the reader wants
    log(`never reached for ${symbol}`);
  });
  try {
    await client.start();
    const lines: string[] = [];
    for await (const line of client.stream.logs.tail(3)) lines.push(line);
    log(lines.join(' | ')); // the producer ended (its finally ran) before the stream did

    // A reader that stops early: the producer's finally runs on the other side.
    const stopped = new Promise<void>((resolve) => (finished = resolve));
    let read = 0;
    for await (const line of client.stream.logs.tail(1_000_000)) {
      if (++read === 2) {
        log(`stopped after "${line}"`);
        break;
      }
    }
    await stopped;

    // Server -> client: the server reads a stream the client produces.
    const prices: number[] = [];
    for await (const price of server.streamTo('desk').prices.watch('EURUSD')) {
      prices.push(price);
      if (prices.length === 3) break;
    }
    log(`prices: ${prices.join(', ')}`);
  } finally {
    await client.stop();
    await server.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runStreams();
