import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { STATELESS_RESET_TOKEN_LENGTH } from "./connection.js";
import { MIN_PACKET_LENGTH } from "./packet-header.js";
import { CID_LENGTH } from "./version.js";

/**
 * Stateless reset (RFC 9000 §10.3): a server that lost a session (restart, expiry) answers its packets
 * with a datagram ending in a token only it can compute for that CID, so the client closes at once
 * instead of waiting for its idle timeout. The token is a keyed hash of the CID under a server secret
 * that outlives the process (derived from the TLS key, or configured), never sent except to the client.
 * A server answers only CIDs whose keyed tag verifies (cid.ts): what it did not issue gets no reply.
 */

/** Label of the reset key derivation: reset_key = HMAC-SHA256(key = label, data = secret). */
export const RESET_KEY_LABEL = "fastnet stateless reset v2";

/** The stateless reset key for a long-lived server secret (the statelessResetKey or the TLS key). */
export function deriveResetKey(secret: Uint8Array): Uint8Array {
  return hmac(sha256, new TextEncoder().encode(RESET_KEY_LABEL), secret);
}

/** Token for a CID under the reset key (HMAC-SHA256, truncated to 16 bytes). */
export function statelessResetToken(secret: Uint8Array, cid: Uint8Array): Uint8Array {
  return hmac(sha256, secret, cid).subarray(0, STATELESS_RESET_TOKEN_LENGTH);
}

/** Shortest reset we send; a trigger must be longer, so resets can never answer each other forever. */
export const MIN_RESET_LENGTH = MIN_PACKET_LENGTH;
const MAX_RESET_LENGTH = 64;

/**
 * Builds a reset answering a datagram of `triggerLength` bytes for `cid`: shaped like a data packet
 * (flags, the CID, random bytes) with the token last, and strictly shorter than its trigger.
 * Returns null when the trigger is too short to answer.
 */
export function buildStatelessReset(
  cid: Uint8Array,
  token: Uint8Array,
  triggerLength: number,
  random: (out: Uint8Array) => void,
): Uint8Array | null {
  const length = Math.min(triggerLength - 1, MAX_RESET_LENGTH);
  if (length < MIN_RESET_LENGTH) return null;
  const out = new Uint8Array(length);
  random(out);
  // Data type, random key phase, reserved bits 0, and a 1-byte packet number so that even the shortest
  // reset parses as a packet and reaches the client's token check.
  out[0] = 0x40 | (out[0]! & 0x20);
  out.set(cid.subarray(0, CID_LENGTH), 1);
  out.set(token, length - STATELESS_RESET_TOKEN_LENGTH);
  return out;
}

/** A token bucket bounding resets per second, so unknown-CID floods cannot turn the server into a reflector. */
export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    now: number,
  ) {
    this.tokens = perSecond;
    this.last = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
