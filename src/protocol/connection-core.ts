import { AckTracker } from "./ack-tracker.js";
import { defaultAllocator, type Allocator } from "./allocator.js";
import { ConnectionIds } from "./cid-set.js";
import { Closing } from "./closing.js";
import { AEAD_INTEGRITY_LIMIT, CloseCode, Received, STATELESS_RESET_TOKEN_LENGTH, type ConnectionConfig, type ConnectionState, type Role } from "./connection-types.js";
import { DatagramQueue } from "./datagram-queue.js";
import { EventQueue, MAX_MESSAGES_PER_TURN } from "./events.js";
import { AckFrame, FrameList, type FrameFlags, type FrameVisitor } from "./frames.js";
import { DEFAULT_PEER_MAX_ACK_DELAY_MS, DEFAULT_SESSION_OPTIONS, resolveOptions, transportParams, type SessionOptions } from "./options.js";
import { PacketBuilder } from "./packet-builder.js";
import { CID_OFFSET, PacketType, parseHeader, type ParsedHeader } from "./packet-header.js";
import { PacketKeys } from "./packet-keys.js";
import { PathValidator } from "./path-validation.js";
import { Recovery } from "./recovery.js";
import type { RttEstimator } from "./rtt-estimator.js";
import type { SentPackets } from "./sent-packets.js";
import { emptyDropCounters, type DropCounters } from "./stats.js";
import { StreamReceiver, type StreamError } from "./stream-receive.js";
import { StreamSender } from "./stream-send.js";
import { Timers } from "./timers.js";
import { MAX_DATAGRAM_SIZE } from "./version.js";

/**
 * The state of a `Connection` and what an incoming packet does to it: the parts (each in its own
 * module: PacketKeys, AckTracker, Recovery, PathValidator, Timers, PacketBuilder, Closing, queues),
 * the receive path from datagram to frames, and the transitions to "closing" and "closed". The
 * application API, the timers and the send path are in connection.ts; `Connection` is the only
 * subclass, and the split is by file size, not a second implementation.
 */
export abstract class ConnectionCore {
  readonly role: Role;
  readonly options: SessionOptions;
  readonly rtt: RttEstimator;
  readonly dropped: DropCounters = emptyDropCounters();
  /** Our connection IDs: which ones packets may carry, which one we send with, and their frames. */
  protected readonly cids: ConnectionIds;
  protected _state: ConnectionState = "binding";
  protected now: number;
  protected readonly keys: PacketKeys;
  protected readonly acks = new AckTracker();
  protected readonly recovery: Recovery;
  protected readonly path: PathValidator;
  protected readonly timers: Timers;
  protected readonly closer = new Closing();
  protected readonly events = new EventQueue();
  protected readonly datagrams: DatagramQueue;
  protected readonly builder: PacketBuilder;
  protected readonly streamOut: StreamSender;
  protected readonly streamIn: StreamReceiver;
  protected readonly alloc: Allocator;
  protected readonly peerMaxMessage: number;
  protected readonly peerImmediateAck: boolean;
  private readonly aeadIntegrityLimit: number;
  // Per-packet scratch for the receive path.
  private readonly header: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  private readonly ackFrame = new AckFrame();
  private readonly frameFlags: FrameFlags = { ackEliciting: false, immediateAck: false };
  private readonly visitor: FrameVisitor;
  private ackAppliedThisPacket = false;
  protected bindSent = false;
  private readonly acceptedAt: number | undefined;
  protected statelessResets = 0;
  protected unreachableHints = 0;
  protected readonly counters = { packetsReceived: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0, datagramsReceived: 0, ackFramesIgnored: 0 };

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
    this.acceptedAt = config.acceptedAt;
    // The peer's ACK delay, not ours, bounds how late its acknowledgements come (PTO, RTT samples).
    const peerAckDelay = config.peerParams ? (peer.maxAckDelayMs ?? DEFAULT_PEER_MAX_ACK_DELAY_MS) : o.maxAckDelayMs;
    this.recovery = new Recovery(config.initialRttMs && config.initialRttMs > 0 ? config.initialRttMs : o.initialRttMs, o.initialWindowPackets, peerAckDelay, {
      onAcked: (sent: SentPackets, s: number) => {
        if (sent.streamStart[s]! >= 0) streamRanges(sent, s, streamOut, true);
        const ackLargest = sent.ackLargest[s]!;
        if (ackLargest >= 0) this.acks.onAckAcked(ackLargest);
        const cids = sent.cids[s];
        if (cids) this.cids.onAcked(cids);
        this.keys.onAcked(sent.pn[s]!);
      },
      onLost: (sent: SentPackets, s: number) => {
        if (sent.streamStart[s]! >= 0) streamRanges(sent, s, streamOut, false);
        const cids = sent.cids[s];
        if (cids) this.cids.onLost(cids);
      },
      onProbe: (sent: SentPackets, s: number) => {
        if (sent.streamStart[s]! >= 0) streamRanges(sent, s, streamOut, false);
      },
    });
    this.rtt = this.recovery.rtt;
    // The client dialled the server's address itself; the server must wait for proof (RFC 9000 §8.1).
    this.path = new PathValidator(this.role === "client", config.random);
    // What we may send is what the peer accepts: our own maxMessageSize bounds what we receive only, so
    // a server can keep clients' messages small (as ws-transport's maxPayload does) and still send
    // large states.
    this.peerMaxMessage = peer.maxMessageSize;
    this.peerImmediateAck = peer.immediateAck === true;
    this.aeadIntegrityLimit = config.aeadIntegrityLimit ?? AEAD_INTEGRITY_LIMIT;
    this.datagrams = new DatagramQueue(this.alloc);
    this.builder = new PacketBuilder({
      role: this.role, alloc: this.alloc, keys: this.keys, acks: this.acks, path: this.path, recovery: this.recovery, cids: this.cids,
      streamOut, datagrams: this.datagrams, closing: this.closer, peerWindow: peer.receiveBufferBytes, peerImmediateAck: this.peerImmediateAck,
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
      // Not called while onStreamAt is present (FrameList.visit prefers it); kept for the interface.
      onStream: (offset, data) => this.visitor.onStreamAt!(offset, data, 0, data.length),
      onStreamAt: (offset, payload, at, length) => {
        if (this.closingOrClosed) return;
        const err = this.streamIn.onDataAt(offset, payload, at, length);
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

  protected get closingOrClosed(): boolean {
    return this._state === "closing" || this._state === "closed";
  }

  // Tests and the hostile harness read these private details by name.
  private get sent(): SentPackets {
    return this.recovery.sent;
  }
  private get addressValidated(): boolean {
    return this.path.validated;
  }

  /** A CID frame broke the rules: close as a protocol violation (RFC 9000 §19.15, §19.16). */
  private onCidViolation(violation: string | null): void {
    if (violation !== null) this.closeInternal(CloseCode.ProtocolError, `protocol violation: ${violation}`, true);
  }

  /** A drain is over once every reliable byte is acknowledged, or at its deadline: CLOSE follows. */
  protected finishDrain(now: number): void {
    const d = this.closer.drain;
    if (d && (!this.streamOut.hasUnacked() || now >= d.deadline)) {
      this.closer.endDrain();
      this.closeInternal(d.code, d.reason, true);
    }
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
    const payload = this.keys.openPacket(pn, h.keyPhase, buf, h.headerLength, now);
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
    const frames = sharedFrames;
    if (!frames.parse(payload, this.ackFrame, this.frameFlags)) {
      this.dropped.malformed++;
      return Received.Dropped;
    }
    const newest = this.acks.onReceived(pn, now);
    if (this.keys.openedWithNext) this.keys.onAccepted(pn, now, this.recovery.ptoBase());
    this.counters.packetsReceived++;
    this.counters.bytesReceived += buf.length;
    // Only what arrives from the address we send to earns anti-amplification budget for it.
    this.path.onReceived(buf.length, fromCurrentPath);
    this.timers.onHeard(now);
    if (this._state === "binding") {
      this._state = "open";
      this.events.push({ type: "open" });
      this.timers.progressAt = now; // data queued while binding waited for the path, not for the peer
      if (this.role === "server") {
        // First RTT estimate: ServerAccept written → Bind authenticated (one TCP and one UDP leg).
        // Never above the default: a client that dawdles before its Bind only keeps the default.
        if (this.acceptedAt !== undefined && now > this.acceptedAt) this.recovery.rtt.resetTo(Math.min(now - this.acceptedAt, this.options.initialRttMs));
        // The client's address is proven only by an answer to this (sent with our first reply).
        this.path.challenge(now, Infinity, true);
      }
    }
    const ackEliciting = this.frameFlags.ackEliciting;
    const immediateAckAsked = this.frameFlags.immediateAck === true;
    this.cids.onPacket(cidIndex, newest);
    this.ackAppliedThisPacket = false;
    this.path.beginPacket();
    this.streamTurn(false);
    frames.visit(payload, this.visitor, this.ackFrame);
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
    const largestBefore = this.recovery.largestAcked;
    const anyAckEliciting = this.recovery.onAck(ack, now);
    // The stall rule's "the peer acknowledged none of our packets" counts ACK-only packets too: a
    // peer behind a saturated path may get only our ACK-only packets and acknowledge those, and it is
    // reading us. A peer that acknowledges only those is still bounded by the oldest-byte backstop.
    if (anyAckEliciting || ack.largest > largestBefore) this.timers.ackedAt = now;
    if (this.streamOut.ackedOffset > floor) this.timers.progressAt = now;
    this.recovery.detectLoss(now);
    if (this.closer.drain) {
      // Acknowledgements are progress: the wait restarts, so a live peer gets all the data.
      if (anyAckEliciting) this.closer.onDrainProgress(now);
      this.finishDrain(now);
    }
  }

  /** A new delivery turn for the reliable stream (see MAX_MESSAGES_PER_TURN); `all`: no limit. */
  protected streamTurn(all: boolean): void {
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
  protected violation(what: string): void {
    this.closeInternal(CloseCode.ProtocolError, `protocol violation: ${what}`, true);
  }

  /** `notify`: send CLOSE packets to the peer; otherwise the session just ends (timeouts). */
  protected closeInternal(code: number, reason: string, notify: boolean): void {
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

  protected finishClose(): void {
    this._state = "closed";
    this.events.push({ type: "close", code: this.closer.code, reason: this.closer.reasonText, remote: false });
  }
}

/** The stream ranges a sent packet carried are acknowledged (`acked`) or to be sent again. */
function streamRanges(sent: SentPackets, s: number, streamOut: StreamSender, acked: boolean): void {
  const more = sent.moreStream[s];
  if (acked) {
    streamOut.onAcked(sent.streamStart[s]!, sent.streamEnd[s]!);
    if (more) for (let i = 0; i < more.length; i += 2) streamOut.onAcked(more[i]!, more[i + 1]!);
  } else {
    streamOut.onLost(sent.streamStart[s]!, sent.streamEnd[s]!);
    if (more) for (let i = 0; i < more.length; i += 2) streamOut.onLost(more[i]!, more[i + 1]!);
  }
}

/**
 * Frames of the packet being processed: parsed once, then visited. One list for every connection, since
 * a packet is parsed and visited before the next is looked at, and visiting never parses.
 */
const sharedFrames = new FrameList();

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

