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

/** One request `[id, payload]` -> its answer `[id, result]`. */
function answerOne(body: Buffer): Buffer {
  const [id, payload] = unpackr.unpack(body) as [number, string];
  return packr.pack([id, upper(payload)]);
}

/** An echo of `upper` on a bound ROUTER: the responder of the raw systems; `answer` turns a request frame into its answer frame. */
async function startEchoResponder(router: zmq.Router, answer: (body: Buffer) => Buffer = answerOne): Promise<Responder> {
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
      sendFrames(router, [routingId, answer(body)], () => {});
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

/** How a raw caller puts requests on the wire and finds the answers in what comes back. */
interface RawWire {
  /** Sends request `id` (now, or with others); `failed` is told of a send that fails, with the ids it carried. */
  submit(id: number, payload: string, failed: (ids: number[], error: Error) => void): void;
  /** The `[id, result]` answers one receive carried. */
  answers(frames: Buffer[]): Array<[number, string]>;
}

/** One request per message: `frame` wraps a packed `[id, payload]` in the frames the socket needs; `body` finds the packed answer. */
function oneByOne(socket: zmq.Router | zmq.Dealer, frame: (packet: Buffer) => Buffer | Buffer[], body: (frames: Buffer[]) => Buffer | undefined): RawWire {
  return {
    submit: (id, payload, failed) => sendFrames(socket, frame(packr.pack([id, payload])), (error) => failed([id], error)),
    answers: (frames) => {
      const packet = body(frames);
      return packet ? [unpackr.unpack(packet) as [number, string]] : [];
    },
  };
}

/** A caller on a connected socket: requests carry an id, answers settle the request of that id. */
function startRawCaller(socket: zmq.Router | zmq.Dealer, wire: RawWire, label: string): Caller {
  const pending = new Map<number, { resolve: (value: string) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  const failed = (ids: number[], error: Error): void => {
    for (const id of ids) {
      pending.get(id)?.reject(error);
      pending.delete(id);
    }
  };
  const loop = (async () => {
    while (!socket.closed) {
      let frames: Buffer[];
      try {
        frames = await socket.receive();
      } catch {
        return; // closed
      }
      for (const [id, result] of wire.answers(frames)) {
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
      wire.submit(id, payload, failed);
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
  return startRawCaller(dealer, oneByOne(dealer, (packet) => packet, (frames) => frames[0]), 'raw zeromq');
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
  return startRawCaller(router, oneByOne(router, (packet) => [SERVER_ID, packet], (frames) => frames[1]), 'raw zeromq ROUTER<->ROUTER');
}

export const rawRouterRouter: NodeSystem = { binder: 'responder', startResponder: startRouterResponder, startCaller: startRouterCaller };

/**
 * The batching ceiling (`raw-batched`): raw zeromq.js DEALER -> ROUTER where the calls made in one
 * microtask leave as one frame, a msgpackr array of `[request id, payload]` pairs, and the ROUTER
 * answers each frame with one array of `[request id, result]`. What batching can buy at best, with
 * no RPC layer: zeropeer's batching is measured against it.
 */
function startBatchedResponder(): Promise<Responder> {
  const answerAll = (body: Buffer): Buffer =>
    packr.pack((unpackr.unpack(body) as Array<[number, string]>).map(([id, payload]) => [id, upper(payload)]));
  return startEchoResponder(new zmq.Router({ sendTimeout: 0, linger: 0 }), answerAll);
}

/** The calls made in one microtask leave as one frame; each answer frame carries several. */
function batched(dealer: zmq.Dealer): RawWire {
  let held: Array<[number, string]> = [];
  let onError: (ids: number[], error: Error) => void = () => {};
  const flush = (): void => {
    const calls = held;
    held = [];
    sendFrames(dealer, packr.pack(calls), (error) => onError(calls.map(([id]) => id), error));
  };
  return {
    submit(id, payload, failed) {
      onError = failed;
      if (held.push([id, payload]) === 1) queueMicrotask(flush);
    },
    answers: (frames) => (frames[0] ? (unpackr.unpack(frames[0]) as Array<[number, string]>) : []),
  };
}

async function startBatchedCaller(rendezvous: Rendezvous | undefined): Promise<Caller> {
  const dealer = new zmq.Dealer({ sendTimeout: 0, linger: 0 });
  dealer.connect(rendezvous!.endpoint!);
  return startRawCaller(dealer, batched(dealer), 'raw zeromq batched');
}

export const rawBatched: NodeSystem = { binder: 'responder', startResponder: startBatchedResponder, startCaller: startBatchedCaller };
