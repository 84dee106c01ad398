import type { ConnectionEvent } from "./connection-types.js";

/**
 * What `heldBytes` charges for a queued event, datagram or path frame beyond the bytes it carries.
 * A rough V8 size, rounded up: the point is a bound a test can compare with, not a heap profile.
 */
export const OBJECT_CHARGE = 64;
/**
 * Reliable messages delivered per input (datagram or timer) at most; the rest waits for the next,
 * due at once. More than one packet can hold (1200), so in-order traffic never falls behind, but a
 * filled hole that makes a million one-byte messages contiguous is delivered in small turns.
 */
export const MAX_MESSAGES_PER_TURN = 2048;

/** Placeholder for a polled slot of the queue. */
const POLLED: ConnectionEvent = { type: "open" };

/** The application events of a connection, in order, with the payload bytes they hold. */
export class EventQueue {
  private readonly events: ConnectionEvent[] = [];
  private head = 0;
  /** Payload bytes of queued message and datagram events. */
  private bytes = 0;

  push(ev: ConnectionEvent): void {
    if (ev.type === "message" || ev.type === "datagram") this.bytes += ev.data.length;
    this.events.push(ev);
  }

  poll(): ConnectionEvent | null {
    if (this.head >= this.events.length) return null;
    const ev = this.events[this.head]!;
    this.events[this.head++] = POLLED; // the caller owns it now: do not keep its data alive
    if (ev.type === "message" || ev.type === "datagram") this.bytes -= ev.data.length;
    if (this.head === this.events.length) {
      this.events.length = 0;
      this.head = 0;
    }
    return ev;
  }

  /** See ConnectionStats.heldBytes. */
  get heldBytes(): number {
    return (this.events.length - this.head) * OBJECT_CHARGE + this.bytes;
  }
}
