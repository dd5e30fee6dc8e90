/**
 * The error model: every error class zeropeer exports has its documented stable `code` and is an
 * RpcError; RpcError.from wraps anything; and in compact framing (zeropeer to zeropeer) a remote
 * error keeps what it carried: custom fields, cause, AggregateError's errors, a readable form of a
 * thrown non-Error; `origin` tells a remote failure from a local one; stacks travel only when
 * asked; class names on the wire are `static wireName`, not the (minifiable) JavaScript name.
 */
import { expect } from 'chai';
import * as api from '../lib/index.js';
import {
  BusyError,
  CancelledError,
  ClusterUnavailableError,
  EncodingError,
  MessageTooLargeError,
  NackError,
  ParameterError,
  PeerNotConnectedError,
  ProtocolError,
  RegistrationError,
  RemoteError,
  RpcError,
  ServiceClosedError,
  ServiceNotFoundError,
  TimeoutError,
  UnauthorizedError,
  type Client,
  type ErrorCode,
  type PeerOptions,
  type Server,
} from '../lib/index.js';
import { cleanup, rejection, startClient, startServer } from './helpers.js';

/** Each documented code, and the class that carries it (a new ErrorCode fails to compile until listed). */
const CLASS_OF_CODE = {
  rpc_error: RpcError,
  service_not_found: ServiceNotFoundError,
  unauthorized: UnauthorizedError,
  timeout: TimeoutError,
  peer_not_connected: PeerNotConnectedError,
  service_closed: ServiceClosedError,
  invalid_argument: ParameterError,
  remote: RemoteError,
  nack: NackError,
  protocol: ProtocolError,
  encoding: EncodingError,
  message_too_large: MessageTooLargeError,
  registration: RegistrationError,
  busy: BusyError,
  cancelled: CancelledError,
  cluster_unavailable: ClusterUnavailableError,
} satisfies Record<ErrorCode, { readonly wireName: string; readonly prototype: RpcError }>;

type Detailed = Error & { remoteStack?: string; code?: unknown; details?: unknown; origin?: unknown; cause?: unknown };

/** A server with failing handlers, and a client of it that has the same ones (for server -> client). */
async function pair(serverOptions: PeerOptions = {}, clientOptions: PeerOptions = {}): Promise<{ server: Server; client: Client }> {
  const server = await startServer(serverOptions);
  const client = await startClient(server, { userId: 'alice', ...clientOptions });
  for (const peer of [server, client]) registerFailures(peer);
  return { server, client };
}

class QuotaError extends RpcError {
  static override readonly wireName = 'QuotaExceeded';
  override code = 'quota_exceeded';
}

/** What a minifier might make of a class: a name that means nothing, a wireName that does. */
const Minified = class extends RpcError {
  static override readonly wireName = 'StockError';
  override code = 'out_of_stock';
};

function registerFailures(peer: Server | Client): void {
  peer.registerRpc('fields', () => {
    throw Object.assign(new Error('quota used up'), { code: 'E_QUOTA', details: { limit: 10, used: 12, who: ['alice'] }, retryable: false });
  });
  peer.registerRpc('caused', () => {
    throw new Error('could not save the order', { cause: Object.assign(new TypeError('disk is read-only'), { errno: 30 }) });
  });
  peer.registerRpc('deepCause', () => {
    throw new RangeError('level 0', { cause: new Error('level 1', { cause: new Error('level 2', { cause: new Error('level 3', { cause: new Error('level 4') }) }) }) });
  });
  peer.registerRpc('aggregate', async () => {
    throw new AggregateError([new TypeError('first failed'), new RangeError('second failed'), new QuotaError('third over quota')], 'all three failed');
  });
  peer.registerRpc('throwString', () => {
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- a non-Error throw is what this test is about
    throw 'a plain string';
  });
  peer.registerRpc('throwObject', () => {
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- a non-Error throw is what this test is about
    throw { reason: 'bad input', field: 'email' };
  });
  peer.registerRpc('throwNumber', async () => {
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- a non-Error throw is what this test is about
    throw 404;
  });
  peer.registerRpc('remoteTimeout', () => {
    throw new TimeoutError('the database did not answer in time');
  });
  peer.registerRpc('quota', function quotaHandler() {
    throw new QuotaError('too many requests');
  });
  peer.registerRpc('stock', () => {
    throw new Minified('no more books');
  });
  peer.registerRpc('parameter', () => {
    const error = new ParameterError('bad page size');
    error.parameter = 'pageSize';
    throw error;
  });
}

const directions = [
  { label: 'client -> server', call: (p: { server: Server; client: Client }, name: string, options: api.CallOptions = {}) => p.client.invoke(name, [], options) },
  { label: 'server -> client', call: (p: { server: Server; client: Client }, name: string, options: api.CallOptions = {}) => p.server.invoke(name, [], { ...options, to: 'alice' }) },
];

describe('error model', () => {
  afterEach(cleanup);

  describe('classes and codes', () => {
    for (const [code, Class] of Object.entries(CLASS_OF_CODE)) {
      it(`${Class.wireName}: code "${code}", an RpcError and an Error, named by its wireName, origin local`, () => {
        const error = Class === RemoteError ? new RemoteError('Whatever', 'm', 'stack') : new (Class as typeof RpcError)('m');
        expect(error).to.be.instanceOf(RpcError);
        expect(error).to.be.instanceOf(Error);
        expect(error.code).to.equal(code);
        expect(error.name).to.equal(Class.wireName);
        expect(error.message).to.equal('m');
        expect(error.origin).to.equal(Class === RemoteError ? 'remote' : 'local');
      });
    }

    it('every error class lib/index exports is in the table above (and so has a documented code)', () => {
      const exported = Object.entries(api)
        .filter(([, value]) => typeof value === 'function' && (value === Error || (value as { prototype?: unknown }).prototype instanceof Error))
        .map(([name]) => name)
        .sort();
      expect(exported).to.deep.equal(Object.values(CLASS_OF_CODE).map((Class) => Class.name).sort());
    });

    it('wireName is stable even when the class name is not', () => {
      expect(Minified.name).to.not.equal('StockError');
      expect(new Minified('x').name).to.equal('StockError');
      expect(new QuotaError('x').name).to.equal('QuotaExceeded');
    });
  });

  describe('RpcError.from', () => {
    it('an RpcError: itself', () => {
      const error = new TimeoutError('late');
      expect(RpcError.from(error)).to.equal(error);
    });

    it('an Error: an RpcError with its message, the original as cause', () => {
      const original = new TypeError('bad type');
      const wrapped = RpcError.from(original);
      expect(wrapped).to.be.instanceOf(RpcError);
      expect(wrapped.constructor).to.equal(RpcError);
      expect(wrapped.message).to.equal('bad type');
      expect(wrapped.cause).to.equal(original);
      expect(wrapped.code).to.equal('rpc_error');
    });

    it('a string: an RpcError with that message', () => {
      const wrapped = RpcError.from('something broke');
      expect(wrapped).to.be.instanceOf(RpcError);
      expect(wrapped.message).to.equal('something broke');
      expect(wrapped.cause).to.equal('something broke');
    });

    it('an object: an RpcError whose message shows it as JSON', () => {
      const value = { status: 503, reason: 'unavailable' };
      const wrapped = RpcError.from(value);
      expect(wrapped.message).to.equal('{"status":503,"reason":"unavailable"}');
      expect(wrapped.cause).to.equal(value);
    });

    it('values JSON cannot show still give a message', () => {
      const cyclic: Record<string, unknown> = {};
      cyclic['self'] = cyclic;
      expect(RpcError.from(cyclic).message).to.equal('[object Object]');
      expect(RpcError.from(undefined).message).to.equal('undefined');
      expect(RpcError.from(null).message).to.equal('null');
      expect(RpcError.from(12n).message).to.equal('12');
    });
  });

  for (const direction of directions) {
    describe(`remote errors keep what they carried (compact framing, ${direction.label})`, () => {
      it('custom enumerable fields: code, details (plain data) and others', async () => {
        const p = await pair();
        const error = (await rejection(direction.call(p, 'fields'))) as Detailed & { retryable?: unknown };
        expect(error.constructor).to.equal(Error);
        expect(error.message).to.equal('quota used up');
        expect(error.code).to.equal('E_QUOTA');
        expect(error.details).to.deep.equal({ limit: 10, used: 12, who: ['alice'] });
        expect(error.retryable).to.equal(false);
      });

      it('cause: an error of its own class, with its own fields', async () => {
        const p = await pair();
        const error = (await rejection(direction.call(p, 'caused'))) as Detailed;
        expect(error.message).to.equal('could not save the order');
        expect(error.cause).to.be.instanceOf(TypeError);
        expect((error.cause as Error).message).to.equal('disk is read-only');
        expect((error.cause as { errno?: unknown }).errno).to.equal(30);
      });

      it('a chain of causes is kept to a bounded depth', async () => {
        const p = await pair();
        const error = (await rejection(direction.call(p, 'deepCause'))) as Detailed;
        expect(error).to.be.instanceOf(RangeError);
        const messages: string[] = [];
        for (let e: unknown = error; e instanceof Error; e = e.cause) messages.push(e.message);
        expect(messages[0]).to.equal('level 0');
        expect(messages.length).to.be.within(3, 4);
        expect(messages).to.deep.equal(['level 0', 'level 1', 'level 2', 'level 3'].slice(0, messages.length));
      });

      it('AggregateError.errors arrive as errors of their classes', async () => {
        const p = await pair({}, {});
        const error = await rejection(direction.call(p, 'aggregate', { errorTable: { QuotaExceeded: QuotaError } }));
        expect(error).to.be.instanceOf(AggregateError);
        expect(error.message).to.equal('all three failed');
        const { errors } = error as AggregateError;
        expect(errors).to.have.length(3);
        expect(errors[0]).to.be.instanceOf(TypeError);
        expect(errors[0].message).to.equal('first failed');
        expect(errors[1]).to.be.instanceOf(RangeError);
        expect(errors[2]).to.be.instanceOf(QuotaError);
        expect(errors[2]).to.include({ message: 'third over quota', origin: 'remote', code: 'quota_exceeded' });
      });

      it('a thrown string arrives as an Error with that message', async () => {
        const p = await pair();
        const error = await rejection(direction.call(p, 'throwString'));
        expect(error.constructor).to.equal(Error);
        expect(error.message).to.equal('a plain string');
      });

      it('a thrown object arrives readable: its JSON as the message', async () => {
        const p = await pair();
        const error = await rejection(direction.call(p, 'throwObject'));
        expect(error).to.be.instanceOf(Error);
        expect(JSON.parse(error.message)).to.deep.equal({ reason: 'bad input', field: 'email' });
      });

      it('a thrown number arrives as an Error with the number as its message', async () => {
        const p = await pair();
        const error = await rejection(direction.call(p, 'throwNumber'));
        expect(error.message).to.equal('404');
      });

      it('zeropeer\'s own fields survive: ParameterError.parameter', async () => {
        const p = await pair();
        const error = await rejection(direction.call(p, 'parameter'));
        expect(error).to.be.instanceOf(ParameterError);
        expect((error as ParameterError).parameter).to.equal('pageSize');
        expect((error as ParameterError).code).to.equal('invalid_argument');
      });

      it('a TimeoutError thrown by the handler arrives with origin "remote"; a local deadline gives origin "local"', async () => {
        const p = await pair();
        const remote = await rejection(direction.call(p, 'remoteTimeout'));
        expect(remote).to.be.instanceOf(TimeoutError);
        expect((remote as TimeoutError).origin).to.equal('remote');
        expect(remote.message).to.equal('the database did not answer in time');

        let release: () => void = () => undefined;
        const never = new Promise<void>((resolve) => (release = resolve));
        p.server.registerRpc('hang', () => never);
        p.client.registerRpc('hang', () => never);
        try {
          const local = await rejection(direction.call(p, 'hang', { timeoutMs: 100 }));
          expect(local).to.be.instanceOf(TimeoutError);
          expect((local as TimeoutError).origin).to.equal('local');
          expect((local as TimeoutError).code).to.equal('timeout');
        } finally {
          release();
        }
      });

      it('sendStacks is off by default: no remote stack; on when asked', async () => {
        const quiet = await pair();
        const hidden = (await rejection(direction.call(quiet, 'caused'))) as Detailed;
        expect(hidden.remoteStack).to.equal('');
        expect(hidden.stack).to.not.include('--- remote stack ---');
        const hiddenCustom = (await rejection(direction.call(quiet, 'quota'))) as RemoteError;
        expect(hiddenCustom.remoteStack).to.equal('');
        await cleanup();

        const loud = await pair({ sendStacks: true }, { sendStacks: true });
        const shown = (await rejection(direction.call(loud, 'quota'))) as RemoteError;
        expect(shown).to.be.instanceOf(RemoteError);
        expect(shown.remoteStack).to.include('quotaHandler');
        expect(shown.stack).to.include('--- remote stack ---');
        const shownCause = (await rejection(direction.call(loud, 'caused'))) as Detailed;
        expect((shownCause.cause as Detailed).remoteStack, 'the cause\'s stack travels too').to.include('disk is read-only');
      });

      it('the class name on the wire is its wireName: unknown to the caller -> RemoteError named so', async () => {
        const p = await pair();
        const quota = await rejection(direction.call(p, 'quota'));
        expect(quota).to.be.instanceOf(RemoteError);
        expect((quota as RemoteError).remoteName).to.equal('QuotaExceeded');
        expect((quota as RemoteError).message).to.equal('too many requests');
        // Its own code still travels, as a field.
        expect((quota as RemoteError).code).to.equal('quota_exceeded');
        const stock = await rejection(direction.call(p, 'stock'));
        expect((stock as RemoteError).remoteName).to.equal('StockError');
      });

      it('an errorTable keyed by wireName rebuilds the class (per call, or per peer)', async () => {
        const p = await pair();
        const quota = await rejection(direction.call(p, 'quota', { errorTable: { QuotaExceeded: QuotaError } }));
        expect(quota).to.be.instanceOf(QuotaError);
        expect(quota).to.include({ name: 'QuotaExceeded', message: 'too many requests', origin: 'remote', code: 'quota_exceeded' });
        const stock = await rejection(direction.call(p, 'stock', { errorTable: { StockError: Minified } }));
        expect(stock).to.be.instanceOf(Minified);
        expect(stock.name).to.equal('StockError');
        // Keyed by the JavaScript class name instead, it does not match.
        const byClassName = await rejection(direction.call(p, 'quota', { errorTable: { QuotaError } }));
        expect(byClassName).to.be.instanceOf(RemoteError);
      });
    });
  }

  it('ServiceNotFoundError sent by the other side is remote; PeerNotConnectedError raised here is local', async () => {
    const p = await pair();
    const missing = await rejection(p.client.call.not.there());
    expect(missing).to.be.instanceOf(ServiceNotFoundError);
    expect((missing as ServiceNotFoundError).origin).to.equal('remote');
    const notConnected = await rejection(p.server.sendTo('nobody').f());
    expect(notConnected).to.be.instanceOf(PeerNotConnectedError);
    expect((notConnected as PeerNotConnectedError).origin).to.equal('local');
    expect((notConnected as PeerNotConnectedError).code).to.equal('peer_not_connected');
  });
});
