/**
 * Property tests of the protocol core's codecs and data structures: varints, packet numbers, the packet header,
 * frames, RangeSet, ReplayWindow and the reliable stream (StreamSender → StreamReceiver). Each structure is
 * checked against a naive model or an RFC reference; fast-check runs are seeded, so failures reproduce.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { AEAD_TAG_LENGTH } from "../src/protocol/aead.js";
import type { Allocator } from "../src/protocol/allocator.js";
import {
  AckFrame, FrameType, MAX_ACK_RANGES, MAX_CLOSE_REASON_BYTES, PATH_DATA_LENGTH,
  datagramFrameOverhead, encodeCloseReason, streamFrameOverhead, walkFrames,
  writeAckFrame, writeCloseFrame, writeDatagramFrame, writePathFrame, writeStreamFrameHeader,
  type FrameFlags, type FrameVisitor,
} from "../src/protocol/frames.js";
import {
  CID_OFFSET, HEADER_MAX_LENGTH, MAX_PAYLOAD_LENGTH, MIN_PACKET_LENGTH, PacketType,
  cidEquals, parseHeader, writeHeader, type ParsedHeader,
} from "../src/protocol/packet-header.js";
import { decodePacketNumber, packetNumberLength } from "../src/protocol/packet-number.js";
import { RangeSet } from "../src/protocol/range-set.js";
import { ReplayWindow } from "../src/protocol/replay-window.js";
import { StreamReceiver, type StreamError } from "../src/protocol/stream-receive.js";
import { StreamSender } from "../src/protocol/stream-send.js";
import { VARINT_MAX, readVarint, varintSize, writeVarint } from "../src/protocol/varint.js";
import { CID_LENGTH, MAX_DATAGRAM_SIZE } from "../src/protocol/version.js";
import { Prng, poisonedPoolAllocator } from "./support/sim-network.js";

const SEED = 0xc0dec;
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const eq = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** Values spread over every varint length, boundaries included. */
const varintValue = fc.oneof(
  fc.integer({ min: 0, max: 0x3f }),
  fc.integer({ min: 0x40, max: 0x3fff }),
  fc.integer({ min: 0x4000, max: 0x3fffffff }),
  fc.integer({ min: 0x40000000, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(0, 63, 64, 16383, 16384, 0x3fffffff, 0x40000000, 2 ** 32 - 1, 2 ** 32, VARINT_MAX),
);

// ------------------------------------------------------------------------------------------------ varint

describe("codecs: varint", function () {
  it("decodes the RFC 9000 §16 / A.1 examples", function () {
    const read = (bytes: Uint8Array) => {
      const cur = { pos: 0 };
      const v = readVarint(bytes, cur, bytes.length);
      return { v, pos: cur.pos };
    };
    assert.deepEqual(read(hex("25")), { v: 37, pos: 1 });
    assert.deepEqual(read(hex("4025")), { v: 37, pos: 2 }); // non-minimal encodings are accepted
    assert.deepEqual(read(hex("7bbd")), { v: 15293, pos: 2 });
    assert.deepEqual(read(hex("9d7f3e7d")), { v: 494878333, pos: 4 });
    // 151288809941952652 is above 2^53: refused (-1), cursor untouched.
    assert.deepEqual(read(hex("c2197c5eff14e88c")), { v: -1, pos: 0 });
    const out = new Uint8Array(4);
    assert.equal(writeVarint(out, 0, 494878333), 4);
    assert.ok(eq(out, hex("9d7f3e7d")));
  });

  it("round-trips every value with its minimal length, at any offset", function () {
    fc.assert(
      fc.property(varintValue, fc.nat({ max: 16 }), (v, at) => {
        const size = varintSize(v);
        const buf = new Uint8Array(at + size + 3).fill(0xaa);
        assert.equal(writeVarint(buf, at, v), at + size);
        assert.equal(buf[at]! >>> 6, [1, 2, 4, 8].indexOf(size), "length bits");
        assert.equal(buf[at + size], 0xaa, "wrote past its size");
        const cur = { pos: at };
        assert.equal(readVarint(buf, cur, at + size), v);
        assert.equal(cur.pos, at + size);
        // Minimal: the next smaller length cannot hold it.
        const smaller = { 1: 0, 2: 0x40, 4: 0x4000, 8: 0x40000000 }[size];
        assert.ok(v >= smaller);
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });

  it("rejects every truncation (returns -1, cursor untouched), and respects `end`", function () {
    fc.assert(
      fc.property(varintValue, (v) => {
        const buf = new Uint8Array(8);
        const size = writeVarint(buf, 0, v);
        for (let end = 0; end < size; end++) {
          const cur = { pos: 0 };
          assert.equal(readVarint(buf, cur, end), -1, `end ${end} of ${size}`);
          assert.equal(cur.pos, 0);
        }
        const cur = { pos: size };
        assert.equal(readVarint(buf, cur, size), -1, "reading at end");
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it("refuses 8-byte values above 2^53-1 on read and bad values on write", function () {
    const at = (bytes: string) => readVarint(hex(bytes), { pos: 0 }, 8);
    assert.equal(at("c01fffffffffffff"), Number.MAX_SAFE_INTEGER);
    assert.equal(at("c020000000000000"), -1);
    assert.equal(at("ffffffffffffffff"), -1);
    for (const bad of [-1, 0.5, NaN, Infinity, VARINT_MAX + 1, 2 ** 62]) {
      assert.throws(() => writeVarint(new Uint8Array(8), 0, bad), RangeError, String(bad));
    }
  });

  it("never throws reading arbitrary bytes", function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), fc.nat({ max: 12 }), (buf, pos) => {
        const cur = { pos };
        const v = readVarint(buf, cur, buf.length);
        if (v >= 0) assert.ok(cur.pos > pos && cur.pos <= buf.length && Number.isSafeInteger(v));
        else assert.equal(cur.pos, pos);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });
});

// ------------------------------------------------------------------------------------------------ packet numbers

/** RFC 9000 Appendix A.3, verbatim, with BigInt (2^62 bound). */
function referenceDecode(largest: bigint, truncated: bigint, nbits: bigint): bigint {
  const expected = largest + 1n;
  const win = 1n << nbits;
  const hwin = win / 2n;
  const mask = win - 1n;
  const candidate = (expected & ~mask) | truncated;
  if (candidate <= expected - hwin && candidate < (1n << 62n) - win) return candidate + win;
  if (candidate > expected + hwin && candidate >= win) return candidate - win;
  return candidate;
}

/** RFC 9000 Appendix A.2: bytes needed for `pn` given the largest acknowledged. */
function referenceLength(pn: number, largestAcked: number): number {
  const unacked = largestAcked < 0 ? pn + 1 : pn - largestAcked;
  return Math.ceil((Math.log2(unacked) + 1) / 8);
}

describe("codecs: packet numbers", function () {
  it("decodes the RFC 9000 A.3 example: largest 0xa82f30ea, 16-bit 0x9b32 → 0xa82f9b32", function () {
    assert.equal(decodePacketNumber(0xa82f30ea, 0x9b32, 16), 0xa82f9b32);
  });

  it("decodes exactly like the RFC 9000 A.3 pseudo-code (differential, BigInt reference)", function () {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: -1, max: 5000 }), fc.integer({ min: -1, max: 2 ** 52 })),
        fc.constantFrom(8, 16, 24, 32),
        fc.nat(),
        (largest, bits, raw) => {
          const truncated = raw % 2 ** bits;
          const want = referenceDecode(BigInt(largest), BigInt(truncated), BigInt(bits));
          assert.equal(BigInt(decodePacketNumber(largest, truncated, bits)), want);
        },
      ),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it("packetNumberLength + truncation + decode recover the full number near the largest received", function () {
    fc.assert(
      fc.property(
        fc.integer({ min: -1, max: 2 ** 40 }),
        fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 2 ** 20 }), fc.integer({ min: 1, max: 2 ** 30 })),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (largestAcked, ahead, where) => {
          const pn = largestAcked + ahead;
          const len = packetNumberLength(pn, largestAcked);
          assert.ok(len >= 1 && len <= 4);
          const u = largestAcked < 0 ? pn + 1 : pn - largestAcked;
          if (u >= 2 ** 30) return; // beyond what 4 bytes can disambiguate; never happens with bounded flight
          const bits = len * 8;
          const truncated = pn % 2 ** bits;
          // The receiver's largest is anywhere from the sender's largest acknowledged up to u packets past pn
          // (it got later packets first): decoding must recover pn throughout.
          const lo = Math.max(largestAcked, -1);
          const hi = pn + u;
          const received = lo + Math.floor(where * (hi - lo));
          assert.equal(decodePacketNumber(received, truncated, bits), pn, `pn ${pn} acked ${largestAcked} received ${received} len ${len}`);
          assert.equal(decodePacketNumber(lo, truncated, bits), pn);
          assert.equal(decodePacketNumber(pn - 1, truncated, bits), pn);
          // Never shorter than RFC 9000 A.2 asks, and at most one byte longer.
          const ref = referenceLength(pn, largestAcked);
          assert.ok(len >= ref && len <= Math.min(4, ref + 1), `length ${len} vs RFC ${ref}`);
        },
      ),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it("uses 1 byte while few packets are unacknowledged and grows with the gap", function () {
    assert.equal(packetNumberLength(0, -1), 1);
    assert.equal(packetNumberLength(10, 5), 1);
    assert.equal(packetNumberLength(1000, 999), 1);
    assert.equal(packetNumberLength(100_000, 90_000), 2);
    assert.equal(packetNumberLength(0xace8fe, 0xabe8b3), 3); // RFC 9000 A.2's 24-bit example
    assert.equal(packetNumberLength(2 ** 40, 0), 4);
  });
});

// ------------------------------------------------------------------------------------------------ header

const freshHeader = (): ParsedHeader => ({ type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 });

describe("codecs: packet header", function () {
  it("write/parse round trip for every type, key phase, length and packet number", function () {
    fc.assert(
      fc.property(
        fc.constantFrom(PacketType.Data, PacketType.Bind),
        fc.constantFrom(0 as const, 1 as const),
        fc.uint8Array({ minLength: CID_LENGTH, maxLength: CID_LENGTH }),
        fc.integer({ min: 0, max: 2 ** 48 }),
        fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const),
        fc.integer({ min: 1 + AEAD_TAG_LENGTH, max: MAX_DATAGRAM_SIZE - HEADER_MAX_LENGTH }),
        (type, keyPhase, cid, pn, pnLength, rest) => {
          const buf = new Uint8Array(1 + CID_LENGTH + pnLength + rest);
          const hl = writeHeader(buf, type, keyPhase, cid, pn, pnLength);
          assert.equal(hl, 1 + CID_LENGTH + pnLength);
          const h = freshHeader();
          assert.equal(parseHeader(buf, h), true);
          assert.deepEqual(h, { type, keyPhase, pnLength, truncatedPn: pn % 2 ** (8 * pnLength), headerLength: hl });
          assert.ok(cidEquals(buf, CID_OFFSET, cid));
          const other = cid.slice();
          other[pn % CID_LENGTH]! ^= 1;
          assert.ok(!cidEquals(buf, CID_OFFSET, other));
        },
      ),
      { seed: SEED, numRuns: 1000 },
    );
  });

  it("rejects bad sizes, packet types and reserved bits", function () {
    const cid = new Uint8Array(CID_LENGTH).fill(7);
    const make = (size: number, pnLength: 1 | 2 | 3 | 4 = 1) => {
      const b = new Uint8Array(size);
      writeHeader(b, PacketType.Data, 0, cid, 5, pnLength);
      return b;
    };
    const h = freshHeader();
    assert.equal(MIN_PACKET_LENGTH, 1 + CID_LENGTH + 1 + 1 + AEAD_TAG_LENGTH);
    assert.equal(MAX_PAYLOAD_LENGTH, MAX_DATAGRAM_SIZE - HEADER_MAX_LENGTH - AEAD_TAG_LENGTH);
    assert.equal(parseHeader(make(MIN_PACKET_LENGTH), h), true);
    assert.equal(parseHeader(make(MIN_PACKET_LENGTH - 1), h), false);
    assert.equal(parseHeader(make(MAX_DATAGRAM_SIZE), h), true);
    assert.equal(parseHeader(make(MAX_DATAGRAM_SIZE + 1), h), false);
    // A 4-byte packet number needs 3 more bytes before a payload byte and the tag fit.
    assert.equal(parseHeader(make(1 + CID_LENGTH + 4 + AEAD_TAG_LENGTH, 4), h), false);
    assert.equal(parseHeader(make(1 + CID_LENGTH + 4 + AEAD_TAG_LENGTH + 1, 4), h), true);
    for (let flags = 0; flags < 256; flags++) {
      const b = make(100);
      b[0] = flags;
      const typeOk = flags >>> 6 === 0b01 || flags >>> 6 === 0b10;
      const reservedOk = (flags & 0b0001_1100) === 0;
      assert.equal(parseHeader(b, h), typeOk && reservedOk, `flags ${flags.toString(2)}`);
    }
  });

  it("never throws parsing arbitrary bytes", function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1300 }), (buf) => {
        const h = freshHeader();
        const ok = parseHeader(buf, h);
        if (ok) assert.ok(h.headerLength + AEAD_TAG_LENGTH < buf.length && buf.length <= MAX_DATAGRAM_SIZE);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });
});

// ------------------------------------------------------------------------------------------------ frames

type Frame =
  | { t: "padding" }
  | { t: "ping" }
  | { t: "immediateAck" }
  | { t: "ack"; ranges: [number, number][]; delayUs: number } // inclusive [smallest, largest], highest first
  | { t: "stream"; offset: number; data: Uint8Array }
  | { t: "datagram"; data: Uint8Array }
  | { t: "close"; code: number; reason: string }
  | { t: "challenge"; data: Uint8Array }
  | { t: "response"; data: Uint8Array };

/** A visitor that records what it sees as Frame values (copying views, which alias the packet). */
function recorder(): { frames: Frame[]; visitor: FrameVisitor } {
  const frames: Frame[] = [];
  return {
    frames,
    visitor: {
      onPing: () => frames.push({ t: "ping" }),
      onAck: (a: AckFrame) => {
        const ranges: [number, number][] = [];
        for (let i = 0; i < a.count; i++) ranges.push([a.smallest[i]!, a.largestOf[i]!]);
        frames.push({ t: "ack", ranges, delayUs: a.delayUs });
      },
      onStream: (offset, data) => frames.push({ t: "stream", offset, data: data.slice() }),
      onDatagram: (data) => frames.push({ t: "datagram", data: data.slice() }),
      onClose: (code, reason) => frames.push({ t: "close", code, reason }),
      onPathChallenge: (data) => frames.push({ t: "challenge", data: data.slice() }),
      onPathResponse: (data) => frames.push({ t: "response", data: data.slice() }),
      onImmediateAck: () => frames.push({ t: "immediateAck" }),
    },
  };
}

/** Disjoint, non-adjacent ascending half-open ranges built through a RangeSet. */
const rangeSetArb = fc
  .record({
    base: fc.oneof(fc.nat({ max: 100 }), fc.nat({ max: 2 ** 40 })),
    steps: fc.array(fc.tuple(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 70_000 })), { minLength: 1, maxLength: 50 }),
  })
  .map(({ base, steps }) => {
    const rs = new RangeSet();
    let at = base;
    for (const [gap, len] of steps) {
      rs.add(at, at + len);
      at += len + gap; // gap >= 1: never adjacent
    }
    return rs;
  });

const closeReasonArb = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "binary", minLength: 60, maxLength: 200 }), // often over 256 UTF-8 bytes
  fc.constantFrom("", "idle timeout", "é".repeat(200), "😀".repeat(70), "a".repeat(256), "a".repeat(255) + "é"),
);

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.constant({ t: "padding" as const }),
  fc.constant({ t: "ping" as const }),
  fc.constant({ t: "immediateAck" as const }),
  fc.record({ offset: fc.oneof(fc.nat({ max: 5000 }), fc.nat({ max: 2 ** 50 })), data: fc.uint8Array({ maxLength: 300 }) }).map(
    (f) => ({ t: "stream" as const, ...f }),
  ),
  fc.uint8Array({ maxLength: 300 }).map((data) => ({ t: "datagram" as const, data })),
  fc.record({ code: varintValue, reason: closeReasonArb }).map(({ code, reason }) => ({
    t: "close" as const,
    code,
    reason: new TextDecoder().decode(encodeCloseReason(reason)),
  })),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((data) => ({ t: "challenge" as const, data })),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((data) => ({ t: "response" as const, data })),
  fc.record({ rs: rangeSetArb, delayUs: fc.oneof(fc.nat({ max: 100_000 }), varintValue) }).map(({ rs, delayUs }) => {
    const ranges: [number, number][] = [];
    for (let i = rs.size - 1; i >= 0 && ranges.length <= MAX_ACK_RANGES; i--) ranges.push([rs.starts[i]!, rs.ends[i]! - 1]);
    return { t: "ack" as const, ranges, delayUs };
  }),
);

/** Serialises frames; returns the bytes and the offset after each frame. */
function encodeFrames(frames: Frame[]): { bytes: Uint8Array; boundaries: number[] } {
  const buf = new Uint8Array(200_000);
  let off = 0;
  const boundaries: number[] = [];
  for (const f of frames) {
    switch (f.t) {
      case "padding": buf[off++] = FrameType.Padding; break;
      case "ping": buf[off++] = FrameType.Ping; break;
      case "immediateAck": buf[off++] = FrameType.ImmediateAck; break;
      case "stream": {
        const at = writeStreamFrameHeader(buf, off, f.offset, f.data.length);
        assert.equal(at - off, streamFrameOverhead(f.offset, f.data.length));
        buf.set(f.data, at);
        off = at + f.data.length;
        break;
      }
      case "datagram": {
        const end = writeDatagramFrame(buf, off, f.data);
        assert.equal(end - off, datagramFrameOverhead(f.data.length) + f.data.length);
        off = end;
        break;
      }
      case "close": off = writeCloseFrame(buf, off, f.code, new TextEncoder().encode(f.reason)); break;
      case "challenge": off = writePathFrame(buf, off, FrameType.PathChallenge, f.data); break;
      case "response": off = writePathFrame(buf, off, FrameType.PathResponse, f.data); break;
      case "ack": {
        const asc = [...f.ranges].reverse();
        const end = writeAckFrame(buf, off, 10_000, asc.map((r) => r[0]), asc.map((r) => r[1] + 1), f.delayUs);
        assert.ok(end > off);
        off = end;
        break;
      }
    }
    boundaries.push(off);
  }
  return { bytes: buf.slice(0, off), boundaries };
}

const ELICITING = new Set(["ping", "immediateAck", "stream", "datagram", "challenge", "response"]);

describe("codecs: frames", function () {
  it("ACK frames written from random RangeSets parse back to the highest ranges, highest first", function () {
    fc.assert(
      fc.property(rangeSetArb, fc.oneof(fc.nat({ max: 100_000 }), varintValue), (rs, delayUs) => {
        const buf = new Uint8Array(2000);
        const end = writeAckFrame(buf, 3, 1997, rs.starts, rs.ends, delayUs);
        const { frames, visitor } = recorder();
        const flags = { ackEliciting: true };
        assert.equal(walkFrames(buf.subarray(3, end), visitor, new AckFrame(), flags), true);
        assert.equal(flags.ackEliciting, false, "ACK alone is not ack-eliciting");
        assert.equal(frames.length, 1);
        const ack = frames[0] as Extract<Frame, { t: "ack" }>;
        assert.equal(ack.delayUs, delayUs);
        const n = rs.size;
        assert.ok(ack.ranges.length >= Math.min(n, MAX_ACK_RANGES) && ack.ranges.length <= MAX_ACK_RANGES + 1, `ranges ${ack.ranges.length} of ${n}`);
        ack.ranges.forEach(([lo, hi], k) => {
          const i = n - 1 - k;
          assert.deepEqual([lo, hi], [rs.starts[i]!, rs.ends[i]! - 1], `range ${k}`);
        });
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it("ACK frames limited by room write only what fits, still highest first", function () {
    fc.assert(
      fc.property(rangeSetArb, fc.integer({ min: 0, max: 120 }), (rs, room) => {
        const buf = new Uint8Array(300).fill(0xee);
        const end = writeAckFrame(buf, 10, room, rs.starts, rs.ends, 25_000);
        assert.ok(end - 10 <= room, "stays within its room");
        assert.equal(buf[10 + room], 0xee, "wrote nothing past its room");
        if (end === 10) return; // nothing fits
        const { frames, visitor } = recorder();
        assert.equal(walkFrames(buf.subarray(10, end), visitor, new AckFrame(), { ackEliciting: false }), true);
        const ack = frames[0] as Extract<Frame, { t: "ack" }>;
        ack.ranges.forEach(([lo, hi], k) => assert.deepEqual([lo, hi], [rs.starts[rs.size - 1 - k]!, rs.ends[rs.size - 1 - k]! - 1]));
      }),
      { seed: SEED, numRuns: 500 },
    );
    assert.equal(writeAckFrame(new Uint8Array(10), 0, 10, [], [], 0), 0, "an empty set writes nothing");
  });

  it("sequences of all frame types round trip, with the ack-eliciting flag", function () {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), (frames) => {
        const { bytes } = encodeFrames(frames);
        const { frames: got, visitor } = recorder();
        const flags: FrameFlags = { ackEliciting: false };
        assert.equal(walkFrames(bytes, visitor, new AckFrame(), flags), true);
        const want = frames.filter((f) => f.t !== "padding");
        assert.deepEqual(got, want);
        assert.equal(flags.ackEliciting, frames.some((f) => ELICITING.has(f.t)));
        assert.equal(flags.immediateAck, frames.some((f) => f.t === "immediateAck"));
        // Validation only (visitor null) agrees.
        assert.equal(walkFrames(bytes, null, new AckFrame(), { ackEliciting: false }), true);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it("every truncation inside a frame is rejected without throwing; cuts between frames parse", function () {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 6 }), (frames) => {
        const { bytes, boundaries } = encodeFrames(frames);
        const at = new Set([0, ...boundaries]);
        for (let cut = 0; cut < bytes.length; cut++) {
          const ok = walkFrames(bytes.subarray(0, cut), null, new AckFrame(), { ackEliciting: false });
          assert.equal(ok, at.has(cut), `cut at ${cut} of ${bytes.length}`);
        }
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it("IMMEDIATE_ACK is one byte, ack-eliciting, and sets the immediate-ACK flag; a PING does not", function () {
    const flags: FrameFlags = { ackEliciting: false, immediateAck: false };
    assert.equal(walkFrames(Uint8Array.of(FrameType.ImmediateAck), null, new AckFrame(), flags), true);
    assert.deepEqual(flags, { ackEliciting: true, immediateAck: true });
    assert.equal(walkFrames(Uint8Array.of(FrameType.Ping, FrameType.Padding), null, new AckFrame(), flags), true);
    assert.deepEqual(flags, { ackEliciting: true, immediateAck: false }, "the flag is reset for each payload");
    assert.equal(FrameType.ImmediateAck, 0x0a);
  });

  it("frames are parsed once, then visited: a payload malformed at its end visits nothing, and each ACK frame is visited with its own ranges", function () {
    const { frames, visitor } = recorder();
    const stream = [FrameType.Stream, 0, 3, 1, 2, 3];
    assert.equal(walkFrames(Uint8Array.from([...stream, FrameType.Ping, 0x0b]), visitor, new AckFrame(), { ackEliciting: false }), false);
    assert.equal(frames.length, 0, "a bad last frame: the good ones before it were not handed over");
    const twoAcks = Uint8Array.from([FrameType.Ack, 9, 0, 0, 1, ...stream, FrameType.Ack, 4, 7, 0, 0]);
    assert.equal(walkFrames(twoAcks, visitor, new AckFrame(), { ackEliciting: false }), true);
    assert.deepEqual(frames.map((f) => (f.t === "ack" ? [f.delayUs, f.ranges] : f.t)), [[0, [[8, 9]]], "stream", [7, [[4, 4]]]]);
    const reenter: FrameVisitor = { ...visitor, onPing: () => walkFrames(Uint8Array.of(FrameType.Ping), null, new AckFrame(), { ackEliciting: false }) };
    assert.throws(() => walkFrames(Uint8Array.of(FrameType.Ping), reenter, new AckFrame(), { ackEliciting: false }), /from inside its own visitor/);
    assert.equal(walkFrames(Uint8Array.of(FrameType.Ping), visitor, new AckFrame(), { ackEliciting: false }), true, "usable again after the throw");
  });

  it("unknown frame types are rejected, before or after valid frames", function () {
    for (let type = 0x0b; type <= 0xff; type++) {
      assert.equal(walkFrames(Uint8Array.of(type), null, new AckFrame(), { ackEliciting: false }), false);
      assert.equal(walkFrames(Uint8Array.of(FrameType.Ping, 0, type, 1, 2), null, new AckFrame(), { ackEliciting: false }), false);
    }
  });

  it("malformed ACK frames are rejected: first range above largest, negative ranges, too many ranges", function () {
    const walk = (...b: number[]) => walkFrames(Uint8Array.from(b), null, new AckFrame(), { ackEliciting: false });
    assert.equal(walk(FrameType.Ack, 5, 0, 0, 5), true); // [0, 5]
    assert.equal(walk(FrameType.Ack, 5, 0, 0, 6), false);
    assert.equal(walk(FrameType.Ack, 10, 0, 1, 2, 5, 1), true); // [8,10], then gap 5 → [1,2]
    assert.equal(walk(FrameType.Ack, 10, 0, 1, 2, 5, 2), false); // would reach -1
    const many = [FrameType.Ack, 0x44, 0x00, 0, MAX_ACK_RANGES + 1, 0];
    for (let i = 0; i <= MAX_ACK_RANGES; i++) many.push(0, 0);
    assert.equal(walk(...many), false);
  });

  it("close reasons are cut at 256 UTF-8 bytes on a character boundary", function () {
    fc.assert(
      fc.property(closeReasonArb, (reason) => {
        const full = new TextEncoder().encode(reason);
        const enc = encodeCloseReason(reason);
        assert.ok(enc.length <= MAX_CLOSE_REASON_BYTES);
        const decoded = new TextDecoder("utf-8", { fatal: true }).decode(enc); // throws if a sequence was split
        if (full.length <= MAX_CLOSE_REASON_BYTES) assert.equal(decoded, reason);
        else {
          assert.ok(reason.startsWith(decoded));
          assert.ok(enc.length > MAX_CLOSE_REASON_BYTES - 4, "cuts at most one character");
        }
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it("never throws walking arbitrary bytes", function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const { visitor } = recorder();
        walkFrames(bytes, visitor, new AckFrame(), { ackEliciting: false });
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });

  it("PATH frames carry exactly 8 bytes", function () {
    const buf = new Uint8Array(20);
    const end = writePathFrame(buf, 0, FrameType.PathChallenge, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
    assert.equal(end, 1 + PATH_DATA_LENGTH);
  });
});

// ------------------------------------------------------------------------------------------------ RangeSet

type RangeOp = { op: "add" | "remove"; s: number; e: number } | { op: "truncate"; k: number };

function modelRuns(set: Set<number>): [number, number][] {
  const vals = [...set].sort((a, b) => a - b);
  const runs: [number, number][] = [];
  for (const v of vals) {
    const last = runs[runs.length - 1];
    if (last && last[1] === v) last[1] = v + 1;
    else runs.push([v, v + 1]);
  }
  return runs;
}

describe("codecs: RangeSet against a Set<number> model", function () {
  it("add / remove / truncateLow keep the same contents and canonical disjoint ranges", function () {
    const U = 200;
    const opArb: fc.Arbitrary<RangeOp> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ op: fc.constant("add" as const), s: fc.nat({ max: U }), e: fc.nat({ max: U }) }) },
      { weight: 3, arbitrary: fc.record({ op: fc.constant("remove" as const), s: fc.nat({ max: U }), e: fc.nat({ max: U }) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant("truncate" as const), k: fc.nat({ max: 12 }) }) },
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), fc.array(fc.tuple(fc.nat({ max: U }), fc.nat({ max: 20 })), { maxLength: 10 }), (ops, probes) => {
        const rs = new RangeSet();
        let model = new Set<number>();
        for (const o of ops) {
          if (o.op === "truncate") {
            rs.truncateLow(o.k);
            const runs = modelRuns(model);
            model = new Set();
            for (const [s, e] of runs.slice(Math.max(0, runs.length - o.k))) for (let v = s; v < e; v++) model.add(v);
          } else if (o.op === "add") {
            rs.add(o.s, o.e);
            for (let v = o.s; v < o.e; v++) model.add(v);
          } else {
            rs.remove(o.s, o.e);
            for (let v = o.s; v < o.e; v++) model.delete(v);
          }
          const runs = modelRuns(model);
          assert.deepEqual(rs.starts.map((s, i) => [s, rs.ends[i]]), runs, `after ${JSON.stringify(o)}`);
          assert.equal(rs.size, runs.length);
          assert.equal(rs.isEmpty(), model.size === 0);
          assert.equal(rs.min(), runs[0]?.[0]);
          assert.equal(rs.max(), runs[runs.length - 1]?.[1]);
        }
        for (let v = -1; v <= U + 1; v++) assert.equal(rs.contains(v), model.has(v), `contains ${v}`);
        for (const [s, len] of probes) {
          let all = true;
          for (let v = s; v < s + len; v++) all &&= model.has(v);
          if (len > 0) assert.equal(rs.containsRange(s, s + len), all, `containsRange ${s}+${len}`);
        }
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it("clear empties it", function () {
    const rs = new RangeSet();
    rs.add(1, 5);
    rs.add(10, 20);
    rs.clear();
    assert.equal(rs.size, 0);
    assert.equal(rs.min(), undefined);
    assert.equal(rs.contains(3), false);
  });
});

// ------------------------------------------------------------------------------------------------ ReplayWindow

describe("codecs: ReplayWindow against a naive model", function () {
  for (const size of [2048, 1024]) {
    it(`check/mark sequences agree with a Set model (window ${size})`, function () {
      const stepArb = fc.record({
        delta: fc.oneof(
          { weight: 6, arbitrary: fc.integer({ min: -40, max: 40 }) },
          { weight: 2, arbitrary: fc.integer({ min: -size - 20, max: size + 20 }) },
          { weight: 1, arbitrary: fc.integer({ min: -3 * size, max: 3 * size }) },
          { weight: 1, arbitrary: fc.constantFrom(size, size - 1, -size, -size + 1, size + 1, -size - 1) },
        ),
        mark: fc.double({ min: 0, max: 1, noNaN: true }),
      });
      fc.assert(
        fc.property(fc.nat({ max: 2 ** 40 }), fc.array(stepArb, { minLength: 1, maxLength: 300 }), (start, steps) => {
          const w = new ReplayWindow(size);
          assert.equal(w.size, size);
          const seen = new Set<number>();
          let largest = -1;
          let cursor = start;
          for (const { delta, mark } of steps) {
            const pn = Math.max(0, (largest < 0 ? cursor : largest) + delta);
            cursor = pn;
            const want = pn > largest || (largest - pn < size && !seen.has(pn));
            assert.equal(w.check(pn), want, `check(${pn}) with largest ${largest}`);
            assert.equal(w.check(pn), want, "check does not change state");
            // The connection marks only what passed the check (and authenticated).
            if (want && mark < 0.8) {
              w.mark(pn);
              seen.add(pn);
              if (pn > largest) largest = pn;
              assert.equal(w.check(pn), false, "a marked number is refused");
            }
            assert.equal(w.largestMarked, largest);
          }
        }),
        { seed: SEED, numRuns: 300 },
      );
    });
  }

  it("refuses everything older than the window and accepts unseen numbers inside it", function () {
    const w = new ReplayWindow();
    assert.equal(w.size, 2048);
    for (let pn = 0; pn < 5000; pn += 2) w.mark(pn); // evens received, odds missing
    const largest = 4998;
    assert.equal(w.check(largest - 2047), true, "odd inside the window, never seen");
    assert.equal(w.check(largest - 2048), false, "at the window edge: too old");
    assert.equal(w.check(largest - 2049), false);
    assert.equal(w.check(largest - 2), false);
    assert.equal(w.check(largest - 1), true);
    assert.equal(w.check(largest + 1), true);
    assert.equal(w.check(0), false);
    assert.equal(w.check(1), false, "never seen but too old");
  });

  it("rejects window sizes that are not a power of two of at least 1024", function () {
    for (const bad of [0, 512, 1000, 1536, 3000]) assert.throws(() => new ReplayWindow(bad), RangeError);
    assert.doesNotThrow(() => new ReplayWindow(4096));
  });
});

// ------------------------------------------------------------------------------------------------ stream

const messagesArb = fc
  .record({
    sizes: fc.array(
      fc.oneof(
        { weight: 4, arbitrary: fc.nat({ max: 100 }) },
        { weight: 3, arbitrary: fc.nat({ max: 3000 }) },
        { weight: 1, arbitrary: fc.constantFrom(0, 63, 64, 16383, 16384, 20_000) },
      ),
      { minLength: 1, maxLength: 25 },
    ),
    seed: fc.nat(),
  })
  .map(({ sizes, seed }) => {
    const rng = new Prng(seed);
    return sizes.map((n) => rng.bytes(n));
  });

/** The stream bytes a sender produces for `messages`, extracted with random segment sizes. */
function senderBytes(messages: Uint8Array[], rng: Prng, alloc?: Allocator): { sender: StreamSender; bytes: Uint8Array } {
  const sender = new StreamSender(alloc);
  for (const m of messages) sender.push(m);
  const total = sender.endOffset;
  const bytes = new Uint8Array(total);
  const seg = { offset: 0, len: 0 };
  let next = 0;
  for (let guard = 0; guard <= total; guard++) {
    sender.nextSegment(1 + rng.int(1500), Infinity, seg);
    if (seg.len === 0) break;
    assert.equal(seg.offset, next, "new bytes come in order");
    sender.copy(seg.offset, seg.len, bytes, seg.offset);
    next += seg.len;
  }
  assert.equal(next, total);
  assert.equal(sender.hasData(Infinity), false);
  return { sender, bytes };
}

/** What the stream must contain: each message as varint length + bytes. */
function expectedStream(messages: Uint8Array[]): Uint8Array {
  const parts: number[] = [];
  for (const m of messages) {
    const p = new Uint8Array(8);
    const n = writeVarint(p, 0, m.length);
    parts.push(...p.subarray(0, n), ...m);
  }
  return Uint8Array.from(parts);
}

describe("codecs: reliable stream (StreamSender → StreamReceiver)", function () {
  this.timeout(20_000);

  it("the sender frames each message as varint length + bytes", function () {
    fc.assert(
      fc.property(messagesArb, fc.nat(), (messages, seed) => {
        const { sender, bytes } = senderBytes(messages, new Prng(seed));
        assert.ok(eq(bytes, expectedStream(messages)));
        assert.equal(sender.queuedBytes, messages.reduce((n, m) => n + m.length, 0));
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it("random fragmentation, reordering, overlap and duplicates deliver exactly the messages, in order", function () {
    fc.assert(
      fc.property(messagesArb, fc.nat(), fc.boolean(), fc.boolean(), fc.boolean(), (messages, seed, tight, pooled, inPlace) => {
        const rng = new Prng(seed);
        const alloc = pooled ? poisonedPoolAllocator(seed) : undefined;
        const { bytes } = senderBytes(messages, rng, alloc);
        const total = bytes.length;
        // Cover the stream with random pieces, then add overlapping and duplicate pieces, and shuffle.
        const pieces: [number, number][] = [];
        for (let at = 0; at < total; ) {
          const len = Math.min(total - at, 1 + rng.int(rng.chance(0.2) ? 4000 : 300));
          pieces.push([at, at + len]);
          at += len;
        }
        const extra = rng.int(pieces.length + 1);
        for (let i = 0; i < extra && total > 0; i++) {
          const s = rng.int(total);
          pieces.push([s, Math.min(total, s + 1 + rng.int(2000))]);
        }
        for (let i = 0; i < extra; i++) pieces.push(pieces[rng.int(pieces.length)]!);
        rng.shuffle(pieces);
        const got: Uint8Array[] = [];
        const maxMessage = Math.max(0, ...messages.map((m) => m.length));
        const rx = new StreamReceiver(tight ? total : total + 1_000_000, maxMessage, (m) => got.push(m), alloc);
        const scratch = new Uint8Array(total + 64);
        for (const [s, e] of pieces) {
          // Hand the data in a reused buffer, as the AEAD scratch would, and trash it afterwards;
          // `inPlace`: as a packet payload does (onDataAt), somewhere inside the buffer.
          const at = inPlace ? rng.int(60) : 0;
          scratch.set(bytes.subarray(s, e), at);
          if (inPlace) assert.equal(rx.onDataAt(s, scratch, at, e - s), null);
          else assert.equal(rx.onData(s, scratch.subarray(0, e - s)), null);
          scratch.fill(0xdd);
        }
        assert.equal(got.length, messages.length);
        got.forEach((m, i) => assert.ok(eq(m, messages[i]!), `message ${i}`));
        assert.equal(rx.bufferedBytes, 0);
        // Anything arriving again afterwards is ignored.
        if (total > 0) assert.equal(rx.onData(0, bytes), null);
        assert.equal(got.length, messages.length);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it("onDataAt with a per-turn budget parks what the turn cannot take, and later turns deliver it in order", function () {
    const messages = Array.from({ length: 7 }, (_, i) => Uint8Array.from({ length: 3 + i }, (_, k) => i * 16 + k));
    const { bytes } = senderBytes(messages, new Prng(1));
    const got: Uint8Array[] = [];
    const rx = new StreamReceiver(10_000, 100, (m) => got.push(m), undefined, 2);
    const payload = new Uint8Array(bytes.length + 10).fill(0xee);
    payload.set(bytes, 10);
    assert.equal(rx.onDataAt(0, payload, 10, bytes.length), null);
    payload.fill(0xdd); // the packet's buffer is reused: what was parked must be a copy
    assert.equal(got.length, 2, "two messages in the first turn");
    assert.ok(rx.hasParked);
    for (let turn = 0; turn < 5 && rx.hasParked; turn++) assert.equal(rx.beginTurn(), null);
    assert.equal(got.length, 7);
    got.forEach((m, i) => assert.ok(eq(m, messages[i]!), `message ${i}`));
    assert.equal<StreamError | null>(rx.onDataAt(bytes.length + 20_000, payload, 0, 1), "flow-control", "the window holds on this path too");
  });

  it("refuses data beyond the window (flow-control) and messages above maxMessageSize", function () {
    const got: Uint8Array[] = [];
    const rx = new StreamReceiver(1000, 100, (m) => got.push(m));
    assert.equal(rx.onData(900, new Uint8Array(100)), null, "up to the window edge is fine");
    assert.equal<StreamError | null>(rx.onData(901, new Uint8Array(100)), "flow-control");
    const rx2 = new StreamReceiver(1000, 100, (m) => got.push(m));
    const p = new Uint8Array(2);
    writeVarint(p, 0, 101);
    assert.equal<StreamError | null>(rx2.onData(0, p), "message-too-large");
    const rx3 = new StreamReceiver(1000, 100, (m) => got.push(m));
    writeVarint(p, 0, 100);
    assert.equal(rx3.onData(0, Uint8Array.from([...p, ...new Uint8Array(100)])), null);
    assert.equal(got.length, 1);
  });

  it("over a lossy, reordering channel with retransmission and a flow-control window, every message arrives in order", function () {
    fc.assert(
      fc.property(messagesArb, fc.nat(), fc.integer({ min: 1200, max: 30_000 }), fc.boolean(), (messages, seed, window, pooled) => {
        const rng = new Prng(seed);
        const alloc = pooled ? poisonedPoolAllocator(seed) : undefined;
        const sender = new StreamSender(alloc);
        for (const m of messages) sender.push(m);
        const got: Uint8Array[] = [];
        const rx = new StreamReceiver(window, 1 << 20, (m) => got.push(m), alloc);
        interface Pkt { offset: number; data: Uint8Array }
        const inFlight: Pkt[] = [];
        const toAck: Pkt[] = [];
        let ackedFloor = 0; // what the sender has had acknowledged contiguously (model)
        const acked = new RangeSet();
        const seg = { offset: 0, len: 0 };
        let losses = 0;
        let steps = 0;
        while (sender.hasUnacked()) {
          assert.ok(++steps < 100_000, "no progress");
          const r = rng.next();
          if (r < 0.4 && sender.hasData(window)) {
            sender.nextSegment(1 + rng.int(1200), window, seg);
            if (seg.len === 0) continue;
            assert.ok(seg.offset + seg.len <= ackedFloor + window, "never beyond the peer's window");
            const data = new Uint8Array(seg.len);
            sender.copy(seg.offset, seg.len, data, 0);
            inFlight.push({ offset: seg.offset, data });
          } else if (r < 0.8 && inFlight.length > 0) {
            const p = inFlight.splice(rng.int(inFlight.length), 1)[0]!;
            if (rng.chance(0.2)) {
              losses++;
              sender.onLost(p.offset, p.offset + p.data.length);
            } else {
              assert.equal(rx.onData(p.offset, p.data), null, "no flow-control violation");
              if (rng.chance(0.1)) sender.onLost(p.offset, p.offset + p.data.length); // ack lost: resent anyway
              else toAck.push(p);
            }
          } else if (toAck.length > 0) {
            const p = toAck.splice(rng.int(toAck.length), 1)[0]!;
            sender.onAcked(p.offset, p.offset + p.data.length);
            acked.add(p.offset, p.offset + p.data.length);
            if (acked.min() === 0) ackedFloor = acked.ends[0]!;
          } else if (inFlight.length === 0 && toAck.length === 0 && !sender.hasData(window)) {
            assert.fail("stalled: unacknowledged data but nothing to send, deliver or acknowledge");
          }
        }
        assert.equal(got.length, messages.length);
        got.forEach((m, i) => assert.ok(eq(m, messages[i]!), `message ${i}`));
        assert.equal(sender.queuedBytes, 0);
        if (losses > 0) assert.ok(sender.retransmittedBytes > 0);
      }),
      { seed: SEED, numRuns: 150 },
    );
  });
});
