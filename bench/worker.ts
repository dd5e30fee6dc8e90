/**
 * Child process entry: hosts one role (caller or responder) of one Node system.
 * `node dist/bench/worker.js <system> <caller|responder>`; driven by run.ts over IPC.
 */
import { serveCommands, usage } from './child.js';
import { drive, type DriveOptions } from './scenarios.js';
import { NODE_SYSTEM_KEYS, loadSystem } from './systems/index.js';
import type { Caller, Rendezvous, Role } from './systems/types.js';

const [systemKey, roleName] = process.argv.slice(2);
if (!NODE_SYSTEM_KEYS.includes(systemKey ?? '') || (roleName !== 'caller' && roleName !== 'responder')) {
  console.error(`usage: worker.js <${NODE_SYSTEM_KEYS.join('|')}> <caller|responder>`);
  process.exit(2);
}
const system = await loadSystem(systemKey!);

let role: Role | undefined;

serveCommands(
  {
    async start(args) {
      if (role) throw new Error('already started');
      const rendezvous = args.rendezvous as Rendezvous | undefined;
      role = roleName === 'caller' ? await system.startCaller(rendezvous) : await system.startResponder(rendezvous);
      return { rendezvous: role.rendezvous ?? null };
    },
    async ready(args) {
      await (role as Caller).ready(Number(args.timeoutMs) || 10_000);
      return null;
    },
    async run(args) {
      const caller = role as Caller;
      const before = usage();
      const result = await drive((payload) => caller.call(payload), args as unknown as DriveOptions);
      const after = usage();
      const cpuUs = after.cpuUserUs + after.cpuSystemUs - before.cpuUserUs - before.cpuSystemUs;
      return { ...result, cpuPct: (cpuUs / 1000 / (after.at - before.at)) * 100, rss: after.rss };
    },
  },
  async () => {
    await role?.close();
  },
);
