/**
 * The soak's server (a child process of bench/soak.ts, over the bench's command protocol).
 *
 * `start { endpoint, idsFile, users }` binds a Server with `security: 'plain'` (the users' argon2
 * hashes are made by the parent, so that a restart is quick) and serves:
 * - `work(id, payload)`: the legitimate load. Before it answers, it appends `id` to `idsFile` with a
 *   synchronous write, so that the ids it ran survive even a SIGKILL: the parent counts duplicates.
 * - `echo(value)`: for the fuzzer's authenticated connections.
 * `stats` tells what it ran and counted (HELLOs, password checks, log lines by message); `memory`
 * its memory (after a GC when asked). `stop` stops the server and exits.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { Server } from '../lib/index.js';
import { counted, type Counted } from '../test/fixtures/counted-server.js';
import { serveCommands } from './child.js';


let server: Server | undefined;
let idsFd: number | undefined;
let ran = 0;
/** The counting logger and plugin, made at start (the hashes come with the start command). */
let counters: Counted | undefined;
let echoed = 0;
let foreignWork = 0;
/** The ids soak-clients gives its calls: `g<generation>:<client>:<seq>`. */
const LOAD_ID = /^g\d+:\d+:\d+$/;


serveCommands(
  {
    async start(args) {
      if (server) throw new Error('already started');
      const users = new Map(Object.entries(args.users as Record<string, string>));
      const decoy = args.decoy as string;
      idsFd = openSync(String(args.idsFile), 'a');
      counters = counted(users, decoy, 10);
      server = new Server('service', {
        logger: counters.logger,
        security: counters.security,
        users: counters.users,
        drainTimeoutMs: 500,
      });
      server.registerRpc('work', (id: unknown, payload: unknown) => {
        // Only the load's ids (a fuzzed call that happened to name `work` is counted apart).
        if (typeof id === 'string' && LOAD_ID.test(id)) {
          writeSync(idsFd!, `${id}\n`);
          ran++;
        } else {
          foreignWork++;
        }
        return payload;
      });
      server.registerRpc('echo', (value: unknown) => {
        echoed++;
        return value;
      });
      await server.bind(String(args.endpoint));
      await server.start();
      return { endpoint: server.endpoint, pid: process.pid };
    },
    /** Memory now, all of it; `{ gc: true }` collects garbage first (the bench runs children with --expose-gc). */
    memory(args) {
      if (args.gc) (globalThis as { gc?: () => void }).gc?.();
      return process.memoryUsage();
    },
    stats() {
      return { ran, hellos: counters?.counts.hellos ?? 0, verifyCalls: counters?.counts.verifyCalls ?? 0, echoed, foreignWork, peer: server?.stats(), logged: Object.fromEntries(counters?.logged ?? []) };
    },
  },
  async () => {
    await server?.stop();
    if (idsFd !== undefined) closeSync(idsFd);
  },
);
