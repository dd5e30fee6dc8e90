/**
 * The security plugin of the links between cluster nodes: proofs of the shared secret, checked
 * without the secret ever travelling; forged, stale, replayed and malformed proofs refused.
 */
import { expect } from 'chai';
import { createHmac } from 'node:crypto';
import { UnauthorizedError } from '../../lib/index.js';
import { checkSecret, clusterLinkSecurity } from '../../lib/cluster/link-security.js';

const SECRET = 'the cluster secret, thirty-two characters or more';
const info = { routingId: Buffer.from('r') };

async function credentials(secret: string, node: string): Promise<[string, string]> {
  return clusterLinkSecurity(secret, node).client({}).credentials();
}

function refusal(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a refusal');
}

describe('cluster link security', () => {
  it('refuses a secret shorter than 32 characters', () => {
    expect(() => checkSecret('short')).to.throw(TypeError, /at least 32/);
    expect(() => checkSecret(undefined)).to.throw(TypeError);
    expect(() => clusterLinkSecurity('x'.repeat(31), 'a')).to.throw(TypeError);
  });

  it('a node holding the secret is admitted under its node name; the secret is not in what it sends', async () => {
    const [login, password] = await credentials(SECRET, 'b');
    expect(login).to.equal('b');
    expect(password).to.not.contain(SECRET);
    const server = clusterLinkSecurity(SECRET, 'a').server({});
    expect(server.authenticate(login, password, info)).to.equal('b');
    expect(server.anonymousIdentity(info)).to.equal(undefined);
  });

  it('another secret, another node name on the same proof, a replayed proof, a stale one, garbage: refused', async () => {
    const server = clusterLinkSecurity(SECRET, 'a').server({});
    const [, forged] = await credentials('another secret that is also long enough!!', 'b');
    expect(refusal(() => server.authenticate('b', forged, info))).to.be.instanceOf(UnauthorizedError);

    const [, proof] = await credentials(SECRET, 'b');
    expect(refusal(() => server.authenticate('c', proof, info))).to.be.instanceOf(UnauthorizedError); // the name is in the MAC
    expect(server.authenticate('b', proof, info)).to.equal('b');
    expect(refusal(() => server.authenticate('b', proof, info)).message).to.match(/replayed/);

    const time = String(Date.now() - 5 * 60_000);
    const nonce = '0'.repeat(32);
    const mac = createHmac('sha256', SECRET).update(`zeropeer-cluster-link\0b\0${time}\0${nonce}`).digest('hex');
    expect(refusal(() => server.authenticate('b', `${time}.${nonce}.${mac}`, info)).message).to.match(/stale/);

    for (const garbage of ['', '...', 'x.y.z', `${Date.now()}.${nonce}.zz`, `${Date.now()}.${nonce}.${'0'.repeat(64)}.extra`, `${Date.now()}.${nonce}.${'0'.repeat(64)}`]) {
      expect(refusal(() => server.authenticate('b', garbage, info)), garbage).to.be.instanceOf(UnauthorizedError);
    }
  });
});
