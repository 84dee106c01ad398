import type { Allocator } from "./allocator.js";
import { OBJECT_CHARGE } from "./events.js";
import { datagramFrameOverhead, writeDatagramFrame } from "./frames.js";
import { MAX_PAYLOAD_LENGTH } from "./packet-header.js";

export const MAX_QUEUED_DATAGRAMS = 64;

/** Largest unreliable message: what fits in one packet's DATAGRAM frame. */
export const MAX_DATAGRAM_PAYLOAD = MAX_PAYLOAD_LENGTH - datagramFrameOverhead(MAX_PAYLOAD_LENGTH);

/**
 * Unreliable datagrams (RFC 9221) waiting for a packet, with their counters. Datagrams are congestion
 * controlled and dropped, not queued, when blocked (§5.4): the caller says whether the window has room.
 */
export class DatagramQueue {
  private readonly queue: Uint8Array[] = [];
  private bytes = 0;
  sent = 0;
  readonly dropped = { tooLarge: 0, congestion: 0, queueFull: 0 };

  constructor(private readonly alloc: Allocator) {}

  get length(): number {
    return this.queue.length;
  }

  /**
   * Queues a copy of `message`; false, counting the drop, when it is too large, when the session
   * cannot send (`open` false) or congestion control has no room for it (`fits` false), or when the
   * queue is full.
   */
  push(message: Uint8Array, open: boolean, fits: boolean): boolean {
    if (message.length > MAX_DATAGRAM_PAYLOAD) {
      this.dropped.tooLarge++;
      return false;
    }
    if (!open || !fits) {
      this.dropped.congestion++;
      return false;
    }
    if (this.queue.length >= MAX_QUEUED_DATAGRAMS) {
      this.dropped.queueFull++;
      return false;
    }
    const copy = this.alloc(message.length);
    copy.set(message);
    this.queue.push(copy);
    this.bytes += copy.length;
    return true;
  }

  /** Writes queued datagrams, oldest first, at `p[off]` while they fit in `room`; returns the new offset. */
  write(p: Uint8Array, off: number, room: number): number {
    while (this.queue.length > 0) {
      const d = this.queue[0]!;
      if (room - off < datagramFrameOverhead(d.length) + d.length) break;
      off = writeDatagramFrame(p, off, d);
      this.queue.shift();
      this.bytes -= d.length;
      this.sent++;
    }
    return off;
  }

  /** See ConnectionStats.heldBytes. */
  get heldBytes(): number {
    return this.queue.length * OBJECT_CHARGE + this.bytes;
  }
}
