import { readVarint, varintSize, writeVarint } from "./varint.js";
import { CID_LENGTH, MAX_DATAGRAM_SIZE } from "./version.js";

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
  /** When present, STREAM frames come here instead, as `payload[at, at + length)`: no view is made. */
  onStreamAt?(offset: number, payload: Uint8Array, at: number, length: number): void;
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
 * The frames of one payload as `parseFrames` found them: per frame its type and up to three numbers
 * (a value, a position in the payload, a length), so that `visitFrames` reads no varint twice.
 * PADDING is not listed. One list serves any number of payloads, one at a time.
 */
export class FrameList {
  count = 0;
  readonly type: Uint8Array;
  /** STREAM offset, CLOSE code, CID frame sequence number, or an ACK frame's position (2nd and later). */
  readonly value: Float64Array;
  /** Where the frame's bytes start in the payload (STREAM, DATAGRAM, CLOSE reason, PATH_*, NEW_CONNECTION_ID). */
  readonly at: Uint32Array;
  readonly length: Uint32Array;

  /** `capacity`: frames per payload at most; every frame but PADDING takes at least one byte. */
  constructor(capacity = MAX_DATAGRAM_SIZE) {
    this.type = new Uint8Array(capacity);
    this.value = new Float64Array(capacity);
    this.at = new Uint32Array(capacity);
    this.length = new Uint32Array(capacity);
  }

  private add(type: number, value: number, at: number, length: number): void {
    const i = this.count++;
    this.type[i] = type;
    this.value[i] = value;
    this.at[i] = at;
    this.length[i] = length;
  }

  /**
   * Parses and validates every frame of a decrypted payload into this list, and the first ACK frame
   * into `ack`. Returns false on the first malformed frame (the list is then incomplete and must not be
   * visited). `flags` says whether the payload is ack-eliciting and whether it asks for an immediate ACK.
   */
  parse(p: Uint8Array, ack: AckFrame, flags: FrameFlags): boolean {
    const cur = cursor;
    cur.pos = 0;
    const end = p.length;
    this.count = 0;
    if (end > this.type.length) return false; // longer than any datagram: not ours
    let acks = 0;
    flags.ackEliciting = false;
    flags.immediateAck = false;
    while (cur.pos < end) {
      const type = p[cur.pos++]!;
      switch (type) {
        case FrameType.Padding:
          break;
        case FrameType.Ping:
          this.add(type, 0, 0, 0);
          flags.ackEliciting = true;
          break;
        case FrameType.Ack: {
          // Only the first is kept in `ack`; a later one is validated and found again by its position.
          const at = cur.pos;
          if (!readAck(p, cur, end, acks === 0 ? ack : spareAck)) return false;
          this.add(type, at, 0, 0);
          acks++;
          break;
        }
        case FrameType.Stream: {
          const offset = readVarint(p, cur, end);
          const len = readVarint(p, cur, end);
          if (offset < 0 || len < 0 || cur.pos + len > end) return false;
          flags.ackEliciting = true;
          this.add(type, offset, cur.pos, len);
          cur.pos += len;
          break;
        }
        case FrameType.Datagram: {
          const len = readVarint(p, cur, end);
          if (len < 0 || cur.pos + len > end) return false;
          flags.ackEliciting = true;
          this.add(type, 0, cur.pos, len);
          cur.pos += len;
          break;
        }
        case FrameType.Close: {
          const code = readVarint(p, cur, end);
          const len = readVarint(p, cur, end);
          if (code < 0 || len < 0 || len > MAX_CLOSE_REASON_BYTES || cur.pos + len > end) return false;
          this.add(type, code, cur.pos, len);
          cur.pos += len;
          break;
        }
        case FrameType.PathChallenge:
        case FrameType.PathResponse: {
          if (cur.pos + PATH_DATA_LENGTH > end) return false;
          flags.ackEliciting = true;
          this.add(type, 0, cur.pos, PATH_DATA_LENGTH);
          cur.pos += PATH_DATA_LENGTH;
          break;
        }
        case FrameType.NewConnectionId: {
          const seq = readVarint(p, cur, end);
          if (seq < 0 || cur.pos + CID_LENGTH + RESET_TOKEN_LENGTH > end) return false;
          flags.ackEliciting = true;
          this.add(type, seq, cur.pos, CID_LENGTH + RESET_TOKEN_LENGTH);
          cur.pos += CID_LENGTH + RESET_TOKEN_LENGTH;
          break;
        }
        case FrameType.RetireConnectionId: {
          const seq = readVarint(p, cur, end);
          if (seq < 0) return false;
          flags.ackEliciting = true;
          this.add(type, seq, 0, 0);
          break;
        }
        case FrameType.ImmediateAck:
          flags.ackEliciting = true;
          flags.immediateAck = true;
          this.add(type, 0, 0, 0);
          break;
        default:
          return false;
      }
    }
    return true;
  }

  /**
   * Hands the listed frames of `p` (just parsed into this list, with its first ACK in `ack`) to
   * `visitor`, in order. Views alias `p`. The visitor must not parse into this list meanwhile.
   */
  visit(p: Uint8Array, visitor: FrameVisitor, ack: AckFrame): void {
    let acks = 0;
    const n = this.count;
    for (let i = 0; i < n; i++) {
      const at = this.at[i]!;
      switch (this.type[i]!) {
        case FrameType.Ping:
          visitor.onPing();
          break;
        case FrameType.Ack:
          if (acks++ > 0) {
            cursor.pos = this.value[i]!;
            readAck(p, cursor, p.length, ack); // valid: parse() read it already
          }
          visitor.onAck(ack);
          break;
        case FrameType.Stream:
          if (visitor.onStreamAt) visitor.onStreamAt(this.value[i]!, p, at, this.length[i]!);
          else visitor.onStream(this.value[i]!, p.subarray(at, at + this.length[i]!));
          break;
        case FrameType.Datagram:
          visitor.onDatagram(p.subarray(at, at + this.length[i]!));
          break;
        case FrameType.Close:
          visitor.onClose(this.value[i]!, textDecoder.decode(p.subarray(at, at + this.length[i]!)));
          break;
        case FrameType.PathChallenge:
          visitor.onPathChallenge(p.subarray(at, at + PATH_DATA_LENGTH));
          break;
        case FrameType.PathResponse:
          visitor.onPathResponse(p.subarray(at, at + PATH_DATA_LENGTH));
          break;
        case FrameType.NewConnectionId:
          visitor.onNewConnectionId?.(this.value[i]!, p.subarray(at, at + CID_LENGTH), p.subarray(at + CID_LENGTH, at + CID_LENGTH + RESET_TOKEN_LENGTH));
          break;
        case FrameType.RetireConnectionId:
          visitor.onRetireConnectionId?.(this.value[i]!);
          break;
        case FrameType.ImmediateAck:
          visitor.onImmediateAck?.();
          break;
      }
    }
  }
}

// Parsing is synchronous and never nested, so one cursor and one spare ACK serve every list.
const cursor = { pos: 0 };
const spareAck = new AckFrame();
const walkList = new FrameList();
let walking = false;

/** Reads an ACK frame's fields (after its type byte) into `ack`; false when malformed. */
function readAck(p: Uint8Array, cur: { pos: number }, end: number, ack: AckFrame): boolean {
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
  return true;
}

/**
 * Validates the frames of a decrypted payload and, when all are well formed and `visitor` is given,
 * hands them to it in order; a malformed payload visits nothing. Returns whether all were well formed.
 * `flags` says whether the payload is ack-eliciting and whether it asks for an immediate ACK. (The
 * connection uses a FrameList directly, to act between validating and visiting.)
 */
export function walkFrames(p: Uint8Array, visitor: FrameVisitor | null, ack: AckFrame, flags: FrameFlags): boolean {
  if (walking) throw new Error("walkFrames called from inside its own visitor");
  if (!walkList.parse(p, ack, flags)) return false;
  if (visitor) {
    walking = true;
    try {
      walkList.visit(p, visitor, ack);
    } finally {
      walking = false;
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
