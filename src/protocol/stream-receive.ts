import { defaultAllocator, type Allocator } from "./allocator.js";

/** Messages up to this size are copied byte by byte: cheaper than making a view for `set`. */
const SMALL_COPY = 64;

/** Why the receiver refused a peer's stream data: each is a protocol violation by an authenticated peer. */
export type StreamError = "flow-control" | "message-too-large" | "too-many-pieces";

/**
 * Every out-of-order piece is charged at least this many bytes (in `heldBytes`): a tiny piece still
 * costs its objects. With flow control (bytes) and `maxPieces` (count), the charge of all held pieces
 * is at most receiveBufferBytes + MIN_PIECE_CHARGE * maxPieces. (A stricter rule, charge <= window,
 * would close honest senders of small packets when the window is small: the sender cannot see it.)
 */
export const MIN_PIECE_CHARGE = 64;

/**
 * Distinct out-of-order pieces held at most (contiguous pieces merge into one): 1024, or one per KiB
 * of a larger receive window. A piece boundary is a hole, a lost packet not yet repaired: with full
 * packets (over 1100 stream bytes) even losing every other one leaves fewer than window / 2200 holes,
 * and small packets are sent when the sender is app-limited, at rates where repairs (about one RTT)
 * keep the holes few. A peer that cuts the window into tiny pieces is closed instead: each frame
 * costs O(log pieces) to place and at most an O(pieces) array move.
 */
export function maxPieces(window: number): number {
  return Math.max(1024, Math.ceil(window / 1024));
}

/** A held out-of-order piece: stream bytes [start, start + len) are buf[off, off + len). */
interface Piece {
  start: number;
  len: number;
  buf: Uint8Array;
  off: number;
}

/**
 * The receiving half of the reliable-ordered channel. Contiguous bytes are parsed into messages at once
 * and each complete message is delivered exactly once, in order. Out-of-order bytes wait in a sorted
 * array of disjoint, non-adjacent pieces (binary search to insert; touching pieces merge into one
 * buffer that grows with some slack, so appends cost O(1) amortized). Held pieces are bounded in bytes
 * (flow control: all lie below the contiguous end + window) and in count (`maxPieces`).
 *
 * Delivery is bounded per turn (`beginTurn`): once `messagesPerTurn` messages were delivered, further
 * contiguous bytes wait, parked, for the next turn. Filling one hole can make a whole window (1 MiB of
 * one-byte messages: a million) contiguous at once; the owner gives the parked rest a turn per input
 * or timer, so other sessions run in between. A turn allows more messages than one packet can hold,
 * so in-order traffic alone never makes the parked bytes grow.
 */
export class StreamReceiver {
  /** End of the bytes received contiguously from offset 0: the base of the flow-control window. */
  private contiguousEnd = 0;
  /** Contiguous bytes not parsed yet (the turn's budget ran out): [start, contiguousEnd). */
  private parked: Piece | null = null;
  /** Messages this turn may still deliver. */
  private budget: number;
  private readonly pieces: Piece[] = [];
  /** Sum over pieces of max(len, MIN_PIECE_CHARGE). */
  private charged = 0;
  /** Sum over pieces of max(buf.length, MIN_PIECE_CHARGE): what the pieces hold in memory. */
  private capacity = 0;
  /** Most pieces held at once so far (diagnostics and tests). */
  peakPieces = 0;
  readonly maxPieces: number;
  // Message parser state: the length prefix (up to 8 bytes), then the body.
  private readonly prefix = new Uint8Array(8);
  private prefixHave = 0;
  private prefixNeed = 0;
  private body: Uint8Array | null = null;
  private bodyFill = 0;

  constructor(
    private readonly window: number,
    private readonly maxMessageSize: number,
    private readonly deliver: (message: Uint8Array) => void,
    private readonly alloc: Allocator = defaultAllocator,
    /** Messages delivered per turn at most (default: no limit, and no turns needed). */
    private readonly messagesPerTurn = Infinity,
  ) {
    this.maxPieces = maxPieces(window);
    this.budget = messagesPerTurn;
  }

  /** True while contiguous bytes wait for a turn (the owner must give one soon). */
  get hasParked(): boolean {
    return this.parked !== null;
  }

  /**
   * Starts a turn: a fresh delivery budget, spent first on parked bytes. `all`: no budget (a close
   * is about to be reported; what arrived before it is delivered first).
   */
  beginTurn(all = false): StreamError | null {
    this.budget = all ? Infinity : this.messagesPerTurn;
    const p = this.parked;
    if (p === null) return null;
    const r = this.parse(p.buf.subarray(p.off, p.off + p.len));
    if (typeof r === "string") return r;
    if (r === p.len) {
      this.capacity -= Math.max(p.buf.length, MIN_PIECE_CHARGE);
      this.parked = null;
    } else {
      p.off += r;
      p.len -= r;
      p.start += r;
    }
    return null;
  }

  /** Out-of-order pieces held now. */
  get pieceCount(): number {
    return this.pieces.length;
  }

  /** Bytes charged for out-of-order pieces (at least MIN_PIECE_CHARGE each). */
  get bufferedBytes(): number {
    return this.charged;
  }

  /** Bytes held: out-of-order and parked pieces (buffers with their slack, at least the minimum each) and the partial message. */
  get heldBytes(): number {
    return this.capacity + (this.body ? this.body.length : 0);
  }

  /** Handles one STREAM frame. Returns an error for a violation; duplicates are ignored. */
  onData(offset: number, data: Uint8Array): StreamError | null {
    return this.onDataAt(offset, data, 0, data.length);
  }

  /**
   * `onData` for the STREAM bytes `buf[at, at + len)`, such as a frame inside a packet's payload: bytes
   * in order are parsed where they lie, with no view of them made.
   */
  onDataAt(offset: number, buf: Uint8Array, at: number, len: number): StreamError | null {
    const end = offset + len;
    if (end > this.contiguousEnd + this.window) return "flow-control";
    if (end <= this.contiguousEnd) return null;
    if (offset > this.contiguousEnd) return this.hold(offset, buf.subarray(at, at + len));
    // In order (perhaps overlapping what was received): take it, then whatever it made contiguous.
    const err = this.advance(buf, at + (this.contiguousEnd - offset), at + len, null);
    return err ?? this.absorb();
  }

  /** Takes held pieces that the contiguous end has reached. */
  private absorb(): StreamError | null {
    const pieces = this.pieces;
    let n = 0;
    let err: StreamError | null = null;
    while (n < pieces.length && pieces[n]!.start <= this.contiguousEnd) {
      const p = pieces[n++]!;
      this.release(p);
      const pEnd = p.start + p.len;
      if (pEnd <= this.contiguousEnd || err) continue; // wholly received already (or we are failing anyway)
      const skip = this.contiguousEnd - p.start;
      p.off += skip;
      p.len -= skip;
      p.start += skip;
      err = this.advance(p.buf, p.off, p.off + p.len, p);
    }
    if (n > 0) pieces.splice(0, n);
    return err;
  }

  /**
   * Bytes `buf[from, to)` that extend the contiguous end: parsed now, or parked once the turn's budget is spent.
   * `owner`: the piece whose buffer holds them (adopted as the parked piece instead of a copy).
   */
  private advance(buf: Uint8Array, from: number, to: number, owner: Piece | null): StreamError | null {
    this.contiguousEnd += to - from;
    if (this.parked !== null) {
      this.appendParked(buf.subarray(from, to));
      return null;
    }
    const r = this.parse(buf, from, to);
    if (typeof r === "string") return r;
    if (r === to - from) return null;
    if (owner) {
      owner.off += r;
      owner.len -= r;
      owner.start += r;
      this.parked = owner;
    } else {
      // A copy: `buf` is the caller's (a packet's payload).
      const rest = this.alloc(to - from - r);
      rest.set(buf.subarray(from + r, to));
      this.parked = { start: this.contiguousEnd - rest.length, len: rest.length, buf: rest, off: 0 };
    }
    this.capacity += Math.max(this.parked.buf.length, MIN_PIECE_CHARGE);
    return null;
  }

  /** Appends to the parked bytes, compacting and growing its buffer by a quarter when full. */
  private appendParked(bytes: Uint8Array): void {
    const p = this.parked!;
    if (p.off + p.len + bytes.length > p.buf.length) {
      const need = p.len + bytes.length;
      const buf = this.alloc(need + Math.max(need >>> 2, MIN_PIECE_CHARGE));
      buf.set(p.buf.subarray(p.off, p.off + p.len));
      this.capacity += Math.max(buf.length, MIN_PIECE_CHARGE) - Math.max(p.buf.length, MIN_PIECE_CHARGE);
      p.buf = buf;
      p.off = 0;
    }
    p.buf.set(bytes, p.off + p.len);
    p.len += bytes.length;
  }

  private release(p: Piece): void {
    this.charged -= Math.max(p.len, MIN_PIECE_CHARGE);
    this.capacity -= Math.max(p.buf.length, MIN_PIECE_CHARGE);
  }

  private account(p: Piece): void {
    this.charged += Math.max(p.len, MIN_PIECE_CHARGE);
    this.capacity += Math.max(p.buf.length, MIN_PIECE_CHARGE);
  }

  /** Index of the first piece that ends at or after `v` (touches or follows it). */
  private firstEndingAtOrAfter(v: number): number {
    const pieces = this.pieces;
    let lo = 0;
    let hi = pieces.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const p = pieces[mid]!;
      if (p.start + p.len < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first piece from `i` on that starts after `v`. */
  private firstStartingAfter(v: number, i: number): number {
    const pieces = this.pieces;
    let lo = i;
    let hi = pieces.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pieces[mid]!.start <= v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Holds out-of-order bytes [start, start + data.length), merging with every piece they touch. */
  private hold(start: number, data: Uint8Array): StreamError | null {
    const pieces = this.pieces;
    const end = start + data.length;
    const i = this.firstEndingAtOrAfter(start);
    const j = this.firstStartingAfter(end, i); // pieces[i, j) overlap or touch [start, end)
    if (i === j) {
      // A new hole-separated piece.
      if (pieces.length >= this.maxPieces) return "too-many-pieces";
      const buf = this.alloc(data.length);
      buf.set(data);
      const p: Piece = { start, len: data.length, buf, off: 0 };
      pieces.splice(i, 0, p);
      this.account(p);
      if (pieces.length > this.peakPieces) this.peakPieces = pieces.length;
      return null;
    }
    const first = pieces[i]!;
    if (j === i + 1 && first.start <= start && end <= first.start + first.len) return null; // all held already
    const last = pieces[j - 1]!;
    const ns = Math.min(start, first.start);
    const ne = Math.max(end, last.start + last.len);
    const newLen = ne - ns;
    // The largest piece absorbs the others (small into large: each byte is copied O(log n) times at most).
    let base = first;
    for (let k = i; k < j; k++) {
      const p = pieces[k]!;
      this.release(p);
      if (p.len > base.len) base = p;
    }
    // The largest piece keeps its buffer when it has room on both sides; otherwise it moves to a new
    // one with slack (a quarter more, within the window), so growth costs O(1) per byte amortized.
    const front = base.start - ns; // bytes needed before base's data
    const back = ne - (base.start + base.len); // and after it
    if (base.off < front || base.off + base.len + back > base.buf.length) {
      const slack = Math.max(newLen >>> 2, MIN_PIECE_CHARGE);
      const before = Math.min(slack >>> 2, ns - this.contiguousEnd);
      const after = Math.max(0, Math.min(slack - before, this.contiguousEnd + this.window - ne));
      const buf = this.alloc(before + newLen + after);
      buf.set(base.buf.subarray(base.off, base.off + base.len), before + front);
      base.buf = buf;
      base.off = before + front;
    }
    const off = base.off - front; // where stream offset ns goes in base.buf
    base.buf.set(data, off + (start - ns));
    for (let k = i; k < j; k++) {
      const p = pieces[k]!;
      if (p !== base) base.buf.set(p.buf.subarray(p.off, p.off + p.len), off + (p.start - ns));
    }
    base.start = ns;
    base.len = newLen;
    base.off = off;
    pieces.splice(i, j - i, base);
    this.account(base);
    return null;
  }

  /**
   * Parses contiguous stream bytes (`bytes` from `from` to `to`) into messages. Returns how many bytes
   * it took: all of them, or fewer when the turn's budget ran out (it stops only where a message starts).
   */
  private parse(bytes: Uint8Array, from = 0, to = bytes.length): StreamError | number {
    let p = from;
    while (p < to) {
      if (this.body === null) {
        if (this.prefixHave === 0) {
          if (this.budget <= 0) return p - from;
          this.prefixNeed = 1 << (bytes[p]! >>> 6);
        }
        while (this.prefixHave < this.prefixNeed && p < to) this.prefix[this.prefixHave++] = bytes[p++]!;
        if (this.prefixHave < this.prefixNeed) return p - from;
        let len = this.prefix[0]! & 0x3f;
        for (let k = 1; k < this.prefixNeed; k++) len = len * 256 + this.prefix[k]!;
        this.prefixHave = 0;
        if (len > this.maxMessageSize) return "message-too-large";
        if (len === 0) {
          this.budget--;
          this.deliver(this.alloc(0));
          continue;
        }
        if (to - p >= len) {
          // Whole message in this piece: one copy, since `bytes` may alias a reused buffer.
          const msg = this.alloc(len);
          if (len === bytes.length) msg.set(bytes); // then p is 0 and to is the length
          else if (len <= SMALL_COPY) for (let k = 0; k < len; k++) msg[k] = bytes[p + k]!; // no view to allocate
          else msg.set(bytes.subarray(p, p + len));
          this.budget--;
          this.deliver(msg);
          p += len;
          continue;
        }
        this.body = this.alloc(len);
        this.bodyFill = 0;
      }
      const n = Math.min(this.body.length - this.bodyFill, to - p);
      this.body.set(bytes.subarray(p, p + n), this.bodyFill);
      this.bodyFill += n;
      p += n;
      if (this.bodyFill === this.body.length) {
        const msg = this.body;
        this.body = null;
        this.budget--;
        this.deliver(msg);
      }
    }
    return p - from;
  }
}
