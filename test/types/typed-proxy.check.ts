/**
 * Compile-time checks of the typed proxies: `tsc -p test/types` must succeed, which means every
 * call below marked @ts-expect-error really is a type error (an unused marker fails the build)
 * and every other line type-checks. Run by test/typed-proxy.spec.ts.
 */
import { Client, Server, type CallStream } from '../../lib/index.js';

interface ServerApi {
  string: { lower(s: string): string };
  add(a: number, b: number): number;
  fetchUser(id: number): Promise<{ id: number; name: string }>;
  logs: { tail(n: number): AsyncGenerator<string> };
  ids(): number[];
}

interface ClientApi {
  addition(a: number, b: number): number;
  feed: { items(since: Date): AsyncIterable<{ at: Date; value: number }> };
}

export async function checks(): Promise<void> {
  const client = new Client<ServerApi>('service');
  const server = new Server<ClientApi>('service');

  const lower: string = await client.call.string.lower('ABC');
  const sum: number = await client.call.add(1, 2);
  const user: { id: number; name: string } = await client.call.fetchUser(1);
  const pushed: number = await server.sendTo('alice').addition(2, 4);
  const explicit: number = await server.sendTo<{ twice(n: number): number }>('bob').twice(2);
  void [lower, sum, user, pushed, explicit];

  // Streams: typed items, typed arguments.
  const lines: CallStream<string> = client.stream.logs.tail(3);
  for await (const line of lines) void line.toUpperCase();
  const ids: CallStream<number> = client.stream.ids(); // a list answer streams its elements
  const feed = server.streamTo('alice').feed.items(new Date());
  for await (const item of feed) void item.at.getTime();
  await feed.cancel('done');
  void ids;
  // @ts-expect-error: tail takes a number
  client.stream.logs.tail('3');
  // @ts-expect-error: the items are strings
  const wrong: CallStream<number> = client.stream.logs.tail(3);
  void wrong;

  // @ts-expect-error: no such method on the server
  await client.call.string.upper('abc');
  // @ts-expect-error: wrong argument type
  await client.call.add('1', 2);
  // @ts-expect-error: missing argument
  await client.call.add(1);
  // @ts-expect-error: the result is a string, not a number
  const wrong: number = await client.call.string.lower('x');
  void wrong;
  // @ts-expect-error: no such method on the client
  await server.sendTo('alice').subtraction(2, 4);
  // @ts-expect-error: wrong argument type for a push
  await server.sendTo('alice').addition('2', 4);

  // One-way and publish proxies keep the names and arguments; their results are fixed.
  const notified: void = await client.notify.add(1, 2);
  const reached: number = await server.publish('topic').addition(1, 2);
  void [notified, reached];
  // @ts-expect-error: wrong argument type for a one-way call
  await client.notify.add('1', 2);
  // @ts-expect-error: no such method to publish
  await server.publish('topic').subtraction(1, 2);

  // Without an interface, anything goes (and resolves to any).
  const untyped = new Client('service');
  const anything: unknown = await untyped.call.whatever.you.like(1, 'two', { three: 3 });
  void anything;
}
