/**
 * System 1, the ceiling: raw zeromq.js, no RPC layer. A DEALER sends one frame,
 * msgpackr `[request id, payload]`; the ROUTER decodes it, upper-cases the payload and sends back
 * `[request id, result]`; the DEALER settles the pending request by id. Same sockets options
 * zeropeer's engine uses where they matter (`sendTimeout: 0`: sends never block).
 */
import { Packr, Unpackr } from 'msgpackr';
import * as zmq from 'zeromq';
import { retryUntil, expectUpper, upper, type Caller, type NodeSystem, type Rendezvous, type Responder } from './types.js';

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

/** Sends without blocking; a full pipe (EAGAIN, rare) is retried shortly, a bounded number of times. */
function sendFrames(socket: zmq.Router | zmq.Dealer, frames: Buffer | Buffer[], onError: (error: Error) => void, attempt = 0): void {
  socket.send(frames).catch((error: { code?: string } & Error) => {
    if (error.code === 'EAGAIN' && attempt < 1000 && !socket.closed) {
      setTimeout(() => sendFrames(socket, frames, onError, attempt + 1), 1);
    } else {
      onError(error);
    }
  });
}

/** An echo of `upper` on a bound ROUTER: the responder of both raw systems. */
async function startEchoResponder(router: zmq.Router): Promise<Responder> {
  await router.bind('tcp://127.0.0.1:0');
  const loop = (async () => {
    while (!router.closed) {
      let frames: Buffer[];
      try {
        frames = await router.receive();
      } catch {
        return; // closed
      }
      const [routingId, body] = frames;
      if (!routingId || !body) continue;
      const [id, payload] = unpackr.unpack(body) as [number, string];
      sendFrames(router, [routingId, packr.pack([id, upper(payload)])], () => {});
    }
  })();
  return {
    rendezvous: { endpoint: router.lastEndpoint! },
    async close() {
      router.close();
      await loop;
    },
  };
}

function startResponder(): Promise<Responder> {
  return startEchoResponder(new zmq.Router({ sendTimeout: 0, linger: 0 }));
}

/**
 * A caller on a connected socket: requests carry an id, answers settle the request of that id.
 * `frame` wraps a packed request in the frames the socket needs; `body` finds the packed answer.
 */
function startRawCaller(
  socket: zmq.Router | zmq.Dealer,
  frame: (packet: Buffer) => Buffer | Buffer[],
  body: (frames: Buffer[]) => Buffer | undefined,
  label: string,
): Caller {
  const pending = new Map<number, (value: string) => void>();
  let nextId = 1;
  const loop = (async () => {
    while (!socket.closed) {
      let frames: Buffer[];
      try {
        frames = await socket.receive();
      } catch {
        return; // closed
      }
      const packet = body(frames);
      if (!packet) continue;
      const [id, result] = unpackr.unpack(packet) as [number, string];
      const resolve = pending.get(id);
      if (resolve) {
        pending.delete(id);
        resolve(result);
      }
    }
  })();
  const call = (payload: string): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const id = nextId++;
      if (nextId > 0x7fffffff) nextId = 1;
      pending.set(id, resolve);
      sendFrames(socket, frame(packr.pack([id, payload])), (error) => {
        pending.delete(id);
        reject(error);
      });
    });
  const withDeadline = (payload: string, ms: number): Promise<string> =>
    Promise.race([call(payload), new Promise<string>((_, reject) => setTimeout(() => reject(new Error('no answer')), ms).unref())]);
  return {
    call,
    async ready(timeoutMs) {
      await retryUntil(async () => expectUpper('ready?', await withDeadline('ready?', 200)), timeoutMs, label);
      pending.clear(); // answers to attempts that timed out are dropped by id anyway
    },
    async close() {
      socket.close();
      await loop;
    },
  };
}

async function startCaller(rendezvous: Rendezvous | undefined): Promise<Caller> {
  const dealer = new zmq.Dealer({ sendTimeout: 0, linger: 0 });
  dealer.connect(rendezvous!.endpoint!);
  return startRawCaller(dealer, (packet) => packet, (frames) => frames[0], 'raw zeromq');
}

export const rawZeromq: NodeSystem = { binder: 'responder', startResponder, startCaller };

/**
 * Diagnostic, not in the default run (`--only raw,raw-router,...`): raw zeromq.js with zeropeer's
 * socket pattern, ROUTER <-> ROUTER, two frames each way (`[routing id, packet]`), `mandatory`
 * and ZMTP heartbeats as zeropeer sets them. The gap between `raw` and `raw-router` is what the
 * socket pattern costs by itself; the gap between `raw-router` and `zeropeer` is zeropeer's own.
 */
const SERVER_ID = Buffer.from('bench');
const routerOptions = { sendTimeout: 0, linger: 0, mandatory: true, heartbeatInterval: 3000, heartbeatTimeout: 10_000, heartbeatTimeToLive: 10_000 };

function startRouterResponder(): Promise<Responder> {
  return startEchoResponder(new zmq.Router({ ...routerOptions, routingId: 'bench' }));
}

async function startRouterCaller(rendezvous: Rendezvous | undefined): Promise<Caller> {
  const router = new zmq.Router(routerOptions);
  router.connect(rendezvous!.endpoint!);
  return startRawCaller(router, (packet) => [SERVER_ID, packet], (frames) => frames[1], 'raw zeromq ROUTER<->ROUTER');
}

export const rawRouterRouter: NodeSystem = { binder: 'responder', startResponder: startRouterResponder, startCaller: startRouterCaller };

/**
 * The batching ceiling (`raw-batched`): raw zeromq.js DEALER -> ROUTER where the calls made in one
 * microtask leave as one frame, a msgpackr array of `[request id, payload]` pairs, and the ROUTER
 * answers each frame with one array of `[request id, result]`. What batching can buy at best, with
 * no RPC layer: zeropeer's batching is measured against it.
 */
async function startBatchedResponder(): Promise<Responder> {
  const router = new zmq.Router({ sendTimeout: 0, linger: 0 });
  await router.bind('tcp://127.0.0.1:0');
  const loop = (async () => {
    while (!router.closed) {
      let frames: Buffer[];
      try {
        frames = await router.receive();
      } catch {
        return; // closed
      }
      const [routingId, body] = frames;
      if (!routingId || !body) continue;
      const calls = unpackr.unpack(body) as Array<[number, string]>;
      sendFrames(router, [routingId, packr.pack(calls.map(([id, payload]) => [id, upper(payload)]))], () => {});
    }
  })();
  return {
    rendezvous: { endpoint: router.lastEndpoint! },
    async close() {
      router.close();
      await loop;
    },
  };
}

async function startBatchedCaller(rendezvous: Rendezvous | undefined): Promise<Caller> {
  const dealer = new zmq.Dealer({ sendTimeout: 0, linger: 0 });
  dealer.connect(rendezvous!.endpoint!);
  const pending = new Map<number, { resolve: (value: string) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  let held: Array<[number, string]> = [];
  const flush = (): void => {
    const calls = held;
    held = [];
    sendFrames(dealer, packr.pack(calls), (error) => {
      for (const [id] of calls) {
        pending.get(id)?.reject(error);
        pending.delete(id);
      }
    });
  };
  const loop = (async () => {
    while (!dealer.closed) {
      let frames: Buffer[];
      try {
        frames = await dealer.receive();
      } catch {
        return; // closed
      }
      if (!frames[0]) continue;
      for (const [id, result] of unpackr.unpack(frames[0]) as Array<[number, string]>) {
        const waiting = pending.get(id);
        if (waiting) {
          pending.delete(id);
          waiting.resolve(result);
        }
      }
    }
  })();
  const call = (payload: string): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const id = nextId++;
      if (nextId > 0x7fffffff) nextId = 1;
      pending.set(id, { resolve, reject });
      if (held.push([id, payload]) === 1) queueMicrotask(flush);
    });
  const withDeadline = (payload: string, ms: number): Promise<string> =>
    Promise.race([call(payload), new Promise<string>((_, reject) => setTimeout(() => reject(new Error('no answer')), ms).unref())]);
  return {
    call,
    async ready(timeoutMs) {
      await retryUntil(async () => expectUpper('ready?', await withDeadline('ready?', 200)), timeoutMs, 'raw zeromq batched');
      pending.clear();
    },
    async close() {
      dealer.close();
      await loop;
    },
  };
}

export const rawBatched: NodeSystem = { binder: 'responder', startResponder: startBatchedResponder, startCaller: startBatchedCaller };
