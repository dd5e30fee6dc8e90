/**
 * A bare ZeroMQ ROUTER that echoes, in its own process: the target of the routing-id collision
 * test (run.ts). Not a zeropeer peer on purpose: the defect is in libzmq's ROUTER, and nothing
 * else in this process may call rand() before the ROUTER is made (its generated routing ids
 * start from libzmq's first, unseeded rand() values).
 *
 *   ZEROPEER_ZMQ_MODULE=<zeromq package dir, or "zeromq"> [ZEROPEER_CONNECT_IDS=<n>] node echo-server.js
 *
 * With ZEROPEER_CONNECT_IDS=n the ROUTER also connects n times to a DEALER of its own, giving those
 * connections the routing ids (ZMQ_CONNECT_ROUTING_ID) 0x00 followed by 0x6b8b4567 + k: ids this
 * application chose that are also the next ids libzmq will generate (the case part (b) of the
 * patch covers; no peer is involved).
 *
 * stdout: `ready <endpoint> <zmq.version>` once bound (and connected). Each message [id, ...frames] is answered
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
const endpoint = router.lastEndpoint!; // read now: a connect() below would change lastEndpoint

const connectIds = Number(process.env.ZEROPEER_CONNECT_IDS ?? 0);
if (connectIds > 0) {
  const sink = new zmq.Dealer({ linger: 0 });
  await sink.bind('tcp://127.0.0.1:0');
  for (let k = 0; k < connectIds; k++) {
    const id = Buffer.alloc(5);
    id.writeUInt32BE((0x6b8b4567 + k) >>> 0, 1);
    // zeromq.js types routingId as a string, but passes a Buffer through as the binary id.
    router.connect(sink.lastEndpoint!, { routingId: id as unknown as string });
  }
}
process.stdout.write(`ready ${endpoint} ${zmq.version}\n`);

process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  if (chunk.split('\n').includes('stop')) process.exit(0);
});
process.stdin.on('end', () => process.exit(0));

for await (const [id, ...frames] of router) {
  await router.send([id, Buffer.from(id.toString('hex')), ...frames]);
}
