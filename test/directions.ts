/**
 * Both directions of a call, for specs that must hold either way: a client calling its server,
 * and a server pushing work to its client.
 */
import type { CallOptions, Client, Server } from '../lib/index.js';
import { startClient, startServer } from './helpers.js';

export interface Direction {
  readonly name: string;
  /** The peer that runs the handler. */
  readonly callee: Server | Client;
  /** The peer that calls. */
  readonly caller: Server | Client;
  invoke(name: string, args: unknown[], options?: CallOptions): Promise<unknown>;
}

/** A connected server and client ('alice'), seen from one direction. */
export async function connectedPair(direction: 'client -> server' | 'server -> client', options: { timeoutMs?: number } = {}): Promise<Direction> {
  const server = await startServer(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {});
  const client = await startClient(server, { userId: 'alice', ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
  if (direction === 'client -> server') {
    return { name: direction, callee: server, caller: client, invoke: (name, args, o = {}) => client.invoke(name, args, o) };
  }
  return { name: direction, callee: client, caller: server, invoke: (name, args, o = {}) => server.invoke(name, args, { ...o, to: 'alice' }) };
}

export const DIRECTIONS = ['client -> server', 'server -> client'] as const;
