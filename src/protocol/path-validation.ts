import { FrameType, PATH_DATA_LENGTH, writePathFrame } from "./frames.js";

/** Challenges outstanding at once (one per candidate path). */
export const MAX_CHALLENGES = 3;
/** Path responses waiting to be sent (one per received packet that held challenges). */
export const MAX_PATH_RESPONSES = 4;
/** Path validation gives up after max(3 PTO, this) (RFC 9000 §8.2.4). */
export const PATH_VALIDATION_MIN_MS = 200;
/** Below this many bytes of anti-amplification budget no useful packet fits. */
const MIN_AMPLIFICATION_BUDGET = 64;

export interface Challenge {
  data: Uint8Array;
  sendAt: number;
  deadline: number;
  /** The server's challenge of the client's first address: it has no events and no deadline. */
  initial: boolean;
}

/**
 * Path validation (RFC 9000 §8.2) and the anti-amplification budget (§8.1): until the peer proves it
 * receives at the address we send to, we send at most 3x what came in from there. Only a
 * PATH_RESPONSE to our challenge proves it: a key holder knows our packet numbers and could
 * acknowledge packets sent to an address it spoofs, so an ACK never validates. Also answers the
 * peer's challenges. Sans-IO: randomness comes from `random`, times are passed in.
 */
export class PathValidator {
  /** The address we send to now was proven (or dialled by us). */
  validated: boolean;
  private bytesReceived = 0;
  private bytesSent = 0;
  /** Whether the address `revert` goes back to (the last one validated, else the first) was proven. */
  private fallbackValidated: boolean;
  /** Outstanding PATH_CHALLENGEs we sent (a few at most), with when to resend and when to give up. */
  challenges: Challenge[] = [];
  /** The challenge whose response proves the address we send to now; null when proven (or none). */
  private current: Uint8Array | null = null;
  /** Path responses waiting to be sent. */
  private responses: Uint8Array[] = [];
  /** The last PATH_CHALLENGE of the packet being processed (answered once, after its frames). */
  private readonly challengeIn = new Uint8Array(PATH_DATA_LENGTH);
  private challengeInSeen = false;

  constructor(
    validated: boolean,
    private readonly random: (out: Uint8Array) => void,
  ) {
    this.validated = validated;
    this.fallbackValidated = validated;
  }

  /** Bytes we may still send to the unproven address (Infinity once proven). */
  budget(): number {
    return this.validated ? Infinity : 3 * this.bytesReceived - this.bytesSent;
  }

  /** Too little budget for a useful packet: sending must wait for the peer. */
  get blocked(): boolean {
    return !this.validated && 3 * this.bytesReceived - this.bytesSent < MIN_AMPLIFICATION_BUDGET;
  }

  /** The largest datagram that may go now, up to `max`; 0 when blocked. */
  maxDatagram(max: number): number {
    if (this.validated) return max;
    const budget = 3 * this.bytesReceived - this.bytesSent;
    return budget < MIN_AMPLIFICATION_BUDGET ? 0 : Math.min(max, budget);
  }

  /** An authenticated datagram of `bytes` came in; only one from our current address earns budget. */
  onReceived(bytes: number, fromCurrentPath: boolean): void {
    if (!this.validated && fromCurrentPath) this.bytesReceived += bytes;
  }

  onSent(bytes: number): void {
    if (!this.validated) this.bytesSent += bytes;
  }

  /**
   * Sending moved to a new, unproven address: the budget restarts from `triggerBytes`, and a fresh
   * challenge (returned) gives up at `deadline`.
   */
  start(now: number, triggerBytes: number, deadline: number): Uint8Array {
    this.validated = false;
    this.bytesReceived = triggerBytes;
    this.bytesSent = 0;
    // A first-path challenge is moot once the peer has left that path.
    this.challenges = this.challenges.filter((c) => !c.initial);
    if (this.challenges.length >= MAX_CHALLENGES) this.challenges.shift();
    return this.challenge(now, deadline, false);
  }

  /** Queues a fresh PATH_CHALLENGE for the current address; its response is the only proof of it. */
  challenge(now: number, deadline: number, initial: boolean): Uint8Array {
    const data = new Uint8Array(PATH_DATA_LENGTH);
    this.random(data);
    this.challenges.push({ data, sendAt: now, deadline, initial });
    this.current = data;
    return data;
  }

  /**
   * Sending went back to the fallback address: unrestricted again only if it was proven, otherwise
   * challenged afresh with `triggerBytes` as the budget.
   */
  revert(now: number, triggerBytes: number): void {
    this.challenges.length = 0;
    this.current = null;
    this.validated = this.fallbackValidated;
    if (!this.validated) {
      this.bytesReceived = triggerBytes;
      this.bytesSent = 0;
      this.challenge(now, Infinity, true);
    }
  }

  /** A PATH_RESPONSE arrived: returns the challenge it answers (removed), or null when unsolicited. */
  onResponse(data: Uint8Array): Challenge | null {
    const i = this.challenges.findIndex((c) => equalBytes(c.data, data));
    if (i < 0) return null; // unsolicited or late: ignored
    const c = this.challenges[i]!;
    this.challenges.splice(i, 1);
    // Only the challenge sent to where we send now proves that address; an answer to an older one
    // (another candidate address) proves nothing about it.
    if (c.data === this.current) {
      this.current = null;
      this.validated = true;
      this.fallbackValidated = true;
    }
    return c;
  }

  /** Removes the challenges that gave up by `now`; returns them (null: none), to be reported. */
  expire(now: number): Challenge[] | null {
    if (this.challenges.length === 0) return null;
    // An initial challenge (deadline Infinity) never fails: it is resent until answered.
    const failed = this.challenges.filter((c) => now >= c.deadline);
    if (failed.length === 0) return null;
    this.challenges = this.challenges.filter((c) => now < c.deadline);
    return failed;
  }

  challengeDue(now: number): boolean {
    for (const c of this.challenges) if (c.sendAt <= now) return true;
    return false;
  }

  /** Earliest challenge deadline, or resend time unless `blocked` (no packet could leave). */
  nextTimeout(blocked: boolean): number {
    let t = Infinity;
    for (const c of this.challenges) t = Math.min(t, c.deadline, blocked ? Infinity : c.sendAt);
    return t;
  }

  /**
   * Writes the due challenges at `p[off]` within `room`; returns the new offset. The current path's
   * challenge rides every packet until answered: any one answer proves it. Each is resent `pto` later.
   */
  writeChallenges(p: Uint8Array, off: number, room: number, now: number, pto: number): number {
    for (const c of this.challenges) {
      const due = c.sendAt <= now || (c.data === this.current && !this.validated);
      if (!due || room - off < 1 + PATH_DATA_LENGTH) continue;
      off = writePathFrame(p, off, FrameType.PathChallenge, c.data);
      c.sendAt = now + pto; // resent each PTO until answered or given up
    }
    return off;
  }

  // ------------------------------------------------ the peer's challenges

  /** A packet's frames are about to be processed. */
  beginPacket(): void {
    this.challengeInSeen = false;
  }

  /** The peer challenged us; remember the last one only: one PATH_RESPONSE per packet, however many. */
  onChallenge(data: Uint8Array): void {
    this.challengeIn.set(data);
    this.challengeInSeen = true;
  }

  /** The packet's frames were processed: queue the answer to its challenge, if any (and `answer`). */
  endPacket(answer: boolean): void {
    if (this.challengeInSeen && answer && this.responses.length < MAX_PATH_RESPONSES) this.responses.push(this.challengeIn.slice());
  }

  get responsesQueued(): number {
    return this.responses.length;
  }

  /** Writes queued PATH_RESPONSEs at `p[off]` while they fit in `room`; returns the new offset. */
  writeResponses(p: Uint8Array, off: number, room: number): number {
    while (this.responses.length > 0 && room - off >= 1 + PATH_DATA_LENGTH) {
      off = writePathFrame(p, off, FrameType.PathResponse, this.responses.shift()!);
    }
    return off;
  }

  /** Queued challenges and responses (for heldBytes). */
  get heldObjects(): number {
    return this.responses.length + this.challenges.length;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
