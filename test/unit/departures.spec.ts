/**
 * Departures alone, over its own seam (DepartureHost): a scripted host plays the session and the
 * socket (a probe that finds the route, or EHOSTUNREACH). The same behaviour through real sockets
 * is in bad-input.spec.ts and security-transport.spec.ts (empty messages from peers).
 */
import { expect } from 'chai';
import { Connections, type Connection } from '../../lib/engine/connection.js';
import { Departures, type DepartureHost } from '../../lib/engine/departures.js';
import { silentLogger } from '../../lib/index.js';

const unreachable = (): Error => Object.assign(new Error('Host unreachable'), { code: 'EHOSTUNREACH' });

class ScriptedHost implements DepartureHost {
  readonly logger = silentLogger;
  readonly connections = new Connections();
  readonly stop = new AbortController();
  readonly stopping = this.stop.signal;
  readonly events: string[] = [];
  /** What each probe does: 'route' resolves, 'gone' rejects with EHOSTUNREACH (then 'route'). */
  readonly probes: Array<'route' | 'gone'> = [];
  probed = 0;

  constructor(readonly checks: boolean) {}

  checksDepartures(): boolean {
    return this.checks;
  }

  connectionFor(routingId: Buffer): Connection | undefined {
    return this.connections.get(routingId) ?? this.connections.add(routingId, false);
  }

  up(connection: Connection): void {
    connection.up = true;
    connection.epoch++;
    this.events.push(`up ${connection.key}`);
  }

  down(connection: Connection): void {
    this.events.push(`down ${connection.key}`);
    this.connections.delete(connection);
  }

  probe(connection: Connection): Promise<void> {
    this.probed++;
    this.events.push(`probe ${connection.key}`);
    return this.probes.shift() === 'gone' ? Promise.reject(unreachable()) : Promise.resolve();
  }

  context(connection: Connection): Record<string, unknown> {
    return { routingId: connection.address };
  }

  warn(connection: Connection, message: string): void {
    this.events.push(`warn ${connection.key}: ${message}`);
  }
}

/** Until `condition` holds (bounded: a failing test does not hang). */
async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A known, up connection that has spoken. */
function heardFrom(host: ScriptedHost, id: string): Connection {
  const connection = host.connections.add(Buffer.from(id), true);
  connection.heard = true;
  return connection;
}

describe('Departures (connect and departure notices)', () => {
  it('a notice from a routing id not up is a connect: the connection comes up', () => {
    const host = new ScriptedHost(true);
    new Departures(host).notify(Buffer.from('a'));
    expect(host.events).to.deep.equal(['up a']);
    expect(host.connections.get(Buffer.from('a'))!.up).to.equal(true);
  });

  it('on a side that does not check (a client), a notice for an up connection is its departure at once, with no probe', () => {
    const host = new ScriptedHost(false);
    const connection = heardFrom(host, 'server');
    new Departures(host).notify(connection.routingId);
    expect(host.events).to.deep.equal(['down server']);
    expect(connection.up).to.equal(false);
    expect(host.probed).to.equal(0);
  });

  it('on the bound side, a notice from a connection that has not spoken is ignored (pseud announces itself with it)', () => {
    const host = new ScriptedHost(true);
    const connection = host.connections.add(Buffer.from('quiet'), true);
    new Departures(host).notify(connection.routingId);
    expect(host.events).to.deep.equal([]);
    expect(connection.up).to.equal(true);
  });

  it('on the bound side, a departure is believed once a probe finds the route gone', async () => {
    const host = new ScriptedHost(true);
    host.probes.push('route', 'gone');
    const connection = heardFrom(host, 'leaving');
    new Departures(host).notify(connection.routingId);
    expect(connection.departure, 'a check runs').to.not.equal(undefined);
    await until(() => host.events.includes('down leaving'));
    expect(host.events).to.deep.equal(['probe leaving', 'probe leaving', 'down leaving']);
    expect(connection.up).to.equal(false);
    expect(connection.departure).to.equal(undefined);
  });

  it('on the bound side, an empty message from a peer whose route stays is ignored after the probes, with a warning; the connection stays', async function () {
    this.timeout(10_000);
    const host = new ScriptedHost(true);
    const connection = heardFrom(host, 'mimic');
    new Departures(host).notify(connection.routingId);
    await until(() => host.events.some((e) => e.startsWith('warn')), 8000);
    expect(host.events.filter((e) => e === 'probe mimic')).to.have.length(6);
    expect(host.events.at(-1)).to.equal('warn mimic: an empty message from a connected peer was ignored');
    expect(connection.up).to.equal(true);
    expect(connection.departure).to.equal(undefined);
  });

  it('a second notice while the first is checked: the old connection departs and a fresh one on the routing id comes up', () => {
    const host = new ScriptedHost(true);
    const connection = heardFrom(host, 'again');
    const departures = new Departures(host);
    departures.notify(connection.routingId);
    const check = connection.departure!;
    departures.notify(connection.routingId);
    expect(check.signal.aborted, 'the first check ends').to.equal(true);
    expect(host.events.filter((e) => !e.startsWith('probe'))).to.deep.equal(['down again', 'up again']);
    const fresh = host.connections.get(Buffer.from('again'))!;
    expect(fresh).to.not.equal(connection);
    expect(fresh.up).to.equal(true);
  });

  it('stopping ends a check: no departure, and the connection\'s check is cleared', async () => {
    const host = new ScriptedHost(true);
    const connection = heardFrom(host, 'staying');
    new Departures(host).notify(connection.routingId);
    await until(() => host.probed >= 2);
    host.stop.abort();
    await until(() => connection.departure === undefined);
    expect(host.events.some((e) => e.startsWith('down') || e.startsWith('warn'))).to.equal(false);
    expect(connection.up).to.equal(true);
  });
});
