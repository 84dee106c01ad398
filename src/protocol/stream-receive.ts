import { defaultAllocator, type Allocator } from "./allocator.js";
import { RangeSet } from "./range-set.js";

/** Why the receiver refused a peer's stream data: both are protocol violations by an authenticated peer. */
export type StreamError = "flow-control" | "message-too-large";

/**
 * The receiving half of the reliable-ordered channel. Out-of-order bytes wait in disjoint segments
 * (bounded by the window the peer was given); contiguous bytes are parsed into messages at once and
 * each complete message is delivered exactly once, in order.
 */
export class StreamReceiver {
  /** Bytes below this were consumed. */
  private readOffset = 0;
  /** Out-of-order segments by start offset; disjoint, covering exactly `pending`. */
  private readonly segments = new Map<number, Uint8Array>();
  private readonly pending = new RangeSet();
  bufferedBytes = 0;
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
  ) {}

  /** Bytes held: out-of-order pieces and the partly reassembled message. */
  get heldBytes(): number {
    return this.bufferedBytes + (this.body ? this.body.length : 0);
  }

  /** Handles one STREAM frame. Returns an error for a violation; duplicates are ignored. */
  onData(offset: number, data: Uint8Array): StreamError | null {
    const end = offset + data.length;
    if (end > this.readOffset + this.window) return "flow-control";
    if (end <= this.readOffset) return null;
    // Walk the parts of [from, end) not already held, in order.
    let pos = Math.max(offset, this.readOffset);
    let i = 0;
    while (pos < end) {
      // Draining may have consumed past `pos`: those bytes are delivered already.
      if (pos < this.readOffset) {
        pos = this.readOffset;
        if (pos >= end) break;
      }
      while (i < this.pending.size && this.pending.ends[i]! <= pos) i++;
      let gapEnd = end;
      if (i < this.pending.size && this.pending.starts[i]! <= pos) {
        pos = this.pending.ends[i]!; // skip bytes we already hold
        continue;
      }
      if (i < this.pending.size && this.pending.starts[i]! < end) gapEnd = this.pending.starts[i]!;
      const part = data.subarray(pos - offset, gapEnd - offset);
      if (pos === this.readOffset) {
        const err = this.consume(part);
        if (err) return err;
        const err2 = this.drain();
        if (err2) return err2;
        i = 0;
      } else {
        const copy = this.alloc(part.length);
        copy.set(part);
        this.segments.set(pos, copy);
        this.pending.add(pos, gapEnd);
        this.bufferedBytes += part.length;
        i = 0; // the set changed shape; rescan from the start (ranges are few)
      }
      pos = gapEnd;
    }
    return null;
  }

  private drain(): StreamError | null {
    for (;;) {
      const seg = this.segments.get(this.readOffset);
      if (!seg) return null;
      this.segments.delete(this.readOffset);
      this.pending.remove(this.readOffset, this.readOffset + seg.length);
      this.bufferedBytes -= seg.length;
      const err = this.consume(seg);
      if (err) return err;
    }
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
