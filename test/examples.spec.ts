import { expect } from 'chai';
import { runCancellation } from '../examples/cancellation.js';
import { runCluster } from '../examples/cluster/run.js';
import { runCustomAuth } from '../examples/custom-auth.js';
import { runDemo } from '../examples/demo.js';
import { runSharedTable } from '../examples/heartbeat-backend.js';
import { runInterceptorsMetrics } from '../examples/interceptors-metrics.js';
import { runInterceptorsTiming } from '../examples/interceptors-timing.js';
import { formatTraceparent, parseTraceparent, runInterceptorsTracing } from '../examples/interceptors-tracing.js';
import { runPrometheus } from '../examples/prometheus.js';
import { runPubSub } from '../examples/pubsub.js';
import { runReplyChannel } from '../examples/reply-channel.js';
import { runStreams } from '../examples/streams.js';
import { TestRedis, skipWithoutRedis } from './redis-server.js';

describe('examples', function () {
  this.timeout(20_000);

  it('the demo authenticates, talks both ways, refuses a wrong password, shows an error and a deadline, and stops', async () => {
    const lines: string[] = [];
    await runDemo((line) => lines.push(line));
    const text = lines.join('\n');
    expect(text).to.contain('alice authenticated');
    expect(text).to.contain('bob authenticated');
    expect(text).to.contain("string.lower('ABC') = abc");
    expect(text).to.contain('whoami() = you are bob');
    expect(text).to.contain('connected peers = alice, bob');
    expect(text).to.contain('addition(2, 4) = 6');
    expect(text).to.contain('whoami() with a wrong password: UnauthorizedError');
    expect(text).to.contain('threw InventoryError: out of stock');
    expect(text).to.contain('with a 100 ms deadline');
    expect(lines.at(-1)).to.equal('done: every peer stopped');
  });

  it('the custom API-key plugin names a peer by its key and refuses an unknown one', async () => {
    const lines: string[] = [];
    await runCustomAuth((line) => lines.push(line));
    expect(lines).to.deep.equal(['with a known key: whoami() = reports', 'with an unknown key: UnauthorizedError']);
  });

  it('the shared-table heartbeat backend records which server each identity is on, and forgets a stopped one', async () => {
    const lines: string[] = [];
    await runSharedTable((line) => lines.push(line));
    expect(lines).to.deep.equal(['alice is on eu, bob is on us', 'after bob stops: bob is on no server']);
  });

  it('pub/sub delivers a publication to the subscribers of its prefixes only', async () => {
    const lines: string[] = [];
    await runPubSub((line) => lines.push(line));
    expect(lines[0]).to.equal('fx.eur.usd went to 2 subscribers');
    expect(lines.slice(1).sort()).to.deep.equal(['all-fx got EURUSD 1.0842', 'eur-desk got EURUSD 1.0842']);
  });

  it('cancellation reaches the handler two hops away, and a deadline travels through the gateway', async () => {
    const lines: string[] = [];
    await runCancellation((line) => lines.push(line));
    expect(lines).to.deep.equal([
      'report(2) = 2 pages for gateway',
      'report(100), cancelled: CancelledError',
      'reports: "build" for gateway stopped: CancelledError',
      'report(100) with a 100 ms deadline: TimeoutError',
    ]);
  });

  it('streams: items in order, an early stop runs the producer\'s finally, the server reads a client\'s stream', async () => {
    const lines: string[] = [];
    await runStreams((line) => lines.push(line));
    expect(lines).to.deep.equal([
      'logs.tail for desk finished',
      'desk: line 1 | desk: line 2 | desk: line 3',
      'stopped after "desk: line 2"',
      'logs.tail for desk finished',
      'prices: 100, 101, 102',
    ]);
  });

  it('the reply-channel job queue acks what it accepts and nacks when full', async () => {
    const lines: string[] = [];
    await runReplyChannel((line) => lines.push(line));
    expect(lines).to.deep.equal([
      'queued build for builder',
      'build: acknowledged',
      'queued test for builder',
      'test: acknowledged',
      'deploy: refused (queue full)',
      'queue size: 2',
    ]);
  });
  it('the timing interceptor logs each call once per side, with its outcome and a duration', async () => {
    const lines: string[] = [];
    await runInterceptorsTiming((line) => lines.push(line));
    for (const line of lines) expect(line).to.match(/ in \d+\.\d ms$/);
    // The server logs when its handler settles, before the answer reaches the client.
    expect(lines.map((line) => line.replace(/ in \d+\.\d ms$/, ''))).to.deep.equal([
      'server incoming string.lower ok',
      'client outgoing string.lower ok',
      'server incoming report.build ok',
      'client outgoing report.build ok',
      'server incoming report.broken failed (RangeError)',
      'client outgoing report.broken failed (RangeError)',
    ]);
  });

  it('the metrics interceptor counts calls by method and outcome, on each side', async () => {
    const lines: string[] = [];
    await runInterceptorsMetrics((line) => lines.push(line));
    expect(lines).to.deep.equal([
      'zeropeer_server_calls_total{direction="incoming",method="math.add",outcome="invalid_argument"} 1',
      'zeropeer_server_calls_total{direction="incoming",method="math.add",outcome="ok"} 2',
      'zeropeer_server_calls_total{direction="incoming",method="math.div",outcome="RangeError"} 1',
      'zeropeer_server_calls_total{direction="incoming",method="math.div",outcome="ok"} 1',
      'zeropeer_client_calls_total{direction="outgoing",method="math.add",outcome="invalid_argument"} 1',
      'zeropeer_client_calls_total{direction="outgoing",method="math.add",outcome="ok"} 2',
      'zeropeer_client_calls_total{direction="outgoing",method="math.div",outcome="RangeError"} 1',
      'zeropeer_client_calls_total{direction="outgoing",method="math.div",outcome="ok"} 1',
    ]);
  });

  it('the Prometheus example scrapes peer.stats() through prom-client: calls each way, failures by code, connected peers', async () => {
    const lines: string[] = [];
    await runPrometheus((line) => lines.push(line));
    expect(lines).to.include.members([
      'zeropeer_connected_peers{peer="server"} 1',
      'zeropeer_connected_peers{peer="client"} 1',
      'zeropeer_pending_calls{peer="client"} 0',
      'zeropeer_calls_total{peer="server",direction="in"} 4',
      'zeropeer_calls_total{peer="client",direction="out"} 4',
      'zeropeer_calls_failed_total{peer="server",direction="in",code="service_not_found"} 1',
      'zeropeer_calls_failed_total{peer="client",direction="out",code="service_not_found"} 1',
    ]);
    expect(lines.at(-1)).to.equal('client sent bytes: some');
  });

  it('the tracing interceptors carry one W3C trace across both peers and a call back', async () => {
    const lines: string[] = [];
    const spans = await runInterceptorsTracing((line) => lines.push(line));
    expect(lines).to.deep.equal([
      'store reserves book, traceparent received',
      'order for book placed',
      'store: checkout (internal) ok',
      '  store: orders.place (client) ok',
      '    shop: orders.place (server) ok',
      '      shop: inventory.reserve (client) ok',
      '        store: inventory.reserve (server) ok',
    ]);
    expect(spans).to.have.length(5);
    expect(new Set(spans.map((span) => span.traceId)).size, 'one trace').to.equal(1);
    expect(spans.map((span) => span.traceId)[0]).to.match(/^[0-9a-f]{32}$/);
    expect(new Set(spans.map((span) => span.spanId)).size, 'distinct span ids').to.equal(5);
  });

  it('the traceparent helpers of the tracing example follow the W3C format', () => {
    const context = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', sampled: true };
    expect(formatTraceparent(context)).to.equal('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    expect(parseTraceparent(formatTraceparent(context))).to.deep.equal(context);
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00')).to.deep.include({ sampled: false });
    for (const bad of [undefined, '', 'garbage', '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01']) {
      expect(parseTraceparent(bad), String(bad)).to.equal(undefined);
    }
  });

  it('the cluster example: a producer on node a reaches workers on nodes a, b and c (three node processes, one Redis)', async function () {
    if (!skipWithoutRedis(this)) return;
    const redis = await TestRedis.start();
    try {
      const lines: string[] = [];
      await runCluster(redis.url, (line) => lines.push(line));
      expect(lines).to.have.length(3);
      expect(lines.map((line) => line.split(' ')[0]).sort()).to.deep.equal(['build', 'deploy', 'test']);
      expect(lines.map((line) => line.split(' ')[3]).sort()).to.deep.equal(['worker-a', 'worker-b', 'worker-c']);
      for (const line of lines) expect(line).to.match(/\(dispatched by node a\)$/);
    } finally {
      await redis.close();
    }
  });
});
