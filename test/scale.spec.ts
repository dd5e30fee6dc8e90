/**
 * What keeps a server with many clients linear (issue 14, scale): a lost connection ends its own
 * work and calls only, and the listening socket queues a reconnection storm instead of dropping it.
 */
import { expect } from 'chai';
import { Server, currentCall, PeerNotConnectedError } from '../lib/index.js';
import { LISTEN_BACKLOG, type RouterSocket } from '../lib/transport/router-socket.js';
import { cleanup, rejection, startClient, startServer, until } from './helpers.js';

const socketOf = (peer: Server): RouterSocket => (peer as unknown as { session: { socket: RouterSocket } }).session.socket;

describe('scale: a lost connection costs its own work only', () => {
  afterEach(cleanup);

  it('a bound server listens with a backlog of LISTEN_BACKLOG (a restart storm is queued, not dropped)', async () => {
    const server = await startServer();
    expect(LISTEN_BACKLOG).to.be.at.least(1024);
    expect(socketOf(server).settings.backlog).to.equal(LISTEN_BACKLOG);
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
