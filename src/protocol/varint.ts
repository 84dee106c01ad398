/**
 * QUIC variable-length integers (RFC 9000 §16): 1, 2, 4 or 8 bytes, the two top bits give the length.
 * Values are JavaScript numbers, so the usable range is [0, 2^53); the encoding itself allows 2^62.
 */

export const VARINT_MAX = Number.MAX_SAFE_INTEGER;

/** Bytes needed to encode `v`. */
export function varintSize(v: number): 1 | 2 | 4 | 8 {
  if (v < 0x40) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x40000000) return 4;
  return 8;
}

/** Writes `v` at `offset`; returns the offset after it. The caller guarantees room (see varintSize). */
export function writeVarint(buf: Uint8Array, offset: number, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > VARINT_MAX) throw new RangeError(`varint out of range: ${v}`);
  if (v < 0x40) {
    buf[offset] = v;
    return offset + 1;
  }
  if (v < 0x4000) {
    buf[offset] = 0x40 | (v >>> 8);
    buf[offset + 1] = v & 0xff;
    return offset + 2;
  }
  if (v < 0x40000000) {
    buf[offset] = 0x80 | (v >>> 24);
    buf[offset + 1] = (v >>> 16) & 0xff;
    buf[offset + 2] = (v >>> 8) & 0xff;
    buf[offset + 3] = v & 0xff;
    return offset + 4;
  }
  const hi = Math.floor(v / 0x100000000);
  const lo = v >>> 0;
  buf[offset] = 0xc0 | (hi >>> 24);
  buf[offset + 1] = (hi >>> 16) & 0xff;
  buf[offset + 2] = (hi >>> 8) & 0xff;
  buf[offset + 3] = hi & 0xff;
  buf[offset + 4] = lo >>> 24;
  buf[offset + 5] = (lo >>> 16) & 0xff;
  buf[offset + 6] = (lo >>> 8) & 0xff;
  buf[offset + 7] = lo & 0xff;
  return offset + 8;
}

/**
 * Reads a varint at `offset` within `end`. Returns the value and stores the next offset in `cursor.pos`,
 * or returns -1 when the input is truncated or the value exceeds the safe-integer range
 * (a malformed packet, never an exception: the receive path must not throw).
 */
export function readVarint(buf: Uint8Array, cursor: { pos: number }, end: number): number {
  const offset = cursor.pos;
  if (offset >= end) return -1;
  const first = buf[offset]!;
  const len = 1 << (first >>> 6);
  if (offset + len > end) return -1;
  let v = first & 0x3f;
  if (len === 8) {
    if (v > 0x1f) return -1; // above 2^53
    let hi = v;
    for (let i = 1; i < 4; i++) hi = hi * 256 + buf[offset + i]!;
    let lo = 0;
    for (let i = 4; i < 8; i++) lo = lo * 256 + buf[offset + i]!;
    const value = hi * 0x100000000 + lo;
    if (value > VARINT_MAX) return -1;
    cursor.pos = offset + 8;
    return value;
  }
  for (let i = 1; i < len; i++) v = v * 256 + buf[offset + i]!;
  cursor.pos = offset + len;
  return v;
}
