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

  /** Feeds one sample; `ackDelay` is the peer's reported delay, capped by its max_ack_delay. */
  update(sample: number, ackDelay: number, maxAckDelay: number): void {
    this.latest = sample;
    if (sample < this.min) this.min = sample;
    if (!this.hasSample) {
      this.hasSample = true;
      this.smoothed = sample;
      this.variance = sample / 2;
      return;
    }
    const delay = Math.min(ackDelay, maxAckDelay);
    // Subtract the peer's delay only when that does not go below the minimum (RFC 9002 §5.3).
    const adjusted = sample >= this.min + delay ? sample - delay : sample;
    this.variance = 0.75 * this.variance + 0.25 * Math.abs(this.smoothed - adjusted);
    this.smoothed = 0.875 * this.smoothed + 0.125 * adjusted;
  }

  /** Probe timeout before backoff (RFC 9002 §6.2.1). */
  pto(maxAckDelay: number, granularity: number): number {
    return this.smoothed + Math.max(4 * this.variance, granularity) + maxAckDelay;
  }
}
