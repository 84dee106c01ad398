import { defaultAllocator, type Allocator } from "./allocator.js";

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
 * (flow control: all lie below readOffset + window) and in count (`maxPieces`).
 */
export class StreamReceiver {
  /** Bytes below this were consumed. */
  private readOffset = 0;
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
  ) {
    this.maxPieces = maxPieces(window);
  }

  /** Out-of-order pieces held now. */
  get pieceCount(): number {
    return this.pieces.length;
  }

  /** Bytes charged for out-of-order pieces (at least MIN_PIECE_CHARGE each). */
  get bufferedBytes(): number {
    return this.charged;
  }

  /** Bytes held: out-of-order pieces (buffers with their slack, at least the minimum each) and the partial message. */
  get heldBytes(): number {
    return this.capacity + (this.body ? this.body.length : 0);
  }

  /** Handles one STREAM frame. Returns an error for a violation; duplicates are ignored. */
  onData(offset: number, data: Uint8Array): StreamError | null {
    const end = offset + data.length;
    if (end > this.readOffset + this.window) return "flow-control";
    if (end <= this.readOffset) return null;
    if (offset > this.readOffset) return this.hold(offset, data);
    // In order (perhaps overlapping what was consumed): parse it, then whatever it made contiguous.
    const err = this.consume(offset === this.readOffset ? data : data.subarray(this.readOffset - offset));
    return err ?? this.drain();
  }

  /** Parses held pieces that the read offset has reached. */
  private drain(): StreamError | null {
    const pieces = this.pieces;
    let n = 0;
    let err: StreamError | null = null;
    while (n < pieces.length && pieces[n]!.start <= this.readOffset) {
      const p = pieces[n++]!;
      this.release(p);
      const pEnd = p.start + p.len;
      if (pEnd <= this.readOffset || err) continue; // wholly consumed already (or we are failing anyway)
      err = this.consume(p.buf.subarray(p.off + (this.readOffset - p.start), p.off + p.len));
    }
    if (n > 0) pieces.splice(0, n);
    return err;
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
      const before = Math.min(slack >>> 2, ns - this.readOffset);
      const after = Math.max(0, Math.min(slack - before, this.readOffset + this.window - ne));
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

  /** Parses contiguous stream bytes into messages. */
  private consume(bytes: Uint8Array): StreamError | null {
    this.readOffset += bytes.length;
    let p = 0;
    while (p < bytes.length) {
      if (this.body === null) {
        if (this.prefixHave === 0) this.prefixNeed = 1 << (bytes[p]! >>> 6);
        while (this.prefixHave < this.prefixNeed && p < bytes.length) this.prefix[this.prefixHave++] = bytes[p++]!;
        if (this.prefixHave < this.prefixNeed) return null;
        let len = this.prefix[0]! & 0x3f;
        for (let k = 1; k < this.prefixNeed; k++) len = len * 256 + this.prefix[k]!;
        this.prefixHave = 0;
        if (len > this.maxMessageSize) return "message-too-large";
        if (len === 0) {
          this.deliver(this.alloc(0));
          continue;
        }
        if (bytes.length - p >= len) {
          // Whole message in this piece: one copy, since `bytes` may alias a reused buffer.
          const msg = this.alloc(len);
          msg.set(len === bytes.length ? bytes : bytes.subarray(p, p + len));
          this.deliver(msg);
          p += len;
          continue;
        }
        this.body = this.alloc(len);
        this.bodyFill = 0;
      }
      const n = Math.min(this.body.length - this.bodyFill, bytes.length - p);
      this.body.set(bytes.subarray(p, p + n), this.bodyFill);
      this.bodyFill += n;
      p += n;
      if (this.bodyFill === this.body.length) {
        const msg = this.body;
        this.body = null;
        this.deliver(msg);
      }
    }
    return null;
  }
}
