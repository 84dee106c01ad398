/**
 * NewReno congestion control (RFC 9002 §7) with a token-bucket pacer sending at 1.25 cwnd per RTT
 * (RFC 9002 §7.7). Sizes are bytes, times milliseconds.
 */
export class NewReno {
  cwnd: number;
  ssthresh = Infinity;
  bytesInFlight = 0;
  private recoveryStart = -Infinity;
  readonly minWindow: number;
  private readonly mss: number;

  private readonly initialWindow: number;

  constructor(mss: number, initialPackets: number) {
    this.mss = mss;
    this.initialWindow = Math.max(initialPackets * mss, 2 * mss);
    this.cwnd = this.initialWindow;
    this.minWindow = 2 * mss;
  }

  /** Back to the initial state, for a new network path (RFC 9000 §9.4); bytes in flight stay counted. */
  reset(): void {
    this.cwnd = this.initialWindow;
    this.ssthresh = Infinity;
    this.recoveryStart = -Infinity;
  }

  /** Room left in the window for ack-eliciting bytes. */
  available(): number {
    return this.cwnd - this.bytesInFlight;
  }

  onSent(bytes: number): void {
    this.bytesInFlight += bytes;
  }

  /** A packet left flight without being acknowledged (lost, or abandoned on close). */
  onRemoved(bytes: number): void {
    this.bytesInFlight = Math.max(0, this.bytesInFlight - bytes);
  }

  /** `appLimited`: the sender was not using the window, so the ack says nothing about capacity (§7.8). */
  onAcked(bytes: number, timeSent: number, appLimited: boolean): void {
    this.onRemoved(bytes);
    if (timeSent <= this.recoveryStart || appLimited) return;
    if (this.cwnd < this.ssthresh) this.cwnd += bytes;
    else this.cwnd += (this.mss * bytes) / this.cwnd;
  }

  /** Packets were declared lost; `largestLostSent` is the send time of the newest of them. */
  onLost(largestLostSent: number, now: number, persistent: boolean): void {
    if (largestLostSent > this.recoveryStart) {
      this.recoveryStart = now;
      this.ssthresh = Math.max(this.cwnd / 2, this.minWindow);
      this.cwnd = this.ssthresh;
    }
    if (persistent) this.cwnd = this.minWindow;
  }
}

/** Spreads sends over the RTT so a full window does not leave in one burst. */
export class Pacer {
  private tokens: number;
  private last = -1;
  private readonly burst: number;

  constructor(burstBytes: number) {
    this.burst = burstBytes;
    this.tokens = burstBytes;
  }

  private refill(now: number, cwnd: number, srtt: number): void {
    if (this.last >= 0 && now > this.last) {
      const rate = (1.25 * cwnd) / Math.max(srtt, 0.001);
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * rate);
    }
    this.last = now;
  }

  /** Returns 0 when `bytes` may go now, else the time (ms) at which it may. */
  delayUntil(now: number, bytes: number, cwnd: number, srtt: number): number {
    this.refill(now, cwnd, srtt);
    if (this.tokens >= bytes) return 0;
    const rate = (1.25 * cwnd) / Math.max(srtt, 0.001);
    const wait = (bytes - this.tokens) / rate;
    // Below timer resolution a wait only costs a wake-up (and float rounding could make it never end).
    return wait < 0.05 ? 0 : now + wait;
  }

  onSent(bytes: number): void {
    this.tokens -= bytes;
  }
}
