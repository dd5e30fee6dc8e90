/**
 * The Node systems by key (aiozmq, in Python, is started by ./aiozmq.ts). Each worker process
 * loads only the system it hosts, so that its memory is that system's.
 */
import type { NodeSystem } from './types.js';

const loaders: Readonly<Record<string, () => Promise<NodeSystem>>> = {
  'raw': async () => (await import('./raw-zeromq.js')).rawZeromq,
  'raw-router': async () => (await import('./raw-zeromq.js')).rawRouterRouter,
  'raw-batched': async () => (await import('./raw-zeromq.js')).rawBatched,
  'zeropeer-unbatched': async () => (await import('./zeropeer.js')).zeropeerUnbatched,
  'zeropeer': async () => (await import('./zeropeer.js')).zeropeerClientToServer,
  'zeropeer-s2c': async () => (await import('./zeropeer.js')).zeropeerServerToClient,
  'zeropeer-curve': async () => (await import('./zeropeer.js')).zeropeerPlainCurve,
  'grpc': async () => (await import('./grpc.js')).grpcJs,
};

/** Which role binds, per system (its `start` answers with the rendezvous the other role needs). */
export const BINDERS: Readonly<Record<string, NodeSystem['binder']>> = {
  'raw': 'responder',
  'raw-router': 'responder',
  'raw-batched': 'responder',
  'zeropeer-unbatched': 'responder',
  'zeropeer': 'responder',
  'zeropeer-s2c': 'caller',
  'zeropeer-curve': 'responder',
  'grpc': 'responder',
};

export const NODE_SYSTEM_KEYS = Object.keys(loaders);

export async function loadSystem(key: string): Promise<NodeSystem> {
  const load = loaders[key];
  if (!load) throw new Error(`unknown system ${key}; known: ${NODE_SYSTEM_KEYS.join(', ')}`);
  const system = await load();
  if (system.binder !== BINDERS[key]) throw new Error(`BINDERS says ${BINDERS[key]} binds for ${key}, the system says ${system.binder}`);
  return system;
}
