import { defaultAllocator, type Allocator } from "./allocator.js";
import { AckTracker } from "./ack-tracker.js";
import { ConnectionIds } from "./cid-set.js";
import { checkCloseCode, Closing, DRAIN_PROBE_ROUNDS } from "./closing.js";
import {
  AEAD_INTEGRITY_LIMIT,
  CloseCode,
  Received,
  STATELESS_RESET_TOKEN_LENGTH,
  type ConnectionConfig,
  type ConnectionEvent,
  type ConnectionState,
  type Role,
} from "./connection-types.js";
import { DatagramQueue, MAX_DATAGRAM_PAYLOAD } from "./datagram-queue.js";
import { FastnetError } from "./errors.js";
import { EventQueue, MAX_MESSAGES_PER_TURN, OBJECT_CHARGE } from "./events.js";
import { AckFrame, walkFrames, type FrameFlags, type FrameVisitor } from "./frames.js";
import { DEFAULT_SESSION_OPTIONS, resolveOptions, transportParams, type SessionOptions } from "./options.js";
import { PacketBuilder, type PacketKind } from "./packet-builder.js";
import { CID_OFFSET, PacketType, parseHeader, type ParsedHeader } from "./packet-header.js";
import { PacketKeys } from "./packet-keys.js";
import { PATH_VALIDATION_MIN_MS, PathValidator } from "./path-validation.js";
import { Recovery, type SentPacket } from "./recovery.js";
import type { RttEstimator } from "./rtt-estimator.js";
import { emptyDropCounters, type ConnectionStats, type DropCounters } from "./stats.js";
import { StreamReceiver, type StreamError } from "./stream-receive.js";
import { StreamSender } from "./stream-send.js";
import { Timers } from "./timers.js";
import { MAX_DATAGRAM_SIZE } from "./version.js";

export * from "./connection-types.js";
export type { TransportParams } from "./options.js";
export { maxHeldBytes } from "./held-bytes.js";

/**
 * One end of a session: the sans-IO state machine. Datagrams and the time go in through
 * `handleDatagram` and `handleTimeout`; datagrams to send come out of `pollTransmit`, the next deadline
 * out of `pollTimeout`, and application events out of `pollEvent`. No I/O, no clock, no global randomness.
 *
 * This class holds the connection state and routes inputs to its parts, each in its own module:
 * PacketKeys (protection, key update), AckTracker (received packets, ACK timing), Recovery (sent
 * packets, loss, PTO, RTT, congestion), PathValidator (challenges, anti-amplification), Timers
 * (idle, bind, keep-alive, stall, unreachable), PacketBuilder (frames into packets), Closing.
 */
export class Connection {
  readonly role: Role;
  readonly options: SessionOptions;
  readonly rtt: RttEstimator;
  readonly dropped: DropCounters = emptyDropCounters();
  /** Our connection IDs: which ones packets may carry, which one we send with, and their frames. */
  private readonly cids: ConnectionIds;
  private _state: ConnectionState = "binding";
  private now: number;
  private readonly keys: PacketKeys;
  private readonly acks = new AckTracker();
  private readonly recovery: Recovery;
  private readonly path: PathValidator;
  private readonly timers: Timers;
  private readonly closer = new Closing();
  private readonly events = new EventQueue();
  private readonly datagrams: DatagramQueue;
  private readonly builder: PacketBuilder;
  private readonly streamOut: StreamSender;
  private readonly streamIn: StreamReceiver;
  private readonly alloc: Allocator;
  private readonly peerWindow: number;
  private readonly peerMaxMessage: number;
  private readonly peerImmediateAck: boolean;
  private readonly aeadIntegrityLimit: number;
  // Per-packet scratch for the receive path.
  private readonly header: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  private readonly ackFrame = new AckFrame();
  private readonly frameFlags: FrameFlags = { ackEliciting: false, immediateAck: false };
  private readonly visitor: FrameVisitor;
  private ackAppliedThisPacket = false;
  private bindSent = false;
  private statelessResets = 0;
  private unreachableHints = 0;
  private readonly counters = { packetsReceived: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0, datagramsReceived: 0, ackFramesIgnored: 0 };

  constructor(config: ConnectionConfig) {
    this.role = config.role;
    this.options = resolveOptions(DEFAULT_SESSION_OPTIONS, config.options);
    const o = this.options;
    const peer = config.peerParams ?? transportParams(o);
    this.now = config.now;
    this.keys = new PacketKeys(config.aead, config.keyingMaterial, this.role);
    this.timers = new Timers(config.now, o, peer.idleTimeoutMs);
    this.alloc = config.alloc ?? defaultAllocator;
    this.streamOut = new StreamSender(this.alloc);
    this.streamIn = new StreamReceiver(
      o.receiveBufferBytes,
      o.maxMessageSize,
      (m) => {
        this.counters.messagesReceived++;
        this.events.push({ type: "message", data: m });
      },
      this.alloc,
      MAX_MESSAGES_PER_TURN,
    );
    const resetToken = config.resetToken && config.resetToken.length === STATELESS_RESET_TOKEN_LENGTH ? config.resetToken : null;
    this.cids = new ConnectionIds(this.role, config.cid, resetToken, config.cidIssuer ?? null);
    // What a sent packet's fate means for the stream, the CIDs, the ACK ranges and the key update.
    const streamOut = this.streamOut;
    this.recovery = new Recovery(config.initialRttMs && config.initialRttMs > 0 ? config.initialRttMs : o.initialRttMs, o.initialWindowPackets, o.maxAckDelayMs, {
      onAcked: (p: SentPacket) => {
        if (p.stream) for (let i = 0; i < p.stream.length; i += 2) streamOut.onAcked(p.stream[i]!, p.stream[i + 1]!);
        if (p.ackLargest >= 0) this.acks.onAckAcked(p.ackLargest);
        if (p.cids) this.cids.onAcked(p.cids);
        this.keys.onAcked(p.pn);
      },
      onLost: (p: SentPacket) => {
        if (p.stream) for (let i = 0; i < p.stream.length; i += 2) streamOut.onLost(p.stream[i]!, p.stream[i + 1]!);
        if (p.cids) this.cids.onLost(p.cids);
      },
      onProbe: (p: SentPacket) => {
        if (p.stream) for (let i = 0; i < p.stream.length; i += 2) streamOut.onLost(p.stream[i]!, p.stream[i + 1]!);
      },
    });
    this.rtt = this.recovery.rtt;
    // The client dialled the server's address itself; the server must wait for proof (RFC 9000 §8.1).
    this.path = new PathValidator(this.role === "client", config.random);
    this.peerWindow = peer.receiveBufferBytes;
    // What we may send is what the peer accepts: our own maxMessageSize bounds what we receive only, so
    // a server can keep clients' messages small (as ws-transport's maxPayload does) and still send
    // large states.
    this.peerMaxMessage = peer.maxMessageSize;
    this.peerImmediateAck = peer.immediateAck === true;
    this.aeadIntegrityLimit = config.aeadIntegrityLimit ?? AEAD_INTEGRITY_LIMIT;
    this.datagrams = new DatagramQueue(this.alloc);
    this.builder = new PacketBuilder({
      role: this.role, alloc: this.alloc, keys: this.keys, acks: this.acks, path: this.path, recovery: this.recovery, cids: this.cids,
      streamOut, datagrams: this.datagrams, closing: this.closer, peerWindow: this.peerWindow, peerImmediateAck: this.peerImmediateAck,
    });
    // Once a frame made us close (a violation), the rest of its packet is ignored.
    this.visitor = {
      onPing: () => {},
      onAck: (ack) => {
        if (this.closingOrClosed) return;
        // Only the first ACK frame of a packet counts: each walks the sent records, and a packet
        // could hold a hundred of them (RFC 9000 allows several; nothing needs more than one).
        if (this.ackAppliedThisPacket) {
          this.counters.ackFramesIgnored++;
          return;
        }
        this.ackAppliedThisPacket = true;
        this.onAck(ack);
      },
      onStream: (offset, data) => {
        if (this.closingOrClosed) return;
        const err = this.streamIn.onData(offset, data);
        if (err) this.violation(streamErrorText(err, this.streamIn.maxPieces));
      },
      onDatagram: (data) => {
        if (this._state !== "open") return;
        this.counters.datagramsReceived++;
        const copy = this.alloc(data.length);
        copy.set(data);
        this.events.push({ type: "datagram", data: copy });
      },
      onClose: (code, reason) => {
        if (this._state !== "closing") this.onPeerClose(code, reason);
      },
      onPathChallenge: (data) => this.path.onChallenge(data),
      onPathResponse: (data) => {
        if (this.closingOrClosed) return;
        const c = this.path.onResponse(data);
        if (c && !c.initial) this.events.push({ type: "pathValidated", data: c.data });
      },
      onNewConnectionId: (seq, cid, token) => {
        if (!this.closingOrClosed) this.onCidViolation(this.cids.onNewConnectionId(seq, cid, token));
      },
      onRetireConnectionId: (seq) => {
        if (!this.closingOrClosed) this.onCidViolation(this.cids.onRetireConnectionId(seq));
      },
    };
  }

  private get closingOrClosed(): boolean {
    return this._state === "closing" || this._state === "closed";
  }

  // Tests and the hostile harness read these private details by name.
  private get sent(): SentPacket[] {
    return this.recovery.sent;
  }
  private get addressValidated(): boolean {
    return this.path.validated;
  }

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

  /** A CID frame broke the rules: close as a protocol violation (RFC 9000 §19.15, §19.16). */
  private onCidViolation(violation: string | null): void {
    if (violation !== null) this.closeInternal(CloseCode.ProtocolError, `protocol violation: ${violation}`, true);
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

  /** A drain is over once every reliable byte is acknowledged, or at its deadline: CLOSE follows. */
  private finishDrain(now: number): void {
    const d = this.closer.drain;
    if (d && (!this.streamOut.hasUnacked() || now >= d.deadline)) {
      this.closer.endDrain();
      this.closeInternal(d.code, d.reason, true);
    }
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

  // ---------------------------------------------------------------- receive path

  /**
   * Processes one datagram. Anything that fails a check is dropped and counted in `dropped`; nothing
   * is sent in reply to it and no state changes. Never throws on bad input.
   */
  handleDatagram(buf: Uint8Array, now: number, fromCurrentPath = true): Received {
    this.now = now;
    if (this._state === "closed" || this._state === "closing") {
      this.dropped.closed++;
      return Received.Dropped;
    }
    const h = this.header;
    if (!parseHeader(buf, h)) {
      this.dropped.malformed++;
      return Received.Dropped;
    }
    const cidIndex = this.cids.find(buf, CID_OFFSET);
    if (cidIndex < 0) {
      this.dropped.unknownCid++;
      return Received.Dropped;
    }
    // Bind packets come only from the client, always padded to the full size (anti-amplification).
    if (h.type === PacketType.Bind && (this.role === "client" || buf.length < MAX_DATAGRAM_SIZE)) {
      this.dropped.malformed++;
      return Received.Dropped;
    }
    // A binding server opens on the client's padded Bind and nothing else.
    if (this._state === "binding" && this.role === "server" && h.type !== PacketType.Bind) {
      this.dropped.malformed++;
      return Received.Dropped;
    }
    const pn = this.acks.decode(h.truncatedPn, h.pnLength * 8);
    if (!this.acks.isNew(pn)) {
      this.dropped.replay++;
      this.checkStatelessReset(buf);
      return Received.Dropped;
    }
    const payload = this.keys.open(pn, h.keyPhase, buf.subarray(0, h.headerLength), buf.subarray(h.headerLength), now);
    if (payload === null) {
      this.dropped.decrypt++;
      this.checkStatelessReset(buf);
      if (this.dropped.decrypt >= this.aeadIntegrityLimit && !this.closingOrClosed) {
        // Enough forgery attempts that one might succeed: stop trusting these keys (RFC 9001 §6.6).
        this.closeInternal(CloseCode.Abnormal, `AEAD_LIMIT_REACHED: ${this.dropped.decrypt} packets failed authentication`, true);
      }
      return Received.Dropped;
    }
    // Authenticated. A peer with the keys that sends unparseable frames is still dropped, not obeyed.
    if (!walkFrames(payload, null, this.ackFrame, this.frameFlags)) {
      this.dropped.malformed++;
      return Received.Dropped;
    }
    const newest = this.acks.onReceived(pn, now);
    this.keys.onAccepted(pn, now, this.recovery.ptoBase());
    this.counters.packetsReceived++;
    this.counters.bytesReceived += buf.length;
    // Only what arrives from the address we send to earns anti-amplification budget for it.
    this.path.onReceived(buf.length, fromCurrentPath);
    this.timers.onHeard(now);
    if (this._state === "binding") {
      this._state = "open";
      this.events.push({ type: "open" });
      this.timers.progressAt = now; // data queued while binding waited for the path, not for the peer
      // The client's address is proven only by an answer to this (sent with our first reply).
      if (this.role === "server") this.path.challenge(now, Infinity, true);
    }
    const ackEliciting = this.frameFlags.ackEliciting;
    const immediateAckAsked = this.frameFlags.immediateAck === true;
    this.cids.onPacket(cidIndex, newest);
    this.ackAppliedThisPacket = false;
    this.path.beginPacket();
    this.streamTurn(false);
    walkFrames(payload, this.visitor, this.ackFrame, this.frameFlags);
    this.path.endPacket(!this.closingOrClosed);
    // Replacements for retired CIDs (and the first spares, after the bind): at most 2 per packet.
    if (this._state === "open") this.cids.topUp();
    if (ackEliciting && this._state === "open") {
      // A Bind is answered at once: the client's session opens on that answer. So is a packet with
      // IMMEDIATE_ACK: a closing peer waits for this ACK before its CLOSE can leave.
      const immediate = immediateAckAsked || h.type === PacketType.Bind;
      this.acks.onAckEliciting(pn, newest, immediate, now, this.options.ackElicitingThreshold, this.options.maxAckDelayMs);
    }
    // Packets without ack-eliciting frames are acknowledged only piggybacked (no ACK ping-pong).
    return newest ? Received.AcceptedNewest : Received.Accepted;
  }

  /**
   * A packet that cannot be processed may be a stateless reset: its last 16 bytes are the token the
   * server derived for our CID. Only the server that issued the CID can make it (RFC 9000 §10.3).
   */
  private checkStatelessReset(buf: Uint8Array): void {
    if (!this.cids.matchesResetToken(buf)) return;
    this.statelessResets++;
    this.onPeerClose(CloseCode.Abnormal, "stateless reset: the server no longer knows this session");
  }

  private onAck(ack: AckFrame): void {
    // Acknowledging a packet that was never sent is a violation (RFC 9000 §13.1), not something to guess about.
    const nextPn = this.builder.nextPn;
    if (ack.largest >= nextPn) {
      this.violation(`ACK of packet ${ack.largest}, never sent (the next is ${nextPn})`);
      return;
    }
    const now = this.now;
    const floor = this.streamOut.ackedOffset;
    // An ACK never validates an address (see PathValidator).
    const anyAckEliciting = this.recovery.onAck(ack, now);
    if (anyAckEliciting) this.timers.ackedAt = now;
    if (this.streamOut.ackedOffset > floor) this.timers.progressAt = now;
    this.recovery.detectLoss(now);
    if (this.closer.drain) {
      // Acknowledgements are progress: the wait restarts, so a live peer gets all the data.
      if (anyAckEliciting) this.closer.onDrainProgress(now);
      this.finishDrain(now);
    }
  }

  /** A new delivery turn for the reliable stream (see MAX_MESSAGES_PER_TURN); `all`: no limit. */
  private streamTurn(all: boolean): void {
    const err = this.streamIn.beginTurn(all);
    if (err) this.violation(streamErrorText(err, this.streamIn.maxPieces));
  }

  private onPeerClose(code: number, reason: string): void {
    if (this._state === "closed") return;
    // Messages that arrived before the CLOSE are delivered before it, however many.
    if (this.streamIn.hasParked && this._state === "open") this.streamTurn(true);
    if (this.closingOrClosed) return;
    this.closer.setRemote(code, reason);
    this._state = "closed";
    this.events.push({ type: "close", code: this.closer.code, reason: this.closer.reasonText, remote: true });
  }

  /** An authenticated peer broke the protocol: close with 1002 "protocol violation: <what>". */
  private violation(what: string): void {
    this.closeInternal(CloseCode.ProtocolError, `protocol violation: ${what}`, true);
  }

  /** `notify`: send CLOSE packets to the peer; otherwise the session just ends (timeouts). */
  private closeInternal(code: number, reason: string, notify: boolean): void {
    if (this._state === "closing" || this._state === "closed") return;
    this.closer.setLocal(code, reason);
    const canSend = notify && (this._state === "open" || (this.role === "client" && this.bindSent));
    if (canSend) {
      this._state = "closing";
      this.closer.packetsLeft = this.options.closePackets;
    } else {
      this.finishClose();
    }
  }

  private finishClose(): void {
    this._state = "closed";
    this.events.push({ type: "close", code: this.closer.code, reason: this.closer.reasonText, remote: false });
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
      t = Math.min(t, recovery.lossDeadline());
      return t;
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
    const ackDue = this.acks.due(now);
    const probe = recovery.probesPending > 0;
    const wantsElicit =
      probe ||
      this.builder.pingNeeded ||
      this.closer.immediateAckNeeded ||
      this.datagrams.length > 0 ||
      this.path.responsesQueued > 0 ||
      this.path.challengeDue(now) ||
      this.cids.framesDue(recovery.largestAcked) ||
      this.streamOut.hasData(this.peerWindow);
    if (!wantsElicit) return ackDue ? this.buildPacket(now, "ack") : null;
    if (recovery.overflowing) {
      this.violation(`${recovery.sent.length} ack-eliciting packets left unacknowledged`);
      return this.pollTransmit(now); // the first CLOSE packet
    }
    if (!probe && recovery.sendBlocked(now)) {
      // Path responses, pings and a drain's IMMEDIATE_ACK are tiny and must not wait behind bulk
      // data; they go alone (the ACK the last one draws is what opens the window again).
      if (this.path.responsesQueued === 0 && !this.builder.pingNeeded && !this.closer.immediateAckNeeded && !this.path.challengeDue(now)) {
        return ackDue ? this.buildPacket(now, "ack") : null;
      }
      return this.buildPacket(now, "control");
    }
    if (probe) recovery.probesPending--;
    return this.buildPacket(now, probe ? "probe" : "data");
  }

  private buildPacket(now: number, kind: PacketKind): Uint8Array | null {
    const pn = this.builder.nextPn;
    const out = this.builder.build(now, kind);
    if (out !== null && this.keys.onSent(pn, this.options.keyUpdateIntervalPackets)) this.initiateKeyUpdate();
    return out;
  }
}

function streamErrorText(err: StreamError, maxPieces: number): string {
  switch (err) {
    case "flow-control":
      return "flow-control: stream data beyond the receive window";
    case "message-too-large":
      return "message-too-large: a message longer than maxMessageSize";
    case "too-many-pieces":
      return `too-many-pieces: more than ${maxPieces} separate out-of-order stream pieces`;
  }
}
