/**
 * What keeps a server with many clients linear (issue 14, scale): a lost connection ends its own
 * work and calls only, and the listening socket queues a reconnection storm instead of dropping it.
 */
import { expect } from 'chai';
import { Client, Server, currentCall, PeerNotConnectedError, type HeartbeatBackend, type SecurityPlugin } from '../lib/index.js';
import { LISTEN_BACKLOG, RECONNECT_MAX_MS, type RouterSocket } from '../lib/transport/router-socket.js';
import { cleanup, recordingLogger, rejection, startClient, startServer, track, until } from './helpers.js';

const socketOf = (peer: Server | Client): RouterSocket => (peer as unknown as { session: { socket: RouterSocket } }).session.socket;

describe('scale: a lost connection costs its own work only', () => {
  afterEach(cleanup);

  it('a bound server listens with a backlog of LISTEN_BACKLOG (a restart storm is queued, not dropped)', async () => {
    const server = await startServer();
    expect(LISTEN_BACKLOG).to.be.at.least(1024);
    expect(socketOf(server).settings.backlog).to.equal(LISTEN_BACKLOG);
  });

  it('a client backs off its reconnection attempts up to RECONNECT_MAX_MS, and comes back after its server restarts on the same endpoint', async () => {
    const first = await startServer();
    const endpoint = first.endpoint;
    const client = await startClient(first, { userId: 'back' });
    expect(socketOf(client).settings.reconnectMaxInterval).to.equal(RECONNECT_MAX_MS);
    expect(RECONNECT_MAX_MS).to.be.within(100, 5000);
    await first.stop();
    await until(() => !client.connected, 5000, 'the client saw its server go');
    const second = track(new Server('service', { logger: recordingLogger(), drainTimeoutMs: 50 }));
    second.registerRpc('where', () => 'second');
    await second.bind(endpoint);
    await second.start();
    await until(() => second.connectedPeers().includes('back'), 8000, 'the client back on the new server');
    expect(await client.call.where()).to.equal('second');
  });

  it('a client that leaves: its running handlers are aborted, the other clients\' run on and answer', async () => {
    const server = await startServer();
    const aborted: string[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const started = new Set<string>();
    server.registerRpc('hold', async (name: string) => {
      const signal = currentCall()!.signal;
      signal.addEventListener('abort', () => aborted.push(name), { once: true });
      started.add(name);
      await Promise.race([released, new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))]);
      return name;
    });
    const stay = await Promise.all([startClient(server, { userId: 'stay-1' }), startClient(server, { userId: 'stay-2' })]);
    const leave = await startClient(server, { userId: 'leave' });
    const staying = stay.map((client, i) => client.call.hold(`stay-${i + 1}`) as Promise<string>);
    const leaving = rejection(leave.call.hold('leave'));
    await until(() => started.size === 3, 3000, 'three handlers running');
    await leave.stop();
    await until(() => aborted.includes('leave'), 5000, 'the handler of the client that left aborted');
    expect(aborted).to.deep.equal(['leave']);
    release();
    expect(await Promise.all(staying)).to.deep.equal(['stay-1', 'stay-2']);
    expect(await leaving).to.be.instanceOf(Error);
  });

  it('a client that leaves: the server\'s calls to it reject, its calls to the others answer', async () => {
    const server = await startServer();
    const clients = await Promise.all(['a', 'b', 'c'].map((userId) => startClient(server, { userId })));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    for (const client of clients) client.registerRpc('wait', async () => {
      await released;
      return 'done';
    });
    const calls = ['a', 'b', 'c'].map((id) => server.sendTo(id).wait() as Promise<string>);
    const lost = rejection(calls[1]!);
    await clients[1]!.stop();
    const error = await lost;
    expect(error).to.be.instanceOf(PeerNotConnectedError);
    expect(error.message).to.include('"b"');
    release();
    expect(await Promise.all([calls[0], calls[2]])).to.deep.equal(['done', 'done']);
  });
});

describe('scale: what each client that comes costs the server', () => {
  afterEach(cleanup);

  /** A plugin whose check is `check`; the client sends login "who". */
  function pluginWith(check: (login: string, signal: AbortSignal | undefined) => string | Promise<string>): SecurityPlugin {
    return {
      name: 'signal-reader',
      server: () => ({ authenticate: (login, _password, connection) => check(login, connection.signal), anonymousIdentity: () => undefined }),
      client: () => ({ credentials: () => ['who', 'secret'], requiresAuthentication: true }),
    };
  }

  async function serverAndClient(plugin: SecurityPlugin): Promise<{ server: Server; client: Client }> {
    const server = track(new Server('service', { security: plugin, logger: recordingLogger(), drainTimeoutMs: 50 }));
    await server.bind('tcp://127.0.0.1:0');
    await server.start();
    const client = track(new Client('service', { security: plugin, logger: recordingLogger(), drainTimeoutMs: 50 }));
    client.connect(server.endpoint);
    await client.start();
    return { server, client };
  }

  it('a synchronous check that reads connection.signal gets one, not aborted, and the client is admitted', async () => {
    const signals: Array<AbortSignal | undefined> = [];
    const { server } = await serverAndClient(pluginWith((login, signal) => {
      signals.push(signal);
      return login;
    }));
    await until(() => server.connectedPeers().includes('who'), 5000, 'the client admitted');
    expect(signals[0]).to.be.instanceOf(AbortSignal);
    expect(signals[0]!.aborted).to.equal(false);
  });

  it('an asynchronous check still gets a signal that aborts when the connection closes', async () => {
    const signals: AbortSignal[] = [];
    const { client } = await serverAndClient(pluginWith((_login, signal) => {
      signals.push(signal!);
      return new Promise<string>(() => {}); // never decides
    }));
    await until(() => signals.length > 0, 5000, 'the check started');
    expect(signals[0]!.aborted).to.equal(false);
    await client.stop();
    await until(() => signals[0]!.aborted, 5000, 'the check aborted');
  });

  it('a heartbeat backend whose track rejects is logged, and the client is admitted all the same', async () => {
    const logger = recordingLogger();
    const backend: HeartbeatBackend = {
      track: () => Promise.reject(new Error('table unreachable')),
      untrack: () => undefined,
      seen: () => undefined,
      expired: () => [],
    };
    const server = await startServer({ logger, heartbeat: { backend } });
    await startClient(server, { userId: 'tracked' });
    expect(server.connectedPeers()).to.deep.equal(['tracked']);
    await until(() => logger.entries.some((e) => e.message === 'heartbeat backend track failed'), 3000, 'the failure logged');
    expect(logger.entries.find((e) => e.message === 'heartbeat backend track failed')!.context).to.include({ error: 'table unreachable' });
  });
});
