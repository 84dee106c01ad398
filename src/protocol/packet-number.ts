/**
 * Packet number truncation on the wire and recovery on receipt (RFC 9000 §17.1, Appendix A.2/A.3).
 * Full packet numbers are 64-bit on paper and JavaScript integers below 2^53 here: at one packet per
 * microsecond that lasts 285 years, so a session never wraps.
 */

/** Bytes (1 to 4) to send `pn` so that a receiver that has acknowledged up to `largestAcked` decodes it. */
export function packetNumberLength(pn: number, largestAcked: number): 1 | 2 | 3 | 4 {
  const unacked = largestAcked < 0 ? pn + 1 : pn - largestAcked;
  // RFC 9000 A.2: log2(unacknowledged range) + 1 bits, so the receiver's window is twice that range.
  const bytes = Math.ceil((Math.log2(Math.max(unacked, 1)) + 1) / 8);
  return Math.min(Math.max(bytes, 1), 4) as 1 | 2 | 3 | 4;
}

const WINDOWS = [1, 0x100, 0x10000, 0x1000000, 0x100000000];
const MAX_PN = Number.MAX_SAFE_INTEGER + 1;

/** Recovers the full packet number from its truncated form (RFC 9000 A.3). */
export function decodePacketNumber(largest: number, truncated: number, bits: number): number {
  const expected = largest + 1;
  const win = WINDOWS[bits >>> 3]!;
  const hwin = win / 2;
  // (expected & ~mask) | truncated, without JavaScript's 32-bit bitwise operators
  const candidate = expected - (expected % win) + truncated;
  if (candidate <= expected - hwin && candidate < MAX_PN - win) return candidate + win;
  if (candidate > expected + hwin && candidate >= win) return candidate - win;
  return candidate;
}
