/**
 * Structure-aware frames for bench/fuzz.ts: a model of every frame type (docs/protocol.md), an encoder
 * that can also write what a valid encoder never would (declared lengths that disagree with the data,
 * non-minimal or out-of-range varints), a generator of plausible frame sequences from what the fuzzing
 * peer knows about the session, and frame-level mutations (drop, duplicate, reorder, splice, field
 * values at varint boundaries, lengths off by one or huge, storms of one frame type).
 */
import { FrameType, MAX_ACK_RANGES, MAX_CLOSE_REASON_BYTES, PATH_DATA_LENGTH, RESET_TOKEN_LENGTH } from "../../src/protocol/frames.js";
import { RangeSet } from "../../src/protocol/range-set.js";
import { CID_LENGTH } from "../../src/protocol/version.js";
import { ByteWriter, concat, encodeVarint, interestingVarint } from "./fuzz-mutate.js";
import type { Rng } from "./fuzz-rng.js";


/** A varint field: a number, or a bigint for values above 2^53 (which the decoder must refuse). */
export type V = number | bigint;

/** One frame as the fuzzer models it. A `len` of null means "the data's real length". */
export type Frame =
  | { k: "padding"; n: number }
  | { k: "ping" }
  | { k: "immediateAck" }
  | { k: "ack"; largest: V; delay: V; count: V | null; first: V; ranges: [V, V][] }
  | { k: "stream"; offset: V; len: V | null; data: Uint8Array }
  | { k: "datagram"; len: V | null; data: Uint8Array }
  | { k: "close"; code: V; len: V | null; reason: Uint8Array }
  | { k: "path"; type: 0x06 | 0x07; data: Uint8Array }
  | { k: "newCid"; seq: V; cid: Uint8Array; token: Uint8Array }
  | { k: "retireCid"; seq: V }
  | { k: "raw"; bytes: Uint8Array };

/** Encodes `frames`; with `rng`, some varints get a longer (still valid) encoding than needed. */
export function encodeFrames(frames: readonly Frame[], rng: Rng | null): Uint8Array {
  const w = new ByteWriter(1280);
  const vi = (v: V): void => w.varint(v, rng && rng.chance(0.03) ? rng.pick([2, 4, 8] as const) : undefined);
  for (const f of frames) {
    switch (f.k) {
      case "padding":
        w.zeros(f.n);
        break;
      case "ping":
        w.byte(FrameType.Ping);
        break;
      case "immediateAck":
        w.byte(FrameType.ImmediateAck);
        break;
      case "ack":
        w.byte(FrameType.Ack);
        vi(f.largest);
        vi(f.delay);
        vi(f.count ?? f.ranges.length);
        vi(f.first);
        for (const [gap, len] of f.ranges) {
          vi(gap);
          vi(len);
        }
        break;
      case "stream":
        w.byte(FrameType.Stream);
        vi(f.offset);
        vi(f.len ?? f.data.length);
        w.bytes(f.data);
        break;
      case "datagram":
        w.byte(FrameType.Datagram);
        vi(f.len ?? f.data.length);
        w.bytes(f.data);
        break;
      case "close":
        w.byte(FrameType.Close);
        vi(f.code);
        vi(f.len ?? f.reason.length);
        w.bytes(f.reason);
        break;
      case "path":
        w.byte(f.type);
        w.bytes(f.data);
        break;
      case "newCid":
        w.byte(FrameType.NewConnectionId);
        vi(f.seq);
        w.bytes(f.cid);
        w.bytes(f.token);
        break;
      case "retireCid":
        w.byte(FrameType.RetireConnectionId);
        vi(f.seq);
        break;
      case "raw":
        w.bytes(f.bytes);
        break;
    }
  }
  return w.finish();
}

/**
 * The reliable stream the fuzzing peer sends: length-prefixed messages (docs/protocol.md), made on demand
 * up to `cap` bytes. Bytes at an offset never change, so retransmissions and overlaps agree.
 */
export class FuzzStream {
  private buf: Uint8Array;
  produced = 0;
  /** Everything below this was sent at least once, in order. */
  sentUpTo = 0;

  constructor(
    private readonly rng: Rng,
    private readonly cap: number,
    private readonly maxMessage: number,
  ) {
    this.buf = new Uint8Array(Math.min(cap, 16 * 1024));
  }

  /** Bytes [offset, offset + len): stream bytes where produced (making more up to the cap), random beyond. */
  slice(offset: number, len: number): Uint8Array {
    this.ensure(offset + len);
    if (offset + len <= this.produced) return this.buf.subarray(offset, offset + len);
    const out = this.rng.bytes(len);
    if (offset < this.produced) out.set(this.buf.subarray(offset, this.produced));
    return out;
  }

  private ensure(end: number): void {
    while (this.produced < end && this.produced < this.cap) {
      const r = this.rng.float();
      const size = r < 0.05 ? 0 : r < 0.97 ? this.rng.size(2000) : this.rng.range(2000, Math.max(2000, Math.min(this.maxMessage, 64 * 1024)));
      const body = Math.min(size, this.maxMessage);
      const prefix = encodeVarint(body);
      const need = this.produced + prefix.length + body;
      if (need > this.cap) {
        // No room for another whole message: fill to the cap with zero-length messages (one byte each).
        this.grow(this.cap);
        this.buf.fill(0, this.produced, this.cap);
        this.produced = this.cap;
        return;
      }
      this.grow(need);
      this.buf.set(prefix, this.produced);
      const at = this.produced + prefix.length;
      if (body <= 64) this.rng.fill(this.buf.subarray(at, at + body));
      else this.buf.fill(body & 0xff, at, at + body);
      this.produced = need;
    }
  }

  private grow(n: number): void {
    if (n <= this.buf.length) return;
    const next = new Uint8Array(Math.min(this.cap, Math.max(n, this.buf.length * 2)));
    next.set(this.buf.subarray(0, this.produced));
    this.buf = next;
  }
}

/**
 * Stream bytes the target accepted, as far as the fuzzing peer can tell (stream frames of its packets
 * that authenticated and parsed): `prefix` is where the target's in-order delivery has got to.
 */
export class DeliveredRanges {
  private readonly set = new RangeSet();

  get prefix(): number {
    return this.set.min() === 0 ? this.set.ends[0]! : 0;
  }

  /** End of the first hole above `prefix` (the next accepted range's start, else `sentUpTo`). */
  holeEnd(sentUpTo: number): number {
    const i = this.set.min() === 0 ? 1 : 0;
    return i < this.set.size ? this.set.starts[i]! : sentUpTo;
  }

  add(start: number, end: number): void {
    if (end <= start) return;
    this.set.add(start, end);
    // Only the low end matters for flow control; keep the set small.
    while (this.set.size > 64) this.set.remove(this.set.starts[this.set.size - 1]!, this.set.ends[this.set.size - 1]!);
  }
}

/** What the fuzzing peer knows when it makes frames for the target connection. */
export interface PeerView {
  /** The target's role; the fuzzing peer plays the other one. */
  targetRole: "client" | "server";
  /** Packet numbers the target has used so far: [0, targetSent). */
  targetSent: number;
  stream: FuzzStream;
  /** Stream bytes the target accepted. */
  delivered: DeliveredRanges;
  /** The target's receive window (receiveBufferBytes). */
  window: number;
  /** PATH_CHALLENGE data seen in the target's packets, newest last. */
  challenges: Uint8Array[];
  /** Sequence numbers of the CIDs the server side issued (seen in NEW_CONNECTION_ID frames, or issued to the target). */
  cidSeqs: number[];
  /** Next sequence number for a NEW_CONNECTION_ID the peer forges. */
  nextCidSeq: number;
  /** Sequence number of the CID the packet being made is addressed to (retiring it is a violation), or -1. */
  packetCidSeq: number;
  /**
   * A calm episode breaks the rules that end a session (ACKs of packets never sent, data beyond the
   * window, CID frames the wrong way or for unknown CIDs) only rarely, so its session lives long enough
   * to reach deep states; the others break them often.
   */
  calm: boolean;
}

const CLOSE_CODES: readonly V[] = [0, 1000, 1001, 1002, 1006, 1011, 4000, 4999, 65535, 65536, 2 ** 31, Number.MAX_SAFE_INTEGER, 2n ** 62n - 1n];

function ackFrame(rng: Rng, view: PeerView): Frame {
  const sent = view.targetSent;
  if (sent === 0 || rng.chance(view.calm ? 0.002 : 0.03)) {
    // Acknowledges what was never sent.
    const largest = rng.chance(0.5) ? sent + rng.int(16) : interestingVarint(rng);
    return { k: "ack", largest, delay: rng.int(100_000), count: null, first: 0, ranges: [] };
  }
  const largest = rng.chance(0.7) ? sent - 1 : rng.int(sent);
  let first = rng.chance(0.5) ? 0 : rng.int(Math.min(largest, 64) + 1);
  let smallest = largest - first;
  const ranges: [V, V][] = [];
  const want = rng.chance(0.7) ? rng.int(4) : rng.int(MAX_ACK_RANGES + 3);
  for (let i = 0; i < want; i++) {
    // Next range below: hi = smallest - gap - 2, lo = hi - len; keep lo >= 0 mostly.
    const gap = rng.chance(0.8) ? rng.int(4) : rng.int(64);
    const hi = smallest - gap - 2;
    if (hi < 0 && rng.chance(0.9)) break;
    const len = rng.int(Math.max(0, Math.min(hi, 16)) + 1);
    ranges.push([gap, len]);
    smallest = hi - len;
  }
  if (rng.chance(view.calm ? 0.001 : 0.02)) first = largest + 1; // a first range reaching below 0
  const delay = rng.chance(0.9) ? rng.int(50_000) : interestingVarint(rng);
  return { k: "ack", largest, delay, count: null, first, ranges };
}

function streamFrame(rng: Rng, view: PeerView, room: number): Frame {
  const s = view.stream;
  const d = view.delivered;
  const base = d.prefix;
  const limit = base + view.window;
  const r = rng.float();
  let offset: number;
  let len: number;
  // A real sender retransmits what was lost and never sends beyond the window: mostly do the same, so
  // sessions live long; the last few percent break flow control on purpose (the session then ends).
  const hole = (): void => {
    offset = base;
    len = Math.max(1, Math.min(rng.range(1, Math.max(1, room)), d.holeEnd(s.sentUpTo) - base));
  };
  if (r < 0.25 && base < s.sentUpTo) hole();
  else if (r < 0.75) {
    offset = s.sentUpTo;
    len = Math.min(rng.range(1, Math.max(1, room)), limit - s.sentUpTo);
    if (len > 0) s.sentUpTo += len;
    else hole();
  } else if (r < 0.85) {
    offset = s.sentUpTo > 0 ? rng.int(s.sentUpTo) : 0;
    len = rng.range(1, Math.max(1, Math.min(room, s.sentUpTo - offset || 1)));
  } else if (r < (view.calm ? 0.999 : 0.99)) {
    // Out of order, inside the window.
    offset = base + 1 + rng.int(Math.max(1, view.window - 64));
    len = rng.range(1, Math.max(1, Math.min(room, 64)));
  } else if (r < (view.calm ? 0.9997 : 0.997)) {
    // At the edge of the receive window, either side of it.
    len = rng.range(1, Math.max(1, Math.min(room, 32)));
    offset = Math.max(0, limit - len + rng.range(-2, 2));
  } else {
    const data = rng.bytes(rng.int(Math.min(room, 64) + 1));
    return { k: "stream", offset: interestingVarint(rng), len: null, data };
  }
  return { k: "stream", offset: offset!, len: null, data: s.slice(offset!, Math.min(len!, 1 << 16)) };
}

/** One random frame; `room` is a hint of the bytes left in the packet. */
export function randomFrame(rng: Rng, view: PeerView, room: number): Frame {
  // CLOSE is rare: it ends the episode, as does a CID frame sent the wrong way (NEW_CONNECTION_ID goes
  // server to client only, RETIRE_CONNECTION_ID client to server only), so those are rare too.
  const toServer = view.targetRole === "server";
  const wrongWay = view.calm ? 0.003 : 0.03;
  switch (rng.weighted(toServer ? [3, 6, 16, 30, 10, 0.1, 6, 6, wrongWay, 0.5, 2, 3] : [3, 6, 16, 30, 10, 0.1, 6, 6, 0.3, wrongWay, 2, 3])) {
    case 0:
      return { k: "padding", n: rng.range(1, rng.chance(0.8) ? 8 : Math.max(1, room)) };
    case 1:
      return { k: "ping" };
    case 2:
      return ackFrame(rng, view);
    case 3:
      return streamFrame(rng, view, room);
    case 4:
      return { k: "datagram", len: null, data: rng.bytes(rng.size(Math.max(0, Math.min(room, 1200)))) };
    case 5: {
      const reason = rng.chance(0.7) ? new TextEncoder().encode("fuzz".repeat(rng.int(8))) : rng.bytes(rng.size(MAX_CLOSE_REASON_BYTES + 8));
      return { k: "close", code: rng.pick(CLOSE_CODES), len: null, reason };
    }
    case 6:
      return { k: "path", type: FrameType.PathChallenge, data: rng.bytes(PATH_DATA_LENGTH) };
    case 7: {
      const known = view.challenges.length > 0 && rng.chance(0.7);
      return { k: "path", type: FrameType.PathResponse, data: known ? rng.pick(view.challenges) : rng.bytes(PATH_DATA_LENGTH) };
    }
    case 8: {
      // Only the server may send it: from a fuzzing server (client target) mostly plausible, else a violation.
      const seq = rng.chance(0.8) ? view.nextCidSeq++ : interestingVarint(rng);
      return { k: "newCid", seq, cid: rng.bytes(CID_LENGTH), token: rng.bytes(RESET_TOKEN_LENGTH) };
    }
    case 9: {
      const others = view.cidSeqs.filter((s) => s !== view.packetCidSeq);
      const seq = others.length > 0 && rng.chance(view.calm ? 0.99 : 0.9) ? rng.pick(others) : rng.chance(0.5) ? rng.int(8) : interestingVarint(rng);
      return { k: "retireCid", seq };
    }
    case 11:
      return { k: "immediateAck" };
    default: {
      const type = rng.chance(0.5) ? rng.range(0x0b, 0x3f) : rng.range(0x40, 0xff);
      return { k: "raw", bytes: concat([Uint8Array.of(type), rng.bytes(rng.size(32))]) };
    }
  }
}

/**
 * A plausible frame sequence for one packet of at most about `room` bytes: a few random frames, or
 * (sometimes) a storm of one kind that fills the packet (many ACKs, many challenges, 1-byte fragments).
 */
export function randomFrames(rng: Rng, view: PeerView, room: number): Frame[] {
  const frames: Frame[] = [];
  if (rng.chance(0.06)) {
    const kind = rng.int(4);
    let used = 0;
    for (let i = 0; i < 2000 && used < room - 12; i++) {
      let f: Frame;
      if (kind === 0) f = ackFrame(rng, view);
      else if (kind === 1) f = { k: "path", type: FrameType.PathChallenge, data: rng.bytes(PATH_DATA_LENGTH) };
      else if (kind === 2) {
        // 1-byte pieces with holes between them, across the window (the fragment attack).
        const offset = view.delivered.prefix + 1 + ((2 * i + (rng.chance(0.1) ? rng.int(view.window) : 0)) % Math.max(1, view.window - 1));
        f = { k: "stream", offset, len: null, data: view.stream.slice(offset, 1) };
      } else f = { k: "ping" };
      frames.push(f);
      used += kind === 0 ? 8 : kind === 1 ? 9 : kind === 2 ? 6 : 1;
    }
    return frames;
  }
  const n = rng.chance(0.5) ? rng.range(1, 3) : rng.range(1, 10);
  let used = 0;
  for (let i = 0; i < n && used < room; i++) {
    const f = randomFrame(rng, view, room - used);
    frames.push(f);
    used += approxSize(f);
  }
  return frames;
}

function approxSize(f: Frame): number {
  switch (f.k) {
    case "padding":
      return f.n;
    case "ping":
    case "immediateAck":
      return 1;
    case "ack":
      return 8 + 4 * f.ranges.length;
    case "stream":
      return 8 + f.data.length;
    case "datagram":
      return 3 + f.data.length;
    case "close":
      return 6 + f.reason.length;
    case "path":
      return 1 + f.data.length;
    case "newCid":
      return 2 + f.cid.length + f.token.length;
    case "retireCid":
      return 2;
    case "raw":
      return f.bytes.length;
  }
}

/** A length that disagrees with the data: off by one, zero, or at a varint boundary. */
function wrongLength(rng: Rng, real: number): V {
  switch (rng.int(4)) {
    case 0:
      return real + 1;
    case 1:
      return Math.max(0, real - 1);
    case 2:
      return real + rng.range(2, 2000);
    default:
      return interestingVarint(rng);
  }
}

/** One field of `f` set to a boundary value or a wrong length; returns a new frame. */
function mutateField(rng: Rng, f: Frame): Frame {
  switch (f.k) {
    case "padding":
    case "ping":
    case "immediateAck":
      return { k: "raw", bytes: Uint8Array.of(rng.int(256)) };
    case "ack": {
      const g = { ...f, ranges: f.ranges.map((r) => [...r] as [V, V]) };
      const which = rng.int(5);
      if (which === 0) g.largest = interestingVarint(rng);
      else if (which === 1) g.delay = interestingVarint(rng);
      else if (which === 2) g.count = rng.chance(0.5) ? g.ranges.length + rng.range(-1, 2) : interestingVarint(rng);
      else if (which === 3) g.first = interestingVarint(rng);
      else if (g.ranges.length > 0) g.ranges[rng.int(g.ranges.length)]![rng.int(2)] = interestingVarint(rng);
      if (typeof g.count === "number" && g.count < 0) g.count = 0;
      return g;
    }
    case "stream":
      return rng.chance(0.5) ? { ...f, len: wrongLength(rng, f.data.length) } : { ...f, offset: interestingVarint(rng) };
    case "datagram":
      return { ...f, len: wrongLength(rng, f.data.length) };
    case "close":
      return rng.chance(0.5) ? { ...f, len: wrongLength(rng, f.reason.length) } : { ...f, code: interestingVarint(rng) };
    case "path": {
      const n = rng.chance(0.5) ? PATH_DATA_LENGTH - 1 : PATH_DATA_LENGTH + 1;
      return { ...f, data: rng.bytes(n) };
    }
    case "newCid":
      return rng.chance(0.5) ? { ...f, seq: interestingVarint(rng) } : { ...f, cid: f.cid.subarray(0, rng.int(f.cid.length)) };
    case "retireCid":
      return { ...f, seq: interestingVarint(rng) };
    case "raw":
      return { k: "raw", bytes: concat([f.bytes, rng.bytes(rng.size(16))]) };
  }
}

/** 1 to 3 frame-level mutations of `frames` (a new list); `pool` holds frame lists of earlier packets. */
export function mutateFrames(rng: Rng, frames: readonly Frame[], pool: readonly (readonly Frame[])[]): Frame[] {
  let out = [...frames];
  const n = rng.range(1, 3);
  for (let i = 0; i < n; i++) {
    const at = out.length > 0 ? rng.int(out.length) : 0;
    switch (rng.int(7)) {
      case 0:
        if (out.length > 0) out.splice(at, 1);
        break;
      case 1:
        if (out.length > 0) {
          const times = rng.chance(0.8) ? 1 : rng.range(2, 100);
          for (let t = 0; t < times; t++) out.splice(at, 0, out[at]!);
        }
        break;
      case 2:
        if (out.length > 1) {
          const b = rng.int(out.length);
          [out[at], out[b]] = [out[b]!, out[at]!];
        }
        break;
      case 3:
        if (pool.length > 0) {
          const src = rng.pick(pool);
          if (src.length > 0) out.splice(rng.int(out.length + 1), 0, rng.pick(src));
        }
        break;
      case 4:
      case 5:
        if (out.length > 0) out[at] = mutateField(rng, out[at]!);
        break;
      default:
        out = out.slice(0, at); // drop the tail
        break;
    }
  }
  return out;
}
