/**
 * The exit status of the `zeropeer` command: one per error code, so a script can tell a refused
 * login from a deadline without reading stderr.
 */
import type { ErrorCode } from '../errors.js';

/** A command line the CLI cannot act on (an unknown command, a missing argument, bad JSON). */
export const USAGE_EXIT = 2;

/** Exit status by `RpcError.code`; an error without a known code exits 1. */
export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  rpc_error: 1,
  service_not_found: 10,
  unauthorized: 11,
  timeout: 12,
  peer_not_connected: 13,
  service_closed: 14,
  invalid_argument: 15,
  remote: 16,
  nack: 17,
  busy: 18,
  protocol: 19,
  encoding: 20,
  message_too_large: 21,
  registration: 22,
  cancelled: 23,
  cluster_unavailable: 24,
};

/** The exit status for an error's `code` (a remote error's own code that is not ours: `remote`). */
export function exitCodeFor(code: unknown): number {
  if (typeof code !== 'string') return 1;
  return Object.hasOwn(EXIT_CODES, code) ? EXIT_CODES[code as ErrorCode] : EXIT_CODES.remote;
}

/**
 * JSON for a result: what MessagePack carries that JSON does not is written readably (a BigInt
 * as a string, a Map as an object, a Set as an array, bytes as base64); `undefined` is `null`.
 */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value ?? null, (_key, item: unknown) => {
    if (typeof item === 'bigint') return item.toString();
    if (item instanceof Map) return Object.fromEntries(item as Map<unknown, unknown>) as unknown;
    if (item instanceof Set) return [...(item as Set<unknown>)];
    if (item instanceof Uint8Array) return Buffer.from(item.buffer, item.byteOffset, item.byteLength).toString('base64');
    if (item && typeof item === 'object' && (item as { type?: unknown }).type === 'Buffer' && Array.isArray((item as { data?: unknown }).data)) {
      return Buffer.from((item as { data: number[] }).data).toString('base64'); // a Buffer after its own toJSON
    }
    return item;
  }, indent);
}
