/**
 * The codec seam through real sockets: a Codec of one's own (here JSON) given to a Server and a
 * Client via `options.codec` carries the handshake's HELLO, calls both ways, errors and metadata;
 * `translators` (which belong to the default codec) together with `codec` are refused.
 */
import { expect } from 'chai';
import { Client, MsgpackCodec, ProtocolError, Server, type CallContext, type Codec, type Dialect } from '../lib/index.js';
import { cleanup, rejection, recordingLogger, startClient, startServer } from './helpers.js';

/** JSON over UTF-8: no Maps, Dates become strings, Buffers become `{ type, data }`. */
class JsonCodec implements Codec {
  readonly name = 'json';
  readonly encoded: Dialect[] = [];
  readonly decoded: Dialect[] = [];

  encode(value: unknown, dialect: Dialect): Buffer {
    this.encoded.push(dialect);
    return Buffer.from(JSON.stringify(value === undefined ? null : value), 'utf8');
  }

  decode(bytes: Uint8Array, dialect: Dialect): unknown {
    this.decoded.push(dialect);
    if (bytes.length > 1 << 20) throw new ProtocolError('JSON body too large');
    try {
      return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
    } catch (error) {
      throw new ProtocolError(`not JSON: ${(error as Error).message}`);
    }
  }
}

const point = { Class: class Point {}, type: 5, pack: () => 0, unpack: () => ({}) };

describe('codec seam: options.codec', () => {
  afterEach(cleanup);

  async function jsonPair(): Promise<{ server: Server; client: Client; serverCodec: JsonCodec; clientCodec: JsonCodec }> {
    const serverCodec = new JsonCodec();
    const clientCodec = new JsonCodec();
    const server = await startServer({ codec: serverCodec });
    const client = await startClient(server, { userId: 'alice', codec: clientCodec });
    return { server, client, serverCodec, clientCodec };
  }

  it('a JSON codec on both sides carries calls client -> server and server -> client', async () => {
    const { server, client, serverCodec, clientCodec } = await jsonPair();
    server.registerRpc('string.lower', (s: string) => s.toLowerCase());
    server.registerRpc('shape', (value: unknown) => ({ kind: Object.prototype.toString.call(value), value }));
    client.registerRpc('addition', (a: number, b: number) => a + b);

    expect(await client.call.string.lower('ABC')).to.equal('abc');
    expect(await server.sendTo('alice').addition(2, 4)).to.equal(6);
    // JSON's own semantics show the codec really is in use: a Date arrives as its ISO string.
    const date = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
    expect(await client.call.shape(date)).to.deep.equal({ kind: '[object String]', value: '2024-01-02T03:04:05.000Z' });
    expect(await client.call.shape(new Map([[1, 2]]))).to.deep.equal({ kind: '[object Object]', value: {} });

    // The handshake's HELLO goes through it in the plain dialect, everything after in rich (compact framing).
    expect(clientCodec.encoded).to.include('plain');
    expect(serverCodec.decoded).to.include('plain');
    expect(clientCodec.encoded.filter((d) => d === 'rich').length).to.be.at.least(3);
    expect(serverCodec.encoded.filter((d) => d === 'rich').length).to.be.at.least(3);
    expect(clientCodec.decoded.filter((d) => d === 'rich').length).to.be.at.least(3);
  });

  it('errors and metadata travel through it too', async () => {
    const { server, client } = await jsonPair();
    server.registerRpc('fail', () => {
      throw Object.assign(new RangeError('out of range'), { code: 'E_RANGE' });
    });
    server.registerRpc('meta', (ctx: CallContext) => ctx.metadata, { withContext: true });
    const error = await rejection(client.call.fail());
    expect(error).to.be.instanceOf(RangeError);
    expect(error.message).to.equal('out of range');
    expect((error as { code?: unknown }).code).to.equal('E_RANGE');
    expect(await client.invoke('meta', [], { metadata: { traceparent: 't' } })).to.deep.equal({ traceparent: 't' });
  });

  it('a result the codec cannot encode becomes an error for the caller, not a hang', async () => {
    const { server, client } = await jsonPair();
    server.registerRpc('big', () => 10n); // JSON.stringify throws on a BigInt
    const error = await rejection(client.call.big());
    expect(error.message).to.match(/BigInt/i);
  });

  it('each peer uses its own codec: a msgpack peer beside the JSON pair is unaffected', async () => {
    const { server, client } = await jsonPair();
    server.registerRpc('echo', (x: unknown) => x);
    const msgpackServer = await startServer({}, 'tcp', 'msgpack-service');
    msgpackServer.registerRpc('echo', (x: unknown) => x);
    const msgpackClient = await startClient(msgpackServer, { userId: 'bob' });
    const date = new Date(0);
    expect(await client.call.echo(date)).to.equal('1970-01-01T00:00:00.000Z');
    const back: unknown = await msgpackClient.call.echo(date);
    expect(back).to.be.instanceOf(Date);
  });

  it('translators together with codec are refused (Server and Client), and a codec without encode/decode', () => {
    const codec = new MsgpackCodec();
    for (const make of [
      () => new Server('svc', { codec, translators: [point] }),
      () => new Client('svc', { codec, translators: [point] }),
    ]) {
      expect(make).to.throw(TypeError, /options\.translators belong to the default codec/);
    }
    expect(() => new Client('svc', { codec: { name: 'half', encode: () => Buffer.alloc(0) } as unknown as Codec, logger: recordingLogger() }))
      .to.throw(TypeError, /options\.codec must have encode\(\) and decode\(\)/);
  });
});
