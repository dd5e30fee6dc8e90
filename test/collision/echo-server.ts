/**
 * A bare ZeroMQ ROUTER that echoes, in its own process: the target of the routing-id collision
 * test (run.ts). Not a zeropeer peer on purpose: the defect is in libzmq's ROUTER, and nothing
 * else in this process may call rand() before the ROUTER is made (its generated routing ids
 * start from libzmq's first, unseeded rand() values).
 *
 *   ZEROPEER_ZMQ_MODULE=<zeromq package dir, or "zeromq"> node echo-server.js
 *
 * stdout: `ready <endpoint> <zmq.version>` once bound. Each message [id, ...frames] is answered
 * with [id, <id as hex>, ...frames], so the caller sees the routing id libzmq gave it.
 * The process ends when its stdin closes or reads `stop`, and in any case after a safety timeout.
 */
import { createRequire } from 'node:module';
import type * as Zmq from 'zeromq';

const SAFETY_TIMEOUT_MS = 30_000;
setTimeout(() => {
  process.stderr.write(`echo-server: safety timeout (${SAFETY_TIMEOUT_MS} ms), exiting\n`);
  process.exit(3);
}, SAFETY_TIMEOUT_MS);

const modulePath = process.env.ZEROPEER_ZMQ_MODULE || 'zeromq';
const zmq = createRequire(import.meta.url)(modulePath) as typeof Zmq;

const router = new zmq.Router({ linger: 0 });
await router.bind('tcp://127.0.0.1:0');
process.stdout.write(`ready ${router.lastEndpoint} ${zmq.version}\n`);

process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  if (chunk.split('\n').includes('stop')) process.exit(0);
});
process.stdin.on('end', () => process.exit(0));

for await (const [id, ...frames] of router) {
  await router.send([id, Buffer.from(id.toString('hex')), ...frames]);
}
