import { FastnetError } from "../protocol/errors.js";
import type { FastnetSession } from "./session.js";

/**
 * Default bound of a backlog: what waits beyond the engine's send queue (sendQueueBytes). 2 MiB is
 * four maximum-size (512 KiB) messages: a burst of 2 MB of room messages in one tick still goes out,
 * as it does over ws-transport (test/colyseus-limits), while a peer that stops acknowledging pins at
 * most 2.5 MiB with the send queue, and only until the stall timeout (10 s) closes its session.
 */
export const DEFAULT_BACKLOG_BYTES = 2 * 1024 * 1024;

/**
 * Reliable sends that never throw at the caller, for the Colyseus adapters (a WebSocket buffers and
 * never throws either): what does not fit the session's bounded send queue waits here, in order, and
 * goes out as acknowledgements free room. The backlog is bounded too: past `maxBytes`, or for a
 * message larger than the session accepts at all, `onFailure` is called (the adapters close the
 * session with 1009) instead of leaving a gap in the reliable stream.
 */
export class SendBacklog {
  private readonly queue: Uint8Array[] = [];
  private bytes = 0;

  constructor(
    private readonly session: FastnetSession,
    private readonly onFailure: (err: FastnetError) => void,
    private readonly maxBytes = DEFAULT_BACKLOG_BYTES,
  ) {
    session.on("drain", () => this.pump());
  }

  /** Bytes waiting beyond the session's send queue. */
  get waitingBytes(): number {
    return this.bytes;
  }

  /** Sends `data` (copied) or queues it behind earlier ones. */
  send(data: Uint8Array): void {
    if (data.length > this.session.maxMessageSize) {
      this.onFailure(new FastnetError("MESSAGE_TOO_LARGE", `message of ${data.length} bytes exceeds maxMessageSize ${this.session.maxMessageSize}`));
      return;
    }
    if (this.queue.length === 0 && this.trySend(data)) return;
    if (this.bytes + data.length > this.maxBytes) {
      this.onFailure(new FastnetError("SEND_QUEUE_FULL", `send backlog full: ${this.bytes} bytes waiting, limit ${this.maxBytes}`));
      return;
    }
    this.queue.push(Uint8Array.from(data)); // the caller may reuse its buffer
    this.bytes += data.length;
    this.session.requestDrain();
  }

  private trySend(data: Uint8Array): boolean {
    try {
      this.session.send(data);
      return true;
    } catch (err) {
      if (err instanceof FastnetError && err.code === "SEND_QUEUE_FULL") return false;
      throw err;
    }
  }

  private pump(): void {
    while (this.queue.length > 0 && this.session.readyState === 1) {
      if (!this.trySend(this.queue[0]!)) {
        this.session.requestDrain();
        return;
      }
      this.bytes -= this.queue.shift()!.length;
    }
  }
}
