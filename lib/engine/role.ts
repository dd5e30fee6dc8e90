/**
 * What makes a session a server or a client: a policy of a few functions the engine asks, handed
 * to it as a value (no subclass overrides engine hooks). Each role's handshake lives in auth/.
 */
import type { Message } from '../wire/messages.js';
import type { Connection } from './connection.js';
import type { PendingCall } from './pending-calls.js';
import type { Work } from './work.js';

/** Why a connection stopped being usable. */
export type LostReason = 'down' | 'silent' | 'goodbye';

/** A function of zeropeer's own, under `_zeropeer.`, run with the connection the work came on. */
export type Builtin = (connection: Connection, work: Work) => void;

/** The handshake messages: who proves what to whom. */
export type HandshakeMessage = Extract<Message, { type: 0x02 | 0x04 | 0x11 }>;

export interface Role {
  /** The connection a message from `routingId` belongs to, created when the role takes strangers; undefined drops it. */
  connectionFor(routingId: Buffer): Connection | undefined;
  /** Whether calls may be sent on `connection` now (else they wait, bounded by their deadline). */
  ready(connection: Connection): boolean;
  /** The identity work from `connection` runs as, or undefined when it must be refused (UNAUTHORIZED). */
  workIdentity(connection: Connection): string | undefined;
  /** The transport to `connection` came up. */
  up(connection: Connection): void;
  /**
   * Whether a departure notice is checked against the route before it is believed (the bound
   * side, where a peer's own empty message can mimic one; a connecting side keeps its pipe while
   * it reconnects, so no probe there can tell).
   */
  readonly checksDepartures: boolean;
  /** `connection` went down, fell silent past the heartbeat timeout, or said GOODBYE. */
  lost(connection: Connection, reason: LostReason): void;
  /** A call found no route to `connection` when it was handed to ZeroMQ. */
  unreachable(connection: Connection, call: PendingCall): void;
  /** An OK or ERROR the role itself waits for (the client's probe); returns whether it was. */
  answer?(connection: Connection, message: Extract<Message, { type: 0x01 | 0x10 }>): boolean;
  /** HELLO, AUTHENTICATED or UNAUTHORIZED arrived. */
  handshake(connection: Connection, message: HandshakeMessage): void;
  /** Why calls to `connection` still wait to be sent, if the role knows (for their TimeoutError). */
  describeWait(connection: Connection | undefined): string | undefined;
  /** The role's own functions, under `_zeropeer.` (inspect is the engine's). */
  readonly builtins: Readonly<Record<string, Builtin>>;
  /** Work no registration here serves: the role may pass it on (proxyTo). Returns whether it did. */
  forward(connection: Connection, work: Work): boolean;
  /** Before the socket closes. */
  stop(): Promise<void>;
}
