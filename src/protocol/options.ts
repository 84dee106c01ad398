import type { AeadBackendName } from "./aead.js";
import { FastnetError } from "./errors.js";

/**
 * Tuning of one session. Every timer and limit of the engine is here; defaults follow docs/protocol.md.
 * Times are milliseconds, sizes bytes.
 */
export interface SessionOptions {
  /** Largest reliable message accepted or sent (default 512 KiB). */
  maxMessageSize: number;
  /** Reliable message bytes queued and not yet acknowledged; a send beyond it throws SEND_QUEUE_FULL (default 512 KiB). */
  sendQueueBytes: number;
  /** Reliable stream bytes the receiver buffers out of order; advertised to the peer as its send window (default 1 MiB). */
  receiveBufferBytes: number;
  /** Send a PING after this much silence from us (default 1000). */
  keepAliveMs: number;
  /** Close the session after this much silence from the peer (default 10000). */
  idleTimeoutMs: number;
  /**
   * Close the session (1006 "stalled") when, with reliable data outstanding, the peer acknowledged
   * none of our packets for this long and two probe timeouts in a row, while it keeps sending (a silent
   * peer is the idle timeout's); or when the oldest unacknowledged byte waited 6x this long. Bounds how
   * long a peer that never acknowledges pins the send queue, without closing an overloaded peer whose
   * acknowledgements are merely late (default 10000).
   */
  stallTimeoutMs: number;
  /** Client: give up binding the UDP path after this long (default 10000). */
  bindTimeoutMs: number;
  /** Largest delay before acknowledging an ack-eliciting packet (default 25, RFC 9000 §13.2). */
  maxAckDelayMs: number;
  /** Acknowledge at once after this many ack-eliciting packets (default 2). */
  ackElicitingThreshold: number;
  /** RTT assumed before the first sample when the handshake gave none (default 333, RFC 9002 §6.2.2). */
  initialRttMs: number;
  /** Initiate a key update after this many packets sent under one key (default 2^20). */
  keyUpdateIntervalPackets: number;
  /** Initial congestion window in datagrams (default 10, RFC 9002 §7.2). */
  initialWindowPackets: number;
  /**
   * Redundant CLOSE packets sent when closing (default 5). The sender forgets the session after them,
   * so all lost means the peer learns only by its idle timeout: 0.34% of closes at 15% loss with 3,
   * 0.008% with 5, for a few dozen bytes each.
   */
  closePackets: number;
  /**
   * Client: after the network reported the server's port unreachable (ICMP, a hint anyone on the path
   * could forge), close with 1006 "SERVER_UNREACHABLE" unless an authenticated packet arrives within
   * this; the session probes meanwhile (default 1500).
   */
  unreachableGraceMs: number;
}

export const DEFAULT_SESSION_OPTIONS: Readonly<SessionOptions> = Object.freeze({
  maxMessageSize: 512 * 1024,
  sendQueueBytes: 512 * 1024,
  receiveBufferBytes: 1024 * 1024,
  keepAliveMs: 1000,
  idleTimeoutMs: 10_000,
  stallTimeoutMs: 10_000,
  bindTimeoutMs: 10_000,
  maxAckDelayMs: 5,
  ackElicitingThreshold: 2,
  initialRttMs: 333,
  keyUpdateIntervalPackets: 1 << 20,
  initialWindowPackets: 10,
  closePackets: 5,
  unreachableGraceMs: 1500,
});

/**
 * What a peer announces in the handshake: the part of SessionOptions the other side must know, and
 * the optional protocol features it understands.
 */
export interface TransportParams {
  maxMessageSize: number;
  receiveBufferBytes: number;
  idleTimeoutMs: number;
  /**
   * The peer understands the IMMEDIATE_ACK frame (docs/protocol.md §4). Absent or false: it must never
   * receive one (an implementation that predates the frame would drop the packet as malformed).
   */
  immediateAck?: boolean;
  /**
   * The longest the peer delays an acknowledgement (its `maxAckDelayMs`, docs/protocol.md §2.3, §5):
   * the other side adds it to its probe timeout and caps the peer's reported ACK delay with it.
   * Absent: 25 ms, the default of peers that predate the field.
   */
  maxAckDelayMs?: number;
}

/** A peer's maximum ACK delay when its handshake did not announce one (docs/protocol.md §2.3). */
export const DEFAULT_PEER_MAX_ACK_DELAY_MS = 25;
/** Largest maxAckDelayMs a handshake may announce (RFC 9000 §18.2 bounds max_ack_delay below 2^14 ms). */
export const MAX_ANNOUNCED_ACK_DELAY_MS = 2 ** 14 - 1;

/** The TransportParams these options announce (this implementation understands IMMEDIATE_ACK). */
export function transportParams(o: SessionOptions): TransportParams {
  return {
    maxMessageSize: o.maxMessageSize,
    receiveBufferBytes: o.receiveBufferBytes,
    idleTimeoutMs: o.idleTimeoutMs,
    immediateAck: true,
    // Whole milliseconds on the wire, never announcing less than the real delay.
    maxAckDelayMs: Math.min(MAX_ANNOUNCED_ACK_DELAY_MS, Math.ceil(o.maxAckDelayMs)),
  };
}

/** Options of the handshake and the endpoint, shared by server and client where they apply. */
export interface EndpointOptions {
  /** Which AEAD backend to use; "auto" picks the fastest available (default "auto"). */
  aead: AeadBackendName | "auto";
  /** TLS handshake plus UDP bind must finish within this (default 10000). */
  handshakeTimeoutMs: number;
  /** Server: handshakes in progress at once, over all sources (default 256). */
  maxPendingHandshakes: number;
  /** Server: handshakes in progress at once from one source IP (default 16). */
  maxPendingHandshakesPerAddress: number;
  /**
   * Server: upgrades that may wait for a handshake slot when a pending limit is reached, over all
   * sources (default 2048; 0: none wait, every upgrade over a limit gets a 503 at once). Slots go to
   * waiting addresses in turn, so a flood from one address cannot starve the others.
   */
  maxQueuedHandshakes: number;
  /** Server: upgrades from one source IP that may wait for a slot (default 1024). */
  maxQueuedHandshakesPerAddress: number;
  /** Server: open sessions at once (default 10000). */
  maxSessions: number;
}

export const DEFAULT_ENDPOINT_OPTIONS: Readonly<EndpointOptions> = Object.freeze({
  aead: "auto",
  handshakeTimeoutMs: 10_000,
  maxPendingHandshakes: 256,
  maxPendingHandshakesPerAddress: 16,
  maxQueuedHandshakes: 2048,
  maxQueuedHandshakesPerAddress: 1024,
  maxSessions: 10_000,
});

/** Number options for which 0 means "none" (no handshake waits in a queue) rather than a mistake. */
const ZERO_ALLOWED: ReadonlySet<string> = new Set(["maxQueuedHandshakes", "maxQueuedHandshakesPerAddress"]);

/** Merges user options over defaults, rejecting unknown keys' wrong types and non-positive numbers. */
export function resolveOptions<T extends object>(defaults: Readonly<T>, given: Partial<T> | undefined): T {
  const out = { ...defaults } as T;
  if (!given) return out;
  for (const key of Object.keys(defaults) as (keyof T)[]) {
    const v = given[key];
    if (v === undefined) continue;
    const d = defaults[key];
    if (typeof d === "number") {
      const min0 = ZERO_ALLOWED.has(String(key));
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (v === 0 && !min0)) {
        const what = min0 ? "a number >= 0" : "a positive number";
        throw new FastnetError("INVALID_OPTION", `option ${String(key)} must be ${what}, got ${String(v)}`);
      }
    } else if (typeof v !== typeof d) {
      throw new FastnetError("INVALID_OPTION", `option ${String(key)} must be a ${typeof d}, got ${typeof v}`);
    }
    out[key] = v as T[keyof T];
  }
  return out;
}
