/**
 * OpenTelemetry-style tracing over per-call metadata: the outgoing interceptor starts a client span
 * and injects its W3C `traceparent` into `call.metadata`; the incoming interceptor extracts it and
 * runs the handler in a server span that is its child. Calls a handler makes (here the server
 * calling back into the client) carry the trace on, so one trace id covers the whole exchange.
 *
 * @opentelemetry/api is not a dependency of zeropeer, so this example writes out by hand the two
 * things it would provide: the active span, kept in an AsyncLocalStorage, and the traceparent
 * header (https://www.w3.org/TR/trace-context/#traceparent-header:
 * `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`). With @opentelemetry/api the
 * interceptors become `propagation.inject(context.active(), call.metadata)` before `next(call)`
 * (in a span from `tracer.startActiveSpan`), and
 * `context.with(propagation.extract(ROOT_CONTEXT, call.metadata), () => next(call))` on receipt.
 * Metadata travels between zeropeer peers only (compact framing); a pseud peer gets none.
 * Run: `node dist/examples/interceptors-tracing.js`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { Client, Server, type CallContext, type Interceptor } from '../lib/index.js';

/** What a traceparent carries. */
export interface SpanContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
}

/** A finished span, as a tracer would export it. */
export interface Span extends SpanContext {
  readonly name: string;
  readonly kind: 'internal' | 'client' | 'server';
  readonly service: string;
  readonly parentSpanId: string | undefined;
  status: 'ok' | 'error';
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export function formatTraceparent(span: SpanContext): string {
  return `00-${span.traceId}-${span.spanId}-${span.sampled ? '01' : '00'}`;
}

/** The span context of a traceparent, or undefined when it is missing or invalid (then a new trace starts). */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  const match = value === undefined ? null : TRACEPARENT.exec(value);
  if (!match || /^0+$/.test(match[1]!) || /^0+$/.test(match[2]!)) return undefined;
  return { traceId: match[1]!, spanId: match[2]!, sampled: (parseInt(match[3]!, 16) & 1) === 1 };
}

/** A minimal tracer for one service: the active span per async context, and the spans it finished. */
export class Tracer {
  readonly finished: Span[] = [];
  readonly #active = new AsyncLocalStorage<Span>();

  constructor(readonly service: string) {}

  /** The active span of this async context, if any. */
  current(): Span | undefined {
    return this.#active.getStore();
  }

  /** Runs `fn` in a new span, child of `parent` (none: a new trace), and records the span when it ends. */
  async inSpan<T>(name: string, kind: Span['kind'], parent: SpanContext | undefined, fn: (span: Span) => Promise<T>): Promise<T> {
    const span: Span = {
      name, kind, service: this.service,
      traceId: parent?.traceId ?? randomBytes(16).toString('hex'),
      spanId: randomBytes(8).toString('hex'),
      parentSpanId: parent?.spanId,
      sampled: parent?.sampled ?? true,
      status: 'ok',
    };
    return this.#active.run(span, async () => {
      try {
        return await fn(span);
      } catch (error) {
        span.status = 'error';
        throw error;
      } finally {
        this.finished.push(span);
      }
    });
  }

  /** Outgoing: a client span; its traceparent goes with the call. */
  readonly outgoing: Interceptor = (next) => (call) =>
    this.inSpan(call.method, 'client', this.current(), (span) => {
      call.metadata['traceparent'] = formatTraceparent(span);
      return next(call);
    });

  /** Incoming: a server span, child of the caller's span when the call carried one. */
  readonly incoming: Interceptor = (next) => (call) =>
    this.inSpan(call.method, 'server', parseTraceparent(call.metadata['traceparent']), () => next(call));
}

export async function runInterceptorsTracing(log: (line: string) => void = console.log): Promise<Span[]> {
  const shopTracer = new Tracer('shop');
  const storeTracer = new Tracer('store');
  const server = new Server('shop', { interceptors: { incoming: [shopTracer.incoming], outgoing: [shopTracer.outgoing] } });
  // Placing an order asks the calling store to reserve the item: a call back, inside the same trace.
  server.registerRpc('orders.place', async (ctx: CallContext, item: string) => {
    const reserved: unknown = await server.sendTo(ctx.identity).inventory.reserve(item);
    return reserved ? `order for ${item} placed` : `${item} is out of stock`;
  }, { withContext: true });
  await server.bind('tcp://127.0.0.1:0');
  await server.start();

  const client = new Client('shop', { userId: 'store-1', interceptors: { incoming: [storeTracer.incoming], outgoing: [storeTracer.outgoing] } });
  client.registerRpc('inventory.reserve', (ctx: CallContext, item: string) => {
    log(`store reserves ${item}, traceparent ${ctx.metadata['traceparent'] ? 'received' : 'missing'}`);
    return true;
  }, { withContext: true });
  client.connect(server.endpoint);
  try {
    await client.start();
    const answer: unknown = await storeTracer.inSpan('checkout', 'internal', undefined, (): Promise<unknown> => client.call.orders.place('book'));
    log(String(answer));
  } finally {
    await client.stop();
    await server.stop();
  }

  // Print the trace as a tree, children under their parent.
  const spans = [...storeTracer.finished, ...shopTracer.finished];
  const print = (parent: string | undefined, depth: number): void => {
    for (const span of spans.filter((s) => s.parentSpanId === parent)) {
      log(`${'  '.repeat(depth)}${span.service}: ${span.name} (${span.kind}) ${span.status}`);
      print(span.spanId, depth + 1);
    }
  };
  print(undefined, 0);
  return spans;
}

if (import.meta.url === `file://${process.argv[1]}`) await runInterceptorsTracing();
