/**
 * The stream scenario: items/s of 1 KiB items through `client.stream` against raw zeromq.js
 * pushing the same items ROUTER -> DEALER (one msgpackr frame each, awaiting each send, which is
 * ZeroMQ's own backpressure) in the same run; then the peak RSS of a slow consumer of 10^6 items.
 * Producer and consumer share one process in both systems (same footing), rounds alternate.
 *
 * node dist/bench/streams.js [--quick] [--json]
 */
import { encode, decode } from 'msgpackr';
import * as zmq from 'zeromq';
import { Client, Server, silentLogger } from '../lib/index.js';

const quick = process.argv.includes('--quick');
const ITEM = Buffer.alloc(1024, 7);
const ITEMS = quick ? 20_000 : 100_000;
const ROUNDS = quick ? 3 : 5;

/** Hard stop: a bench never hangs a machine. */
const guard = setTimeout(() => {
  process.stderr.write('streams bench: hard timeout\n');
  process.exit(3);
}, quick ? 60_000 : 240_000);

async function raw(): Promise<number> {
  const router = new zmq.Router({ linger: 0, mandatory: true }); // mandatory: a full pipe waits instead of dropping
  await router.bind('tcp://127.0.0.1:0');
  const dealer = new zmq.Dealer({ linger: 0, routingId: 'consumer' });
  dealer.connect(router.lastEndpoint!);
  await dealer.send('hello'); // the router learns the route
  const [routingId] = await router.receive();
  const started = performance.now();
  const producing = (async () => {
    for (let i = 0; i < ITEMS; i++) await router.send([routingId!, encode([i, ITEM])]);
  })();
  let received = 0;
  while (received < ITEMS) {
    const [frame] = await dealer.receive();
    const [index] = decode(frame!) as [number, Buffer];
    if (index !== received) throw new Error(`raw: item ${index} out of order`);
    received++;
  }
  const rate = received / ((performance.now() - started) / 1000);
  await producing;
  router.close();
  dealer.close();
  return rate;
}

async function peers(): Promise<{ server: Server; client: Client; close: () => Promise<void> }> {
  const server = new Server('bench', { logger: silentLogger, security: 'trusted_peer' });
  await server.bind('tcp://127.0.0.1:0');
  server.registerRpc('items', async function* (n: number) {
    for (let i = 0; i < n; i++) yield ITEM;
  });
  server.registerRpc('slow', async function* (n: number) {
    for (let i = 0; i < n; i++) yield ITEM;
  });
  await server.start();
  const client = new Client('bench', { logger: silentLogger, security: 'trusted_peer', userId: 'consumer' });
  client.connect(server.endpoint);
  await client.start();
  return { server, client, close: async () => { await client.stop(); await server.stop(); } };
}

async function zeropeer(): Promise<number> {
  const { client, close } = await peers();
  const started = performance.now();
  let received = 0;
  for await (const item of client.stream.items(ITEMS)) {
    if ((item as Buffer).length !== 1024) throw new Error('zeropeer: a short item');
    received++;
  }
  const rate = received / ((performance.now() - started) / 1000);
  await close();
  return rate;
}

/** A consumer that sleeps 1 ms per 10 items, reading a producer of 10^6 for a bounded time; RSS sampled. */
async function slowConsumer(): Promise<{ baselineMb: number; peakMb: number; consumed: number; seconds: number }> {
  const { client, close } = await peers();
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const seconds = quick ? 2 : 5;
  const end = Date.now() + seconds * 1000;
  let consumed = 0;
  for await (const item of client.stream.slow(1_000_000)) {
    void item;
    if (++consumed % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    if (Date.now() > end) break;
  }
  clearInterval(sampler);
  await close();
  return { baselineMb: baseline / 2 ** 20, peakMb: peak / 2 ** 20, consumed, seconds };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rawRates: number[] = [];
const zpRates: number[] = [];
const ratios: number[] = [];
await raw();
await zeropeer(); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  const r = await raw();
  const z = await zeropeer();
  rawRates.push(r);
  zpRates.push(z);
  ratios.push(z / r);
}
const slow = await slowConsumer();
clearTimeout(guard);
const result = {
  items: ITEMS,
  rounds: ROUNDS,
  rawItemsPerSec: Math.round(median(rawRates)),
  zeropeerItemsPerSec: Math.round(median(zpRates)),
  ratio: Number(median(ratios).toFixed(2)),
  slowConsumer: { ...slow, baselineMb: Math.round(slow.baselineMb), peakMb: Math.round(slow.peakMb) },
};
if (process.argv.includes('--json')) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  console.log(`streams: ${ITEMS} items of 1 KiB, median of ${ROUNDS} rounds`);
  console.log(`  raw zeromq.js ROUTER -> DEALER  ${result.rawItemsPerSec} items/s`);
  console.log(`  zeropeer client.stream          ${result.zeropeerItemsPerSec} items/s  (${result.ratio}x raw, target >= 0.8x)`);
  console.log(`  slow consumer of 10^6 items, ${slow.seconds} s: ${slow.consumed} consumed, RSS ${result.slowConsumer.baselineMb} MB -> peak ${result.slowConsumer.peakMb} MB`);
}
