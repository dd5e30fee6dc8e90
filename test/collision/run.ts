/**
 * Routing-id collision test (docs/hardened-zmq.md): can a peer kill a libzmq ROUTER by claiming
 * the routing ids that libzmq will generate next?
 *
 *   node dist/test/collision/run.js [--module <zeromq package dir | zeromq>] [--expect abort|survive]
 *                                   [--claims 64] [--label text] [--scenario claims|connect-ids]
 *
 * 1. Starts echo-server.js (a bare ROUTER on tcp://127.0.0.1:0) in a child process, loading the
 *    zeromq package named by --module (default: the project's own `zeromq`).
 * 2. Opens --claims DEALERs whose routing ids are 0x00 followed by 0x6b8b4567 + k (big-endian):
 *    the ids libzmq 4.3.x generates for its first anonymous peers, since it never seeds rand().
 *    Each sends a message and waits for the echo, so the ROUTER has registered it.
 * 3. Opens one anonymous DEALER (no routing id) and sends a message.
 *    With --scenario connect-ids, step 2 is done by the server itself instead: its ROUTER connects
 *    --claims times with those ids as ZMQ_CONNECT_ROUTING_ID (ids its own application chose), so
 *    the anonymous peer's generated id collides without any peer claiming anything.
 * 4. Outcome: `aborted` if the child died (a stock libzmq 4.3.5 ROUTER dies by SIGABRT on
 *    `zmq_assert (ok)` in routing_socket_base_t::add_out_pipe), `survived` if it answered the
 *    anonymous peer and, a moment later, another new anonymous peer, and is still running;
 *    `inconclusive` otherwise.
 *
 * Prints one `collision-result {json}` line. Exit status: 0 when the outcome matches --expect
 * (or no --expect was given and the outcome is not inconclusive), 1 when it does not, 2 on a
 * harness failure. Every socket is closed and the child is always stopped (stdin closed, then
 * SIGKILL if it lingers); a watchdog ends the whole run after WATCHDOG_MS.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';

const FIRST_GENERATED_ID = 0x6b8b4567;
const WATCHDOG_MS = 45_000;
const READY_TIMEOUT_MS = 10_000;
const REPLY_TIMEOUT_MS = 3_000;

type Outcome = 'aborted' | 'survived' | 'inconclusive';

interface Args {
  module: string;
  scenario: 'claims' | 'connect-ids';
  expect: 'abort' | 'survive' | undefined;
  claims: number;
  label: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { module: 'zeromq', scenario: 'claims', expect: undefined, claims: 64, label: '' };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (!['--module', '--expect', '--claims', '--label', '--scenario'].includes(flag!)) throw new Error(`unknown argument ${flag}`);
    if (value === undefined) throw new Error(`${flag} needs a value`);
    i++;
    if (flag === '--module') args.module = value;
    else if (flag === '--expect') {
      if (value !== 'abort' && value !== 'survive') throw new Error('--expect is abort or survive');
      args.expect = value;
    } else if (flag === '--claims') {
      args.claims = Number(value);
      if (!Number.isInteger(args.claims) || args.claims < 1 || args.claims > 4096) throw new Error('--claims is 1..4096');
    } else if (flag === '--label') args.label = value;
    else if (flag === '--scenario') {
      if (value !== 'claims' && value !== 'connect-ids') throw new Error('--scenario is claims or connect-ids');
      args.scenario = value;
    }
    else throw new Error(`unknown argument ${flag}`);
  }
  args.label ||= args.module;
  return args;
}

/** The 5-byte routing id libzmq generates for its (k+1)-th anonymous peer. */
function generatedId(k: number): Buffer {
  const id = Buffer.alloc(5);
  id.writeUInt32BE((FIRST_GENERATED_ID + k) >>> 0, 1);
  return id;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `promise`, at most `ms`; the timer does not outlive the promise. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`collision: ${(error as Error).message}\n`);
    return 2;
  }
  const log = (line: string) => process.stderr.write(`[collision ${args.label}] ${line}\n`);
  const started = Date.now();

  // ---------------------------------------------------------------- the server child
  const child = spawn(process.execPath, [fileURLToPath(new URL('./echo-server.js', import.meta.url))], {
    env: {
      ...process.env,
      ZEROPEER_ZMQ_MODULE: args.module,
      ZEROPEER_CONNECT_IDS: args.scenario === 'connect-ids' ? String(args.claims) : '0',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve();
    }),
  );
  child.stdin.on('error', () => {}); // EPIPE once the child is gone

  const sockets: zmq.Dealer[] = [];
  const watchdog = setTimeout(() => {
    log(`watchdog: no result after ${WATCHDOG_MS} ms, stopping`);
    child.kill('SIGKILL');
    process.exit(2);
  }, WATCHDOG_MS);

  const result: Record<string, unknown> = { label: args.label, scenario: args.scenario, module: args.module, claims: args.claims };
  let outcome: Outcome = 'inconclusive';
  try {
    const ready = await new Promise<{ endpoint: string; version: string }>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`server not ready in ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        const match = /^ready (\S+) (\S+)$/m.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve({ endpoint: match[1]!, version: match[2]! });
        }
      });
      void exited.then(() => reject(new Error(`server exited before ready: ${JSON.stringify(exitInfo)} ${stderr}`)));
    });
    result.endpoint = ready.endpoint;
    result.serverZmqVersion = ready.version;
    log(`server pid ${child.pid} on ${ready.endpoint}, libzmq ${ready.version}`);

    const dealer = (routingId?: Buffer): zmq.Dealer => {
      // zeromq.js types routingId as a string, but passes a Buffer through as the binary id.
      const options = { linger: 0, receiveTimeout: REPLY_TIMEOUT_MS, ...(routingId ? { routingId: routingId as unknown as string } : {}) };
      const socket = new zmq.Dealer(options);
      sockets.push(socket);
      socket.connect(ready.endpoint);
      return socket;
    };
    /** Sends one message and returns the routing id (hex) the server echoed back, or the error. */
    const roundTrip = async (socket: zmq.Dealer, tag: string): Promise<string> => {
      await socket.send(tag);
      const [idHex, echoed] = await socket.receive();
      if (echoed?.toString() !== tag) throw new Error(`unexpected echo ${String(echoed)}`);
      return idHex!.toString();
    };

    // ---------------------------------------------------------------- controls
    // A peer-chosen id that does not start with 0x00 must be kept as chosen (patched or not).
    const normalId = Buffer.from('zeropeer-normal-id');
    const normalSeen = await roundTrip(dealer(normalId), 'normal');
    result.normalIdKept = normalSeen === normalId.toString('hex');
    if (!result.normalIdKept) throw new Error(`the server did not keep a normal routing id: ${normalSeen}`);
    // A reserved (0x00...) id outside the generated sequence: kept by a stock ROUTER, replaced by
    // a generated one by a hardened ROUTER (which then uses up one generated id here, so the
    // claims below no longer coincide with the ids it hands out).
    const reservedId = Buffer.from('00deadbeef', 'hex');
    const reservedSeen = await roundTrip(dealer(reservedId), 'reserved');
    result.reservedIdKept = reservedSeen === reservedId.toString('hex');
    log(`controls: normal id kept; reserved id 00deadbeef ${result.reservedIdKept ? 'kept as claimed' : `replaced by ${reservedSeen}`}`);

    // ---------------------------------------------------------------- claims
    const claimed = Array.from({ length: args.claims }, (_, k) => generatedId(k));
    const range = `${claimed[0]!.toString('hex')}..${claimed.at(-1)!.toString('hex')}`;
    if (args.scenario === 'claims') {
      // One at a time, each answered, so that the ROUTER has registered every one of them.
      let kept = 0;
      for (const [k, id] of claimed.entries()) {
        const seen = await roundTrip(dealer(id), `claim-${k}`);
        if (seen === id.toString('hex')) kept++;
        if (k === 0) result.firstClaim = { claimed: id.toString('hex'), serverGave: seen };
      }
      result.claimsKept = kept;
      log(`${args.claims} peers claimed ${range}; the server kept ${kept} of those ids as claimed`);
    } else {
      log(`the server's own ROUTER holds ${range} as connect routing ids`);
    }

    // ---------------------------------------------------------------- the anonymous peer
    const anonymous = roundTrip(dealer(), 'anonymous').then(
      (id) => ({ id }),
      (error: Error) => ({ error: error.message }),
    );
    const first = await Promise.race([anonymous, exited.then(() => ({ error: 'server exited' }))]);
    result.anonymous = first;
    if ('id' in first) {
      log(`anonymous peer answered, server gave it routing id ${first.id}`);
      await delay(300);
      if (exitInfo === undefined) {
        const second = await roundTrip(dealer(), 'anonymous-2').then(
          (id) => ({ id }),
          (error: Error) => ({ error: error.message }),
        );
        result.anonymous2 = second;
        if ('id' in second && exitInfo === undefined) outcome = 'survived';
      }
    } else {
      // Give a dying child a moment to be reaped, so its signal is known.
      await within(exited, 2_000);
    }
    if (exitInfo !== undefined) outcome = 'aborted';
  } catch (error) {
    log(`harness error: ${(error as Error).message}`);
    result.harnessError = (error as Error).message;
  } finally {
    for (const socket of sockets) socket.close();
    if (exitInfo === undefined) {
      child.stdin.end('stop\n');
      await within(exited, 2_000);
      if (exitInfo === undefined) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    clearTimeout(watchdog);
  }

  result.outcome = outcome;
  if (outcome === 'aborted') result.serverExit = exitInfo;
  const assertion = /Assertion failed[^\n]*/.exec(stderr);
  if (assertion) result.serverAssertion = assertion[0];
  result.ms = Date.now() - started;
  process.stdout.write(`collision-result ${JSON.stringify(result)}\n`);
  log(
    outcome === 'aborted'
      ? `server ABORTED (signal ${exitInfo?.signal ?? 'none'}, code ${exitInfo?.code ?? 'none'})${assertion ? `: ${assertion[0]}` : ''}`
      : outcome === 'survived'
        ? 'server SURVIVED and still answers'
        : 'INCONCLUSIVE: the server neither died nor answered',
  );
  if (result.harnessError !== undefined) return 2;
  if (args.expect === undefined) return outcome === 'inconclusive' ? 1 : 0;
  const ok = (args.expect === 'abort' && outcome === 'aborted') || (args.expect === 'survive' && outcome === 'survived');
  log(`expected ${args.expect}: ${ok ? 'ok' : 'MISMATCH'}`);
  return ok ? 0 : 1;
}

process.exitCode = await main();
