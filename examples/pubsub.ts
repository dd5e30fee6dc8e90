/**
 * Pub/sub over authenticated connections: clients subscribe to topic prefixes; the server
 * publishes a call that runs on every subscribed client, with no replies.
 * Run: `node dist/examples/pubsub.js`.
 */
import { Client, Server } from '../lib/index.js';

interface Subscriber {
  price(symbol: string, bid: number): void;
}

export async function runPubSub(log: (line: string) => void = console.log): Promise<void> {
  const server = new Server<Subscriber>('prices', { security: 'trusted_peer' });
  await server.bind('tcp://127.0.0.1:0');
  await server.start();

  const traders = [
    { userId: 'eur-desk', topic: 'fx.eur' },
    { userId: 'all-fx', topic: 'fx.' },
    { userId: 'rates', topic: 'rates.' },
  ].map(({ userId, topic }) => {
    const client = new Client('prices', { security: 'trusted_peer', userId });
    client.connect(server.endpoint);
    client.registerRpc('price', (symbol: string, bid: number) => log(`${userId} got ${symbol} ${bid}`));
    return { client, topic };
  });
  try {
    for (const { client, topic } of traders) {
      await client.start();
      await client.subscribe(topic); // prefix match, as ZeroMQ's SUB sockets do
    }
    const sent = await server.publish('fx.eur.usd').price('EURUSD', 1.0842);
    log(`fx.eur.usd went to ${sent} subscribers`);
    await new Promise((resolve) => setTimeout(resolve, 100)); // one-way: give the calls time to run
  } finally {
    await Promise.all([...traders.map(({ client }) => client.stop()), server.stop()]);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runPubSub();
