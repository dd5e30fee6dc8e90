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
}

/** A successful authentication: who the peer is, and until when the proof holds. */
export interface Authentication {
  identity: string;
  /** Epoch ms after which the server stops accepting the peer's work until it authenticates again (a token's `exp`). */
  expiresAt?: number;
}

/** The server half: decides who a peer is. */
export interface ServerSecurity {
  /**
   * Checks the credentials of a HELLO. Returns (or resolves to) the peer's identity, or throws /
   * rejects (an `UnauthorizedError`, or any error: the peer is refused either way; the reason is
   * logged on the server, never sent).
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
  close?(): Promise<void> | void;
}

/** The settings a plugin reads: the peer's options (userId, password, token, users, jwt, ...). */
export type SecuritySettings = Readonly<Record<string, unknown>>;

/** A security plugin: a name and a factory for each half. */
export interface SecurityPlugin {
  readonly name: string;
  /** Its credentials are secrets (a password, a token): the engine warns once when they would cross tcp without CURVE. */
  readonly secretCredentials?: boolean;
  server(settings: SecuritySettings): ServerSecurity;
  client(settings: SecuritySettings): ClientSecurity;
}

const plugins = new Map<string, SecurityPlugin>();

/** Makes a plugin available by name to every peer of the process (`security: name`). */
export function registerSecurityPlugin(name: string, plugin: SecurityPlugin, options: { replace?: boolean } = {}): void {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('a security plugin needs a name');
  if (typeof plugin?.server !== 'function' || typeof plugin?.client !== 'function') {
    throw new TypeError(`security plugin "${name}" must have server() and client() factories`);
  }
  if (plugins.has(name) && !options.replace) {
    throw new TypeError(`a security plugin named "${name}" is already registered; pass { replace: true } to replace it`);
  }
  plugins.set(name, plugin);
}

/** The plugin a `security` option designates: a registered name or a plugin object. */
export function resolveSecurityPlugin(security: string | SecurityPlugin | undefined): SecurityPlugin {
  if (security === undefined) security = 'noop';
  if (typeof security !== 'string') {
    if (typeof security?.server !== 'function' || typeof security?.client !== 'function') {
      throw new TypeError('options.security must be a plugin name or an object with server() and client()');
    }
    return security;
  }
  const plugin = plugins.get(security);
  if (!plugin) {
    throw new TypeError(`unknown security plugin "${security}"; registered: ${[...plugins.keys()].join(', ')}`);
  }
  return plugin;
}
