import { checkCloseCode, DRAIN_PROBE_ROUNDS } from "./closing.js";
import { CloseCode, type ConnectionEvent, type ConnectionState } from "./connection-types.js";
import { ConnectionCore } from "./connection-core.js";
import { MAX_DATAGRAM_PAYLOAD } from "./datagram-queue.js";
import { FastnetError } from "./errors.js";
import { OBJECT_CHARGE } from "./events.js";
import type { PacketKind } from "./packet-builder.js";
import { PATH_VALIDATION_MIN_MS } from "./path-validation.js";
import type { ConnectionStats } from "./stats.js";

export * from "./connection-types.js";
export type { TransportParams } from "./options.js";
export { maxHeldBytes } from "./held-bytes.js";

/**
 * One end of a session: the sans-IO state machine. Datagrams and the time go in through
 * `handleDatagram` and `handleTimeout`; datagrams to send come out of `pollTransmit`, the next deadline
 * out of `pollTimeout`, and application events out of `pollEvent`. No I/O, no clock, no global randomness;
 * the state and the receive path are in ConnectionCore (connection-core.ts).
 */
export class Connection extends ConnectionCore {
  get state(): ConnectionState {
    return this._state;
  }

  /** Largest message `sendUnreliable` accepts: what fits in one datagram. */
  get maxDatagramPayload(): number {
    return MAX_DATAGRAM_PAYLOAD;
  }

  /** Largest message `send` accepts: the peer's announced maxMessageSize (what it receives). */
  get maxMessageSize(): number {
    return this.peerMaxMessage;
  }

  /** The connection ID our packets carry now (it changes when the client switches to a spare). */
  get cid(): Uint8Array {
    return this.cids.current;
  }

  /** Sequence number of `cid` (0: the handshake's). */
  get cidSequence(): number {
    return this.cids.currentSequence;
  }

  /** Client: unused spare CIDs. Server: issued CIDs besides the one in use. */
  get spareCids(): number {
    return this.cids.spareCount;
  }

  /** Server: the CIDs routed to this session (copies); the endpoint forgets them all at close. */
  activeCids(): Uint8Array[] {
    return this.cids.activeCids();
  }

  /**
   * Client, on a move to a new local socket: send with an unused spare CID from the next packet on,
   * so the old and the new path cannot be linked by CID. Older CIDs are retired (RETIRE_CONNECTION_ID)
   * once a packet sent from now on is acknowledged. Returns false, changing nothing, with no spare.
   */
  switchCid(): boolean {
    return this._state === "open" && this.cids.switchToSpare(this.builder.nextPn, this.recovery.largestAcked);
  }

  /** Server: the session's address was validated; the CID in use now belongs to it (see `restoreValidatedCid`). */
  rememberValidatedCid(): void {
    this.cids.rememberValidated();
  }

  /** Server: sending went back to the last validated address; use the CID that was used there. */
  restoreValidatedCid(): void {
    this.cids.restoreValidated();
  }

  /** Server: the last packet's move was refused; keep the CID in use before it (it goes to the old address). */
  keepPreviousCid(): void {
    this.cids.undoSwitch();
  }

  // ---------------------------------------------------------------- application API

  /**
   * Queues a reliable message (copied at once). Throws FastnetError MESSAGE_TOO_LARGE, SEND_QUEUE_FULL
   * or NOT_OPEN; nothing is queued when it throws.
   */
  send(message: Uint8Array): void {
    const drain = this.closer.drain;
    if (this._state === "closing" || this._state === "closed" || drain) {
      throw new FastnetError("NOT_OPEN", `cannot send: session is ${drain ? "closing" : this._state}`);
    }
    if (message.length > this.peerMaxMessage) {
      throw new FastnetError("MESSAGE_TOO_LARGE", `message of ${message.length} bytes exceeds the peer's maxMessageSize ${this.peerMaxMessage}`);
    }
    if (this.streamOut.queuedBytes > 0 && this.streamOut.queuedBytes + message.length > this.options.sendQueueBytes) {
      throw new FastnetError(
        "SEND_QUEUE_FULL",
        `send queue full: ${this.streamOut.queuedBytes} bytes unacknowledged + ${message.length} exceeds sendQueueBytes ${this.options.sendQueueBytes}`,
      );
    }
    if (!this.streamOut.hasUnacked()) this.timers.progressAt = this.now; // the stall clock starts now
    this.streamOut.push(message);
    this.counters.messagesSent++;
  }

  /** Bytes of reliable messages queued and not yet acknowledged by the peer. */
  get queuedBytes(): number {
    return this.streamOut.queuedBytes;
  }

  /**
   * Queues an unreliable datagram (copied). Returns false, counting the drop, when it is larger than
   * `maxDatagramPayload`, when congestion control has no room, or when the session is not open.
   */
  sendUnreliable(message: Uint8Array): boolean {
    const cc = this.recovery.cc;
    // RFC 9221 §5.4: datagrams are congestion controlled and dropped, not queued, when blocked.
    return this.datagrams.push(message, this._state === "open" && !this.closer.drain, !(cc.bytesInFlight + message.length > cc.cwnd));
  }

  /**
   * Starts closing: the peer gets `code` and `reason` in a few redundant CLOSE packets. Throws
   * FastnetError INVALID_CLOSE_CODE, changing nothing, unless `code` is an integer in 0..65535. The
   * reason is sent cut to MAX_CLOSE_REASON_BYTES of UTF-8 (on a character boundary).
   */
  close(code: number = CloseCode.Normal, reason = ""): void {
    checkCloseCode(code);
    if (this._state === "open" && this.streamOut.hasUnacked()) {
      // Deliver what was sent before the close (as a WebSocket close does): CLOSE follows once every
      // reliable byte is acknowledged, or after a bounded wait if the peer is gone (see Closing).
      this.closer.startDrain(code, reason, this.now, this.peerImmediateAck);
      this.recovery.maxBackoff = 0;
      return;
    }
    this.closeInternal(code, reason, true);
  }

  /**
   * The driver moved this session's sending to a new, unproven peer address (RFC 9000 §9): from now on
   * at most 3x the bytes received are sent until a PATH_CHALLENGE is answered. Returns the challenge
   * data; a `pathValidated` or `pathFailed` event with the same data follows. `triggerBytes` is the
   * size of the datagram that came from the new address. `newNetwork` (a new IP, not just a new port)
   * restarts congestion control and RTT estimation, which belonged to the old path (§9.4).
   */
  startPathValidation(now: number, triggerBytes: number, newNetwork: boolean): Uint8Array {
    this.now = now;
    if (newNetwork) this.recovery.resetForNewPath();
    return this.path.start(now, triggerBytes, now + Math.max(3 * this.recovery.ptoBase(), PATH_VALIDATION_MIN_MS));
  }

  /**
   * The driver went back to the address it last validated (or, if none was ever proven, the first
   * one): sending there is unrestricted again only if that address was proven by a PATH_RESPONSE.
   * Otherwise it is challenged afresh, with `triggerBytes` (the datagram from it) as the budget.
   */
  revertPath(triggerBytes = 0): void {
    this.path.revert(this.now, triggerBytes);
  }

  /** Client: makes the next packet a full-size PING probe (after a rebind, so the server may answer at once). */
  probePath(): void {
    this.builder.pingNeeded = true;
    this.builder.padNext = true;
  }

  /** Largest of our packet numbers the peer acknowledged, or -1. */
  get largestAcked(): number {
    return this.recovery.largestAcked;
  }

  /** The packet number the next packet will carry. */
  get nextPacketNumber(): number {
    return this.builder.nextPn;
  }

  /** When the last authenticated packet arrived (ms, the driver's clock). */
  get lastReceivedAt(): number {
    return this.timers.lastReceived;
  }

  /**
   * The network said the peer's port is closed (ICMP port unreachable, which a connected UDP socket
   * reports as ECONNREFUSED). That is a hint, not proof: nothing authenticates it, so anyone on the
   * path could forge one. The session probes at once (a PING, acknowledged at once by the peer) and
   * again at 1/8, 1/4 and 1/2 of `unreachableGraceMs`; any authenticated packet clears the suspicion.
   * Only when none arrives within `unreachableGraceMs` does it close, with 1006 and a reason starting
   * "SERVER_UNREACHABLE". Hints while a suspicion runs change nothing (they cannot extend or shorten it).
   */
  onUnreachableHint(now: number): void {
    this.now = now;
    if (this._state !== "open" || this.closer.drain || this.timers.suspectingUnreachable) return;
    this.unreachableHints++;
    this.timers.suspectUnreachable(now);
    this.builder.pingNeeded = true;
  }

  /** True while an unreachable hint awaits an authenticated packet (see `onUnreachableHint`). */
  get suspectedUnreachable(): boolean {
    return this.timers.suspectingUnreachable;
  }

  /** Closes at once, without waiting for unacknowledged data: the peer still gets `code` and `reason`. */
  abort(code: number = CloseCode.Abnormal, reason = ""): void {
    checkCloseCode(code);
    this.closer.endDrain();
    this.closeInternal(code, reason, true);
  }

  /** True from `close()` on: no more sends are accepted. */
  get closing(): boolean {
    return this.closer.drain !== null || this._state === "closing";
  }

  /**
   * Switches the sending key to the next generation (RFC 9001 §6). Returns false when an update is
   * still unconfirmed (the peer has not acknowledged a packet under the current key yet).
   */
  initiateKeyUpdate(): boolean {
    if (this._state !== "open" || !this.keys.canUpdate) return false;
    this.keys.rotateSend();
    return true;
  }

  /** Key generation currently used for sending. */
  get keyGeneration(): number {
    return this.keys.sendGeneration;
  }

  pollEvent(): ConnectionEvent | null {
    return this.events.poll();
  }

  getStats(): ConnectionStats {
    const c = this.counters;
    const rtt = this.rtt;
    const cc = this.recovery.cc;
    return {
      rtt: { smoothedMs: rtt.smoothed, varianceMs: rtt.variance, minMs: rtt.min === Infinity ? 0 : rtt.min, latestMs: rtt.latest },
      packetsSent: this.builder.packetsSent,
      packetsReceived: c.packetsReceived,
      bytesSent: this.builder.bytesSent,
      bytesReceived: c.bytesReceived,
      packetsLost: this.recovery.packetsLost,
      bytesRetransmitted: this.streamOut.retransmittedBytes,
      messagesSent: c.messagesSent,
      messagesReceived: c.messagesReceived,
      datagramsSent: this.datagrams.sent,
      datagramsReceived: c.datagramsReceived,
      datagramsDropped: { ...this.datagrams.dropped },
      dropped: { ...this.dropped },
      congestionWindow: cc.cwnd,
      bytesInFlight: cc.bytesInFlight,
      keyUpdates: this.keys.updates,
      probeTimeouts: this.recovery.probeTimeouts,
      statelessResets: this.statelessResets,
      unreachableHints: this.unreachableHints,
      heldBytes: this.heldBytes,
      ackFramesIgnored: c.ackFramesIgnored,
    };
  }

  /** See ConnectionStats.heldBytes. */
  get heldBytes(): number {
    return (
      this.streamOut.heldBytes +
      this.streamIn.heldBytes +
      this.recovery.heldBytes() +
      this.datagrams.heldBytes +
      this.events.heldBytes +
      this.path.heldObjects * OBJECT_CHARGE
    );
  }

  // ---------------------------------------------------------------- timers

  /** Absolute time (ms) at which `handleTimeout` must be called next, or null when nothing is pending. */
  pollTimeout(): number | null {
    if (this._state === "closed") return null;
    if (this._state === "closing") return this.now; // close packets are waiting to be polled
    const timers = this.timers;
    const recovery = this.recovery;
    let t = timers.idleAt;
    if (this._state === "binding") {
      if (this.role === "client") t = Math.min(t, timers.bindDeadline);
      return Math.min(t, recovery.lossDeadline());
    }
    // A deadline whose packet cannot leave (anti-amplification) or is already due would spin the
    // driver: report it only when acting on it can send something (RFC 9002 §6.2.2.1). A probe
    // timeout cannot send while blocked, so it is not armed until the peer is heard from again.
    const blocked = this.path.blocked;
    t = Math.min(t, blocked && recovery.lossTime === Infinity ? Infinity : recovery.lossDeadline(), this.stallAt());
    if (!blocked) {
      if (this.acks.pending) t = Math.min(t, this.acks.deadline);
      if (!this.builder.pingNeeded) t = Math.min(t, timers.keepAliveAt(recovery.lastAckElicitingSent));
    }
    if (recovery.pacerWait !== Infinity) t = Math.min(t, recovery.pacerWait);
    t = Math.min(t, this.keys.discardAt);
    if (this.closer.drain) t = Math.min(t, this.closer.drain.deadline);
    t = Math.min(t, timers.unreachableDeadline, timers.unreachableProbeAt);
    if (this.streamIn.hasParked) t = Math.min(t, this.now); // more messages to deliver: a turn is due
    return Math.min(t, this.path.nextTimeout(blocked));
  }

  private stallAt(): number {
    return this.timers.stallAt(this._state === "open" && this.streamOut.hasUnacked(), this.recovery.ptoCount);
  }

  /** Runs every timer that is due at `now`. */
  handleTimeout(now: number): void {
    this.now = now;
    if (this._state === "closed" || this._state === "closing") return;
    const timers = this.timers;
    // While binding, silence means the bind failed: say so rather than "idle timeout".
    if (this._state === "binding" && this.role === "client" && now >= timers.bindDeadline) {
      this.closeInternal(CloseCode.Abnormal, "bind timeout: no answer from the server over UDP", false);
      return;
    }
    if (now >= timers.idleAt) {
      this.closeInternal(CloseCode.Abnormal, "idle timeout", false);
      return;
    }
    if (now >= timers.unreachableDeadline) {
      // Sent anyway: if only the path back to us is broken, the peer learns at once (its room sees a drop).
      const waited = Math.round(this.options.unreachableGraceMs);
      this.closeInternal(CloseCode.Abnormal, `SERVER_UNREACHABLE: the network reported the server's UDP port closed and nothing was heard from the server for ${waited} ms`, true);
      return;
    }
    if (timers.takeUnreachableProbes(now)) this.builder.pingNeeded = true;
    if (now >= this.stallAt()) {
      // Not sent: the peer does not acknowledge, so it would not act on a CLOSE either; if it is
      // honest and only cut off, its own timers end the session (and a server's CID then draws resets).
      this.closeInternal(CloseCode.Abnormal, `stalled: ${timers.stallReason(now)}`, false);
      return;
    }
    this.keys.discardOld(now);
    if (this.streamIn.hasParked) {
      this.streamTurn(false);
      if (this._state !== "open") return;
    }
    if (this.closer.drain) {
      this.finishDrain(now);
      if (this._state !== "open") return;
    }
    const failed = this.path.expire(now);
    if (failed) for (const c of failed) this.events.push({ type: "pathFailed", data: c.data });
    const recovery = this.recovery;
    recovery.expirePacer(now);
    if (now >= recovery.lossDeadline()) {
      if (recovery.lossTime !== Infinity) {
        recovery.detectLoss(now);
      } else if (this.closer.drain && recovery.ptoCount >= DRAIN_PROBE_ROUNDS) {
        // Round after round of probes asking for an immediate ACK went unanswered: the peer is gone.
        const d = this.closer.endDrain()!;
        this.closeInternal(d.code, d.reason, true);
        return;
      } else if (!this.path.blocked) {
        recovery.onProbeTimeout();
      }
    }
    if (this._state === "open" && now >= timers.keepAliveAt(recovery.lastAckElicitingSent)) this.builder.pingNeeded = true;
  }

  // ---------------------------------------------------------------- send path

  /**
   * Builds the next datagram to send, or returns null when there is nothing to send now (call again
   * after the next input or `pollTimeout`). The returned buffer is new and owned by the caller.
   */
  pollTransmit(now: number): Uint8Array | null {
    this.now = now;
    if (this._state === "closed") return null;
    if (this._state === "closing") {
      if (this.closer.packetsLeft <= 0) return null;
      this.closer.packetsLeft--;
      const pkt = this.buildPacket(now, "close");
      if (this.closer.packetsLeft === 0) this.finishClose();
      return pkt;
    }
    const recovery = this.recovery;
    if (this._state === "binding") {
      if (this.role !== "client") return null; // the server learns the client's address from its bind
      if (this.bindSent && recovery.probesPending === 0) return null;
      if (recovery.probesPending > 0) recovery.probesPending--;
      this.bindSent = true;
      return this.buildPacket(now, "bind");
    }
    const kind = this.builder.nextKind(now);
    if (kind === "overflow") {
      this.violation(`${recovery.sent.length} ack-eliciting packets left unacknowledged`);
      return this.pollTransmit(now); // the first CLOSE packet
    }
    return kind === null ? null : this.buildPacket(now, kind);
  }

  /** Every packet counts toward the key update interval (keyUpdateIntervalPackets). */
  private buildPacket(now: number, kind: PacketKind): Uint8Array | null {
    const pn = this.builder.nextPn;
    const out = this.builder.build(now, kind);
    if (out !== null && this.keys.onSent(pn, this.options.keyUpdateIntervalPackets)) this.initiateKeyUpdate();
    return out;
  }
}
