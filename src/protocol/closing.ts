import { CloseCode } from "./connection-types.js";
import { FastnetError } from "./errors.js";
import { MAX_CLOSE_REASON_BYTES, encodeCloseReason } from "./frames.js";

/** Close codes are 16-bit, as in WebSocket (and Colyseus) close frames. */
export const MAX_CLOSE_CODE = 0xffff;
/**
 * A draining close (see `Connection.close`) gives up on the peer, and sends CLOSE with data
 * unacknowledged, when this many probe rounds in a row went unanswered (at the next probe timeout;
 * a drain's probe timeout does not double, so that is 11 PTOs after the last ack-eliciting packet),
 * or when nothing was acknowledged for DRAIN_MAX_MS. Ten rounds, not one: every probe asks for an
 * immediate ACK, and at 30% loss each way a round of two probes still goes unanswered 26% of the
 * time (0.51^2); ten in a row happen with a probability of 1.4e-6, so a live peer's messages are not
 * cut off by a close, while a gone peer on a fast path is given up on within a few dozen ms.
 */
export const DRAIN_PROBE_ROUNDS = 10;
export const DRAIN_MAX_MS = 2000;

/** Throws FastnetError INVALID_CLOSE_CODE unless `code` is an integer in 0..65535. */
export function checkCloseCode(code: number): void {
  if (!Number.isInteger(code) || code < 0 || code > MAX_CLOSE_CODE) {
    throw new FastnetError("INVALID_CLOSE_CODE", `close code must be an integer in 0..${MAX_CLOSE_CODE}, got ${String(code)}`);
  }
}

/** A close waiting for the reliable stream to be acknowledged. */
export interface Drain {
  code: number;
  reason: string;
  deadline: number;
}

/**
 * How the session ends: the close code and reason (ours or the peer's), the CLOSE packets still to
 * send, and a draining close that waits for the reliable data first. The connection state itself
 * stays with `Connection`; this holds what the closing states need. Sans-IO: times are passed in.
 */
export class Closing {
  code = 0;
  reasonText = "";
  /** The reason as sent in our CLOSE frames (UTF-8, cut to MAX_CLOSE_REASON_BYTES). */
  reasonBytes: Uint8Array = new Uint8Array(0);
  drain: Drain | null = null;
  /** CLOSE packets still to send while "closing". */
  packetsLeft = 0;
  /** A draining close wants an IMMEDIATE_ACK out now, in a packet of its own if nothing else is sent. */
  immediateAckNeeded = false;

  /** We close with `code` and `reason`. */
  setLocal(code: number, reason: string): void {
    this.code = code;
    this.reasonText = reason;
    // Cut long reasons before encoding: each UTF-16 unit is at least one UTF-8 byte, so nothing that
    // would be sent is lost, and a huge string is not encoded whole.
    const text = typeof reason === "string" ? reason : String(reason);
    this.reasonBytes = encodeCloseReason(text.length > MAX_CLOSE_REASON_BYTES ? text.slice(0, MAX_CLOSE_REASON_BYTES) : text);
  }

  /** The peer closed with `code` and `reason` (an out-of-range code is reported as a violation). */
  setRemote(code: number, reason: string): void {
    if (code > MAX_CLOSE_CODE) {
      // A varint allows 2^62: report what the peer did rather than hand an impossible code onward.
      reason = `protocol violation: the peer's close code ${code} is out of range`;
      code = CloseCode.ProtocolError;
    }
    this.code = code;
    this.reasonText = reason;
  }

  /**
   * Starts a draining close unless one runs already (the first close's code and reason win). Every
   * packet sent while draining asks for an immediate ACK (if the peer knows IMMEDIATE_ACK), and one
   * goes out now even when all the data is already in flight: the CLOSE then follows about a round
   * trip after the last data, not after the peer's ACK delay.
   */
  startDrain(code: number, reason: string, now: number, peerImmediateAck: boolean): void {
    if (this.drain) return;
    this.drain = { code, reason, deadline: now + DRAIN_MAX_MS };
    this.immediateAckNeeded = peerImmediateAck;
  }

  /** Acknowledgements are progress: the drain's wait restarts, so a live peer gets all the data. */
  onDrainProgress(now: number): void {
    if (this.drain) this.drain.deadline = now + DRAIN_MAX_MS;
  }

  /** Ends the drain (if any) and returns it, so that its close can proceed. */
  endDrain(): Drain | null {
    const d = this.drain;
    this.drain = null;
    this.immediateAckNeeded = false;
    return d;
  }
}
