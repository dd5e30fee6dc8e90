/**
 * Proxies that turn property access into dotted names: `peer.call.string.lower('A')` invokes
 * `'string.lower'` with `['A']`. `then` (and symbols) read as undefined at every depth, so that
 * `await peer.call.x` is safe and a proxy is never mistaken for a promise.
 */

import type { CallStream } from './engine/streams.js';

/** The remote view of an API interface: every function returns a promise of its awaited result. */
export type RemoteApi<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : T[K] extends object
      ? RemoteApi<T[K]>
      : never;
};

/** An API interface whose every function resolves to `Result`, whatever it returns over there. */
export type FixedResultApi<T, Result> = {
  [K in keyof T]: T[K] extends (...args: infer A) => unknown
    ? (...args: A) => Promise<Result>
    : T[K] extends object
      ? FixedResultApi<T[K], Result>
      : never;
};

/** The one-way view of an API interface: every function resolves (to nothing) once sent. */
export type NotifyApi<T> = FixedResultApi<T, void>;

/** A one-way proxy for an interface, or the untyped one. */
export type NotifyProxy<T> = 0 extends 1 & T ? AnyCallProxy : NotifyApi<T>;

/** A publish proxy: every function resolves to the number of subscribers it was sent to. */
export type PublishApi<T> = FixedResultApi<T, number>;

/** A publish proxy for an interface, or the untyped one. */
export type PublishProxy<T> = 0 extends 1 & T ? AnyCallProxy : PublishApi<T>;

/** The untyped proxy: any dotted name, any arguments. */
export interface AnyCallProxy {
  [name: string]: AnyCallProxy;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- an untyped call resolves to whatever the remote returned
  (...args: unknown[]): Promise<any>;
}

/** `RemoteApi<T>` for an interface, `AnyCallProxy` when no interface is given (`any`). */
export type CallProxy<T> = 0 extends 1 & T ? AnyCallProxy : RemoteApi<T>;

/** What one item of a streaming function is: what its AsyncIterable yields (or its list's elements). */
export type StreamItem<R> = Awaited<R> extends AsyncIterable<infer I> ? I : Awaited<R> extends ReadonlyArray<infer E> ? E : Awaited<R>;

/** The streaming view of an API interface: every function returns a CallStream of its items. */
export type StreamApi<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => CallStream<StreamItem<R>>
    : T[K] extends object
      ? StreamApi<T[K]>
      : never;
};

/** The untyped stream proxy: any dotted name, any arguments. */
export interface AnyStreamProxy {
  [name: string]: AnyStreamProxy;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- an untyped stream yields whatever the remote yields
  (...args: unknown[]): CallStream<any>;
}

/** A stream proxy for an interface, or the untyped one. */
export type StreamProxy<T> = 0 extends 1 & T ? AnyStreamProxy : StreamApi<T>;

export type Invoke = (name: string, args: unknown[]) => unknown;

const noop = function () {};

function makeProxy(invoke: Invoke, path: string, cache: Map<string, unknown>): unknown {
  return new Proxy(noop, {
    get(_target, property) {
      if (typeof property === 'symbol' || property === 'then') return undefined;
      const name = path ? `${path}.${property}` : property;
      let child = cache.get(name);
      if (child === undefined) {
        child = makeProxy(invoke, name, cache);
        // Names come from user code, usually a handful; stop caching rather than grow without bound.
        if (cache.size < 1024) cache.set(name, child);
      }
      return child;
    },
    apply(_target, _this, args: unknown[]) {
      if (!path) return Promise.reject(new TypeError('call a function by name, e.g. peer.call.string.lower(...)'));
      return invoke(path, args);
    },
  });
}

/** A proxy whose calls go through `invoke`. */
export function createCallProxy<T, P = CallProxy<T>>(invoke: Invoke): P {
  return makeProxy(invoke, '', new Map()) as P;
}
