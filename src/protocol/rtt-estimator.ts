/** Round-trip time estimation (RFC 9002 §5). Times are milliseconds. */
export class RttEstimator {
  latest: number;
  smoothed: number;
  variance: number;
  min = Infinity;
  /** Whether a real sample from this session's packets has been taken yet. */
  hasSample = false;

  /**
   * `initial` is the handshake's measurement when there is one (better than the 333 ms default).
   * `measured`: it was really measured, so it also seeds min RTT. Without that, a session whose every
   * ACK is delayed (datagrams slower than the ACK threshold) never gets a clean sample, and the peer's
   * ack delay could never be subtracted (RFC 9002 §5.3 subtracts it only above min + delay).
   */
  constructor(initial: number, measured = false) {
    this.latest = initial;
    this.smoothed = initial;
    this.variance = initial / 2;
    if (measured) this.min = initial;
  }

  /** Forgets the samples (a new path): `initial` is assumed until the next one (RFC 9000 §9.4). */
  resetTo(initial: number): void {
    this.latest = initial;
    this.smoothed = initial;
    this.variance = initial / 2;
    this.min = Infinity;
    this.hasSample = false;
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
