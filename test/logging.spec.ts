import { expect } from 'chai';
import bunyan from 'bunyan';
import { pino } from 'pino';
import { Client, MessageType, Server, contextFirst, hashPassword, type LogContext } from '../lib/index.js';
import { RawPeer, cleanup, quickHash, recordingLogger, startServer, track, until, uuidBytes } from './helpers.js';

interface PinoRecord { level: number; msg: string; [field: string]: unknown }

/** A real pino logger at debug level writing its JSON lines into an array. */
function pinoInto(records: PinoRecord[]) {
  return pino({ level: 'debug', base: undefined }, { write: (line: string) => void records.push(JSON.parse(line) as PinoRecord) });
}

describe('logging', function () {
  this.timeout(20_000);
  afterEach(cleanup);

  it('a pino logger gets the context as fields of the record, not dropped (pino takes the object first)', async () => {
    const serverLog: PinoRecord[] = [];
    const clientLog: PinoRecord[] = [];
    const server = track(new Server('service', { security: 'plain', users: { alice: await hashPassword('pw') }, logger: pinoInto(serverLog), drainTimeoutMs: 50 }));
    await server.bind('tcp://127.0.0.1:0');
    server.registerRpc('ping', () => 'pong');
    await server.start();
    const client = track(new Client('service', { security: 'plain', userId: 'alice', password: 'pw', logger: pinoInto(clientLog) }));
    client.connect(server.endpoint);
    await client.start();
    expect(await client.call.ping()).to.equal('pong');

    const find = (records: PinoRecord[], msg: string) => records.find((record) => record.msg === msg);
    // warn: the clear-text warning, with the endpoint as a field
    expect(find(serverLog, 'security "plain" over tcp without CURVE: credentials travel in clear; set options.curve'))
      .to.include({ level: 40, peer: 'service', endpoint: 'tcp://127.0.0.1:0' });
    // debug: connection up, handshake steps, with peer and routing id
    const routingId = find(serverLog, 'connection up')?.['routingId'];
    expect(routingId).to.be.a('string').that.matches(/^zp-/);
    expect(find(serverLog, 'connection up')).to.include({ level: 20, peer: 'service' });
    expect(find(serverLog, 'HELLO received')).to.include({ level: 20, peer: 'service', routingId, login: 'alice', framing: 'compact' });
    expect(find(serverLog, 'peer authenticated')).to.include({ level: 20, identity: 'alice', routingId });
    expect(find(clientLog, 'HELLO sent')).to.include({ level: 20, peer: 'service', login: 'alice' });
    expect(find(clientLog, 'authenticated by the server')).to.include({ level: 20, framing: 'compact' });
    expect(JSON.stringify([...serverLog, ...clientLog]), 'no password in any record').to.not.contain('"pw"');

    await client.stop();
    await until(() => serverLog.some((record) => record.msg === 'the peer says goodbye' || record.msg === 'connection down'), 3000, 'the server logs the client leaving');
    const leaving = serverLog.find((record) => record.msg === 'the peer says goodbye' || record.msg === 'connection down');
    expect(leaving).to.include({ level: 20, peer: 'service', routingId });
  });

  it('a bunyan logger gets the context as fields of the record (bunyan takes the object first)', async () => {
    const ring = new bunyan.RingBuffer({ limit: 1000 });
    const logger = bunyan.createLogger({ name: 'zeropeer-test', level: 'debug', streams: [{ type: 'raw', stream: ring, level: 'debug' }] });
    const records = ring.records as Array<{ level: number; msg: string; [field: string]: unknown }>;
    const server = track(new Server('service', { security: 'plain', users: { alice: await quickHash('pw') }, logger, drainTimeoutMs: 50 }));
    await server.bind('tcp://127.0.0.1:0');
    server.registerRpc('ping', () => 'pong');
    await server.start();
    const client = track(new Client('service', { security: 'plain', userId: 'alice', password: 'pw', logger: bunyan.createLogger({ name: 'client', streams: [] }) }));
    client.connect(server.endpoint);
    await client.start();
    expect(await client.call.ping()).to.equal('pong');

    const find = (msg: string) => records.find((record) => record.msg === msg);
    expect(find('security "plain" over tcp without CURVE: credentials travel in clear; set options.curve'))
      .to.include({ level: bunyan.WARN, peer: 'service', endpoint: 'tcp://127.0.0.1:0' });
    const routingId = find('connection up')?.['routingId'];
    expect(routingId).to.be.a('string').that.matches(/^zp-/);
    expect(find('HELLO received')).to.include({ level: bunyan.DEBUG, peer: 'service', routingId, login: 'alice', framing: 'compact' });
    expect(find('peer authenticated')).to.include({ level: bunyan.DEBUG, identity: 'alice', routingId });
    expect(records.every((record) => record['name'] === 'zeropeer-test'), 'bunyan\'s own fields kept').to.equal(true);
    expect(JSON.stringify(records), 'no password in any record').to.not.contain('"pw"');
  });

  it('a message-first logger (console-like) gets (message, context)', async () => {
    const logger = recordingLogger();
    const server = await startServer({ logger });
    const client = track(new Client('service', { logger: recordingLogger() }));
    client.connect(server.endpoint);
    await client.start();
    await client.call.nothing().catch(() => undefined);
    const up = logger.entries.find((entry) => entry.message === 'connection up');
    expect(up?.level).to.equal('debug');
    expect(up?.context).to.include({ peer: 'service' });
  });

  it('heartbeat verdicts: a peer judged silent (info), then heard from again (debug), with its identity and routing id', async () => {
    const logger = recordingLogger();
    const server = await startServer({ logger, heartbeat: { intervalMs: 100, timeoutMs: 400 } });
    // A raw peer that logs in, speaks heartbeats (RawPeer.connect sends one), then says nothing.
    const raw = new RawPeer(server.id, { routingId: 'mute-peer' });
    await raw.connect(server.endpoint);
    await raw.sendV1(uuidBytes(), MessageType.HELLO, ['mute', '']);
    while ((await raw.next(5000))[3]?.[0] !== MessageType.AUTHENTICATED);
    const verdict = (message: string) => logger.entries.find((entry) => entry.message === message);
    await until(() => verdict('peer silent for too long') !== undefined, 5000, 'the silence verdict');
    expect(verdict('peer silent for too long')).to.deep.include({ level: 'info' });
    expect(verdict('peer silent for too long')?.context).to.include({ peer: 'service', identity: 'mute', routingId: 'mute-peer', timeoutMs: 400 });
    expect(verdict('peer heard from again after it was judged silent'), 'not back before it speaks').to.equal(undefined);

    await raw.sendFrames('', 'v1', '', Buffer.from([MessageType.HEARTBEAT]), '');
    await until(() => verdict('peer heard from again after it was judged silent') !== undefined, 5000, 'the back verdict');
    const back = verdict('peer heard from again after it was judged silent')!;
    expect(back.level).to.equal('debug');
    expect(back.context).to.include({ peer: 'service', identity: 'mute', routingId: 'mute-peer' });
    expect(back.context?.['sinceVerdictMs']).to.be.a('number').that.is.at.least(0);
    expect(logger.entries.filter((entry) => entry.message === 'peer heard from again after it was judged silent'), 'once').to.have.length(1);
  });

  it('contextFirst() adapts another context-first logger; a logger without a level is refused at construction', () => {
    const calls: [LogContext, string][] = [];
    const record = (context: LogContext, message: string) => void calls.push([context, message]);
    const logger = contextFirst({ debug: record, info: record, warn: record, error: record });
    logger.warn('careful', { peer: 'p' });
    logger.info('plain');
    expect(calls).to.deep.equal([[{ peer: 'p' }, 'careful'], [{}, 'plain']]);
    expect(() => new Server('service', { logger: { debug() {}, info() {}, warn() {} } as never })).to.throw(TypeError, /error\(\)/);
  });
});
