import { RangeSet } from "./range-set.js";
import { defaultAllocator, type Allocator } from "./allocator.js";
import { varintSize, writeVarint } from "./varint.js";

const RELEASED = new Uint8Array(0);

/**
 * The sending half of the reliable-ordered channel: one byte stream in which each message is a varint
 * length followed by its bytes (QUIC's stream model). Bytes are kept until acknowledged; ranges carried
 * by a lost packet are queued for retransmission in new packets (frame-based retransmission).
 */
export class StreamSender {
  /** Queued chunks (length prefix + message, copied), their stream offsets and message sizes. */
  private chunks: Uint8Array[] = [];
  private chunkStarts: number[] = [];
  private chunkPayload: number[] = [];
  private head = 0;
  /** End of the stream: offset after the last queued byte. */
  private writeOffset = 0;
  /** Next byte never sent before. */
  private sendOffset = 0;
  /** Every byte below this is acknowledged. */
  private ackedFloor = 0;
  /** Acknowledged ranges above the floor. */
  private readonly acked = new RangeSet();
  /** Ranges declared lost and not yet resent (or acknowledged after all). */
  private readonly lost = new RangeSet();
  /** Message bytes (without prefixes) queued and not yet acknowledged. */
  queuedBytes = 0;
  /** Stream bytes sent again after a loss, for statistics. */
  retransmittedBytes = 0;

  constructor(private readonly alloc: Allocator = defaultAllocator) {}

  /** Queues a message, copying it: callers reuse their buffers. */
  push(message: Uint8Array): void {
    const prefix = varintSize(message.length);
    const chunk = this.alloc(prefix + message.length);
    writeVarint(chunk, 0, message.length);
    chunk.set(message, prefix);
    this.chunks.push(chunk);
    this.chunkStarts.push(this.writeOffset);
    this.chunkPayload.push(message.length);
    this.writeOffset += chunk.length;
    this.queuedBytes += message.length;
  }

  /** Stream offset below which every byte is acknowledged. */
  get ackedOffset(): number {
    return this.ackedFloor;
  }

  /** Bytes of queued chunks (prefixes included) not yet released: what this sender holds in memory. */
  get heldBytes(): number {
    return this.head < this.chunks.length ? this.writeOffset - this.chunkStarts[this.head]! : 0;
  }

  /** Offset after the last queued byte: no frame offset exceeds it. */
  get endOffset(): number {
    return this.writeOffset;
  }

  /** True when there are bytes to retransmit or new bytes the peer's window allows. */
  hasData(peerWindow: number): boolean {
    return !this.lost.isEmpty() || this.newLimit(peerWindow) > this.sendOffset;
  }

  /** True while any byte is unacknowledged. */
  hasUnacked(): boolean {
    return this.ackedFloor < this.writeOffset;
  }

  private newLimit(peerWindow: number): number {
    return Math.min(this.writeOffset, this.ackedFloor + peerWindow);
  }

  /**
   * Chooses the next segment of at most `maxLen` bytes: retransmissions first, then new bytes.
   * Returns its offset and stores its length in `out.len` (0 when there is nothing to send).
   */
  nextSegment(maxLen: number, peerWindow: number, out: { offset: number; len: number }): void {
    out.len = 0;
    if (maxLen <= 0) return;
    if (!this.lost.isEmpty()) {
      const s = this.lost.starts[0]!;
      const e = Math.min(this.lost.ends[0]!, s + maxLen);
      this.lost.remove(s, e);
      out.offset = s;
      out.len = e - s;
      this.retransmittedBytes += out.len;
      return;
    }
    const limit = this.newLimit(peerWindow);
    if (limit <= this.sendOffset) return;
    out.offset = this.sendOffset;
    out.len = Math.min(maxLen, limit - this.sendOffset);
    this.sendOffset += out.len;
  }

  /** Copies stream bytes [offset, offset + len) into `buf` at `at`. */
  copy(offset: number, len: number, buf: Uint8Array, at: number): void {
    let i = this.findChunk(offset);
    let pos = offset;
    const end = offset + len;
    while (pos < end) {
      const chunk = this.chunks[i]!;
      const from = pos - this.chunkStarts[i]!;
      const n = Math.min(chunk.length - from, end - pos);
      if (from === 0 && n === chunk.length) buf.set(chunk, at);
      else if (n <= 64) for (let k = 0; k < n; k++) buf[at + k] = chunk[from + k]!; // cheaper than a subarray view
      else buf.set(chunk.subarray(from, from + n), at);
      at += n;
      pos += n;
      i++;
    }
  }

  private findChunk(offset: number): number {
    let lo = this.head;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.chunkStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  onAcked(start: number, end: number): void {
    if (end <= this.ackedFloor) return;
    this.lost.remove(start, end);
    this.acked.add(Math.max(start, this.ackedFloor), end);
    if (this.acked.min() === this.ackedFloor) {
      this.ackedFloor = this.acked.ends[0]!;
      this.acked.remove(0, this.ackedFloor);
      this.release();
    }
  }

  onLost(start: number, end: number): void {
    if (end <= this.ackedFloor) return;
    start = Math.max(start, this.ackedFloor);
    this.lost.add(start, end);
    // Parts acknowledged meanwhile (a spurious loss, or a copy that got through) need no resend.
    for (let i = this.acked.firstEndingAfter(start); i < this.acked.size; i++) {
      const s = this.acked.starts[i]!;
      if (s >= end) break;
      this.lost.remove(s, this.acked.ends[i]!);
    }
  }

  /** Drops chunks that are entirely acknowledged. */
  private release(): void {
    while (this.head < this.chunks.length) {
      const end = this.chunkStarts[this.head]! + this.chunks[this.head]!.length;
      if (end > this.ackedFloor) break;
      this.queuedBytes -= this.chunkPayload[this.head]!;
      this.chunks[this.head] = RELEASED; // let it go now, not at the next compaction
      this.head++;
    }
    // Compact now and then so the arrays do not grow without bound.
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks.splice(0, this.head);
      this.chunkStarts.splice(0, this.head);
      this.chunkPayload.splice(0, this.head);
      this.head = 0;
    }
  }
}
