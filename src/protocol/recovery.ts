import { NewReno, Pacer } from "./congestion.js";
import type { AckFrame } from "./frames.js";
import { RttEstimator } from "./rtt-estimator.js";
import { SentPackets } from "./sent-packets.js";
import { MAX_DATAGRAM_SIZE } from "./version.js";

/**
 * What the frames of a sent packet mean once its fate is known (the stream, CID and key state). Each
 * call names the record by its slot in `sent`, readable only during the call.
 */
export interface SentPacketHandler {
  onAcked(sent: SentPackets, slot: number): void;
  onLost(sent: SentPackets, slot: number): void;
  /** A probe timeout: resend the data of the record in `slot` (the oldest outstanding) without declaring it lost. */
  onProbe(sent: SentPackets, slot: number): void;
}

/** Packet-number threshold and time threshold for loss (RFC 9002 §6.1). */
const PACKET_THRESHOLD = 3;
const TIME_THRESHOLD = 9 / 8;
export const GRANULARITY_MS = 1;
const MAX_PTO_BACKOFF = 6;
/**
 * An ACK whose reported delay exceeds the peer's max_ack_delay by more than a round trip (and at
 * least this) was not sent when its largest packet arrived: it repeats an ACK that was lost (a probe
 * carries the last ACK again). Its sample would add that whole wait to the RTT, capped delay or not,
 * so it is not taken (as TCP skips samples from suspected delayed ACKs). Lateness of a busy peer up
 * to this much still counts.
 */
const STALE_ACK_SLACK_MS = 25;
/**
 * Sent-packet records (ack-eliciting packets not yet acknowledged or lost) at most. Data and datagrams
 * stop at MAX_SENT_PACKETS - SENT_CONTROL_SLACK, as if the congestion window were full: 960 full packets
 * are about the 1 MiB default receive window, and 960 small game packets are many seconds of traffic.
 * Only packets that bypass congestion control (PING, PATH_RESPONSE, probes) use the slack; a peer
 * that leaves them all unacknowledged breaks the protocol (RFC 9000 §13.2.1) and is closed.
 */
export const MAX_SENT_PACKETS = 1024;
const SENT_CONTROL_SLACK = 64;
/**
 * What `heldBytes` charges for a sent-packet slot: the typed-array columns (6 x 8 + 4 + 1 bytes) and
 * two array slots for the rare extra ranges and CID lists, rounded up. Charged per slot allocated,
 * held or not; the lists themselves at 8 bytes an entry.
 */
export const SENT_SLOT_CHARGE = 72;

/**
 * The send side of reliability (RFC 9002): sent-packet records, RTT, loss detection, probe timeouts,
 * congestion control and pacing. What a packet carried is the handler's business; this only decides
 * when it was delivered or lost. Sans-IO: times are passed in.
 */
export class Recovery {
  /** Outstanding ack-eliciting packets, oldest first. */
  readonly sent = new SentPackets(MAX_SENT_PACKETS);
  readonly rtt: RttEstimator;
  readonly cc: NewReno;
  private readonly pacer: Pacer;
  /** When the pacer lets the next full packet go (Infinity: it does not hold one back). */
  pacerWait = Infinity;
  /** Largest of our packet numbers the peer acknowledged, or -1. */
  largestAcked = -1;
  /** Probe timeouts in a row without an ACK of anything new (the PTO backoff exponent). */
  ptoCount = 0;
  /** Probes a probe timeout still wants sent (they bypass congestion control). */
  probesPending = 0;
  /** When the earliest outstanding packet counts as lost by the time threshold (Infinity: none). */
  lossTime = Infinity;
  lastAckElicitingSent = -Infinity;
  probeTimeouts = 0;
  /**
   * Largest backoff exponent of the probe timeout (RFC 9002 §6.2.1 doubles it per timeout). A draining
   * close sets 0: its probes ask for an immediate ACK and the drain itself is bounded, so probing at a
   * steady pace tells a live peer from a gone one in rounds, not in doublings.
   */
  maxBackoff = MAX_PTO_BACKOFF;
  packetsLost = 0;

  constructor(
    initialRttMs: number,
    initialWindowPackets: number,
    private readonly maxAckDelayMs: number,
    private readonly handler: SentPacketHandler,
  ) {
    this.rtt = new RttEstimator(initialRttMs);
    this.cc = new NewReno(MAX_DATAGRAM_SIZE, initialWindowPackets);
    this.pacer = new Pacer(initialWindowPackets * MAX_DATAGRAM_SIZE);
  }

  /** Probe timeout before backoff (RFC 9002 §6.2.1). */
  ptoBase(): number {
    return this.rtt.pto(this.maxAckDelayMs, GRANULARITY_MS);
  }

  /** Records an ack-eliciting packet just sent. `appLimited`: it carried no stream data. */
  /** `stream`: flat [start, end) pairs of stream bytes carried (copied, not kept); `cids`: kept. */
  onSent(pn: number, now: number, size: number, stream: readonly number[] | null, ackLargest: number, appLimited: boolean, cids: number[] | null): void {
    this.sent.push(pn, now, size, stream, ackLargest, appLimited && this.cc.bytesInFlight < this.cc.cwnd / 2, cids);
    this.cc.onSent(size);
    this.pacer.onSent(size);
    this.lastAckElicitingSent = now;
  }

  /**
   * Applies an ACK frame (its largest already checked against what was sent); returns whether it
   * newly acknowledged any packet. Call `detectLoss` after it.
   */
  onAck(ack: AckFrame, now: number): boolean {
    const ackDelay = ack.delayUs / 1000;
    let largestNewlyAcked = false;
    let largestNewlyAckedSent = 0;
    let anyAckEliciting = false;
    let r = ack.count - 1; // ranges come highest first; walk them lowest first
    const sent = this.sent;
    const n = sent.length;
    sent.beginCompaction(); // in place: nothing allocated per ACK
    for (let k = 0; k < n; k++) {
      const s = sent.slot(k);
      const pn = sent.pn[s]!;
      while (r >= 0 && ack.largestOf[r]! < pn) r--;
      if (r >= 0 && ack.smallest[r]! <= pn) {
        // newly acknowledged
        anyAckEliciting = true;
        if (pn === ack.largest) {
          largestNewlyAcked = true;
          largestNewlyAckedSent = sent.timeSent[s]!;
        }
        this.cc.onAcked(sent.size[s]!, sent.timeSent[s]!, sent.appLimited[s] === 1);
        this.handler.onAcked(sent, s);
        sent.drop(s);
      } else {
        sent.keep(k, s);
      }
    }
    sent.endCompaction();
    if (ack.largest > this.largestAcked) this.largestAcked = ack.largest;
    if (largestNewlyAcked && anyAckEliciting && ackDelay <= this.maxAckDelayMs + Math.max(this.rtt.smoothed, STALE_ACK_SLACK_MS)) {
      this.rtt.update(now - largestNewlyAckedSent, ackDelay, this.maxAckDelayMs);
    }
    if (anyAckEliciting) this.ptoCount = 0;
    return anyAckEliciting;
  }

  /** Declares lost what the packet or time threshold says is, and arms `lossTime` for the rest. */
  detectLoss(now: number): void {
    this.lossTime = Infinity;
    if (this.largestAcked < 0) return;
    const lossDelay = Math.max(TIME_THRESHOLD * Math.max(this.rtt.latest, this.rtt.smoothed), GRANULARITY_MS);
    let largestLostSent = -Infinity;
    let firstLostSent = Infinity;
    let lostCount = 0;
    const sent = this.sent;
    const n = sent.length;
    sent.beginCompaction();
    for (let k = 0; k < n; k++) {
      const s = sent.slot(k);
      const pn = sent.pn[s]!;
      const timeSent = sent.timeSent[s]!;
      if (pn <= this.largestAcked) {
        // One expression for both the test and the timer, so float rounding cannot leave a timer due forever.
        const lossAt = timeSent + lossDelay;
        if (lossAt <= now || this.largestAcked - pn >= PACKET_THRESHOLD) {
          lostCount++;
          this.cc.onRemoved(sent.size[s]!);
          this.handler.onLost(sent, s);
          sent.drop(s);
          if (timeSent > largestLostSent) largestLostSent = timeSent;
          if (timeSent < firstLostSent) firstLostSent = timeSent;
          continue;
        }
        this.lossTime = Math.min(this.lossTime, lossAt);
      }
      sent.keep(k, s);
    }
    sent.endCompaction();
    if (lostCount > 0) {
      this.packetsLost += lostCount;
      // Persistent congestion (RFC 9002 §7.6), approximated: losses spanning 3 PTOs with nothing left in flight before them.
      const persistent = this.rtt.hasSample && largestLostSent - firstLostSent > 3 * this.ptoBase() && sent.length === 0;
      this.cc.onLost(largestLostSent, now, persistent);
    }
  }

  /** When the loss-detection timer fires: the time threshold, else the backed-off probe timeout. */
  lossDeadline(): number {
    if (this.lossTime !== Infinity) return this.lossTime;
    if (this.sent.length === 0) return Infinity;
    const backoff = 1 << Math.min(this.ptoCount, this.maxBackoff);
    return this.lastAckElicitingSent + this.ptoBase() * backoff;
  }

  /** Probe timeout (RFC 9002 §6.2.4): up to two ack-eliciting probes, retransmitting the oldest data. */
  onProbeTimeout(): void {
    this.ptoCount++;
    this.probeTimeouts++;
    this.probesPending = 2;
    if (this.sent.length > 0) this.handler.onProbe(this.sent, this.sent.slot(0));
  }

  /** So many packets are unacknowledged that the peer must be ignoring ACK duties (see MAX_SENT_PACKETS). */
  get overflowing(): boolean {
    return this.sent.length >= MAX_SENT_PACKETS;
  }

  /**
   * Whether data must wait: the window is full, the records are near their limit, or the pacer holds
   * the next full packet back (then `pacerWait` says until when).
   */
  sendBlocked(now: number): boolean {
    if (this.cc.bytesInFlight >= this.cc.cwnd || this.sent.length >= MAX_SENT_PACKETS - SENT_CONTROL_SLACK) return true;
    const wait = this.pacer.delayUntil(now, MAX_DATAGRAM_SIZE, this.cc.cwnd, this.rtt.smoothed);
    if (wait <= 0) return false;
    this.pacerWait = wait;
    return true;
  }

  /** The pacer's wait is over once `now` reaches it. */
  expirePacer(now: number): void {
    if (now >= this.pacerWait) this.pacerWait = Infinity;
  }

  /** A new network path (RFC 9000 §9.4): congestion control and RTT start over; bytes in flight stay. */
  resetForNewPath(): void {
    this.cc.reset();
    this.rtt.resetTo(this.rtt.smoothed);
  }

  /** See ConnectionStats.heldBytes: the record slots and the lists they hold. */
  heldBytes(): number {
    return this.sent.slots * SENT_SLOT_CHARGE + this.sent.extraEntries() * 8;
  }
}
