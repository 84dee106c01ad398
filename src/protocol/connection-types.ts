/**
 * The types and constants of `Connection`'s public interface, apart from the class so that its parts
 * (packet-keys, recovery, closing, ...) can name them without importing the class. connection.ts
 * re-exports all of them.
 */
import type { AeadBackend } from "./aead.js";
import type { Allocator } from "./allocator.js";
import type { CidIssuer } from "./cid-set.js";
import type { SessionOptions, TransportParams } from "./options.js";

/** Close codes the engine itself uses; applications pass their own (Colyseus uses 4000 and up). */
export const CloseCode = {
  Normal: 1000,
  /** Peer broke the protocol (flow control, oversized message). */
  ProtocolError: 1002,
  /** No close was received: idle timeout, bind timeout, stateless reset. */
  Abnormal: 1006,
} as const;

export type Role = "client" | "server";
export type ConnectionState = "binding" | "open" | "closing" | "closed";

export type ConnectionEvent =
  | { type: "open" }
  | { type: "message"; data: Uint8Array }
  | { type: "datagram"; data: Uint8Array }
  | { type: "close"; code: number; reason: string; remote: boolean }
  /** A PATH_RESPONSE echoed the challenge `data` (see `startPathValidation`). */
  | { type: "pathValidated"; data: Uint8Array }
  /** No response to the challenge `data` in time: the path is not usable. */
  | { type: "pathFailed"; data: Uint8Array };

/** What `handleDatagram` made of a datagram. */
export const Received = {
  /** Dropped and counted: it changed nothing. */
  Dropped: 0,
  /** Authenticated and processed. */
  Accepted: 1,
  /** Authenticated and the highest packet number so far (the trigger for path migration). */
  AcceptedNewest: 2,
} as const;
export type Received = (typeof Received)[keyof typeof Received];

export interface ConnectionConfig {
  role: Role;
  /** The connection ID the server issued at the handshake (CID_LENGTH bytes, sequence number 0). */
  cid: Uint8Array;
  /** 64 bytes exported from the TLS 1.3 session with the CID in the context. */
  keyingMaterial: Uint8Array;
  aead: AeadBackend;
  /** Current time in milliseconds (any monotonic origin). */
  now: number;
  /** Fills `out` with cryptographically random bytes (used for path challenges). */
  random: (out: Uint8Array) => void;
  /** The handshake's RTT measurement, used instead of the 333 ms default. */
  initialRttMs?: number;
  /**
   * Server: when the ServerAccept was written (same clock as `now`). The time from then to the first
   * authenticated Bind is the server's first RTT estimate (docs/protocol.md §2.4), instead of 333 ms.
   */
  acceptedAt?: number;
  /** What the peer announced; defaults to our own options. */
  peerParams?: TransportParams;
  options?: Partial<SessionOptions>;
  /** Buffers for outgoing packets and delivered messages (default: new Uint8Array). */
  alloc?: Allocator;
  /** Client: the stateless reset token the server gave at the handshake (RFC 9000 §10.3). */
  resetToken?: Uint8Array;
  /** Server: makes the spare CIDs announced in NEW_CONNECTION_ID and forgets retired ones (none: no spares). */
  cidIssuer?: CidIssuer;
  /**
   * Packets that may fail authentication before the session closes (RFC 9001 §6.6 integrity limit;
   * default AEAD_INTEGRITY_LIMIT). Not a user option: tests set a small value.
   */
  aeadIntegrityLimit?: number;
}

/** ChaCha20-Poly1305's integrity limit: forged packets tolerated over a session's life (RFC 9001 §6.6). */
export const AEAD_INTEGRITY_LIMIT = 2 ** 36;

/** Stateless reset token length (RFC 9000 §10.3). */
export const STATELESS_RESET_TOKEN_LENGTH = 16;
