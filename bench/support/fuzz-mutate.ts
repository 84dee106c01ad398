/**
 * Byte-level mutation for bench/fuzz.ts (the structure-aware part is in fuzz-frames.ts): bit flips,
 * interesting bytes, inserts, deletes, duplication, truncation, splicing from other inputs, and QUIC
 * varints at their encoding boundaries written over the data.
 */
import type { Rng } from "./fuzz-rng.js";

/** Values at the edges of the varint encodings (RFC 9000 §16) and of JavaScript's safe integers. */
export const INTERESTING_VARINTS: readonly (number | bigint)[] = [
  0, 1, 2, 7, 8, 15, 16, 63, 64, 255, 256, 1199, 1200, 16383, 16384, 65535, 65536, 0x3fffffff, 0x40000000,
  0xffffffff, 0x100000000, 2 ** 52, Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER, 2n ** 53n, 2n ** 53n + 1n,
  2n ** 62n - 1n,
];

const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x07, 0x08, 0x09, 0x0a, 0x3f, 0x40, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xfe, 0xff];

/** Bytes of the varint encoding of `v` (0 <= v < 2^62), minimal unless `size` forces a longer (valid) one. */
export function encodeVarint(v: number | bigint, size?: 1 | 2 | 4 | 8): Uint8Array {
  const w = new ByteWriter(8);
  w.varint(v, size);
  return w.finish();
}

/** An append-only byte buffer that grows as needed (the fuzzer's encoders write into one). */
export class ByteWriter {
  private buf: Uint8Array;
  length = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
  }

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.length + n, this.buf.length * 2));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.length++] = b;
  }

  bytes(d: Uint8Array): void {
    this.room(d.length);
    this.buf.set(d, this.length);
    this.length += d.length;
  }

  zeros(n: number): void {
    this.room(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }

  /** A varint (RFC 9000 §16) of `v` < 2^62, minimal unless `size` forces a longer, still valid, encoding. */
  varint(v: number | bigint, size?: 1 | 2 | 4 | 8): void {
    if (typeof v === "number" && (!Number.isInteger(v) || v < 0)) throw new RangeError(`varint out of range: ${v}`);
    if (typeof v === "bigint" && (v < 0n || v >= 1n << 62n)) throw new RangeError(`varint out of range: ${v}`);
    const small = typeof v === "number" && v < 0x40000000;
    const minimal: 1 | 2 | 4 | 8 = !small ? 8 : (v as number) < 64 ? 1 : (v as number) < 16384 ? 2 : 4;
    const n = size !== undefined && size > minimal ? size : minimal;
    this.room(n);
    const at = this.length;
    if (n < 8) {
      let x = v as number;
      for (let i = n - 1; i >= 0; i--) {
        this.buf[at + i] = x & 0xff;
        x >>>= 8;
      }
    } else {
      let x = BigInt(v);
      if (x >= 1n << 62n) throw new RangeError(`varint out of range: ${x}`);
      for (let i = 7; i >= 0; i--) {
        this.buf[at + i] = Number(x & 0xffn);
        x >>= 8n;
      }
    }
    this.buf[at]! |= n === 1 ? 0 : n === 2 ? 0x40 : n === 4 ? 0x80 : 0xc0;
    this.length += n;
  }

  /** The bytes written (a view; the writer must not be used afterwards). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** A random interesting varint value, or a small random one. */
export function interestingVarint(rng: Rng): number | bigint {
  const r = rng.float();
  if (r < 0.6) return rng.pick(INTERESTING_VARINTS);
  const base = rng.pick(INTERESTING_VARINTS);
  // A neighbour of a boundary: off by one either way (clamped to the encodable range).
  const delta = BigInt(rng.range(-2, 2));
  const v = BigInt(base) + delta;
  return v < 0n ? 0n : v >= 1n << 62n ? (1n << 62n) - 1n : v;
}

/** Appends `parts` into one buffer. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

type ByteOp = (rng: Rng, d: Uint8Array, pool: readonly Uint8Array[]) => Uint8Array;

const OPS: { w: number; op: ByteOp }[] = [
  // bit flips
  {
    w: 6,
    op: (rng, d) => {
      if (d.length === 0) return d;
      const out = d.slice();
      const flips = rng.range(1, 4);
      for (let i = 0; i < flips; i++) {
        const at = rng.int(out.length);
        out[at]! ^= 1 << rng.int(8);
      }
      return out;
    },
  },
  // one byte to an interesting or random value
  {
    w: 5,
    op: (rng, d) => {
      if (d.length === 0) return d;
      const out = d.slice();
      out[rng.int(out.length)] = rng.chance(0.6) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
      return out;
    },
  },
  // small arithmetic on a byte
  {
    w: 2,
    op: (rng, d) => {
      if (d.length === 0) return d;
      const out = d.slice();
      const at = rng.int(out.length);
      out[at] = (out[at]! + rng.range(-4, 4)) & 0xff;
      return out;
    },
  },
  // insert random bytes, or a run of one byte
  {
    w: 3,
    op: (rng, d) => {
      const at = rng.int(d.length + 1);
      const n = rng.range(1, rng.chance(0.8) ? 8 : 128);
      const ins = rng.chance(0.5) ? rng.bytes(n) : new Uint8Array(n).fill(rng.pick(INTERESTING_BYTES));
      return concat([d.subarray(0, at), ins, d.subarray(at)]);
    },
  },
  // delete a range
  {
    w: 3,
    op: (rng, d) => {
      if (d.length === 0) return d;
      const at = rng.int(d.length);
      const n = rng.range(1, Math.min(d.length - at, rng.chance(0.8) ? 4 : 256));
      return concat([d.subarray(0, at), d.subarray(at + n)]);
    },
  },
  // duplicate a range in place
  {
    w: 2,
    op: (rng, d) => {
      if (d.length === 0) return d;
      const at = rng.int(d.length);
      const n = rng.range(1, Math.min(d.length - at, 64));
      const piece = d.subarray(at, at + n);
      const times = rng.chance(0.8) ? 1 : rng.range(2, 16);
      const parts: Uint8Array[] = [d.subarray(0, at + n)];
      for (let i = 0; i < times; i++) parts.push(piece);
      parts.push(d.subarray(at + n));
      return concat(parts);
    },
  },
  // truncate
  {
    w: 2,
    op: (rng, d) => (d.length === 0 ? d : d.slice(0, rng.int(d.length))),
  },
  // a varint at an encoding boundary written over (or into) the data
  {
    w: 4,
    op: (rng, d) => {
      const v = encodeVarint(interestingVarint(rng), rng.pick([undefined, 1, 2, 4, 8] as const));
      const at = rng.int(d.length + 1);
      if (rng.chance(0.5)) return concat([d.subarray(0, at), v, d.subarray(at)]);
      const out = d.slice();
      for (let i = 0; i < v.length && at + i < out.length; i++) out[at + i] = v[i]!;
      return out;
    },
  },
  // splice a piece of another input over or into this one
  {
    w: 3,
    op: (rng, d, pool) => {
      if (pool.length === 0) return d;
      const src = rng.pick(pool);
      if (src.length === 0) return d;
      const from = rng.int(src.length);
      const piece = src.subarray(from, from + rng.range(1, src.length - from));
      const at = rng.int(d.length + 1);
      if (rng.chance(0.5)) return concat([d.subarray(0, at), piece]);
      return concat([d.subarray(0, at), piece, d.subarray(at)]);
    },
  },
  // swap two ranges
  {
    w: 1,
    op: (rng, d) => {
      if (d.length < 4) return d;
      const n = rng.range(1, d.length >> 2);
      const a = rng.int(d.length - n);
      const b = rng.int(d.length - n);
      const out = d.slice();
      out.set(d.subarray(a, a + n), b);
      out.set(d.subarray(b, b + n), a);
      return out;
    },
  },
];
const WEIGHTS = OPS.map((o) => o.w);

/** 1 to `maxOps` random byte mutations of `d` (not modified), capped to `maxLength` bytes. */
export function mutateBytes(rng: Rng, d: Uint8Array, pool: readonly Uint8Array[], maxLength: number, maxOps = 4): Uint8Array {
  let out = d;
  const n = rng.chance(0.6) ? 1 : rng.range(2, maxOps);
  for (let i = 0; i < n; i++) out = OPS[rng.weighted(WEIGHTS)]!.op(rng, out, pool);
  return out.length > maxLength ? out.subarray(0, maxLength) : out;
}

/** A fixed-size pool of recent inputs for splicing: keeps the newest `capacity`. */
export class SplicePool {
  readonly items: Uint8Array[] = [];
  private next = 0;

  constructor(private readonly capacity: number) {}

  add(item: Uint8Array): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else {
      this.items[this.next] = item;
      this.next = (this.next + 1) % this.capacity;
    }
  }
}
