#!/usr/bin/env node
/**
 * The `zeropeer` command: call a server's function, list what it offers, serve a module's
 * functions, make a CURVE key pair, hash a password. Results go to stdout as JSON; errors go to
 * stderr, and the exit status tells the error's code (lib/cli/exit-codes.ts).
 */
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { curveKeyPair } from 'zeromq';
import { Client } from '../client.js';
import { RpcError } from '../errors.js';
import type { ClientOptions, ServerOptions } from '../options.js';
import { Server } from '../server.js';
import { hashPassword } from '../../security/plain.js';
import { USAGE_EXIT, exitCodeFor, toJson } from './exit-codes.js';
import { readPassword } from './read-password.js';

const USAGE = `Usage: zeropeer <command> [options]

  call <endpoint> <server-id> <method> [args as JSON...]   call a function; its result on stdout as JSON
  inspect <endpoint> <server-id> [--json]                  the functions the server lets you call
  serve <module> --bind <endpoint> [--id <server-id>]      serve a module's exported functions until SIGINT/SIGTERM
  keygen                                                   a CURVE key pair (Z85), as JSON
  hash-password                                            an argon2id hash of a password read from the terminal
                                                           (no echo) or from stdin's first line

Connecting (call, inspect):
  --user <id>            user id (noop, trusted_peer, plain)
  --password <pw|->      password (security plain); '-' reads it like hash-password does
  --token <jwt>          bearer token (security jwt)
  --security <name>      noop, plain, trusted_peer or jwt (default: jwt with --token, plain with --password, else noop)
  --server-key <z85>     the server's CURVE public key: encrypts the connection
  --public-key, --secret-key <z85>   this side's CURVE key pair (default: a fresh one)
  --timeout <ms>         deadline of the call (default 5000)

Serving (serve):
  --bind <endpoint>      where to listen (repeatable); the real endpoints are printed, one a line
  --id <server-id>       the server's id (default: the module's file name)
  --users <file.json>    { "user": "<argon2 hash>" }: security plain
  --security <name>      a built-in plugin name
  --public-key, --secret-key <z85>   the server's CURVE key pair
  --allow-key <z85>      a client key allowed to connect (repeatable)

Exit status: 0 ok, 2 usage, 10 service_not_found, 11 unauthorized, 12 timeout, 13 peer_not_connected,
14 service_closed, 15 invalid_argument, 16 remote, 17 nack, 18 busy, 19 protocol, 20 encoding,
21 message_too_large, 22 registration, 1 anything else.
`;

/** A command line the CLI cannot act on. */
class UsageError extends Error {}

const CONNECT_OPTIONS = {
  user: { type: 'string' },
  password: { type: 'string' },
  token: { type: 'string' },
  security: { type: 'string' },
  'server-key': { type: 'string' },
  'public-key': { type: 'string' },
  'secret-key': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

type ConnectValues = ReturnType<typeof parse<typeof CONNECT_OPTIONS>>['values'];

async function clientOptions(values: ConnectValues): Promise<ClientOptions> {
  const password = values.password === '-' ? await readPassword('Password: ') : values.password;
  const options: ClientOptions = {
    security: values.security ?? (values.token !== undefined ? 'jwt' : password !== undefined ? 'plain' : 'noop'),
  };
  if (values.timeout !== undefined) {
    const timeoutMs = Number(values.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout takes a positive number of milliseconds, not "${values.timeout}"`);
    options.timeoutMs = timeoutMs;
  }
  if (values.user !== undefined) options.userId = values.user;
  if (password !== undefined) options.password = password;
  if (values.token !== undefined) options.token = values.token;
  if (values['server-key'] !== undefined) {
    options.curve = { ...ownKeys(values) ?? curveKeyPair(), serverPublicKey: values['server-key'] };
  }
  return options;
}

function ownKeys(values: { 'public-key'?: string | undefined; 'secret-key'?: string | undefined }): { publicKey: string; secretKey: string } | undefined {
  const publicKey = values['public-key'];
  const secretKey = values['secret-key'];
  if (publicKey === undefined && secretKey === undefined) return undefined;
  if (publicKey === undefined || secretKey === undefined) throw new UsageError('--public-key and --secret-key go together');
  return { publicKey, secretKey };
}

/** Runs `use` with a started client connected to `endpoint`, and stops the client whatever happens. */
async function withClient<T>(endpoint: string, serverId: string, values: ConnectValues, use: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client(serverId, await clientOptions(values));
  try {
    client.connect(endpoint);
    await client.start();
    await client.ready(); // a wrong server id or refused credentials: said at once, with the reason
    return await use(client);
  } finally {
    await client.stop();
  }
}

async function call(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, CONNECT_OPTIONS);
  const [endpoint, serverId, method, ...rest] = positionals;
  if (endpoint === undefined || serverId === undefined || method === undefined) throw new UsageError('call needs <endpoint> <server-id> <method>');
  const callArgs = rest.map((text, index) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new UsageError(`argument ${index + 1} is not JSON: ${text} (a string is written '"text"')`);
    }
  });
  const result = await withClient(endpoint, serverId, values, (client) => client.invoke(method, callArgs));
  process.stdout.write(`${toJson(result)}\n`);
}

async function inspect(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, CONNECT_OPTIONS);
  const [endpoint, serverId] = positionals;
  if (endpoint === undefined || serverId === undefined || positionals.length > 2) throw new UsageError('inspect needs <endpoint> <server-id>');
  const functions = await withClient(endpoint, serverId, values, (client) => client.inspect());
  if (values.json) {
    process.stdout.write(`${toJson(functions, 2)}\n`);
    return;
  }
  for (const { name, params, description } of functions) {
    process.stdout.write(`${name}(${params.join(', ')})${description ? `  ${description}` : ''}\n`);
  }
}

async function serve(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    bind: { type: 'string', multiple: true },
    id: { type: 'string' },
    users: { type: 'string' },
    security: { type: 'string' },
    'public-key': { type: 'string' },
    'secret-key': { type: 'string' },
    'allow-key': { type: 'string', multiple: true },
  });
  const [modulePath] = positionals;
  if (modulePath === undefined || positionals.length > 1) throw new UsageError('serve needs one <module>');
  if (!values.bind?.length) throw new UsageError('serve needs --bind <endpoint>');
  const exported = (await import(pathToFileURL(resolve(modulePath)).href)) as Record<string, unknown>;
  const functions = Object.entries(exported).filter(
    (entry): entry is [string, (...args: unknown[]) => unknown] =>
      entry[0] !== 'default' && typeof entry[1] === 'function' && !Function.prototype.toString.call(entry[1]).startsWith('class'),
  );
  if (functions.length === 0) throw new UsageError(`${modulePath} exports no functions`);

  const options: ServerOptions = {};
  if (values.users !== undefined) {
    options.security = 'plain';
    options.users = JSON.parse(await readFile(values.users, 'utf8')) as Record<string, string>;
  }
  if (values.security !== undefined) options.security = values.security;
  const keys = ownKeys(values);
  if (keys) options.curve = values['allow-key'] ? { ...keys, allowedClientKeys: values['allow-key'] } : keys;
  else if (values['allow-key']) throw new UsageError('--allow-key needs the server\'s --public-key and --secret-key');

  const server = new Server(values.id ?? basename(modulePath, extname(modulePath)), options);
  for (const [name, fn] of functions) server.registerRpc(name, fn);
  const endpoints: string[] = [];
  try {
    for (const endpoint of values.bind) {
      await server.bind(endpoint);
      endpoints.push(server.endpoint);
    }
    await server.start();
  } catch (error) {
    await server.stop();
    throw error;
  }
  await new Promise<void>((done) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop).off('SIGTERM', stop);
      process.stderr.write(`${signal}: stopping\n`);
      server.stop().then(done, done);
    };
    process.on('SIGINT', stop).on('SIGTERM', stop);
    process.stdout.write(endpoints.map((endpoint) => `${endpoint}\n`).join(''));
    process.stderr.write(`serving "${server.id}": ${functions.map(([name]) => name).join(', ')}\n`);
  });
}

async function hashPasswordCommand(args: string[]): Promise<void> {
  parse(args, {});
  const password = await readPassword('Password: ');
  if (process.stdin.isTTY && (await readPassword('Again: ')) !== password) throw new UsageError('the passwords differ');
  if (password.length === 0) throw new UsageError('an empty password');
  process.stdout.write(`${await hashPassword(password)}\n`);
}

async function keygen(args: string[]): Promise<void> {
  parse(args, {});
  const { publicKey, secretKey } = curveKeyPair();
  process.stdout.write(`${toJson({ publicKey, secretKey })}\n`);
}

const COMMANDS: Readonly<Record<string, (args: string[]) => Promise<void>>> = {
  call,
  inspect,
  serve,
  keygen,
  'hash-password': hashPasswordCommand,
};

/** Runs one command line; resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === '--version') {
    process.stdout.write(`${(createRequire(import.meta.url)('../../../package.json') as { version: string }).version}\n`);
    return 0;
  }
  const run = command !== undefined && Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!run) {
    process.stderr.write(command === undefined ? USAGE : `zeropeer: unknown command "${command}"\n\n${USAGE}`);
    return USAGE_EXIT;
  }
  try {
    await run(args);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`zeropeer ${command}: ${error.message}\n(zeropeer --help for usage)\n`);
      return USAGE_EXIT;
    }
    // A built-in error the handler threw (RangeError, ...) comes back as itself, with the remote stack.
    const remote = error instanceof Error && Object.hasOwn(error, 'remoteStack');
    const code = error instanceof RpcError ? error.code : remote ? 'remote' : undefined;
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    process.stderr.write(`zeropeer ${command}: ${code ?? 'error'}: ${message}\n`);
    return exitCodeFor(code);
  }
}

process.exitCode = await main(process.argv.slice(2));
