/**
 * Compile-time checks of the options: each role's options are their own type, so the other role's
 * keys do not compile (`tsc -p test/types` must succeed: an unused @ts-expect-error fails it).
 * Run by test/typed-proxy.spec.ts. The runtime half is test/options.spec.ts.
 */
import { Client, MsgpackCodec, Server, type ClientOptions, type ServerOptions, type Translator } from '../../lib/index.js';

export function checks(): void {
  // @ts-expect-error: `users` is a server option
  void new Client('x', { users: {} });
  // @ts-expect-error: `remoteShutdown` is a server option
  void new Client('x', { remoteShutdown: true });
  // @ts-expect-error: a client does not take a list of trusted proxies
  void new Client('x', { trustedProxies: ['edge'] });
  // @ts-expect-error: `routingId` is a client option (a server's routing id is its id)
  void new Server('x', { routingId: 'a' });
  // @ts-expect-error: credentials are a client's
  void new Server('x', { userId: 'alice' });
  // @ts-expect-error: a misspelled option
  void new Server('x', { timeotMs: 100 });
  // @ts-expect-error: a misspelled direction
  void new Server('x', { interceptors: { incomming: [] } });

  // Each role's own options, and the common ones, compile.
  const serverOptions: ServerOptions = { timeoutMs: 100, remoteShutdown: (identity) => identity === 'root', users: {}, trustedProxies: ['edge'] };
  const clientOptions: ClientOptions = { timeoutMs: 100, routingId: 'me', userId: 'alice', token: () => 'jwt' };
  void new Server('x', serverOptions);
  void new Client('x', clientOptions);

  // A typed translator is accepted where translators are taken (the documented example).
  class Point {
    constructor(readonly x: number, readonly y: number) {}
  }
  const point: Translator<Point, [number, number]> = { Class: Point, type: 1, pack: (p) => [p.x, p.y], unpack: ([x, y]) => new Point(x, y) };
  void new Server('x', { translators: [point] });
  void new Client('x', { translators: [point] });
  void new MsgpackCodec({ translators: [point] });
}
