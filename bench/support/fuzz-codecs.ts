/**
 * Codec targets of bench/fuzz.ts, each checked against a small reference decoder written here from
 * docs/protocol.md (a second reading of the spec, so a disagreement is a bug in one of the two):
 *   frames  walkFrames on raw, generated and mutated payloads (validate-only and visiting must agree with
 *           each other and with the reference, frame by frame), the frame writers round-tripped through
 *           walkFrames, and readVarint/writeVarint against a BigInt varint reader.
 *   header  parseHeader on raw and mutated datagrams against the reference, writeHeader round trips,
 *           and decodePacketNumber against RFC 9000 Appendix A.3 in BigInt arithmetic.
 * Every input is self-contained: its first byte picks the mode, and a "recipe" input seeds the values a
 * round trip uses, so the recorded hex alone reproduces a failure.
 */
import {
  AckFrame,
  FrameType,
  MAX_ACK_RANGES,
  MAX_CLOSE_REASON_BYTES,
  PATH_DATA_LENGTH,
  RESET_TOKEN_LENGTH,
  datagramFrameOverhead,
  encodeCloseReason,
  newConnectionIdFrameSize,
  retireConnectionIdFrameSize,
  streamFrameOverhead,
  walkFrames,
  writeAckFrame,
  writeCloseFrame,
  writeDatagramFrame,
  writeNewConnectionIdFrame,
  writePathFrame,
  writeRetireConnectionIdFrame,
  writeStreamFrameHeader,
  type FrameVisitor,
} from "../../src/protocol/frames.js";
import { MIN_PACKET_LENGTH, PacketType, cidEquals, parseHeader, writeHeader, type ParsedHeader } from "../../src/protocol/packet-header.js";
import { decodePacketNumber, packetNumberLength } from "../../src/protocol/packet-number.js";
import { readVarint, varintSize, writeVarint } from "../../src/protocol/varint.js";
import { CID_LENGTH, MAX_DATAGRAM_SIZE } from "../../src/protocol/version.js";
import { AEAD_TAG_LENGTH } from "../../src/protocol/aead.js";
import { DeliveredRanges, encodeFrames, FuzzStream, mutateFrames, randomFrames, type Frame, type PeerView } from "./fuzz-frames.js";
import { concat, encodeVarint, INTERESTING_VARINTS, interestingVarint, mutateBytes, SplicePool } from "./fuzz-mutate.js";
import { Rng } from "./fuzz-rng.js";
import { check, type FuzzEpisode, type FuzzTarget } from "./fuzz-target.js";

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString("hex");
const utf8 = new TextDecoder("utf-8", { fatal: false });

/** A recipe input's own randomness: everything after the mode byte seeds it. */
const recipeRng = (input: Uint8Array): Rng => new Rng("recipe", hex(input.subarray(1)));

// ------------------------------------------------------------------------------------------ reference

/** Reads a varint per RFC 9000 §16 in BigInt: null when truncated. */
function refVarint(b: Uint8Array, at: number, end: number): { v: bigint; next: number } | null {
  if (at >= end) return null;
  const len = 1 << (b[at]! >> 6);
  if (at + len > end) return null;
  let v = BigInt(b[at]! & 0x3f);
  for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(b[at + i]!);
  return { v, next: at + len };
}

/**
 * The frames of a payload as docs/protocol.md §4 (wire version 2) describes them, as event strings; `ok` false at the
 * first malformed frame (events then hold the frames before it). This implementation's integers are
 * below 2^53 (src/protocol/varint.ts), so a larger varint is malformed too.
 */
export function referenceFrames(p: Uint8Array): { ok: boolean; events: string[]; eliciting: boolean } {
  const events: string[] = [];
  let eliciting = false;
  let at = 0;
  const fail = () => ({ ok: false, events, eliciting });
  const num = (): bigint | null => {
    const r = refVarint(p, at, p.length);
    if (!r || r.v > SAFE) return null;
    at = r.next;
    return r.v;
  };
  while (at < p.length) {
    const type = p[at++]!;
    switch (type) {
      case 0x00:
        break;
      case 0x01:
        eliciting = true;
        events.push("ping");
        break;
      case 0x02: {
        const largest = num();
        const delay = num();
        const extra = num();
        const first = num();
        if (largest === null || delay === null || extra === null || first === null) return fail();
        if (extra > BigInt(MAX_ACK_RANGES) || first > largest) return fail();
        let smallest = largest - first;
        const ranges = [`${smallest}-${largest}`];
        for (let i = 0n; i < extra; i++) {
          const gap = num();
          const len = num();
          if (gap === null || len === null) return fail();
          const hi = smallest - gap - 2n;
          const lo = hi - len;
          if (lo < 0n) return fail();
          ranges.push(`${lo}-${hi}`);
          smallest = lo;
        }
        events.push(`ack ${largest} ${delay} ${ranges.join(",")}`);
        break;
      }
      case 0x03: {
        const offset = num();
        const len = num();
        if (offset === null || len === null || BigInt(at) + len > BigInt(p.length)) return fail();
        eliciting = true;
        events.push(`stream ${offset} ${hex(p.subarray(at, at + Number(len)))}`);
        at += Number(len);
        break;
      }
      case 0x04: {
        const len = num();
        if (len === null || BigInt(at) + len > BigInt(p.length)) return fail();
        eliciting = true;
        events.push(`datagram ${hex(p.subarray(at, at + Number(len)))}`);
        at += Number(len);
        break;
      }
      case 0x05: {
        const code = num();
        const len = num();
        if (code === null || len === null || len > BigInt(MAX_CLOSE_REASON_BYTES) || BigInt(at) + len > BigInt(p.length)) return fail();
        events.push(`close ${code} ${JSON.stringify(utf8.decode(p.subarray(at, at + Number(len))))}`);
        at += Number(len);
        break;
      }
      case 0x06:
      case 0x07:
        if (at + PATH_DATA_LENGTH > p.length) return fail();
        eliciting = true;
        events.push(`${type === 0x06 ? "challenge" : "response"} ${hex(p.subarray(at, at + PATH_DATA_LENGTH))}`);
        at += PATH_DATA_LENGTH;
        break;
      case 0x08: {
        // NEW_CONNECTION_ID: sequence, then a CID_LENGTH-byte CID and a 16-byte reset token (§4).
        const seq = num();
        if (seq === null || at + CID_LENGTH + RESET_TOKEN_LENGTH > p.length) return fail();
        eliciting = true;
        events.push(`ncid ${seq} ${hex(p.subarray(at, at + CID_LENGTH))} ${hex(p.subarray(at + CID_LENGTH, at + CID_LENGTH + RESET_TOKEN_LENGTH))}`);
        at += CID_LENGTH + RESET_TOKEN_LENGTH;
        break;
      }
      case 0x09: {
        const seq = num();
        if (seq === null) return fail();
        eliciting = true;
        events.push(`retire ${seq}`);
        break;
      }
      case 0x0a:
        // IMMEDIATE_ACK: no fields, ack-eliciting (§4).
        eliciting = true;
        events.push("immediate-ack");
        break;
      default:
        return fail();
    }
  }
  return { ok: true, events, eliciting };
}

/** Records walkFrames' callbacks as the reference's event strings, checking what each view may be. */
class RecordingVisitor implements FrameVisitor {
  events: string[] = [];
  payload: Uint8Array = new Uint8Array(0);

  private inPayload(d: Uint8Array): void {
    check(d.buffer === this.payload.buffer && d.byteOffset >= this.payload.byteOffset && d.byteOffset + d.length <= this.payload.byteOffset + this.payload.length, "a frame view reaches outside the payload");
  }
  onPing(): void {
    this.events.push("ping");
  }
  onImmediateAck(): void {
    this.events.push("immediate-ack");
  }
  onAck(ack: AckFrame): void {
    check(ack.count >= 1 && ack.count <= MAX_ACK_RANGES + 1, `ACK with ${ack.count} ranges`);
    const ranges: string[] = [];
    for (let i = 0; i < ack.count; i++) {
      const lo = ack.smallest[i]!;
      const hi = ack.largestOf[i]!;
      check(Number.isSafeInteger(lo) && Number.isSafeInteger(hi) && lo >= 0 && lo <= hi, `ACK range ${lo}-${hi}`);
      if (i > 0) check(hi < ack.smallest[i - 1]! - 1, "ACK ranges overlap or touch");
      ranges.push(`${lo}-${hi}`);
    }
    check(ack.largestOf[0] === ack.largest, "ACK largest is not the top of its first range");
    this.events.push(`ack ${ack.largest} ${ack.delayUs} ${ranges.join(",")}`);
  }
  onStream(offset: number, data: Uint8Array): void {
    this.inPayload(data);
    check(Number.isSafeInteger(offset) && offset >= 0, `stream offset ${offset}`);
    this.events.push(`stream ${offset} ${hex(data)}`);
  }
  onDatagram(data: Uint8Array): void {
    this.inPayload(data);
    this.events.push(`datagram ${hex(data)}`);
  }
  onClose(code: number, reason: string): void {
    check(Number.isSafeInteger(code) && code >= 0, `close code ${code}`);
    this.events.push(`close ${code} ${JSON.stringify(reason)}`);
  }
  onPathChallenge(data: Uint8Array): void {
    this.inPayload(data);
    check(data.length === PATH_DATA_LENGTH, "challenge of the wrong length");
    this.events.push(`challenge ${hex(data)}`);
  }
  onPathResponse(data: Uint8Array): void {
    this.inPayload(data);
    check(data.length === PATH_DATA_LENGTH, "response of the wrong length");
    this.events.push(`response ${hex(data)}`);
  }
  onNewConnectionId(seq: number, cid: Uint8Array, token: Uint8Array): void {
    this.inPayload(cid);
    this.inPayload(token);
    check(Number.isSafeInteger(seq) && seq >= 0 && cid.length === CID_LENGTH && token.length === RESET_TOKEN_LENGTH, "NEW_CONNECTION_ID fields");
    this.events.push(`ncid ${seq} ${hex(cid)} ${hex(token)}`);
  }
  onRetireConnectionId(seq: number): void {
    check(Number.isSafeInteger(seq) && seq >= 0, `RETIRE_CONNECTION_ID sequence ${seq}`);
    this.events.push(`retire ${seq}`);
  }
}

// ------------------------------------------------------------------------------------------ frames target

const FRAMES_MODE = { Walk: 0, Writers: 1, Varint: 2 } as const;

class FramesEpisode implements FuzzEpisode {
  private readonly ack = new AckFrame();
  private readonly flags = { ackEliciting: false };
  private readonly visitor = new RecordingVisitor();
  private readonly view: PeerView;
  private readonly framePool: Frame[][] = [];
  private readonly pool = new SplicePool(16);
  private left: number;

  constructor(
    private readonly rng: Rng,
    budget: number,
  ) {
    this.left = budget;
    this.view = {
      targetRole: rng.chance(0.5) ? "server" : "client",
      targetSent: rng.chance(0.2) ? 0 : rng.range(1, 100_000),
      stream: new FuzzStream(new Rng("stream", rng.u32()), 64 * 1024, 16 * 1024),
      delivered: new DeliveredRanges(),
      window: rng.pick([8 * 1024, 1 << 20]),
      challenges: [rng.bytes(PATH_DATA_LENGTH)],
      cidSeqs: [0, 1],
      nextCidSeq: 2,
      packetCidSeq: -1,
      calm: false,
    };
  }

  generate(): Uint8Array | null {
    if (this.left-- <= 0) return null;
    const rng = this.rng;
    const r = rng.float();
    if (r < 0.08) return concat([Uint8Array.of(FRAMES_MODE.Writers), rng.bytes(8)]);
    if (r < 0.14) return concat([Uint8Array.of(FRAMES_MODE.Varint), rng.chance(0.5) ? rng.bytes(rng.size(64)) : encodeVarint(interestingVarint(rng), rng.pick([undefined, 2, 4, 8] as const))]);
    let p: Uint8Array;
    if (r < 0.24) {
      p = rng.bytes(rng.size(1200));
    } else {
      let frames = randomFrames(rng, this.view, 1150);
      if (rng.chance(0.4)) frames = mutateFrames(rng, frames, this.framePool);
      this.framePool.push(frames);
      if (this.framePool.length > 16) this.framePool.shift();
      p = encodeFrames(frames, rng);
      if (rng.chance(0.3)) p = mutateBytes(rng, p, this.pool.items, 4096);
    }
    this.pool.add(p);
    return concat([Uint8Array.of(FRAMES_MODE.Walk), p]);
  }

  execute(input: Uint8Array): void {
    switch (input[0]) {
      case FRAMES_MODE.Writers:
        return this.writers(recipeRng(input));
      case FRAMES_MODE.Varint:
        return varints(input.subarray(1));
      default:
        return this.walk(input.subarray(1));
    }
  }

  private walk(p: Uint8Array): void {
    const plain = walkFrames(p, null, this.ack, this.flags);
    const elicitingPlain = this.flags.ackEliciting;
    const v = this.visitor;
    v.events = [];
    v.payload = p;
    const visited = walkFrames(p, v, this.ack, this.flags);
    check(plain === visited, `walkFrames returned ${plain} without a visitor, ${visited} with one`);
    const ref = referenceFrames(p);
    check(ref.ok === plain, () => `walkFrames says ${plain ? "valid" : "malformed"}, the reference (docs/protocol.md §4) says ${ref.ok ? "valid" : "malformed"}`);
    if (plain) {
      check(elicitingPlain === this.flags.ackEliciting && elicitingPlain === ref.eliciting, () => `ack-eliciting ${elicitingPlain}/${this.flags.ackEliciting}, reference ${ref.eliciting}`);
    }
    check(v.events.length === ref.events.length, () => `${v.events.length} frames visited, reference ${ref.events.length}`);
    for (let i = 0; i < ref.events.length; i++) {
      check(v.events[i] === ref.events[i], () => `frame ${i}: walkFrames "${v.events[i]!.slice(0, 200)}", reference "${ref.events[i]!.slice(0, 200)}"`);
    }
  }

  /** Every frame writer, in a random mix, decoded back by walkFrames: what was written comes out. */
  private writers(rng: Rng): void {
    const buf = new Uint8Array(4096);
    let off = 0;
    const want: string[] = [];
    const n = rng.range(1, 6);
    for (let i = 0; i < n && off < 2048; i++) {
      switch (rng.int(7)) {
        case 5: {
          const seq = rng.chance(0.8) ? rng.int(1000) : safeInteresting(rng);
          const cid = rng.bytes(CID_LENGTH);
          const token = rng.bytes(RESET_TOKEN_LENGTH);
          const o = writeNewConnectionIdFrame(buf, off, seq, cid, token);
          check(o - off === newConnectionIdFrameSize(seq), "newConnectionIdFrameSize disagrees with writeNewConnectionIdFrame");
          off = o;
          want.push(`ncid ${seq} ${hex(cid)} ${hex(token)}`);
          break;
        }
        case 6: {
          const seq = rng.chance(0.8) ? rng.int(1000) : safeInteresting(rng);
          const o = writeRetireConnectionIdFrame(buf, off, seq);
          check(o - off === retireConnectionIdFrameSize(seq), "retireConnectionIdFrameSize disagrees with writeRetireConnectionIdFrame");
          off = o;
          want.push(`retire ${seq}`);
          break;
        }
        case 0: {
          // Disjoint ascending [start, end) ranges, separated by at least one missing number.
          const count = rng.range(1, 40);
          const starts: number[] = [];
          const ends: number[] = [];
          let at = rng.chance(0.5) ? rng.int(1000) : rng.int(2 ** 40);
          for (let k = 0; k < count; k++) {
            const s = at;
            const e = s + rng.range(1, rng.chance(0.8) ? 4 : 5000);
            starts.push(s);
            ends.push(e);
            at = e + rng.range(1, rng.chance(0.8) ? 4 : 100_000);
          }
          const room = rng.chance(0.5) ? 2048 : rng.range(1, 64);
          const delay = rng.chance(0.9) ? rng.int(100_000) : safeInteresting(rng);
          const o = writeAckFrame(buf, off, room, starts, ends, delay);
          check(o - off <= room, `writeAckFrame wrote ${o - off} bytes into ${room}`);
          if (o === off) break; // nothing fit: fine when room is tiny
          const largest = ends[count - 1]! - 1;
          const kept = [`${starts[count - 1]}-${largest}`];
          // walkFrames lists ranges highest first; the writer keeps as many of the highest as fit.
          const ref = referenceFrames(buf.subarray(off, o));
          check(ref.ok && ref.events.length === 1, "writeAckFrame output does not parse as one ACK");
          const got = ref.events[0]!.split(" ")[3]!.split(",");
          check(got.length <= MAX_ACK_RANGES + 1, `${got.length} ranges written`);
          for (let k = 1; k < got.length; k++) kept.push(`${starts[count - 1 - k]}-${ends[count - 1 - k]! - 1}`);
          const line = `ack ${largest} ${delay} ${kept.join(",")}`;
          check(ref.events[0] === line, () => `writeAckFrame round trip: wrote ${line.slice(0, 200)}, read ${ref.events[0]!.slice(0, 200)}`);
          // 33 ranges of 8-byte varints take under 600 bytes: with 2048 bytes of room every range that may go, goes.
          if (room >= 1024) check(got.length === Math.min(count, MAX_ACK_RANGES + 1), `writeAckFrame kept ${got.length} of ${count} ranges with ${room} bytes of room`);
          want.push(line);
          off = o;
          break;
        }
        case 1: {
          const offset = rng.chance(0.7) ? rng.int(1 << 20) : Math.min(Number.MAX_SAFE_INTEGER - 1200, safeInteresting(rng));
          const data = rng.bytes(rng.size(1000));
          const at = writeStreamFrameHeader(buf, off, offset, data.length);
          check(at - off === streamFrameOverhead(offset, data.length), "streamFrameOverhead disagrees with writeStreamFrameHeader");
          buf.set(data, at);
          off = at + data.length;
          want.push(`stream ${offset} ${hex(data)}`);
          break;
        }
        case 2: {
          const data = rng.bytes(rng.size(1000));
          const o = writeDatagramFrame(buf, off, data);
          check(o - off === datagramFrameOverhead(data.length) + data.length, "datagramFrameOverhead disagrees with writeDatagramFrame");
          off = o;
          want.push(`datagram ${hex(data)}`);
          break;
        }
        case 3: {
          const text = randomText(rng);
          const reason = encodeCloseReason(text);
          const full = new TextEncoder().encode(text);
          check(reason.length <= MAX_CLOSE_REASON_BYTES, `close reason of ${reason.length} bytes`);
          check(hex(full.subarray(0, reason.length)) === hex(reason), "close reason is not a prefix of the UTF-8 text");
          check(reason.length === full.length || reason.length === 0 || (full[reason.length]! & 0xc0) !== 0x80, "close reason cut inside a UTF-8 sequence");
          const code = rng.chance(0.8) ? rng.pick([1000, 1002, 1006, 4000, 65535]) : rng.int(2 ** 32);
          off = writeCloseFrame(buf, off, code, reason);
          want.push(`close ${code} ${JSON.stringify(utf8.decode(reason))}`);
          break;
        }
        default: {
          const type = rng.chance(0.5) ? FrameType.PathChallenge : FrameType.PathResponse;
          const data = rng.bytes(PATH_DATA_LENGTH);
          off = writePathFrame(buf, off, type, data);
          want.push(`${type === FrameType.PathChallenge ? "challenge" : "response"} ${hex(data)}`);
        }
      }
    }
    const p = buf.subarray(0, off);
    const v = this.visitor;
    v.events = [];
    v.payload = p;
    check(walkFrames(p, v, this.ack, this.flags), "the writers' output does not parse");
    check(v.events.join("\n") === want.join("\n"), "the writers' output does not read back as written");
  }
}

/** An interesting varint value that the writers accept (at most 2^53 - 1). */
function safeInteresting(rng: Rng): number {
  const v = BigInt(rng.pick(INTERESTING_VARINTS));
  return Number(v > SAFE ? SAFE : v);
}

/** Text with multi-byte characters and lone surrogates, sometimes longer than a close reason may be. */
function randomText(rng: Rng): string {
  const pieces = ["a", "é", "€", "𝄞", "\ud800", "\udfff", " ", "\u0000", "漢"];
  let s = "";
  const n = rng.chance(0.5) ? rng.int(20) : rng.int(400);
  for (let i = 0; i < n; i++) s += rng.pick(pieces);
  return s;
}

/** readVarint at every offset with a random end, against the BigInt reader; and writeVarint back. */
function varints(b: Uint8Array): void {
  const seed = b.length > 0 ? b[0]! : 0;
  for (let at = 0; at <= b.length; at++) {
    const end = Math.min(b.length, at + ((seed + at) % 9));
    const cur = { pos: at };
    const got = readVarint(b, cur, end);
    const ref = refVarint(b, at, end);
    if (ref === null || ref.v > SAFE) {
      check(got === -1 && cur.pos === at, () => `readVarint at ${at} (end ${end}) gave ${got}, expected -1`);
      continue;
    }
    check(got === Number(ref.v) && cur.pos === ref.next, () => `readVarint at ${at} gave ${got} (next ${cur.pos}), expected ${ref.v} (next ${ref.next})`);
    const out = new Uint8Array(8);
    const n = writeVarint(out, 0, got);
    check(n === varintSize(got), "varintSize disagrees with writeVarint");
    check(hex(out.subarray(0, n)) === hex(encodeVarint(got)), `writeVarint(${got}) is not the minimal encoding`);
    const back = { pos: 0 };
    check(readVarint(out, back, n) === got && back.pos === n, `writeVarint(${got}) does not read back`);
  }
}

export const framesTarget: FuzzTarget = {
  name: "frames",
  what: "walkFrames (validate-only and visiting) vs a reference decoder from docs/protocol.md; frame writers round-tripped; varints",
  episodeInputs: 1000,
  start: (rng) => new FramesEpisode(rng, 1000),
};

// ------------------------------------------------------------------------------------------ header target

const HEADER_MODE = { Parse: 0, RoundTrip: 1, PacketNumber: 2 } as const;

/** docs/protocol.md §3 and §3.1 step 1: the header as the reference reads it, or null when malformed. */
function referenceHeader(b: Uint8Array): ParsedHeader | null {
  if (b.length < 1 + CID_LENGTH + 1 + 1 + AEAD_TAG_LENGTH || b.length > MAX_DATAGRAM_SIZE) return null;
  const f = b[0]!;
  const type = f >> 6;
  if (type !== 0b01 && type !== 0b10) return null;
  if ((f & 0b0001_1100) !== 0) return null;
  const pnLength = (f & 3) + 1;
  const headerLength = 1 + CID_LENGTH + pnLength;
  if (b.length < headerLength + 1 + AEAD_TAG_LENGTH) return null;
  let pn = 0;
  for (let i = 0; i < pnLength; i++) pn = pn * 256 + b[1 + CID_LENGTH + i]!;
  return { type: type as PacketType, keyPhase: ((f >> 5) & 1) as 0 | 1, pnLength, truncatedPn: pn, headerLength };
}

/** RFC 9000 Appendix A.3 in BigInt, with this implementation's packet number limit of 2^53. */
function referenceDecodePn(largest: number, truncated: number, bits: number): bigint {
  const expected = BigInt(largest) + 1n;
  const win = 1n << BigInt(bits);
  const hwin = win / 2n;
  const mask = win - 1n;
  const candidate = (expected & ~mask) | BigInt(truncated);
  if (candidate <= expected - hwin && candidate < (1n << 53n) - win) return candidate + win;
  if (candidate > expected + hwin && candidate >= win) return candidate - win;
  return candidate;
}

class HeaderEpisode implements FuzzEpisode {
  private readonly out: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  private readonly pool = new SplicePool(16);
  private left: number;

  constructor(
    private readonly rng: Rng,
    budget: number,
  ) {
    this.left = budget;
  }

  generate(): Uint8Array | null {
    if (this.left-- <= 0) return null;
    const rng = this.rng;
    const r = rng.float();
    if (r < 0.15) return concat([Uint8Array.of(HEADER_MODE.RoundTrip), rng.bytes(8)]);
    if (r < 0.35) return concat([Uint8Array.of(HEADER_MODE.PacketNumber), rng.bytes(8)]);
    let d: Uint8Array;
    if (r < 0.45) d = rng.bytes(rng.size(1300));
    else {
      const pnLength = rng.range(1, 4);
      d = rng.bytes(rng.chance(0.7) ? rng.range(1 + CID_LENGTH + pnLength + AEAD_TAG_LENGTH - 1, 1 + CID_LENGTH + pnLength + AEAD_TAG_LENGTH + 2) : rng.range(20, MAX_DATAGRAM_SIZE + 2));
      if (d.length > 0) d[0] = (rng.pick([PacketType.Data, PacketType.Bind]) << 6) | (rng.int(2) << 5) | (pnLength - 1);
      if (rng.chance(0.5)) d = mutateBytes(rng, d, this.pool.items, 1300);
    }
    this.pool.add(d);
    return concat([Uint8Array.of(HEADER_MODE.Parse), d]);
  }

  execute(input: Uint8Array): void {
    if (input[0] === HEADER_MODE.RoundTrip) return this.roundTrip(recipeRng(input));
    if (input[0] === HEADER_MODE.PacketNumber) return packetNumbers(recipeRng(input));
    const d = input.subarray(1);
    const ok = parseHeader(d, this.out);
    const ref = referenceHeader(d);
    check(ok === (ref !== null), () => `parseHeader says ${ok}, the reference (docs/protocol.md §3) says ${ref !== null}`);
    if (ok && ref) {
      const o = this.out;
      check(
        o.type === ref.type && o.keyPhase === ref.keyPhase && o.pnLength === ref.pnLength && o.truncatedPn === ref.truncatedPn && o.headerLength === ref.headerLength,
        () => `parseHeader ${JSON.stringify(o)}, reference ${JSON.stringify(ref)}`,
      );
    }
  }

  private roundTrip(rng: Rng): void {
    const cid = rng.bytes(CID_LENGTH);
    const pnLength = rng.range(1, 4);
    const pn = rng.chance(0.5) ? rng.int(256 ** pnLength) : rng.int(2 ** 53);
    const type = rng.pick([PacketType.Data, PacketType.Bind]);
    const keyPhase = rng.int(2) as 0 | 1;
    const total = rng.range(1 + CID_LENGTH + pnLength + AEAD_TAG_LENGTH + 1, MAX_DATAGRAM_SIZE);
    const buf = rng.bytes(total);
    const len = writeHeader(buf, type, keyPhase, cid, pn, pnLength);
    check(len === 1 + CID_LENGTH + pnLength, `writeHeader returned ${len}`);
    check(parseHeader(buf, this.out), "parseHeader refuses what writeHeader wrote");
    const o = this.out;
    check(o.type === type && o.keyPhase === keyPhase && o.pnLength === pnLength && o.headerLength === len, "header fields do not read back");
    check(o.truncatedPn === pn % 256 ** pnLength, `truncated packet number ${o.truncatedPn}, wrote ${pn} in ${pnLength} bytes`);
    check(cidEquals(buf, 1, cid), "cidEquals misses the written CID");
    const other = cid.slice();
    other[rng.int(CID_LENGTH)]! ^= 1 << rng.int(8);
    check(!cidEquals(buf, 1, other), "cidEquals matches a different CID");
    check(MIN_PACKET_LENGTH === 1 + CID_LENGTH + 1 + 1 + AEAD_TAG_LENGTH, "MIN_PACKET_LENGTH");
  }
}

/** decodePacketNumber against the BigInt reference; and it recovers what packetNumberLength truncated. */
function packetNumbers(rng: Rng): void {
  for (let i = 0; i < 16; i++) {
    const bits = rng.pick([8, 16, 24, 32]);
    const largest = rng.chance(0.1) ? -1 : rng.chance(0.7) ? rng.int(1 << 20) : rng.chance(0.5) ? rng.int(2 ** 53 - 1) : Number.MAX_SAFE_INTEGER - rng.int(2 ** bits * 2);
    const truncated = rng.int(2 ** bits);
    const got = decodePacketNumber(largest, truncated, bits);
    const ref = referenceDecodePn(largest, truncated, bits);
    // Compared where float arithmetic is exact (candidate + window below 2^53). Above that the result may be
    // off by a few: harmless, since no packet number there can be opened (PacketCipher.open refuses
    // numbers above 2^53 - 1, and a wrong one fails the AEAD), and only the peer's own session gets there.
    if (BigInt(largest) + 1n + (2n << BigInt(bits)) <= SAFE) check(BigInt(got) === ref, () => `decodePacketNumber(${largest}, ${truncated}, ${bits}) = ${got}, RFC 9000 A.3 gives ${ref}`);
    // The sender's side: a packet number truncated with packetNumberLength decodes back exactly.
    const acked = rng.chance(0.2) ? -1 : rng.int(1 << 30);
    const pn = acked + 1 + rng.int(rng.chance(0.8) ? 1000 : 1 << 24);
    const n = packetNumberLength(pn, acked);
    const recv = pn - 1 - rng.int(Math.max(1, pn - acked));
    const back = decodePacketNumber(recv, pn % 256 ** n, n * 8);
    check(back === pn, () => `pn ${pn} sent in ${n} bytes (largest acked ${acked}) decodes as ${back} at a receiver whose largest is ${recv}`);
  }
}

export const headerTarget: FuzzTarget = {
  name: "header",
  what: "parseHeader vs a reference from docs/protocol.md §3; writeHeader round trips; decodePacketNumber vs RFC 9000 A.3",
  episodeInputs: 1000,
  start: (rng) => new HeaderEpisode(rng, 1000),
};
