/** The fastnet counters bench/loss.ts reports per phase, summed over the sessions of one side. */
import type { ConnectionStats } from "../../src/index.js";

export interface LossEngineStats {
  packetsSent: number;
  /** Ack-eliciting packets this side declared lost (the nftables drop, as seen by the sender). */
  packetsLost: number;
  /** Probe timeouts: losses found only by the timer (no later packet acknowledged in time). */
  probeTimeouts: number;
  bytesRetransmitted: number;
  datagramsSent: number;
  /** `@unreliable` sends dropped because the congestion window was full (RFC 9221: not queued). */
  datagramsDroppedCongestion: number;
}

export function emptyEngineStats(): LossEngineStats {
  return { packetsSent: 0, packetsLost: 0, probeTimeouts: 0, bytesRetransmitted: 0, datagramsSent: 0, datagramsDroppedCongestion: 0 };
}

export function addEngineStats(total: LossEngineStats, s: ConnectionStats): void {
  total.packetsSent += s.packetsSent;
  total.packetsLost += s.packetsLost;
  total.probeTimeouts += s.probeTimeouts;
  total.bytesRetransmitted += s.bytesRetransmitted;
  total.datagramsSent += s.datagramsSent;
  total.datagramsDroppedCongestion += s.datagramsDropped.congestion;
}
