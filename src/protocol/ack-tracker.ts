import { MAX_ACK_RANGES, writeAckFrame } from "./frames.js";
import { decodePacketNumber } from "./packet-number.js";
import { RangeSet } from "./range-set.js";
import { ReplayWindow } from "./replay-window.js";

/**
 * The receive side of acknowledgement: which packet numbers arrived (for replay protection and the
 * ACK frame), and when an ACK is due (RFC 9000 §13.2). Sans-IO: times are passed in.
 */
export class AckTracker {
  private readonly replay = new ReplayWindow();
  /** Largest packet number received, or -1. */
  largest = -1;
  private largestTime = 0;
  /** Received packet numbers not yet known to be acknowledged by the peer (at most MAX_ACK_RANGES ranges). */
  readonly received = new RangeSet();
  /** An ack-eliciting packet awaits our ACK. */
  pending = false;
  private elicitingUnacked = 0;
  /** When the pending ACK must leave (Infinity: none pending, or only piggybacked). */
  deadline = Infinity;
  /** Largest packet number in the last ACK frame `write` produced. */
  lastWrittenLargest = -1;

  /** The full packet number of a received truncated one (RFC 9000 §A.3). */
  decode(truncated: number, bits: number): number {
    return decodePacketNumber(this.largest, truncated, bits);
  }

  /** False for a packet number already received or too old to tell. */
  isNew(pn: number): boolean {
    return this.replay.check(pn);
  }

  /** Records an authenticated packet; returns whether it is the newest so far. */
  onReceived(pn: number, now: number): boolean {
    this.replay.mark(pn);
    const newest = pn > this.largest;
    if (newest) {
      this.largest = pn;
      this.largestTime = now;
    }
    this.received.add(pn, pn + 1);
    this.received.truncateLow(MAX_ACK_RANGES);
    return newest;
  }

  /**
   * The packet `pn` just recorded is ack-eliciting: schedule the ACK. `immediate` (a Bind, or the
   * peer asked with IMMEDIATE_ACK) sends it at once, as do reordering and `threshold` unacknowledged
   * packets; otherwise it waits at most `maxDelay`.
   */
  onAckEliciting(pn: number, newest: boolean, immediate: boolean, now: number, threshold: number, maxDelay: number): void {
    this.pending = true;
    this.elicitingUnacked++;
    // Out of order, or a hole below the newest: acknowledge at once so the peer detects loss fast.
    const gap = !newest || (this.received.size > 1 && this.received.starts[this.received.size - 1] === pn);
    if (gap || immediate || this.elicitingUnacked >= threshold) this.deadline = now;
    else if (this.deadline === Infinity) this.deadline = now + maxDelay;
  }

  /** Whether packets arrived above the largest our last ACK frame reported (ack-eliciting or not). */
  unreported(): boolean {
    return this.largest > this.lastWrittenLargest;
  }

  /** Whether there is anything to acknowledge (ranges the peer has not confirmed seeing). */
  hasRanges(): boolean {
    return this.received.size > 0;
  }

  /** Whether an ACK must be sent now, alone if nothing else goes. */
  due(now: number): boolean {
    return this.pending && now >= this.deadline;
  }

  /**
   * Writes the pending ACK frame at `p[off]` within `room` bytes; returns the new offset (`off`: it
   * did not fit). A written frame clears the pending state and sets `lastWrittenLargest`.
   */
  write(p: Uint8Array, off: number, room: number, now: number): number {
    const delayUs = Math.max(0, Math.round((now - this.largestTime) * 1000));
    const o = writeAckFrame(p, off, room - off, this.received.starts, this.received.ends, delayUs);
    if (o > off) {
      this.lastWrittenLargest = this.received.max()! - 1;
      this.pending = false;
      this.elicitingUnacked = 0;
      this.deadline = Infinity;
    }
    return o;
  }

  /** The peer received our ACK of everything up to `largest`: stop repeating those ranges. */
  onAckAcked(largest: number): void {
    this.received.remove(0, largest);
  }
}
