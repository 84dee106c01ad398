import { CID_LENGTH, MAX_DATAGRAM_SIZE } from "./version.js";
import { AEAD_TAG_LENGTH } from "./aead.js";

/**
 * Packet header (all of it is the AEAD's associated data):
 *
 *   byte 0   flags: TT K 000 LL   TT = packet type, K = key phase, LL = packet number length - 1
 *   1..12    connection ID (CID_LENGTH bytes)
 *   13..     truncated packet number, 1 to 4 bytes, big-endian
 *
 * The reserved bits must be zero; they are authenticated, so a flipped bit fails the AEAD anyway.
 */

export const PacketType = {
  /** Every packet of an open session. */
  Data: 0b01,
  /** The client's packets until the server has answered: sealed like Data, padded to 1200 bytes. */
  Bind: 0b10,
} as const;
export type PacketType = (typeof PacketType)[keyof typeof PacketType];

export const HEADER_MAX_LENGTH = 1 + CID_LENGTH + 4;
/** Smallest datagram that can hold a header, one frame byte and the tag. */
export const MIN_PACKET_LENGTH = 1 + CID_LENGTH + 1 + 1 + AEAD_TAG_LENGTH;
/** Room for frames in a full datagram with the longest header. */
export const MAX_PAYLOAD_LENGTH = MAX_DATAGRAM_SIZE - HEADER_MAX_LENGTH - AEAD_TAG_LENGTH;

const RESERVED_MASK = 0b0001_1100;

/** A parsed header; `headerLength` is where the sealed payload starts. Reused across calls. */
export interface ParsedHeader {
  type: PacketType;
  keyPhase: 0 | 1;
  pnLength: number;
  truncatedPn: number;
  headerLength: number;
}

/** Offset of the connection ID in a datagram: the demultiplexer reads it before anything else. */
export const CID_OFFSET = 1;

/**
 * Parses the header in place. Returns false for anything malformed (size, type, reserved bits);
 * the caller counts and drops. Never throws, never allocates.
 */
export function parseHeader(buf: Uint8Array, out: ParsedHeader): boolean {
  if (buf.length < MIN_PACKET_LENGTH || buf.length > MAX_DATAGRAM_SIZE) return false;
  const flags = buf[0]!;
  const type = flags >>> 6;
  if (type !== PacketType.Data && type !== PacketType.Bind) return false;
  if ((flags & RESERVED_MASK) !== 0) return false;
  const pnLength = (flags & 0b11) + 1;
  const headerLength = 1 + CID_LENGTH + pnLength;
  if (buf.length < headerLength + AEAD_TAG_LENGTH + 1) return false;
  let pn = 0;
  for (let i = 1 + CID_LENGTH; i < headerLength; i++) pn = pn * 256 + buf[i]!;
  out.type = type as PacketType;
  out.keyPhase = ((flags >>> 5) & 1) as 0 | 1;
  out.pnLength = pnLength;
  out.truncatedPn = pn;
  out.headerLength = headerLength;
  return true;
}

/** Writes a header at offset 0 of `buf`; returns its length. */
export function writeHeader(
  buf: Uint8Array,
  type: PacketType,
  keyPhase: 0 | 1,
  cid: Uint8Array,
  pn: number,
  pnLength: number,
): number {
  buf[0] = (type << 6) | (keyPhase << 5) | (pnLength - 1);
  buf.set(cid, 1);
  let off = 1 + CID_LENGTH;
  for (let i = pnLength - 1; i >= 0; i--) {
    buf[off + i] = pn % 256;
    pn = Math.floor(pn / 256);
  }
  off += pnLength;
  return off;
}

/** True when two connection IDs are equal; used on the receive path, so no allocation. */
export function cidEquals(buf: Uint8Array, offset: number, cid: Uint8Array): boolean {
  for (let i = 0; i < CID_LENGTH; i++) if (buf[offset + i] !== cid[i]) return false;
  return true;
}
