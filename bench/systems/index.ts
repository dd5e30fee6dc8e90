/** The Node systems by key (aiozmq, in Python, is started by ./aiozmq.ts). */
import { grpcJs } from './grpc.js';
import { rawZeromq } from './raw-zeromq.js';
import type { NodeSystem } from './types.js';
import { zeropeerClientToServer, zeropeerPlainCurve, zeropeerServerToClient } from './zeropeer.js';

export const NODE_SYSTEMS: Readonly<Record<string, NodeSystem>> = {
  'raw': rawZeromq,
  'zeropeer': zeropeerClientToServer,
  'zeropeer-s2c': zeropeerServerToClient,
  'zeropeer-curve': zeropeerPlainCurve,
  'grpc': grpcJs,
};
