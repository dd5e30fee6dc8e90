/**
 * The security plugin interface, and the registry plugins are chosen from by name.
 *
 * A plugin has two halves. The client half supplies credentials (sent in HELLO); the server half
 * verifies them and returns the peer's identity, or refuses. The engine runs the handshake and
 * keeps the identity table; plugins never see a socket.
 */

/** What the server half knows about the connection a HELLO (or unauthenticated work) came on. */
export interface ConnectionInfo {
  /** The connection's ZeroMQ routing id. */
  readonly routingId: Buffer;
  /**
   * Aborts when the check is no longer wanted (the connection closed, the server stops): a plugin
   * with queued or slow work should drop it then.
   */
  readonly signal?: AbortSignal;
}

/** A successful authentication: who the peer is, and until when the proof holds. */
export interface Authentication {
  /** The verified identity: what `sendTo`, predicates and `withIdentity` handlers see. */
  identity: string;
  /** Epoch ms after which the server stops accepting the peer's work until it authenticates again (a token's `exp`). */
  expiresAt?: number;
}

/** The server half: decides who a peer is. */
export interface ServerSecurity {
  /**
   * Checks the credentials of a HELLO. Returns (or resolves to) the peer's identity, or throws /
   * rejects (an `UnauthorizedError`, or any error: the peer is refused either way; the reason is
   * logged on the server, never sent). A `BusyError` says "not now": the client is told so and
   * tries again later, and it does not count as a failed login.
   */
  authenticate(login: string, password: string, connection: ConnectionInfo):
    | Authentication
    | string
    | Promise<Authentication | string>;
  /**
   * The identity of a connection that sends work without having said HELLO, or `undefined` when
   * such work must be refused with UNAUTHORIZED.
   */
  anonymousIdentity(connection: ConnectionInfo): string | undefined;
  /** Releases what the plugin holds, when the peer stops. */
  close?(): Promise<void> | void;
}

/** The client half: proves who this peer is. */
export interface ClientSecurity {
  /** `[login, password]` for HELLO. Called at every (re)connection. */
  credentials(): Promise<[string, string]> | [string, string];
  /**
   * Calls always wait for the server's answer to HELLO. When this is false (noop), a HELLO left
   * unanswered for `helloTimeoutMs` is taken to mean a pseud server without authentication (which
   * never answers HELLO), and calls go ahead in pseud v1. When true, they wait to their deadline.
   */
  readonly requiresAuthentication: boolean;
  /**
   * Whether `credentials()` may give something different next time (a token function). After a
   * refusal, the next call then tries again with fresh credentials instead of failing at once.
   */
  readonly refreshable?: boolean;
  /**
   * When the proof in `password` ends (epoch ms; a token's `exp`), if it has an end: a refreshable
   * client authenticates again a margin before it, on the live connection.
   */
  expiresAt?(password: string): number | undefined;
  /** Releases what the client half holds, when the peer stops. */
  close?(): Promise<void> | void;
}

/** The settings a plugin reads: the peer's options (userId, password, token, users, jwt, ...). */
export type SecuritySettings = Readonly<Record<string, unknown>>;

/** A security plugin: a name and a factory for each half. */
export interface SecurityPlugin {
  /** The name it is registered and logged under. */
  readonly name: string;
  /** Its credentials are secrets (a password, a token): the engine warns once when they would cross tcp without CURVE. */
  readonly secretCredentials?: boolean;
  /** Makes the server half, from the server's options and `securitySettings`. */
  server(settings: SecuritySettings): ServerSecurity;
  /** Makes the client half, from the client's options and `securitySettings`. */
  client(settings: SecuritySettings): ClientSecurity;
}

const plugins = new Map<string, SecurityPlugin>();
/** The built-in names: taking one needs `{ replace: true }`, as for any name already registered. */
const BUILTIN_NAMES: readonly string[] = ['noop', 'plain', 'trusted_peer', 'jwt'];

/** Makes a plugin available by name to every peer of the process (`security: name`). Built-in names are taken. */
export function registerSecurityPlugin(name: string, plugin: SecurityPlugin, options: { replace?: boolean } = {}): void {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('a security plugin needs a name');
  if (typeof plugin?.server !== 'function' || typeof plugin?.client !== 'function') {
    throw new TypeError(`security plugin "${name}" must have server() and client() factories`);
  }
  if ((plugins.has(name) || BUILTIN_NAMES.includes(name)) && !options.replace) {
    throw new TypeError(`a security plugin named "${name}" is already registered; pass { replace: true } to replace it`);
  }
  plugins.set(name, plugin);
}

/** A plugin registered by name, if any. */
export function registeredSecurityPlugin(name: string): SecurityPlugin | undefined {
  return plugins.get(name);
}

/** The names registered with registerSecurityPlugin. */
export function registeredSecurityPluginNames(): string[] {
  return [...plugins.keys()];
}

/**
 * A plugin with its settings bound (what the typed factories return): the settings given here
 * override the peer's, and a key the plugin does not know is refused at once, so that a
 * misspelled setting never silently turns a check off.
 */
export function withSettings(plugin: SecurityPlugin, settings: SecuritySettings, knownKeys: readonly string[]): SecurityPlugin {
  for (const key of Object.keys(settings ?? {})) {
    if (!knownKeys.includes(key)) throw new TypeError(`unknown setting "${key}" for security "${plugin.name}"; known: ${knownKeys.join(', ')}`);
  }
  return {
    ...plugin,
    server: (peer) => plugin.server({ ...peer, ...settings }),
    client: (peer) => plugin.client({ ...peer, ...settings }),
  };
}
