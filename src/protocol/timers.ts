/**
 * Probe timeouts that must pass unanswered before silence about our data counts as a stall: an
 * overloaded peer's round trip grows to seconds, and with it the probe timeout, so ten seconds can
 * pass between two probes of ours without the peer doing anything wrong.
 */
export const STALL_PROBE_ROUNDS = 2;
/**
 * Whatever the probes, the oldest unacknowledged byte may stay put at most this many stall timeouts
 * while the peer is heard from (a peer that acknowledges everything but the oldest data, or a round
 * trip inflated on purpose to slow the probes down).
 */
export const STALL_OLDEST_FACTOR = 6;

export interface TimerOptions {
  idleTimeoutMs: number;
  bindTimeoutMs: number;
  keepAliveMs: number;
  stallTimeoutMs: number;
  unreachableGraceMs: number;
}

/**
 * The session's liveness clocks: idle and bind timeouts, keep-alive, the stall timeout and the
 * unreachable-hint grace period. Nothing here reads a clock: the times are passed in.
 *
 * Every timer of a Connection, and where its deadline lives (`pollTimeout` takes the earliest,
 * `handleTimeout` runs the due ones in this order):
 *   bind timeout, idle timeout, unreachable grace and probes, stall   Timers
 *   previous receive key discarded (3 PTO after a key update)        PacketKeys.discardAt
 *   next delivery turn of parked messages (due at once)               StreamReceiver.hasParked
 *   draining close gives up                                           Closing.drain.deadline
 *   path challenge resent / given up                                  PathValidator.nextTimeout
 *   pacer, loss detection (time threshold), probe timeout             Recovery
 *   keep-alive PING                                                   Timers.keepAliveAt
 *   delayed ACK (sent by pollTransmit, not handleTimeout)             AckTracker.deadline
 */
export class Timers {
  /** When the last authenticated packet arrived. */
  lastReceived: number;
  /** When the oldest unacknowledged stream byte last moved (or data became outstanding): the stall clock. */
  progressAt: number;
  /** When an ACK last acknowledged an ack-eliciting packet for the first time: the peer is taking our packets. */
  ackedAt = -Infinity;
  readonly idleTimeoutMs: number;
  /** Client: when an unanswered bind gives up. */
  readonly bindDeadline: number;
  /** While the peer is suspected gone (see `suspectUnreachable`): when to give up, and the probes left. */
  unreachableDeadline = Infinity;
  private readonly unreachableProbes: number[] = [];
  private readonly o: TimerOptions;

  /** `peerIdleTimeoutMs`: what the peer announced (0: no limit); the shorter of the two applies. */
  constructor(now: number, o: TimerOptions, peerIdleTimeoutMs: number) {
    this.o = o;
    this.lastReceived = now;
    this.progressAt = now;
    this.idleTimeoutMs = Math.min(o.idleTimeoutMs, peerIdleTimeoutMs > 0 ? peerIdleTimeoutMs : Infinity);
    this.bindDeadline = now + o.bindTimeoutMs;
  }

  get idleAt(): number {
    return this.lastReceived + this.idleTimeoutMs;
  }

  /** When a PING is due to keep the path (and NAT bindings) alive. */
  keepAliveAt(lastAckElicitingSent: number): number {
    return Math.max(this.lastReceived, lastAckElicitingSent) + this.o.keepAliveMs;
  }

  /** An authenticated packet arrived: the session is alive, and any unreachable suspicion was wrong. */
  onHeard(now: number): void {
    this.lastReceived = now;
    if (this.unreachableDeadline !== Infinity) {
      // Proof of life: whatever said the peer's port was closed was wrong, or is no longer right.
      this.unreachableDeadline = Infinity;
      this.unreachableProbes.length = 0;
    }
  }

  /**
   * When the stall timeout fires, given that reliable data is unacknowledged (`active`): for
   * stallTimeoutMs and at least STALL_PROBE_ROUNDS probe timeouts the peer acknowledged none of our
   * packets (or, for STALL_OLDEST_FACTOR times that, not the oldest byte), while it was heard from
   * within the last half of stallTimeoutMs (it keeps sending but does not acknowledge). A peer that
   * went silent is left to the idle timeout. An overloaded peer (its receive buffer overflowing, its
   * round trip grown to seconds) still acknowledges a packet now and then: it is slow, not hostile,
   * and keeps its session.
   */
  stallAt(active: boolean, ptoCount: number): number {
    if (!active) return Infinity;
    const stall = this.o.stallTimeoutMs;
    const unanswered = ptoCount >= STALL_PROBE_ROUNDS ? Math.max(this.progressAt, this.ackedAt) + stall : Infinity;
    const at = Math.min(unanswered, this.progressAt + STALL_OLDEST_FACTOR * stall);
    return at <= this.lastReceived + stall / 2 ? at : Infinity;
  }

  /** Why the stall timeout fired at `now` (the close reason after "stalled: "). */
  stallReason(now: number): string {
    const none = Math.round(now - Math.max(this.progressAt, this.ackedAt));
    const oldest = Math.round(now - this.progressAt);
    return none >= this.o.stallTimeoutMs ? `no acknowledgement of reliable data for ${none} ms` : `the oldest reliable data unacknowledged for ${oldest} ms`;
  }

  /** True while an unreachable hint awaits an authenticated packet. */
  get suspectingUnreachable(): boolean {
    return this.unreachableDeadline !== Infinity;
  }

  /** Starts the grace period of an unreachable hint: give up at its end, probe at 1/8, 1/4 and 1/2. */
  suspectUnreachable(now: number): void {
    const grace = this.o.unreachableGraceMs;
    this.unreachableDeadline = now + grace;
    this.unreachableProbes.length = 0;
    this.unreachableProbes.push(now + grace / 8, now + grace / 4, now + grace / 2);
  }

  /** The next unreachable probe (Infinity: none). */
  get unreachableProbeAt(): number {
    return this.unreachableProbes[0] ?? Infinity;
  }

  /** Consumes the unreachable probes due at `now`; true when one was. */
  takeUnreachableProbes(now: number): boolean {
    let due = false;
    while (this.unreachableProbes.length > 0 && now >= this.unreachableProbes[0]!) {
      this.unreachableProbes.shift();
      due = true;
    }
    return due;
  }
}
