/** Round-trip time estimation (RFC 9002 §5). Times are milliseconds. */
export class RttEstimator {
  latest: number;
  smoothed: number;
  variance: number;
  min = Infinity;
  /** Whether a real sample from this session's packets has been taken yet. */
  hasSample = false;

  /** `initial` is the handshake's measurement when there is one (better than the 333 ms default). */
  constructor(initial: number) {
    this.latest = initial;
    this.smoothed = initial;
    this.variance = initial / 2;
  }

  /** Forgets the samples (a new path): `initial` is assumed until the next one (RFC 9000 §9.4). */
  resetTo(initial: number): void {
    this.latest = initial;
    this.smoothed = initial;
    this.variance = initial / 2;
    this.min = Infinity;
    this.hasSample = false;
  }

  /**
   * Feeds one sample; `ackDelay` is the peer's reported delay, capped by its max_ack_delay.
   *
   * Unlike RFC 9002 §5.3, the (capped) delay is subtracted from every sample that stays positive, and
   * min RTT is taken over these adjusted samples. The RFC subtracts only when the result stays above a
   * min RTT taken over raw samples; for game traffic, where most ACKs ride on packets sent up to
   * max_ack_delay later, min RTT itself then absorbs the delay and the estimate reads 25 ms on a 0.3 ms
   * path. The reported delay is authenticated and capped, so a peer can only skew its own session.
   */
  update(sample: number, ackDelay: number, maxAckDelay: number): void {
    const delay = Math.min(ackDelay, maxAckDelay);
    const adjusted = sample - delay > 0 ? sample - delay : sample;
    this.latest = adjusted;
    if (adjusted < this.min) this.min = adjusted;
    if (!this.hasSample) {
      this.hasSample = true;
      this.smoothed = adjusted;
      this.variance = adjusted / 2;
      return;
    }
    this.variance = 0.75 * this.variance + 0.25 * Math.abs(this.smoothed - adjusted);
    this.smoothed = 0.875 * this.smoothed + 0.125 * adjusted;
  }

  /** Probe timeout before backoff (RFC 9002 §6.2.1). */
  pto(maxAckDelay: number, granularity: number): number {
    return this.smoothed + Math.max(4 * this.variance, granularity) + maxAckDelay;
  }
}
