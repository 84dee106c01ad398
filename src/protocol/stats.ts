/** Why a received datagram was dropped without effect. Each cause is counted, none is answered. */
export interface DropCounters {
  /** Too short, too long, bad flags, or frames that do not parse. */
  malformed: number;
  /** No session has this connection ID (counted by the endpoint). */
  unknownCid: number;
  /** Packet number already seen or older than the replay window. */
  replay: number;
  /** AEAD authentication failed: wrong key, tampered, or forged. */
  decrypt: number;
  /** Arrived after the session closed. */
  closed: number;
}

/** A snapshot of one session's counters (ConnectionStats objects are fresh copies). */
export interface ConnectionStats {
  rtt: { smoothedMs: number; varianceMs: number; minMs: number; latestMs: number };
  packetsSent: number;
  packetsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Ack-eliciting packets declared lost. */
  packetsLost: number;
  /** Reliable stream bytes sent again after a loss or a probe timeout. */
  bytesRetransmitted: number;
  messagesSent: number;
  messagesReceived: number;
  datagramsSent: number;
  datagramsReceived: number;
  /** Unreliable sends that were dropped: larger than one datagram, blocked by congestion, or queue full. */
  datagramsDropped: { tooLarge: number; congestion: number; queueFull: number };
  dropped: DropCounters;
  congestionWindow: number;
  bytesInFlight: number;
  keyUpdates: number;
  probeTimeouts: number;
  /** Client: authenticated stateless resets received (at most 1: the session ends). */
  statelessResets: number;
  /**
   * Client: "port unreachable" hints from the network (ICMP, unauthenticated) that started a
   * suspicion; each was either cleared by an authenticated packet or ended the session.
   */
  unreachableHints: number;
  /**
   * Bytes this session's engine holds by its own accounting: unacknowledged send queue, out-of-order
   * receive pieces (each charged at least a minimum), the partly reassembled message, sent-packet
   * records, queued datagrams, and events and path responses not yet polled. docs/security.md gives
   * the bound a hostile peer can push it to.
   */
  heldBytes: number;
  /** ACK frames ignored because an earlier ACK frame in the same packet was applied (only the first counts). */
  ackFramesIgnored: number;
}

export function emptyDropCounters(): DropCounters {
  return { malformed: 0, unknownCid: 0, replay: 0, decrypt: 0, closed: 0 };
}
