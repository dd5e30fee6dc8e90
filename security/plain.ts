/**
 * `plain`: a user id and a password, checked against argon2 hashes (or your own async `verify`).
 * Passwords are never logged, and kept at rest only as hashes: make them with {@link hashPassword}.
 * The password crosses the network in HELLO, so use CURVE (`options.curve`) on any network you do
 * not trust; the peer warns once when it runs over tcp without it.
 */
import argon2 from 'argon2';
import { BusyError, UnauthorizedError } from '../lib/errors.js';
import type { Authentication, SecurityPlugin, SecuritySettings } from './plugin.js';

/** Hashes a password with argon2id, for `users` maps. Runs off the event loop. */
export function hashPassword(password: string): Promise<string> {
  if (typeof password !== 'string' || password.length === 0) throw new TypeError('hashPassword needs a non-empty string');
  return argon2.hash(password, { type: argon2.argon2id });
}

/** Your own check, instead of a map of hashes. */
export type VerifyPassword = (userId: string, password: string) => boolean | Promise<boolean>;

/** Most argon2 verifications at once: each takes a thread of libuv's pool and 64 MiB. */
export const MAX_CONCURRENT_VERIFICATIONS = 2;
/** Most verifications waiting for a slot; past that, a HELLO is answered 'busy' (the client retries later). */
export const MAX_QUEUED_VERIFICATIONS = 1000;

/**
 * Runs at most `limit` tasks at once, the rest in order; refuses past `queueLimit` waiting with a
 * BusyError (retryable: the client tries again later). A task whose signal aborts while it waits
 * (its connection closed, the server stops) leaves the queue at once and never runs.
 */
class Gate {
  #running = 0;
  readonly #waiting = new Set<{ start(): void; signal: AbortSignal | undefined }>();
  constructor(readonly limit: number, readonly queueLimit: number) {}

  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.#running >= this.limit) {
      if (this.#waiting.size >= this.queueLimit) throw new BusyError('too many logins in progress');
      await new Promise<void>((resolve, reject) => {
        const abort = (): void => {
          this.#waiting.delete(entry);
          reject(signal!.reason);
        };
        const entry = {
          signal,
          start(): void {
            signal?.removeEventListener('abort', abort);
            resolve();
          },
        };
        signal?.addEventListener('abort', abort, { once: true });
        this.#waiting.add(entry);
      });
    }
    this.#running++;
    try {
      return await task();
    } finally {
      this.#running--;
      this.#next();
    }
  }

  #next(): void {
    for (const entry of this.#waiting) {
      this.#waiting.delete(entry);
      if (entry.signal?.aborted) continue;
      entry.start();
      return;
    }
  }
}

/** Reads `users`: a map of user id -> argon2 hash, or a verify function. */
function passwordChecker(settings: SecuritySettings): VerifyPassword {
  const users = settings['users'];
  if (typeof users === 'function') return users as VerifyPassword;
  if (users && typeof users === 'object' && typeof (users as { verify?: unknown }).verify === 'function') {
    return (users as { verify: VerifyPassword }).verify;
  }
  if (!users || typeof users !== 'object') {
    throw new TypeError("security 'plain' needs options.users: { userId: argon2 hash } or verify(userId, password)");
  }
  const hashes = new Map<string, string>();
  for (const [userId, hash] of Object.entries(users as Record<string, unknown>)) {
    if (typeof hash !== 'string' || !hash.startsWith('$argon2')) {
      throw new TypeError(`options.users["${userId}"] is not an argon2 hash: store hashPassword(password), never the password`);
    }
    hashes.set(userId, hash);
  }
  // An unknown user costs the same argon2 work as a known one, so timing does not tell which exist.
  const decoy = hashPassword('decoy password that never matches');
  return async (userId, password) => {
    const hash = hashes.get(userId);
    const ok = await argon2.verify(hash ?? (await decoy), password).catch(() => false);
    return ok && hash !== undefined;
  };
}

/** The `plain` plugin: user id and password checked against argon2 hashes (`users`) or your `verify`. */
export const plainSecurity: SecurityPlugin = {
  name: 'plain',
  secretCredentials: true,
  server(settings) {
    const check = passwordChecker(settings);
    const gate = new Gate(MAX_CONCURRENT_VERIFICATIONS, MAX_QUEUED_VERIFICATIONS);
    return {
      async authenticate(userId, password, connection): Promise<Authentication> {
        if (!userId) throw new UnauthorizedError('no user id');
        const ok = await gate.run(async () => (await check(userId, password)) === true, connection.signal);
        if (!ok) throw new UnauthorizedError(`wrong password or unknown user "${userId}"`);
        return { identity: userId };
      },
      anonymousIdentity: () => undefined,
    };
  },
  client(settings) {
    const { userId, password } = settings;
    if (typeof userId !== 'string' || userId.length === 0) throw new TypeError("security 'plain' needs options.userId");
    if (typeof password !== 'string') throw new TypeError("security 'plain' needs options.password");
    return { credentials: () => [userId, password], requiresAuthentication: true };
  },
};
