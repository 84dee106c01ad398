import { readVarint, varintSize, writeVarint } from "./varint.js";
import { CID_LENGTH } from "./version.js";

/**
 * Frames inside a sealed packet (types are one byte; integers are QUIC varints):
 *
 *   0x00 PADDING
 *   0x01 PING
 *   0x02 ACK            largest, ack delay (µs), extra range count, first range, (gap, range length)*
 *   0x03 STREAM         offset, length, bytes            (the reliable-ordered channel)
 *   0x04 DATAGRAM       length, bytes                    (the unreliable channel)
 *   0x05 CLOSE          code, reason length, UTF-8 reason
 *   0x06 PATH_CHALLENGE 8 bytes
 *   0x07 PATH_RESPONSE  8 bytes
 *   0x08 NEW_CONNECTION_ID     sequence, CID (CID_LENGTH bytes), stateless reset token (16 bytes); server to client
 *   0x09 RETIRE_CONNECTION_ID  sequence; client to server
 *   0x0a IMMEDIATE_ACK  no fields: acknowledge this packet at once, not after the ACK delay; only to a
 *                       peer that announced `immediateAck` in the handshake (docs/protocol.md §2.3)
 */
export const FrameType = {
  Padding: 0x00,
  Ping: 0x01,
  Ack: 0x02,
  Stream: 0x03,
  Datagram: 0x04,
  Close: 0x05,
  PathChallenge: 0x06,
  PathResponse: 0x07,
  NewConnectionId: 0x08,
  RetireConnectionId: 0x09,
  ImmediateAck: 0x0a,
} as const;

/** ACK frames list at most this many ranges beyond the first (33 in all); older ones are dropped first. */
export const MAX_ACK_RANGES = 32;
export const MAX_CLOSE_REASON_BYTES = 256;
export const PATH_DATA_LENGTH = 8;
/** Stateless reset token length (RFC 9000 §10.3), also carried in NEW_CONNECTION_ID. */
export const RESET_TOKEN_LENGTH = 16;

/** Receives decoded frames. Views passed in alias the packet buffer: copy what must outlive the call. */
export interface FrameVisitor {
  onPing(): void;
  /** Ranges arrive as inclusive [smallest, largest] pairs, highest first, in `ack`. */
  onAck(ack: AckFrame): void;
  onStream(offset: number, data: Uint8Array): void;
  onDatagram(data: Uint8Array): void;
  onClose(code: number, reason: string): void;
  onPathChallenge(data: Uint8Array): void;
  onPathResponse(data: Uint8Array): void;
  /** Optional so that visitors which only validate or count need not name every frame. */
  onNewConnectionId?(sequence: number, cid: Uint8Array, resetToken: Uint8Array): void;
  onRetireConnectionId?(sequence: number): void;
  onImmediateAck?(): void;
}

/** What `walkFrames` reports about a whole payload. */
export interface FrameFlags {
  /** Some frame other than ACK, PADDING or CLOSE is present. */
  ackEliciting: boolean;
  /** An IMMEDIATE_ACK frame is present: the packet is to be acknowledged without delay. */
  immediateAck?: boolean;
}

/** A decoded ACK frame; one instance is reused per connection. */
export class AckFrame {
  largest = 0;
  delayUs = 0;
  count = 0;
  readonly smallest: number[] = new Array(MAX_ACK_RANGES + 1).fill(0);
  readonly largestOf: number[] = new Array(MAX_ACK_RANGES + 1).fill(0);
}

const textDecoder = new TextDecoder("utf-8", { fatal: false });
const textEncoder = new TextEncoder();

/**
 * Walks the frames of a decrypted payload. With `visitor` null it only validates. Returns false on the
 * first malformed frame; callers validate first, then apply, so a bad packet changes nothing.
 * `flags` says whether the payload is ack-eliciting and whether it asks for an immediate ACK.
 */
export function walkFrames(
  p: Uint8Array,
  visitor: FrameVisitor | null,
  ack: AckFrame,
  flags: FrameFlags,
): boolean {
  const cur = { pos: 0 };
  const end = p.length;
  flags.ackEliciting = false;
  flags.immediateAck = false;
  while (cur.pos < end) {
    const type = p[cur.pos++]!;
    switch (type) {
      case FrameType.Padding:
        break;
      case FrameType.Ping:
        flags.ackEliciting = true;
        visitor?.onPing();
        break;
      case FrameType.Ack: {
        const largest = readVarint(p, cur, end);
        const delay = readVarint(p, cur, end);
        const extra = readVarint(p, cur, end);
        const first = readVarint(p, cur, end);
        if (largest < 0 || delay < 0 || extra < 0 || first < 0 || extra > MAX_ACK_RANGES || first > largest) return false;
        ack.largest = largest;
        ack.delayUs = delay;
        ack.largestOf[0] = largest;
        ack.smallest[0] = largest - first;
        let smallest = largest - first;
        for (let i = 1; i <= extra; i++) {
          const gap = readVarint(p, cur, end);
          const len = readVarint(p, cur, end);
          if (gap < 0 || len < 0) return false;
          const hi = smallest - gap - 2;
          const lo = hi - len;
          if (lo < 0) return false;
          ack.largestOf[i] = hi;
          ack.smallest[i] = lo;
          smallest = lo;
        }
        ack.count = extra + 1;
        visitor?.onAck(ack);
        break;
      }
      case FrameType.Stream: {
        const offset = readVarint(p, cur, end);
        const len = readVarint(p, cur, end);
        if (offset < 0 || len < 0 || cur.pos + len > end) return false;
        flags.ackEliciting = true;
        visitor?.onStream(offset, p.subarray(cur.pos, cur.pos + len));
        cur.pos += len;
        break;
      }
      case FrameType.Datagram: {
        const len = readVarint(p, cur, end);
        if (len < 0 || cur.pos + len > end) return false;
        flags.ackEliciting = true;
        visitor?.onDatagram(p.subarray(cur.pos, cur.pos + len));
        cur.pos += len;
        break;
      }
      case FrameType.Close: {
        const code = readVarint(p, cur, end);
        const len = readVarint(p, cur, end);
        if (code < 0 || len < 0 || len > MAX_CLOSE_REASON_BYTES || cur.pos + len > end) return false;
        visitor?.onClose(code, textDecoder.decode(p.subarray(cur.pos, cur.pos + len)));
        cur.pos += len;
        break;
      }
      case FrameType.PathChallenge:
      case FrameType.PathResponse: {
        if (cur.pos + PATH_DATA_LENGTH > end) return false;
        flags.ackEliciting = true;
        const data = p.subarray(cur.pos, cur.pos + PATH_DATA_LENGTH);
        if (type === FrameType.PathChallenge) visitor?.onPathChallenge(data);
        else visitor?.onPathResponse(data);
        cur.pos += PATH_DATA_LENGTH;
        break;
      }
      case FrameType.NewConnectionId: {
        const seq = readVarint(p, cur, end);
        if (seq < 0 || cur.pos + CID_LENGTH + RESET_TOKEN_LENGTH > end) return false;
        flags.ackEliciting = true;
        const at = cur.pos;
        cur.pos += CID_LENGTH + RESET_TOKEN_LENGTH;
        visitor?.onNewConnectionId?.(seq, p.subarray(at, at + CID_LENGTH), p.subarray(at + CID_LENGTH, cur.pos));
        break;
      }
      case FrameType.RetireConnectionId: {
        const seq = readVarint(p, cur, end);
        if (seq < 0) return false;
        flags.ackEliciting = true;
        visitor?.onRetireConnectionId?.(seq);
        break;
      }
      case FrameType.ImmediateAck:
        flags.ackEliciting = true;
        flags.immediateAck = true;
        visitor?.onImmediateAck?.();
        break;
      default:
        return false;
    }
  }
  return true;
}

/**
 * Writes an ACK frame for `ranges` (a RangeSet-like list of half-open [start, end) ranges, ascending),
 * highest ranges first, as many as fit in `room` bytes. Returns the new offset, or `off` if none fit.
 */
export function writeAckFrame(
  buf: Uint8Array,
  off: number,
  room: number,
  starts: readonly number[],
  ends: readonly number[],
  delayUs: number,
): number {
  const n = starts.length;
  if (n === 0) return off;
  const largest = ends[n - 1]! - 1;
  const first = largest - starts[n - 1]!;
  const limit = off + room;
  // Count how many extra ranges fit.
  let size = 1 + varintSize(largest) + varintSize(delayUs) + 1 + varintSize(first);
  if (size > room) return off;
  let extra = 0;
  let smallest = starts[n - 1]!;
  for (let i = n - 2; i >= 0 && extra < MAX_ACK_RANGES; i--) {
    const hi = ends[i]! - 1;
    const gap = smallest - hi - 2;
    const len = hi - starts[i]!;
    const s = varintSize(gap) + varintSize(len);
    if (size + s > room) break;
    size += s;
    extra++;
    smallest = starts[i]!;
  }
  let o = off;
  buf[o++] = FrameType.Ack;
  o = writeVarint(buf, o, largest);
  o = writeVarint(buf, o, delayUs);
  o = writeVarint(buf, o, extra);
  o = writeVarint(buf, o, first);
  smallest = starts[n - 1]!;
  for (let k = 0, i = n - 2; k < extra; k++, i--) {
    const hi = ends[i]! - 1;
    o = writeVarint(buf, o, smallest - hi - 2);
    o = writeVarint(buf, o, hi - starts[i]!);
    smallest = starts[i]!;
  }
  if (o > limit) throw new Error("ACK frame overflowed its room"); // a bug, not input
  return o;
}

/** Bytes of a STREAM frame header for these values. */
export function streamFrameOverhead(offset: number, len: number): number {
  return 1 + varintSize(offset) + varintSize(len);
}

/** Writes a STREAM frame's type, offset and length; returns where its `len` data bytes go. */
export function writeStreamFrameHeader(buf: Uint8Array, off: number, offset: number, len: number): number {
  buf[off++] = FrameType.Stream;
  off = writeVarint(buf, off, offset);
  return writeVarint(buf, off, len);
}

export function datagramFrameOverhead(len: number): number {
  return 1 + varintSize(len);
}

export function writeDatagramFrame(buf: Uint8Array, off: number, data: Uint8Array): number {
  buf[off++] = FrameType.Datagram;
  off = writeVarint(buf, off, data.length);
  buf.set(data, off);
  return off + data.length;
}

/** Encodes a close reason, cut at MAX_CLOSE_REASON_BYTES on a character boundary. */
export function encodeCloseReason(reason: string): Uint8Array {
  let bytes = textEncoder.encode(reason);
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return bytes;
  let cut = MAX_CLOSE_REASON_BYTES;
  while (cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--; // do not split a UTF-8 sequence
  bytes = bytes.subarray(0, cut);
  return bytes;
}

export function writeCloseFrame(buf: Uint8Array, off: number, code: number, reason: Uint8Array): number {
  buf[off++] = FrameType.Close;
  off = writeVarint(buf, off, code);
  off = writeVarint(buf, off, reason.length);
  buf.set(reason, off);
  return off + reason.length;
}

export function writePathFrame(buf: Uint8Array, off: number, type: 0x06 | 0x07, data: Uint8Array): number {
  buf[off++] = type;
  buf.set(data.subarray(0, PATH_DATA_LENGTH), off);
  return off + PATH_DATA_LENGTH;
}

/** Bytes of a NEW_CONNECTION_ID frame with this sequence number. */
export function newConnectionIdFrameSize(sequence: number): number {
  return 1 + varintSize(sequence) + CID_LENGTH + RESET_TOKEN_LENGTH;
}

export function writeNewConnectionIdFrame(buf: Uint8Array, off: number, sequence: number, cid: Uint8Array, resetToken: Uint8Array): number {
  buf[off++] = FrameType.NewConnectionId;
  off = writeVarint(buf, off, sequence);
  buf.set(cid.subarray(0, CID_LENGTH), off);
  buf.set(resetToken.subarray(0, RESET_TOKEN_LENGTH), off + CID_LENGTH);
  return off + CID_LENGTH + RESET_TOKEN_LENGTH;
}

/** Bytes of a RETIRE_CONNECTION_ID frame with this sequence number. */
export function retireConnectionIdFrameSize(sequence: number): number {
  return 1 + varintSize(sequence);
}

export function writeRetireConnectionIdFrame(buf: Uint8Array, off: number, sequence: number): number {
  buf[off++] = FrameType.RetireConnectionId;
  return writeVarint(buf, off, sequence);
}
