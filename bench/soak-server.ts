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
import argon2 from 'argon2';
import { closeSync, openSync, writeSync } from 'node:fs';
import { Server, plainSecurity, type Logger, type SecurityPlugin } from '../lib/index.js';
import { serveCommands } from './child.js';

/** Log lines counted by level and message; the first errors also go to stderr (the parent shows them). */
const logged = new Map<string, number>();
let errorsPrinted = 0;
function count(level: string): (message: string, context?: Record<string, unknown>) => void {
  return (message, context) => {
    const key = `${level} ${message}`;
    logged.set(key, (logged.get(key) ?? 0) + 1);
    if (level === 'error' && errorsPrinted++ < 10) process.stderr.write(`error ${message} ${JSON.stringify(context ?? {})}\n`);
  };
}
const logger: Logger = { debug: () => {}, info: () => {}, warn: count('warn'), error: count('error') };

let server: Server | undefined;
let idsFd: number | undefined;
let ran = 0;
let hellos = 0;
let verifyCalls = 0;
let echoed = 0;
let foreignWork = 0;
/** The ids soak-clients gives its calls: `g<generation>:<client>:<seq>`. */
const LOAD_ID = /^g\d+:\d+:\d+$/;

/** `plain`, unchanged, but counting the HELLOs it is asked to check. */
const countedPlain: SecurityPlugin = {
  ...plainSecurity,
  name: 'plain (counted)',
  server(settings) {
    const inner = plainSecurity.server(settings);
    return {
      ...inner,
      authenticate(login, password, connection) {
        hellos++;
        return inner.authenticate(login, password, connection);
      },
    };
  },
};

serveCommands(
  {
    async start(args) {
      if (server) throw new Error('already started');
      const users = new Map(Object.entries(args.users as Record<string, string>));
      const decoy = args.decoy as string;
      idsFd = openSync(String(args.idsFile), 'a');
      server = new Server('service', {
        logger,
        security: countedPlain,
        // What a users map of hashes does (argon2, a decoy for unknown users), counted.
        users: async (userId: string, password: string) => {
          verifyCalls++;
          const hash = users.get(userId);
          const ok = await argon2.verify(hash ?? decoy, password).catch(() => false);
          return ok && hash !== undefined;
        },
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
      return { ran, hellos, verifyCalls, echoed, foreignWork, peer: server?.stats(), logged: Object.fromEntries(logged) };
    },
  },
  async () => {
    await server?.stop();
    if (idsFd !== undefined) closeSync(idsFd);
  },
);
