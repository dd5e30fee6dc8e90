/**
 * A metrics interceptor: counts calls by method and outcome (`ok`, or the error's code when it has
 * one, else its class name), and prints them in Prometheus' text format. One instance per peer;
 * the server counts the work it ran, the client the calls it made.
 * Run: `node dist/examples/interceptors-metrics.js`.
 */
import { Client, Server, type Interceptor } from '../lib/index.js';

export class CallMetrics {
  readonly #counts = new Map<string, number>();

  constructor(readonly name: string) {}

  /** The interceptor that feeds this counter; give it to `incoming`, `outgoing`, or both. */
  readonly interceptor: Interceptor = (next) => async (call) => {
    try {
      const result = await next(call);
      this.#count(call.direction, call.method, 'ok');
      return result;
    } catch (error) {
      this.#count(call.direction, call.method, outcomeOf(error));
      throw error;
    }
  };

  /** Prometheus text format, one sorted line per (direction, method, outcome). */
  exposition(): string[] {
    return [...this.#counts].map(([labels, count]) => `${this.name}{${labels}} ${count}`).sort();
  }

  #count(direction: string, method: string, outcome: string): void {
    const labels = `direction="${direction}",method="${method}",outcome="${outcome}"`;
    this.#counts.set(labels, (this.#counts.get(labels) ?? 0) + 1);
  }
}

function outcomeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.name : 'unknown';
}

export async function runInterceptorsMetrics(log: (line: string) => void = console.log): Promise<void> {
  const serverMetrics = new CallMetrics('zeropeer_server_calls_total');
  const clientMetrics = new CallMetrics('zeropeer_client_calls_total');
  const server = new Server('calc', { interceptors: { incoming: [serverMetrics.interceptor] } });
  const isNumber = (value: unknown): number => {
    if (typeof value !== 'number') throw new TypeError('not a number');
    return value;
  };
  server.registerRpc('math.add', (a: number, b: number) => a + b, { params: [isNumber, isNumber] });
  server.registerRpc('math.div', (a: number, b: number) => {
    if (b === 0) throw new RangeError('division by zero');
    return a / b;
  });
  await server.bind('tcp://127.0.0.1:0');
  await server.start();

  const client = new Client('calc', { userId: 'alice', interceptors: { outgoing: [clientMetrics.interceptor] } });
  client.connect(server.endpoint);
  try {
    await client.start();
    await client.call.math.add(1, 2);
    await client.call.math.add(3, 4);
    await client.call.math.add('5', 6).catch(() => undefined); // ParameterError: invalid_argument
    await client.call.math.div(1, 0).catch(() => undefined); // RangeError
    await client.call.math.div(6, 3);
  } finally {
    await client.stop();
    await server.stop();
  }
  for (const line of [...serverMetrics.exposition(), ...clientMetrics.exposition()]) log(line);
}

if (import.meta.url === `file://${process.argv[1]}`) await runInterceptorsMetrics();
