/**
 * Errors thrown by handlers, as the caller sees them, in both directions: built-in classes arrive
 * as themselves with the remote stack attached, other classes as RemoteError unless the caller
 * maps them in an error table; stacks can be withheld; handler errors can be logged. zeropeer's own
 * errors are all RpcErrors.
 */
import { expect } from 'chai';
import {
  Client,
  ParameterError,
  PeerNotConnectedError,
  RemoteError,
  RpcError,
  Server,
  ServiceClosedError,
  ServiceNotFoundError,
  TimeoutError,
  type CallOptions,
  type ErrorTable,
  type PeerOptions,
} from '../lib/index.js';
import { cleanup, recordingLogger, rejection, sleep, startClient, startServer } from './helpers.js';

type WithRemoteStack = Error & { remoteStack?: unknown };

class MyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MyError';
  }
}

const builtins: Record<string, new (message: string) => Error> = {
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
  Error,
};

function failWithBuiltin(kind: string, message: string): never {
  throw new builtins[kind]!(message);
}

async function rejectWithBuiltin(kind: string, message: string): Promise<never> {
  await sleep(1);
  throw new builtins[kind]!(message);
}

function failWithMyError(message: string): never {
  throw new MyError(message);
}

async function rejectWithMyError(message: string): Promise<never> {
  await sleep(1);
  throw new MyError(message);
}

function failWithString(text: string): never {
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- a non-Error thrown on purpose: that is under test
  throw text;
}

async function rejectWithString(text: string): Promise<never> {
  await sleep(1);
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- a non-Error thrown on purpose: that is under test
  throw text;
}

/** Registers every failing handler on `peer`. */
function registerFailures(peer: Server | Client): void {
  peer.registerRpc('failWithBuiltin', failWithBuiltin);
  peer.registerRpc('rejectWithBuiltin', rejectWithBuiltin);
  peer.registerRpc('failWithMyError', failWithMyError);
  peer.registerRpc('rejectWithMyError', rejectWithMyError);
  peer.registerRpc('failWithString', failWithString);
  peer.registerRpc('rejectWithString', rejectWithString);
}

interface Setup {
  server: Server;
  client: Client;
  /** Calls `name` on the callee from the caller. */
  call(name: string, args: unknown[], options?: CallOptions): Promise<unknown>;
}

interface Direction {
  label: string;
  /** Starts a pair; `callee` options go to the side that runs the handlers, `caller` to the other. */
  make(options?: { callee?: PeerOptions; caller?: PeerOptions }): Promise<Setup>;
}

const directions: Direction[] = [
  {
    label: 'client -> server',
    async make({ callee = {}, caller = {} } = {}) {
      const server = await startServer({ sendStacks: true, ...callee });
      registerFailures(server);
      const client = await startClient(server, { userId: 'alice', ...caller });
      return { server, client, call: (name, args, options = {}) => client.invoke(name, args, options) };
    },
  },
  {
    label: 'server -> client (sendTo)',
    async make({ callee = {}, caller = {} } = {}) {
      const server = await startServer(caller);
      const client = await startClient(server, { userId: 'alice', sendStacks: true, ...callee });
      registerFailures(client);
      return { server, client, call: (name, args, options = {}) => server.invoke(name, args, { ...options, to: 'alice' }) };
    },
  },
];

describe('errors', () => {
  afterEach(cleanup);

  for (const direction of directions) {
    describe(direction.label, () => {
      for (const [kind, Class] of Object.entries(builtins)) {
        for (const handler of ['failWithBuiltin', 'rejectWithBuiltin']) {
          it(`${handler}: a ${kind} arrives as ${kind}, same message, remote stack attached`, async () => {
            const { call } = await direction.make();
            const message = `${kind} from the handler: ünïcode ✓`;
            const error = (await rejection(call(handler, [kind, message]))) as WithRemoteStack;

            expect(error).to.be.instanceOf(Class);
            expect(error.constructor).to.equal(Class);
            expect(error.name).to.equal(kind);
            expect(error.message).to.equal(message);
            expect(error).not.to.be.instanceOf(RemoteError);

            expect(error.remoteStack).to.be.a('string');
            const remoteStack = error.remoteStack as string;
            expect(remoteStack).to.include(handler);
            expect(remoteStack).to.include('errors.spec');
            expect(remoteStack).to.include(message);
            expect(error.stack).to.be.a('string').that.includes(remoteStack);
          });
        }
      }

      for (const handler of ['failWithMyError', 'rejectWithMyError']) {
        it(`${handler}: a custom class arrives as RemoteError with remoteName, message and remoteStack`, async () => {
          const { call } = await direction.make();
          const error = await rejection(call(handler, ['custom trouble']));

          expect(error).to.be.instanceOf(RemoteError);
          expect(error).to.be.instanceOf(RpcError);
          expect(error).not.to.be.instanceOf(MyError);
          const remote = error as RemoteError;
          expect(remote.remoteName).to.equal('MyError');
          expect(remote.message).to.equal('custom trouble');
          expect(remote.remoteStack).to.include(handler);
          expect(remote.remoteStack).to.include('errors.spec');
          expect(remote.stack).to.include(remote.remoteStack);
        });

        it(`${handler}: with errorTable { MyError } as a peer option of the caller, it arrives as MyError`, async () => {
          const errorTable: ErrorTable = { MyError };
          const { call } = await direction.make({ caller: { errorTable } });
          const error = (await rejection(call(handler, ['mapped trouble']))) as WithRemoteStack;

          expect(error).to.be.instanceOf(MyError);
          expect(error).not.to.be.instanceOf(RemoteError);
          expect(error.message).to.equal('mapped trouble');
          expect(error.remoteStack).to.be.a('string').that.includes(handler);
          expect(error.stack).to.include(error.remoteStack as string);
        });

        it(`${handler}: with a per-call errorTable it arrives as MyError, for that call only`, async () => {
          const { call } = await direction.make();
          const mapped = await rejection(call(handler, ['per call'], { errorTable: { MyError } }));
          expect(mapped).to.be.instanceOf(MyError);
          expect(mapped.message).to.equal('per call');

          const unmapped = await rejection(call(handler, ['next call']));
          expect(unmapped).to.be.instanceOf(RemoteError);
          expect((unmapped as RemoteError).remoteName).to.equal('MyError');
        });
      }

      for (const handler of ['failWithString', 'rejectWithString']) {
        it(`${handler}: throwing a non-Error (a string) arrives as Error with that text`, async () => {
          const { call } = await direction.make();
          const error = await rejection(call(handler, ['just a string']));
          expect(error).to.be.instanceOf(Error);
          expect(error.constructor).to.equal(Error);
          expect(error.message).to.equal('just a string');
        });
      }

      it('sendStacks: false on the answering side -> remoteStack is \'\' and no remote frames reach the caller', async () => {
        const { call } = await direction.make({ callee: { sendStacks: false } });

        const builtin = (await rejection(call('failWithBuiltin', ['RangeError', 'no stack please']))) as WithRemoteStack;
        expect(builtin).to.be.instanceOf(RangeError);
        expect(builtin.message).to.equal('no stack please');
        expect(builtin.remoteStack).to.equal('');
        expect(builtin.stack).not.to.include('failWithBuiltin');

        const custom = (await rejection(call('rejectWithMyError', ['hidden']))) as RemoteError;
        expect(custom).to.be.instanceOf(RemoteError);
        expect(custom.remoteName).to.equal('MyError');
        expect(custom.message).to.equal('hidden');
        expect(custom.remoteStack).to.equal('');
        expect(custom.stack).not.to.include('rejectWithMyError');
      });

      it('an unknown function name -> ServiceNotFoundError, an RpcError', async () => {
        const { call } = await direction.make();
        const error = await rejection(call('no.such.thing', []));
        expect(error).to.be.instanceOf(ServiceNotFoundError);
        expect(error).to.be.instanceOf(RpcError);
        expect(error.name).to.equal('ServiceNotFoundError');
        expect(error.message).to.include('no.such.thing');
      });
    });
  }

  describe('logExceptions', () => {
    /** Error entries the server logged for handler `name`. */
    const handlerErrors = (logger: ReturnType<typeof recordingLogger>, name: string) =>
      logger.entries.filter((e) => e.level === 'error' && e.context?.['name'] === name);

    it('logExceptions: true logs the handler error, with the function name in the context', async () => {
      const logger = recordingLogger();
      const server = await startServer({ logger, logExceptions: true });
      registerFailures(server);
      const client = await startClient(server);

      await rejection(client.call.failWithBuiltin('TypeError', 'logged sync'));
      await rejection(client.call.rejectWithMyError('logged async'));

      const sync = handlerErrors(logger, 'failWithBuiltin');
      expect(sync, logger.text()).to.have.length(1);
      expect(String(sync[0]!.context?.['error'])).to.include('logged sync');
      const async = handlerErrors(logger, 'rejectWithMyError');
      expect(async, logger.text()).to.have.length(1);
      expect(String(async[0]!.context?.['error'])).to.include('logged async');
    });

    it('without logExceptions the handler error is not logged as an error', async () => {
      const logger = recordingLogger();
      const server = await startServer({ logger });
      registerFailures(server);
      const client = await startClient(server);

      await rejection(client.call.failWithBuiltin('TypeError', 'quiet'));
      expect(logger.entries.filter((e) => e.level === 'error'), logger.text()).to.have.length(0);
    });

    it('excludeLogExceptions: [TypeError] suppresses TypeError but not RangeError', async () => {
      const logger = recordingLogger();
      const server = await startServer({ logger, logExceptions: true, excludeLogExceptions: [TypeError] });
      registerFailures(server);
      const client = await startClient(server);

      expect(await rejection(client.call.failWithBuiltin('TypeError', 'excluded'))).to.be.instanceOf(TypeError);
      expect(await rejection(client.call.rejectWithBuiltin('TypeError', 'excluded async'))).to.be.instanceOf(TypeError);
      expect(await rejection(client.call.failWithBuiltin('RangeError', 'included'))).to.be.instanceOf(RangeError);

      const logged = logger.entries.filter((e) => e.level === 'error');
      expect(logged, logger.text()).to.have.length(1);
      expect(logged[0]!.context?.['name']).to.equal('failWithBuiltin');
      expect(String(logged[0]!.context?.['error'])).to.include('RangeError').and.include('included');
      expect(logger.text()).not.to.include('excluded');
    });
  });

  describe("zeropeer's own errors are RpcErrors", () => {
    it('ServiceNotFoundError for an unknown name', async () => {
      const server = await startServer();
      const client = await startClient(server);
      const error = await rejection(client.call.nobody.home());
      expect(error).to.be.instanceOf(ServiceNotFoundError).and.instanceOf(RpcError).and.instanceOf(Error);
    });

    it('TimeoutError when no answer comes before the deadline; the call leaves the table', async () => {
      const server = await startServer();
      const releases: Array<() => void> = [];
      server.registerRpc('hang', () => new Promise<void>((resolve) => releases.push(resolve)));
      const client = await startClient(server);
      try {
        const error = await rejection(client.callWith({ timeoutMs: 50 }).hang());
        expect(error).to.be.instanceOf(TimeoutError).and.instanceOf(RpcError);
        expect(error.name).to.equal('TimeoutError');
        expect(client.pendingCalls).to.equal(0);
      } finally {
        for (const release of releases) release();
      }
    });

    it('ServiceClosedError for a call in flight when the caller stops, and for a call after stop', async () => {
      const server = await startServer();
      let started!: () => void;
      const handlerStarted = new Promise<void>((resolve) => (started = resolve));
      const releases: Array<() => void> = [];
      server.registerRpc('hang', () => {
        started();
        return new Promise<void>((resolve) => releases.push(resolve));
      });
      const client = await startClient(server);
      try {
        const inFlight = rejection(client.call.hang());
        await handlerStarted;
        await client.stop();
        const error = await inFlight;
        expect(error).to.be.instanceOf(ServiceClosedError).and.instanceOf(RpcError);
        expect(await rejection(client.call.hang())).to.be.instanceOf(ServiceClosedError);
        expect(client.pendingCalls).to.equal(0);
      } finally {
        for (const release of releases) release();
      }
    });

    it('PeerNotConnectedError for sendTo an identity that is not connected', async () => {
      const server = await startServer();
      const error = await rejection(server.sendTo('nobody').anything());
      expect(error).to.be.instanceOf(PeerNotConnectedError).and.instanceOf(RpcError);
    });

    it('callSites: a rejection carries the caller\'s call site (the line that made the call), whatever failed', async () => {
      const server = await startServer();
      const client = await startClient(server, { callSites: true });
      const plain = await startClient(server);
      expect((await rejection(plain.call.nope())).stack, 'off by default').not.to.include('--- call site ---');
      const notFound = await rejection(client.call.no.such.thing());
      expect(notFound).to.be.instanceOf(ServiceNotFoundError);
      expect(notFound.stack).to.include('--- call site ---');
      const site = notFound.stack!.slice(notFound.stack!.indexOf('--- call site ---'));
      expect(site).to.include('errors.spec');
      expect(site, 'zeropeer\'s own frames are left out').not.to.match(/lib[\\/]engine/);
      server.registerRpc('never', () => new Promise(() => {}));
      const timedOut = await rejection(client.callWith({ timeoutMs: 20 }).never());
      expect(timedOut).to.be.instanceOf(TimeoutError);
      expect((timedOut as TimeoutError).origin).to.equal('local');
      expect(timedOut.stack).to.include('--- call site ---');
    });

    it('a zeropeer error thrown by a handler arrives as that class', async () => {
      const server = await startServer({ sendStacks: true });
      server.registerRpc('validate', () => {
        throw new ParameterError('x must be positive');
      });
      const client = await startClient(server);
      const error = (await rejection(client.call.validate())) as WithRemoteStack;
      expect(error).to.be.instanceOf(ParameterError).and.instanceOf(RpcError);
      expect(error.message).to.equal('x must be positive');
      expect(error.remoteStack).to.be.a('string').that.includes('errors.spec');
    });

    it('RemoteError is an RpcError', async () => {
      const server = await startServer();
      registerFailures(server);
      const client = await startClient(server);
      expect(await rejection(client.call.failWithMyError('x'))).to.be.instanceOf(RemoteError).and.instanceOf(RpcError);
    });
  });
});
