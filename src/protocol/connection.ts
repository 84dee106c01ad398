import type { AeadBackend } from "./aead.js";
import { AEAD_TAG_LENGTH } from "./aead.js";
import { defaultAllocator, type Allocator } from "./allocator.js";
import { ACTIVE_CID_LIMIT, ConnectionIds, MAX_RETIRING_CIDS, type CidIssuer } from "./cid-set.js";
import { NewReno, Pacer } from "./congestion.js";
import { FastnetError } from "./errors.js";
import {
  AckFrame,
  FrameType,
  MAX_ACK_RANGES,
  MAX_CLOSE_REASON_BYTES,
  PATH_DATA_LENGTH,
  datagramFrameOverhead,
  encodeCloseReason,
  streamFrameOverhead,
  walkFrames,
  writeAckFrame,
  writeCloseFrame,
  writeDatagramFrame,
  writePathFrame,
  writeStreamFrameHeader,
  type FrameFlags,
  type FrameVisitor,
} from "./frames.js";
import { PacketCipher, splitExportedSecrets } from "./key-schedule.js";
import { DEFAULT_SESSION_OPTIONS, resolveOptions, transportParams, type SessionOptions, type TransportParams } from "./options.js";
import {
  CID_OFFSET,
  MAX_PAYLOAD_LENGTH,
  PacketType,
  parseHeader,
  writeHeader,
  type ParsedHeader,
} from "./packet-header.js";
import { decodePacketNumber, packetNumberLength } from "./packet-number.js";
import { RangeSet } from "./range-set.js";
import { ReplayWindow } from "./replay-window.js";
import { RttEstimator } from "./rtt-estimator.js";
import { emptyDropCounters, type ConnectionStats, type DropCounters } from "./stats.js";
import { MIN_PIECE_CHARGE, StreamReceiver, maxPieces, type StreamError } from "./stream-receive.js";
import { StreamSender } from "./stream-send.js";
import { MAX_DATAGRAM_SIZE } from "./version.js";

/** Close codes the engine itself uses; applications pass their own (Colyseus uses 4000 and up). */
export const CloseCode = {
  Normal: 1000,
  /** Peer broke the protocol (flow control, oversized message). */
  ProtocolError: 1002,
  /** No close was received: idle timeout, bind timeout, stateless reset. */
  Abnormal: 1006,
} as const;

export type { TransportParams } from "./options.js";

export type Role = "client" | "server";
export type ConnectionState = "binding" | "open" | "closing" | "closed";

export type ConnectionEvent =
  | { type: "open" }
  | { type: "message"; data: Uint8Array }
  | { type: "datagram"; data: Uint8Array }
  | { type: "close"; code: number; reason: string; remote: boolean }
  /** A PATH_RESPONSE echoed the challenge `data` (see `startPathValidation`). */
  | { type: "pathValidated"; data: Uint8Array }
  /** No response to the challenge `data` in time: the path is not usable. */
  | { type: "pathFailed"; data: Uint8Array };

/** What `handleDatagram` made of a datagram. */
export const Received = {
  /** Dropped and counted: it changed nothing. */
  Dropped: 0,
  /** Authenticated and processed. */
  Accepted: 1,
  /** Authenticated and the highest packet number so far (the trigger for path migration). */
  AcceptedNewest: 2,
} as const;
export type Received = (typeof Received)[keyof typeof Received];

export interface ConnectionConfig {
  role: Role;
  /** The connection ID the server issued at the handshake (CID_LENGTH bytes, sequence number 0). */
  cid: Uint8Array;
  /** 64 bytes exported from the TLS 1.3 session with the CID in the context. */
  keyingMaterial: Uint8Array;
  aead: AeadBackend;
  /** Current time in milliseconds (any monotonic origin). */
  now: number;
  /** Fills `out` with cryptographically random bytes (used for path challenges). */
  random: (out: Uint8Array) => void;
  /** The handshake's RTT measurement, used instead of the 333 ms default. */
  initialRttMs?: number;
  /** What the peer announced; defaults to our own options. */
  peerParams?: TransportParams;
  options?: Partial<SessionOptions>;
  /** Buffers for outgoing packets and delivered messages (default: new Uint8Array). */
  alloc?: Allocator;
  /** Client: the stateless reset token the server gave at the handshake (RFC 9000 §10.3). */
  resetToken?: Uint8Array;
  /** Server: makes the spare CIDs announced in NEW_CONNECTION_ID and forgets retired ones (none: no spares). */
  cidIssuer?: CidIssuer;
  /**
   * Packets that may fail authentication before the session closes (RFC 9001 §6.6 integrity limit;
   * default AEAD_INTEGRITY_LIMIT). Not a user option: tests set a small value.
   */
  aeadIntegrityLimit?: number;
}

/** ChaCha20-Poly1305's integrity limit: forged packets tolerated over a session's life (RFC 9001 §6.6). */
export const AEAD_INTEGRITY_LIMIT = 2 ** 36;

interface Challenge {
  data: Uint8Array;
  sendAt: number;
  deadline: number;
  initial: boolean;
}

interface SentPacket {
  pn: number;
  timeSent: number;
  size: number;
  /** Flat [start, end) pairs of stream bytes carried. */
  stream: number[] | null;
  /** Largest packet number acknowledged by the ACK frame it carried, or -1. */
  ackLargest: number;
  /** Carried a PATH_CHALLENGE (retransmitted as a fresh challenge, not the same bytes). */
  appLimited: boolean;
  /** Sequence numbers of the NEW_CONNECTION_ID (server) or RETIRE_CONNECTION_ID (client) frames carried. */
  cids: number[] | null;
}

/** Packet-number threshold and time threshold for loss (RFC 9002 §6.1). */
const PACKET_THRESHOLD = 3;
const TIME_THRESHOLD = 9 / 8;
const GRANULARITY_MS = 1;
const MAX_QUEUED_DATAGRAMS = 64;
const MAX_PTO_BACKOFF = 6;
/**
 * Probe timeouts that must pass unanswered before silence about our data counts as a stall: an
 * overloaded peer's round trip grows to seconds, and with it the probe timeout, so ten seconds can
 * pass between two probes of ours without the peer doing anything wrong.
 */
const STALL_PROBE_ROUNDS = 2;
/**
 * Whatever the probes, the oldest unacknowledged byte may stay put at most this many stall timeouts
 * while the peer is heard from (a peer that acknowledges everything but the oldest data, or a round
 * trip inflated on purpose to slow the probes down).
 */
const STALL_OLDEST_FACTOR = 6;
/** Stateless reset token length (RFC 9000 §10.3). */
export const STATELESS_RESET_TOKEN_LENGTH = 16;
/** Client packets are padded to this size: a shorter trigger could not draw a stateless reset. */
const MIN_CLIENT_PACKET_LENGTH = 40;
/** Challenges outstanding at once (one per candidate path). */
const MAX_CHALLENGES = 3;
/** Path responses waiting to be sent (one per received packet that held challenges). */
const MAX_PATH_RESPONSES = 4;
/**
 * Sent-packet records (ack-eliciting packets not yet acknowledged or lost) at most. Data and datagrams
 * stop at MAX_SENT_PACKETS - SENT_CONTROL_SLACK, as if the congestion window were full: 960 full packets
 * are about the 1 MiB default receive window, and 960 small game packets are many seconds of traffic.
 * Only packets that bypass congestion control (PING, PATH_RESPONSE, probes) use the slack; a peer
 * that leaves them all unacknowledged breaks the protocol (RFC 9000 §13.2.1) and is closed.
 */
const MAX_SENT_PACKETS = 1024;
const SENT_CONTROL_SLACK = 64;
/**
 * Reliable messages delivered per input (datagram or timer) at most; the rest waits for the next,
 * due at once. More than one packet can hold (1200), so in-order traffic never falls behind, but a
 * filled hole that makes a million one-byte messages contiguous is delivered in small turns.
 */
const MAX_MESSAGES_PER_TURN = 2048;
/**
 * STREAM frames per packet at most. Each is a range in the packet's sent record; retransmitting many
 * scattered small lost ranges (a peer that acknowledged every other small packet) could otherwise put
 * hundreds in one record.
 */
const MAX_STREAM_FRAMES_PER_PACKET = 16;
/** Path validation gives up after max(3 PTO, this) (RFC 9000 §8.2.4). */
const PATH_VALIDATION_MIN_MS = 200;
/**
 * A draining close (see `close`) gives up on the peer, and sends CLOSE with data unacknowledged, when
 * this many probe rounds in a row went unanswered (at the next probe timeout: with the doubling, 15
 * PTOs after the last ack-eliciting packet), or when nothing was acknowledged for DRAIN_MAX_MS.
 * Three rounds, not one: at 15% loss each way a round of two probes goes unanswered 8% of the time,
 * and a live peer's messages must not be cut off by a close.
 */
const DRAIN_PROBE_ROUNDS = 3;
const DRAIN_MAX_MS = 2000;
/** Below this many bytes of anti-amplification budget no useful packet fits. */
const MIN_AMPLIFICATION_BUDGET = 64;
/**
 * What `heldBytes` charges for bookkeeping objects, beyond the bytes they carry: a sent-packet record
 * (object, plus its stream ranges at 16 bytes a pair), a queued event, a queued datagram or path response.
 * Rough V8 sizes, rounded up: the point is a bound a test can compare with, not a heap profile.
 */
const SENT_RECORD_CHARGE = 96;
const OBJECT_CHARGE = 64;

/**
 * One end of a session: the sans-IO state machine. Datagrams and the time go in through
 * `handleDatagram` and `handleTimeout`; datagrams to send come out of `pollTransmit`, the next deadline
 * out of `pollTimeout`, and application events out of `pollEvent`. No I/O, no clock, no global randomness.
 */
export class Connection {
  readonly role: Role;
  readonly options: SessionOptions;
  /** Our connection IDs: which ones packets may carry, which one we send with, and their frames. */
  private readonly cids: ConnectionIds;
  private _state: ConnectionState = "binding";

  // Packet protection. Generations count key updates; the phase bit on the wire is generation & 1.
  private sendCipher: PacketCipher;
  private sendGen = 0;
  private sendGenFirstPn = -1;
  private sendGenConfirmed = true;
  private packetsUnderKey = 0;
  private recvCipher: PacketCipher;
  /** The next generation's key, derived lazily and not before `nextKeysAt` (see rotateRecvKey). */
  private recvNext: PacketCipher | null;
  private nextKeysAt = 0;
  private recvPrev: PacketCipher | null = null;
  private recvPrevUntil = Infinity;
  private recvGen = 0;
  private recvGenFirstPn = 0;
  private keyUpdates = 0;

  private nextPn = 0;
  private readonly replay = new ReplayWindow();
  private largestRecvPn = -1;
  private largestRecvTime = 0;
  private readonly header: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  private readonly ackFrame = new AckFrame();
  private readonly frameFlags: FrameFlags = { ackEliciting: false, immediateAck: false };
  private readonly visitor: FrameVisitor;
  private now = 0;

  // Acknowledgement state.
  private readonly received = new RangeSet();
  private ackPending = false;
  private ackElicitingUnacked = 0;
  private ackDeadline = Infinity;

  // Recovery and congestion.
  private readonly sent: SentPacket[] = [];
  readonly rtt: RttEstimator;
  private readonly cc: NewReno;
  private readonly pacer: Pacer;
  private pacerWait = Infinity;
  private largestAckedPn = -1;
  private ptoCount = 0;
  private probesPending = 0;
  private lossTime = Infinity;
  private lastAckElicitingSent = -Infinity;
  private probeTimeouts = 0;
  private packetsLost = 0;

  // Channels.
  private readonly streamOut: StreamSender;
  private readonly alloc: Allocator;
  private readonly streamIn: StreamReceiver;
  private readonly datagrams: Uint8Array[] = [];
  private readonly segment = { offset: 0, len: 0 };
  private peerWindow: number;
  private readonly peerMaxMessage: number;
  private pathResponses: Uint8Array[] = [];
  /** The last PATH_CHALLENGE of the packet being processed (answered once, after its frames). */
  private readonly challengeIn = new Uint8Array(PATH_DATA_LENGTH);
  private challengeInSeen = false;
  private ackAppliedThisPacket = false;
  /**
   * Outstanding PATH_CHALLENGEs we sent (a few at most), with when to resend and when to give up.
   * `initial`: the server's challenge of the client's first address; it has no events and no deadline.
   */
  private challenges: Challenge[] = [];
  /** The challenge whose response proves the address we send to now; null when proven (or none). */
  private currentChallenge: Uint8Array | null = null;
  /** Pad the next ack-eliciting packet to the full size (a path probe: it grants the peer's budget). */
  private padNext = false;
  private statelessResets = 0;
  private unreachableHints = 0;
  /** While the peer is suspected gone (see `onUnreachableHint`): when to give up, and the probes left. */
  private unreachableDeadline = Infinity;
  private unreachableProbes: number[] = [];
  private pingNeeded = false;

  // Timers.
  /** When the oldest unacknowledged stream byte last moved (or data became outstanding): the stall clock. */
  private progressAt: number;
  /** When an ACK last acknowledged an ack-eliciting packet for the first time: the peer is taking our packets. */
  private ackedAt = -Infinity;
  private lastReceived: number;
  private readonly idleTimeoutMs: number;
  private readonly bindDeadline: number;
  private bindSent = false;

  // Anti-amplification: until the peer proves it receives at its address, send at most 3x what came in.
  // Only a PATH_RESPONSE to our challenge proves it (RFC 9000 §8): a key holder knows our packet
  // numbers and could acknowledge packets sent to an address it spoofs.
  private addressValidated: boolean;
  private bytesReceivedUnvalidated = 0;
  private bytesSentUnvalidated = 0;
  /** Whether the address `revertPath` goes back to (the last one validated, else the first) was proven. */
  private fallbackValidated: boolean;

  // Closing.
  private closeCode = 0;
  private closeReason: Uint8Array = new Uint8Array(0);
  private closeReasonText = "";
  /** A close waiting for the reliable stream to be acknowledged. */
  private drain: { code: number; reason: string; deadline: number } | null = null;
  private closePacketsLeft = 0;
  /** The peer announced IMMEDIATE_ACK in the handshake: only then may it receive the frame. */
  private readonly peerImmediateAck: boolean;
  /** A draining close wants an IMMEDIATE_ACK out now, in a packet of its own if nothing else is sent. */
  private immediateAckNeeded = false;

  private readonly events: ConnectionEvent[] = [];
  private eventHead = 0;
  /** Payload bytes of queued message/datagram events and of queued datagrams (for `heldBytes`). */
  private eventBytes = 0;
  private datagramBytes = 0;

  private readonly counters = {
    packetsSent: 0,
    packetsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    messagesSent: 0,
    messagesReceived: 0,
    datagramsSent: 0,
    datagramsReceived: 0,
    datagramsDropped: { tooLarge: 0, congestion: 0, queueFull: 0 },
    ackFramesIgnored: 0,
  };
  readonly dropped: DropCounters = emptyDropCounters();

  constructor(config: ConnectionConfig) {
    this.role = config.role;
    this.options = resolveOptions(DEFAULT_SESSION_OPTIONS, config.options);
    const peer = config.peerParams ?? transportParams(this.options);
    const secrets = splitExportedSecrets(config.keyingMaterial);
    const mine = this.role === "client" ? secrets.clientToServer : secrets.serverToClient;
    const theirs = this.role === "client" ? secrets.serverToClient : secrets.clientToServer;
    this.sendCipher = new PacketCipher(config.aead, mine);
    this.recvCipher = new PacketCipher(config.aead, theirs);
    this.recvNext = this.recvCipher.next();
    this.now = config.now;
    this.lastReceived = config.now;
    this.progressAt = config.now;
    this.idleTimeoutMs = Math.min(this.options.idleTimeoutMs, peer.idleTimeoutMs > 0 ? peer.idleTimeoutMs : Infinity);
    this.bindDeadline = config.now + this.options.bindTimeoutMs;
    this.rtt = new RttEstimator(config.initialRttMs && config.initialRttMs > 0 ? config.initialRttMs : this.options.initialRttMs);
    this.cc = new NewReno(MAX_DATAGRAM_SIZE, this.options.initialWindowPackets);
    this.pacer = new Pacer(this.options.initialWindowPackets * MAX_DATAGRAM_SIZE);
    this.peerWindow = peer.receiveBufferBytes;
    // What we may send is what the peer accepts: our own maxMessageSize bounds what we receive only, so
    // a server can keep clients' messages small (as ws-transport's maxPayload does) and still send
    // large states.
    this.peerMaxMessage = peer.maxMessageSize;
    this.peerImmediateAck = peer.immediateAck === true;
    // The client dialled the server's address itself; the server must wait for proof (RFC 9000 §8.1).
    this.addressValidated = this.role === "client";
    this.fallbackValidated = this.addressValidated;
    this.alloc = config.alloc ?? defaultAllocator;
    this.streamOut = new StreamSender(this.alloc);
    this.streamIn = new StreamReceiver(
      this.options.receiveBufferBytes,
      this.options.maxMessageSize,
      (m) => {
        this.counters.messagesReceived++;
        this.pushEvent({ type: "message", data: m });
      },
      this.alloc,
      MAX_MESSAGES_PER_TURN,
    );
    this.random = config.random;
    this.aeadIntegrityLimit = config.aeadIntegrityLimit ?? AEAD_INTEGRITY_LIMIT;
    const resetToken = config.resetToken && config.resetToken.length === STATELESS_RESET_TOKEN_LENGTH ? config.resetToken : null;
    this.cids = new ConnectionIds(this.role, config.cid, resetToken, config.cidIssuer ?? null);
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
        this.pushEvent({ type: "datagram", data: copy });
      },
      onClose: (code, reason) => {
        if (this._state !== "closing") this.onPeerClose(code, reason);
      },
      onPathChallenge: (data) => {
        // Remember the last one only: one PATH_RESPONSE per packet, however many challenges it holds.
        this.challengeIn.set(data);
        this.challengeInSeen = true;
      },
      onPathResponse: (data) => {
        if (!this.closingOrClosed) this.onPathResponse(data);
      },
      onNewConnectionId: (seq, cid, token) => {
        if (!this.closingOrClosed) this.onCidViolation(this.cids.onNewConnectionId(seq, cid, token));
      },
      onRetireConnectionId: (seq) => {
        if (!this.closingOrClosed) this.onCidViolation(this.cids.onRetireConnectionId(seq));
      },
    };
  }

  private readonly random: (out: Uint8Array) => void;
  private readonly aeadIntegrityLimit: number;

  private get closingOrClosed(): boolean {
    return this._state === "closing" || this._state === "closed";
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** Largest message `sendUnreliable` accepts: what fits in one datagram. */
  get maxDatagramPayload(): number {
    return MAX_PAYLOAD_LENGTH - datagramFrameOverhead(MAX_PAYLOAD_LENGTH);
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
    return this._state === "open" && this.cids.switchToSpare(this.nextPn, this.largestAckedPn);
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
    if (this._state === "closing" || this._state === "closed" || this.drain) {
      throw new FastnetError("NOT_OPEN", `cannot send: session is ${this.drain ? "closing" : this._state}`);
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
    if (!this.streamOut.hasUnacked()) this.progressAt = this.now; // the stall clock starts now
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
    const drops = this.counters.datagramsDropped;
    if (message.length > this.maxDatagramPayload) {
      drops.tooLarge++;
      return false;
    }
    if (this._state !== "open" || this.drain) {
      drops.congestion++;
      return false;
    }
    // RFC 9221 §5.4: datagrams are congestion controlled and dropped, not queued, when blocked.
    if (this.cc.bytesInFlight + message.length > this.cc.cwnd) {
      drops.congestion++;
      return false;
    }
    if (this.datagrams.length >= MAX_QUEUED_DATAGRAMS) {
      drops.queueFull++;
      return false;
    }
    const copy = this.alloc(message.length);
    copy.set(message);
    this.datagrams.push(copy);
    this.datagramBytes += copy.length;
    return true;
  }

  /**
   * Starts closing: the peer gets `code` and `reason` in a few redundant CLOSE packets. Throws
   * FastnetError INVALID_CLOSE_CODE, changing nothing, unless `code` is an integer in 0..65535. The
   * reason is sent cut to MAX_CLOSE_REASON_BYTES of UTF-8 (on a character boundary).
   */
  close(code: number = CloseCode.Normal, reason = ""): void {
    checkCloseCode(code);
    if (this._state === "open" && this.streamOut.hasUnacked()) {
      // Deliver what was sent before the close (as a WebSocket close does): CLOSE follows once
      // every reliable byte is acknowledged, or after a bounded wait if the peer is gone. Every
      // packet sent while draining asks for an immediate ACK (IMMEDIATE_ACK, if the peer knows it),
      // and one goes out now even when all the data is already in flight: the CLOSE then follows
      // about a round trip after the last data, not after the peer's ACK delay (maxAckDelayMs).
      if (!this.drain) {
        this.drain = { code, reason, deadline: this.now + DRAIN_MAX_MS };
        this.immediateAckNeeded = this.peerImmediateAck;
      }
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
    this.addressValidated = false;
    this.bytesReceivedUnvalidated = triggerBytes;
    this.bytesSentUnvalidated = 0;
    if (newNetwork) {
      this.cc.reset();
      this.rtt.resetTo(this.rtt.smoothed);
    }
    // A first-path challenge is moot once the peer has left that path.
    this.challenges = this.challenges.filter((c) => !c.initial);
    if (this.challenges.length >= MAX_CHALLENGES) this.challenges.shift();
    const deadline = now + Math.max(3 * this.ptoBase(), PATH_VALIDATION_MIN_MS);
    return this.challenge(now, deadline, false);
  }

  /** Queues a fresh PATH_CHALLENGE for the current address; its response is the only proof of it. */
  private challenge(now: number, deadline: number, initial: boolean): Uint8Array {
    const data = new Uint8Array(PATH_DATA_LENGTH);
    this.random(data);
    this.challenges.push({ data, sendAt: now, deadline, initial });
    this.currentChallenge = data;
    return data;
  }

  /**
   * The driver went back to the address it last validated (or, if none was ever proven, the first
   * one): sending there is unrestricted again only if that address was proven by a PATH_RESPONSE.
   * Otherwise it is challenged afresh, with `triggerBytes` (the datagram from it) as the budget.
   */
  revertPath(triggerBytes = 0): void {
    this.challenges.length = 0;
    this.currentChallenge = null;
    this.addressValidated = this.fallbackValidated;
    if (!this.addressValidated) {
      this.bytesReceivedUnvalidated = triggerBytes;
      this.bytesSentUnvalidated = 0;
      this.challenge(this.now, Infinity, true);
    }
  }

  /** Client: makes the next packet a full-size PING probe (after a rebind, so the server may answer at once). */
  probePath(): void {
    this.pingNeeded = true;
    this.padNext = true;
  }

  /** Largest of our packet numbers the peer acknowledged, or -1. */
  get largestAcked(): number {
    return this.largestAckedPn;
  }

  /** The packet number the next packet will carry. */
  get nextPacketNumber(): number {
    return this.nextPn;
  }

  /** When the last authenticated packet arrived (ms, the driver's clock). */
  get lastReceivedAt(): number {
    return this.lastReceived;
  }

  private onPathResponse(data: Uint8Array): void {
    const i = this.challenges.findIndex((c) => equalBytes(c.data, data));
    if (i < 0) return; // unsolicited or late: ignored
    const c = this.challenges[i]!;
    this.challenges.splice(i, 1);
    // Only the challenge sent to where we send now proves that address; an answer to an older one
    // (another candidate address) proves nothing about it.
    if (c.data === this.currentChallenge) {
      this.currentChallenge = null;
      this.addressValidated = true;
      this.fallbackValidated = true;
    }
    if (!c.initial) this.pushEvent({ type: "pathValidated", data: c.data });
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
    if (this._state !== "open" || this.drain || this.unreachableDeadline !== Infinity) return;
    this.unreachableHints++;
    const grace = this.options.unreachableGraceMs;
    this.unreachableDeadline = now + grace;
    this.unreachableProbes = [now + grace / 8, now + grace / 4, now + grace / 2];
    this.pingNeeded = true;
  }

  /** True while an unreachable hint awaits an authenticated packet (see `onUnreachableHint`). */
  get suspectedUnreachable(): boolean {
    return this.unreachableDeadline !== Infinity;
  }

  /** Closes at once, without waiting for unacknowledged data: the peer still gets `code` and `reason`. */
  abort(code: number = CloseCode.Abnormal, reason = ""): void {
    checkCloseCode(code);
    this.drain = null;
    this.immediateAckNeeded = false;
    this.closeInternal(code, reason, true);
  }

  /** True from `close()` on: no more sends are accepted. */
  get closing(): boolean {
    return this.drain !== null || this._state === "closing";
  }

  private finishDrain(now: number): void {
    const d = this.drain;
    if (d && (!this.streamOut.hasUnacked() || now >= d.deadline)) {
      this.drain = null;
      this.immediateAckNeeded = false;
      this.closeInternal(d.code, d.reason, true);
    }
  }

  /**
   * Switches the sending key to the next generation (RFC 9001 §6). Returns false when an update is
   * still unconfirmed (the peer has not acknowledged a packet under the current key yet).
   */
  initiateKeyUpdate(): boolean {
    if (this._state !== "open" || !this.sendGenConfirmed || this.sendGen !== this.recvGen) return false;
    this.rotateSendKey();
    return true;
  }

  /** Key generation currently used for sending. */
  get keyGeneration(): number {
    return this.sendGen;
  }

  pollEvent(): ConnectionEvent | null {
    if (this.eventHead >= this.events.length) return null;
    const ev = this.events[this.eventHead]!;
    this.events[this.eventHead++] = POLLED; // the caller owns it now: do not keep its data alive
    if (ev.type === "message" || ev.type === "datagram") this.eventBytes -= ev.data.length;
    if (this.eventHead === this.events.length) {
      this.events.length = 0;
      this.eventHead = 0;
    }
    return ev;
  }

  getStats(): ConnectionStats {
    const c = this.counters;
    return {
      rtt: { smoothedMs: this.rtt.smoothed, varianceMs: this.rtt.variance, minMs: this.rtt.min === Infinity ? 0 : this.rtt.min, latestMs: this.rtt.latest },
      packetsSent: c.packetsSent,
      packetsReceived: c.packetsReceived,
      bytesSent: c.bytesSent,
      bytesReceived: c.bytesReceived,
      packetsLost: this.packetsLost,
      bytesRetransmitted: this.streamOut.retransmittedBytes,
      messagesSent: c.messagesSent,
      messagesReceived: c.messagesReceived,
      datagramsSent: c.datagramsSent,
      datagramsReceived: c.datagramsReceived,
      datagramsDropped: { ...c.datagramsDropped },
      dropped: { ...this.dropped },
      congestionWindow: this.cc.cwnd,
      bytesInFlight: this.cc.bytesInFlight,
      keyUpdates: this.keyUpdates,
      probeTimeouts: this.probeTimeouts,
      statelessResets: this.statelessResets,
      unreachableHints: this.unreachableHints,
      heldBytes: this.heldBytes,
      ackFramesIgnored: c.ackFramesIgnored,
    };
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
    const pn = decodePacketNumber(this.largestRecvPn, h.truncatedPn, h.pnLength * 8);
    if (!this.replay.check(pn)) {
      this.dropped.replay++;
      this.checkStatelessReset(buf);
      return Received.Dropped;
    }
    const aad = buf.subarray(0, h.headerLength);
    const sealed = buf.subarray(h.headerLength);
    let cipher: PacketCipher | null;
    let rotate = false;
    if (h.keyPhase === (this.recvGen & 1)) {
      cipher = this.recvCipher;
    } else if (this.recvPrev !== null && pn < this.recvGenFirstPn) {
      cipher = this.recvPrev;
    } else {
      if (this.recvNext === null && now >= this.nextKeysAt) this.recvNext = this.recvCipher.next();
      cipher = this.recvNext; // null: too soon after the last update, the packet cannot be opened
      rotate = true;
    }
    const payload = cipher === null ? null : cipher.open(pn, aad, sealed);
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
    this.replay.mark(pn);
    if (rotate) this.rotateRecvKey(pn, now);
    const newest = pn > this.largestRecvPn;
    if (newest) {
      this.largestRecvPn = pn;
      this.largestRecvTime = now;
    }
    this.received.add(pn, pn + 1);
    this.received.truncateLow(MAX_ACK_RANGES);
    this.counters.packetsReceived++;
    this.counters.bytesReceived += buf.length;
    // Only what arrives from the address we send to earns anti-amplification budget for it.
    if (!this.addressValidated && fromCurrentPath) this.bytesReceivedUnvalidated += buf.length;
    this.lastReceived = now;
    if (this.unreachableDeadline !== Infinity) {
      // Proof of life: whatever said the peer's port was closed was wrong, or is no longer right.
      this.unreachableDeadline = Infinity;
      this.unreachableProbes.length = 0;
    }
    if (this._state === "binding") {
      this._state = "open";
      this.pushEvent({ type: "open" });
      this.progressAt = now; // data queued while binding waited for the path, not for the peer
      // The client's address is proven only by an answer to this (sent with our first reply).
      if (this.role === "server") this.challenge(now, Infinity, true);
    }
    const ackEliciting = this.frameFlags.ackEliciting;
    const immediateAckAsked = this.frameFlags.immediateAck === true;
    this.cids.onPacket(cidIndex, newest);
    this.ackAppliedThisPacket = false;
    this.challengeInSeen = false;
    this.streamTurn(false);
    walkFrames(payload, this.visitor, this.ackFrame, this.frameFlags);
    if (this.challengeInSeen && !this.closingOrClosed && this.pathResponses.length < MAX_PATH_RESPONSES) {
      this.pathResponses.push(this.challengeIn.slice());
    }
    // Replacements for retired CIDs (and the first spares, after the bind): at most 2 per packet.
    if (this._state === "open") this.cids.topUp();
    if (ackEliciting && this._state === "open") {
      this.ackPending = true;
      this.ackElicitingUnacked++;
      // Out of order, or a hole below the newest: acknowledge at once so the peer detects loss fast.
      const gap = !newest || (this.received.size > 1 && this.received.starts[this.received.size - 1] === pn);
      // A Bind is answered at once: the client's session opens on that answer. So is a packet with
      // IMMEDIATE_ACK: a closing peer waits for this ACK before its CLOSE can leave.
      const immediate =
        gap || immediateAckAsked || h.type === PacketType.Bind || this.ackElicitingUnacked >= this.options.ackElicitingThreshold;
      if (immediate) this.ackDeadline = now;
      else if (this.ackDeadline === Infinity) this.ackDeadline = now + this.options.maxAckDelayMs;
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

  private rotateRecvKey(pn: number, now: number): void {
    this.recvPrev = this.recvCipher;
    this.recvPrevUntil = now + 3 * this.ptoBase();
    this.recvCipher = this.recvNext!;
    // Deriving keys costs some 100 µs, 40 packets' worth: a peer flipping the key phase on every
    // packet must not make us derive on every packet. The next keys exist only one PTO from now
    // (RFC 9001 §6.5 allows this); an honest peer waits for our ACK of this update before the
    // next one (§6.1), and anything it sends earlier under newer keys is lost and sent again.
    this.recvNext = null;
    this.nextKeysAt = now + this.ptoBase();
    this.recvGen++;
    this.recvGenFirstPn = pn;
    // The peer updated: follow with our own send key (RFC 9001 §6.2).
    if (this.sendGen < this.recvGen) this.rotateSendKey();
  }

  private rotateSendKey(): void {
    this.sendCipher = this.sendCipher.next();
    this.sendGen++;
    this.sendGenFirstPn = -1;
    this.sendGenConfirmed = false;
    this.packetsUnderKey = 0;
    this.keyUpdates++;
  }

  private onAck(ack: AckFrame): void {
    // Acknowledging a packet that was never sent is a violation (RFC 9000 §13.1), not something to guess about.
    if (ack.largest >= this.nextPn) {
      this.violation(`ACK of packet ${ack.largest}, never sent (the next is ${this.nextPn})`);
      return;
    }
    const now = this.now;
    const floor = this.streamOut.ackedOffset;
    const ackDelay = ack.delayUs / 1000;
    let largestNewlyAcked: SentPacket | null = null;
    let anyAckEliciting = false;
    let r = ack.count - 1; // ranges come highest first; walk them lowest first
    const sent = this.sent;
    let w = 0; // compacts `sent` in place: no array per ACK
    for (let i = 0; i < sent.length; i++) {
      const p = sent[i]!;
      while (r >= 0 && ack.largestOf[r]! < p.pn) r--;
      if (r >= 0 && ack.smallest[r]! <= p.pn) {
        // newly acknowledged
        anyAckEliciting = true;
        if (p.pn === ack.largest) largestNewlyAcked = p;
        this.cc.onAcked(p.size, p.timeSent, p.appLimited);
        if (p.stream) for (let i = 0; i < p.stream.length; i += 2) this.streamOut.onAcked(p.stream[i]!, p.stream[i + 1]!);
        if (p.ackLargest >= 0) this.received.remove(0, p.ackLargest);
        if (p.cids) this.cids.onAcked(p.cids);
        if (!this.sendGenConfirmed && this.sendGenFirstPn >= 0 && p.pn >= this.sendGenFirstPn) this.sendGenConfirmed = true;
      } else {
        sent[w++] = p;
      }
    }
    sent.length = w;
    if (ack.largest > this.largestAckedPn) this.largestAckedPn = ack.largest;
    if (largestNewlyAcked && anyAckEliciting) {
      this.rtt.update(now - largestNewlyAcked.timeSent, ackDelay, this.options.maxAckDelayMs);
    }
    // An ACK never validates an address (see addressValidated).
    if (anyAckEliciting) {
      this.ptoCount = 0;
      this.ackedAt = now;
    }
    if (this.streamOut.ackedOffset > floor) this.progressAt = now;
    this.detectLoss(now);
    if (this.drain) {
      // Acknowledgements are progress: the wait restarts, so a live peer gets all the data.
      if (anyAckEliciting) this.drain.deadline = now + DRAIN_MAX_MS;
      this.finishDrain(now);
    }
  }

  private detectLoss(now: number): void {
    this.lossTime = Infinity;
    if (this.largestAckedPn < 0) return;
    const lossDelay = Math.max(TIME_THRESHOLD * Math.max(this.rtt.latest, this.rtt.smoothed), GRANULARITY_MS);
    let largestLostSent = -Infinity;
    let firstLostSent = Infinity;
    let lostCount = 0;
    const sent = this.sent;
    let w = 0;
    for (let i = 0; i < sent.length; i++) {
      const p = sent[i]!;
      if (p.pn > this.largestAckedPn) {
        sent[w++] = p;
        continue;
      }
      // One expression for both the test and the timer, so float rounding cannot leave a timer due forever.
      const lossAt = p.timeSent + lossDelay;
      if (lossAt <= now || this.largestAckedPn - p.pn >= PACKET_THRESHOLD) {
        lostCount++;
        this.cc.onRemoved(p.size);
        if (p.stream) for (let i = 0; i < p.stream.length; i += 2) this.streamOut.onLost(p.stream[i]!, p.stream[i + 1]!);
        if (p.cids) this.cids.onLost(p.cids);
        if (p.timeSent > largestLostSent) largestLostSent = p.timeSent;
        if (p.timeSent < firstLostSent) firstLostSent = p.timeSent;
      } else {
        sent[w++] = p;
        this.lossTime = Math.min(this.lossTime, lossAt);
      }
    }
    sent.length = w;
    if (lostCount > 0) {
      this.packetsLost += lostCount;
      // Persistent congestion (RFC 9002 §7.6), approximated: losses spanning 3 PTOs with nothing left in flight before them.
      const persistent = this.rtt.hasSample && largestLostSent - firstLostSent > 3 * this.ptoBase() && w === 0;
      this.cc.onLost(largestLostSent, now, persistent);
    }
  }

  private challengeDue(now: number): boolean {
    for (const c of this.challenges) if (c.sendAt <= now) return true;
    return false;
  }

  private ptoBase(): number {
    return this.rtt.pto(this.options.maxAckDelayMs, GRANULARITY_MS);
  }

  private lossDetectionDeadline(): number {
    if (this.lossTime !== Infinity) return this.lossTime;
    if (this.sent.length === 0) return Infinity;
    const backoff = 1 << Math.min(this.ptoCount, MAX_PTO_BACKOFF);
    return this.lastAckElicitingSent + this.ptoBase() * backoff;
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
    if (code > MAX_CLOSE_CODE) {
      // A varint allows 2^62: report what the peer did rather than hand an impossible code onward.
      reason = `protocol violation: the peer's close code ${code} is out of range`;
      code = CloseCode.ProtocolError;
    }
    this._state = "closed";
    this.closeCode = code;
    this.closeReasonText = reason;
    this.pushEvent({ type: "close", code, reason, remote: true });
  }

  /** An authenticated peer broke the protocol: close with 1002 "protocol violation: <what>". */
  private violation(what: string): void {
    this.closeInternal(CloseCode.ProtocolError, `protocol violation: ${what}`, true);
  }

  /** `notify`: send CLOSE packets to the peer; otherwise the session just ends (timeouts). */
  private closeInternal(code: number, reason: string, notify: boolean): void {
    if (this._state === "closing" || this._state === "closed") return;
    this.closeCode = code;
    this.closeReasonText = reason;
    // Cut long reasons before encoding: each UTF-16 unit is at least one UTF-8 byte, so nothing that
    // would be sent is lost, and a huge string is not encoded whole.
    const text = typeof reason === "string" ? reason : String(reason);
    this.closeReason = encodeCloseReason(text.length > MAX_CLOSE_REASON_BYTES ? text.slice(0, MAX_CLOSE_REASON_BYTES) : text);
    const canSend = notify && (this._state === "open" || (this.role === "client" && this.bindSent));
    if (canSend) {
      this._state = "closing";
      this.closePacketsLeft = this.options.closePackets;
    } else {
      this.finishClose();
    }
  }

  private finishClose(): void {
    this._state = "closed";
    this.pushEvent({ type: "close", code: this.closeCode, reason: this.closeReasonText, remote: false });
  }

  private pushEvent(ev: ConnectionEvent): void {
    if (ev.type === "message" || ev.type === "datagram") this.eventBytes += ev.data.length;
    this.events.push(ev);
  }

  /** See ConnectionStats.heldBytes. */
  get heldBytes(): number {
    let sentRanges = 0;
    for (const p of this.sent) {
      if (p.stream) sentRanges += p.stream.length;
      if (p.cids) sentRanges += p.cids.length;
    }
    return (
      this.streamOut.heldBytes +
      this.streamIn.heldBytes +
      this.sent.length * SENT_RECORD_CHARGE +
      sentRanges * 8 +
      this.datagrams.length * OBJECT_CHARGE +
      this.datagramBytes +
      (this.events.length - this.eventHead) * OBJECT_CHARGE +
      this.eventBytes +
      (this.pathResponses.length + this.challenges.length) * OBJECT_CHARGE
    );
  }

  // ---------------------------------------------------------------- timers

  /** Absolute time (ms) at which `handleTimeout` must be called next, or null when nothing is pending. */
  pollTimeout(): number | null {
    if (this._state === "closed") return null;
    if (this._state === "closing") return this.now; // close packets are waiting to be polled
    let t = this.lastReceived + this.idleTimeoutMs;
    if (this._state === "binding") {
      if (this.role === "client") t = Math.min(t, this.bindDeadline);
      t = Math.min(t, this.lossDetectionDeadline());
      return t;
    }
    // A deadline whose packet cannot leave (anti-amplification) or is already due would spin the
    // driver: report it only when acting on it can send something (RFC 9002 §6.2.2.1). A probe
    // timeout cannot send while blocked, so it is not armed until the peer is heard from again.
    const blocked = this.amplificationBlocked();
    t = Math.min(t, blocked && this.lossTime === Infinity ? Infinity : this.lossDetectionDeadline(), this.stallAt());
    if (!blocked) {
      if (this.ackPending) t = Math.min(t, this.ackDeadline);
      if (!this.pingNeeded) t = Math.min(t, this.keepAliveAt());
    }
    if (this.pacerWait !== Infinity) t = Math.min(t, this.pacerWait);
    if (this.recvPrev) t = Math.min(t, this.recvPrevUntil);
    if (this.drain) t = Math.min(t, this.drain.deadline);
    t = Math.min(t, this.unreachableDeadline, this.unreachableProbes[0] ?? Infinity);
    if (this.streamIn.hasParked) t = Math.min(t, this.now); // more messages to deliver: a turn is due
    for (const c of this.challenges) t = Math.min(t, c.deadline, blocked ? Infinity : c.sendAt);
    return t;
  }

  /**
   * When the stall timeout fires: reliable data is unacknowledged, and for stallTimeoutMs and at least
   * STALL_PROBE_ROUNDS probe timeouts the peer acknowledged none of our packets (or, for
   * STALL_OLDEST_FACTOR times that, not the oldest byte), while it was heard from within the last half
   * of stallTimeoutMs (it keeps sending but does not acknowledge). A peer that went silent is left to
   * the idle timeout. An overloaded peer (its receive buffer overflowing, its round trip grown to
   * seconds) still acknowledges a packet now and then: it is slow, not hostile, and keeps its session.
   */
  private stallAt(): number {
    if (this._state !== "open" || !this.streamOut.hasUnacked()) return Infinity;
    const stall = this.options.stallTimeoutMs;
    const unanswered = this.ptoCount >= STALL_PROBE_ROUNDS ? Math.max(this.progressAt, this.ackedAt) + stall : Infinity;
    const at = Math.min(unanswered, this.progressAt + STALL_OLDEST_FACTOR * stall);
    return at <= this.lastReceived + stall / 2 ? at : Infinity;
  }

  private amplificationBlocked(): boolean {
    return !this.addressValidated && 3 * this.bytesReceivedUnvalidated - this.bytesSentUnvalidated < MIN_AMPLIFICATION_BUDGET;
  }

  private keepAliveAt(): number {
    return Math.max(this.lastReceived, this.lastAckElicitingSent) + this.options.keepAliveMs;
  }

  /** Runs every timer that is due at `now`. */
  handleTimeout(now: number): void {
    this.now = now;
    if (this._state === "closed" || this._state === "closing") return;
    // While binding, silence means the bind failed: say so rather than "idle timeout".
    if (this._state === "binding" && this.role === "client" && now >= this.bindDeadline) {
      this.closeInternal(CloseCode.Abnormal, "bind timeout: no answer from the server over UDP", false);
      return;
    }
    if (now >= this.lastReceived + this.idleTimeoutMs) {
      this.closeInternal(CloseCode.Abnormal, "idle timeout", false);
      return;
    }
    if (now >= this.unreachableDeadline) {
      // Sent anyway: if only the path back to us is broken, the peer learns at once (its room sees a drop).
      const waited = Math.round(this.options.unreachableGraceMs);
      this.closeInternal(CloseCode.Abnormal, `SERVER_UNREACHABLE: the network reported the server's UDP port closed and nothing was heard from the server for ${waited} ms`, true);
      return;
    }
    while (this.unreachableProbes.length > 0 && now >= this.unreachableProbes[0]!) {
      this.unreachableProbes.shift();
      this.pingNeeded = true;
    }
    if (now >= this.stallAt()) {
      // Not sent: the peer does not acknowledge, so it would not act on a CLOSE either; if it is
      // honest and only cut off, its own timers end the session (and a server's CID then draws resets).
      const none = Math.round(now - Math.max(this.progressAt, this.ackedAt));
      const oldest = Math.round(now - this.progressAt);
      const why = none >= this.options.stallTimeoutMs ? `no acknowledgement of reliable data for ${none} ms` : `the oldest reliable data unacknowledged for ${oldest} ms`;
      this.closeInternal(CloseCode.Abnormal, `stalled: ${why}`, false);
      return;
    }
    if (this.recvPrev && now >= this.recvPrevUntil) {
      this.recvPrev = null;
      this.recvPrevUntil = Infinity;
    }
    if (this.streamIn.hasParked) {
      this.streamTurn(false);
      if (this._state !== "open") return;
    }
    if (this.drain) {
      this.finishDrain(now);
      if (this._state !== "open") return;
    }
    if (this.challenges.length > 0) {
      // An initial challenge (deadline Infinity) never fails: it is resent until answered.
      const failed = this.challenges.filter((c) => now >= c.deadline);
      if (failed.length > 0) {
        this.challenges = this.challenges.filter((c) => now < c.deadline);
        for (const c of failed) this.pushEvent({ type: "pathFailed", data: c.data });
      }
    }
    if (now >= this.pacerWait) this.pacerWait = Infinity;
    const lossAt = this.lossDetectionDeadline();
    if (now >= lossAt) {
      if (this.lossTime !== Infinity) {
        this.detectLoss(now);
      } else if (this.drain && this.ptoCount >= DRAIN_PROBE_ROUNDS) {
        // Round after round of probes asking for an immediate ACK went unanswered: the peer is gone.
        const d = this.drain;
        this.drain = null;
        this.immediateAckNeeded = false;
        this.closeInternal(d.code, d.reason, true);
        return;
      } else if (!this.amplificationBlocked()) {
        // Probe timeout (RFC 9002 §6.2.4): send up to two ack-eliciting probes, retransmitting the oldest data.
        this.ptoCount++;
        this.probeTimeouts++;
        this.probesPending = 2;
        const oldest = this.sent[0];
        if (oldest?.stream) {
          for (let i = 0; i < oldest.stream.length; i += 2) this.streamOut.onLost(oldest.stream[i]!, oldest.stream[i + 1]!);
        }
      }
    }
    if (this._state === "open" && now >= this.keepAliveAt()) this.pingNeeded = true;
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
      if (this.closePacketsLeft <= 0) return null;
      this.closePacketsLeft--;
      const pkt = this.buildPacket(now, "close");
      if (this.closePacketsLeft === 0) this.finishClose();
      return pkt;
    }
    if (this._state === "binding") {
      if (this.role !== "client") return null; // the server learns the client's address from its bind
      if (this.bindSent && this.probesPending === 0) return null;
      if (this.probesPending > 0) this.probesPending--;
      this.bindSent = true;
      return this.buildPacket(now, "bind");
    }
    const ackDue = this.ackPending && now >= this.ackDeadline;
    const probe = this.probesPending > 0;
    const wantsElicit =
      probe ||
      this.pingNeeded ||
      this.immediateAckNeeded ||
      this.datagrams.length > 0 ||
      this.pathResponses.length > 0 ||
      this.challengeDue(now) ||
      this.cids.framesDue(this.largestAckedPn) ||
      this.streamOut.hasData(this.peerWindow);
    if (!wantsElicit) return ackDue ? this.buildPacket(now, "ack") : null;
    if (this.sent.length >= MAX_SENT_PACKETS) {
      this.violation(`${this.sent.length} ack-eliciting packets left unacknowledged`);
      return this.pollTransmit(now); // the first CLOSE packet
    }
    if (!probe) {
      const cwndBlocked = this.cc.bytesInFlight >= this.cc.cwnd || this.sent.length >= MAX_SENT_PACKETS - SENT_CONTROL_SLACK;
      let paced = false;
      if (!cwndBlocked) {
        const wait = this.pacer.delayUntil(now, MAX_DATAGRAM_SIZE, this.cc.cwnd, this.rtt.smoothed);
        if (wait > 0) {
          this.pacerWait = wait;
          paced = true;
        }
      }
      if (cwndBlocked || paced) {
        // Path responses, pings and a drain's IMMEDIATE_ACK are tiny and must not wait behind bulk
        // data; they go alone (the ACK the last one draws is what opens the window again).
        if (this.pathResponses.length === 0 && !this.pingNeeded && !this.immediateAckNeeded && !this.challengeDue(now)) {
          return ackDue ? this.buildPacket(now, "ack") : null;
        }
        return this.buildPacket(now, "control");
      }
    }
    if (probe) this.probesPending--;
    return this.buildPacket(now, probe ? "probe" : "data");
  }

  private readonly scratch = new Uint8Array(MAX_DATAGRAM_SIZE);

  /** `control`: ACK, path frames and PING only (what may bypass congestion control). */
  private buildPacket(now: number, kind: "data" | "control" | "ack" | "probe" | "bind" | "close"): Uint8Array | null {
    let maxSize = MAX_DATAGRAM_SIZE;
    if (!this.addressValidated) {
      const budget = 3 * this.bytesReceivedUnvalidated - this.bytesSentUnvalidated;
      if (budget < MIN_AMPLIFICATION_BUDGET) return null;
      maxSize = Math.min(maxSize, budget);
    }
    const pn = this.nextPn;
    const pnLength = packetNumberLength(pn, this.largestAckedPn);
    const headerLength = 1 + this.cid.length + pnLength;
    const room = maxSize - headerLength - AEAD_TAG_LENGTH;
    const p = this.scratch;
    let off = 0;
    let ackEliciting = false;
    let ackLargest = -1;
    let stream: number[] | null = null;
    let cids: number[] | null = null;
    let appLimited = true;

    if (kind === "close") {
      off = writeCloseFrame(p, off, this.closeCode, this.closeReason);
    } else {
      if (this.ackPending && kind !== "bind") {
        const delayUs = Math.max(0, Math.round((now - this.largestRecvTime) * 1000));
        const o = writeAckFrame(p, off, room - off, this.received.starts, this.received.ends, delayUs);
        if (o > off) {
          ackLargest = this.received.max()! - 1;
          off = o;
          this.ackPending = false;
          this.ackElicitingUnacked = 0;
          this.ackDeadline = Infinity;
        }
      }
      if (kind !== "ack") {
        if (this.drain && this.peerImmediateAck && kind !== "bind") {
          // Every ack-eliciting packet of a drain (data, probes, control) asks for an immediate ACK;
          // first, so that stream data cannot crowd it out. Never to a peer that did not announce it.
          p[off++] = FrameType.ImmediateAck;
          ackEliciting = true;
          this.immediateAckNeeded = false;
        }
        while (this.pathResponses.length > 0 && room - off >= 1 + PATH_DATA_LENGTH) {
          off = writePathFrame(p, off, FrameType.PathResponse, this.pathResponses.shift()!);
          ackEliciting = true;
        }
        for (const c of this.challenges) {
          // The current path's challenge rides every packet until answered: any one answer proves it.
          const due = c.sendAt <= now || (c.data === this.currentChallenge && !this.addressValidated);
          if (!due || room - off < 1 + PATH_DATA_LENGTH) continue;
          off = writePathFrame(p, off, FrameType.PathChallenge, c.data);
          c.sendAt = now + this.ptoBase(); // resent each PTO until answered or given up
          ackEliciting = true;
        }
        if (kind !== "bind" && kind !== "control" && this.cids.framesDue(this.largestAckedPn)) {
          const o = this.cids.writeFrames(p, off, room, (cids = []));
          if (o > off) ackEliciting = true;
          else cids = null;
          off = o;
        }
        while (kind !== "control" && this.datagrams.length > 0) {
          const d = this.datagrams[0]!;
          if (room - off < datagramFrameOverhead(d.length) + d.length) break;
          off = writeDatagramFrame(p, off, d);
          this.datagrams.shift();
          this.datagramBytes -= d.length;
          this.counters.datagramsSent++;
          ackEliciting = true;
        }
        for (let frames = 0; kind !== "control" && frames < MAX_STREAM_FRAMES_PER_PACKET; frames++) {
          const space = room - off - streamFrameOverhead(this.streamOut.endOffset, room);
          if (space <= 0) break;
          this.streamOut.nextSegment(space, this.peerWindow, this.segment);
          if (this.segment.len === 0) break;
          const { offset, len } = this.segment;
          const dataAt = writeStreamFrameHeader(p, off, offset, len);
          this.streamOut.copy(offset, len, p, dataAt);
          off = dataAt + len;
          (stream ??= []).push(offset, offset + len);
          ackEliciting = true;
          appLimited = false;
        }
        if (!ackEliciting && (this.pingNeeded || kind === "probe" || kind === "bind")) {
          p[off++] = FrameType.Ping;
          ackEliciting = true;
        }
        if (ackEliciting) this.pingNeeded = false;
      }
    }
    if (off === 0) return null;
    let total = headerLength + off + AEAD_TAG_LENGTH;
    if (this.role === "client" && total < MIN_CLIENT_PACKET_LENGTH && kind !== "bind") {
      // Long enough to draw a stateless reset (which must be shorter than its trigger), RFC 9000 §10.3.
      const pad = MIN_CLIENT_PACKET_LENGTH - total;
      p.fill(FrameType.Padding, off, off + pad);
      off += pad;
      total += pad;
    }
    if (this.padNext && ackEliciting && kind !== "bind" && kind !== "close" && maxSize === MAX_DATAGRAM_SIZE) {
      this.padNext = false;
      p.fill(FrameType.Padding, off, room);
      off = room;
      total = MAX_DATAGRAM_SIZE;
    }
    if (kind === "bind") {
      // Pad the client's bind to the full datagram size so the server may answer with as much.
      p.fill(FrameType.Padding, off, room);
      off = room;
      total = MAX_DATAGRAM_SIZE;
    }
    const out = this.alloc(total);
    writeHeader(out, kind === "bind" ? PacketType.Bind : PacketType.Data, (this.sendGen & 1) as 0 | 1, this.cid, pn, pnLength);
    this.sendCipher.seal(out, headerLength, pn, out.subarray(0, headerLength), p.subarray(0, off));
    this.nextPn++;
    this.counters.packetsSent++;
    this.counters.bytesSent += total;
    if (!this.addressValidated) this.bytesSentUnvalidated += total;
    if (this.sendGenFirstPn < 0) this.sendGenFirstPn = pn;
    if (ackEliciting) {
      this.sent.push({ pn, timeSent: now, size: total, stream, ackLargest, appLimited: appLimited && this.cc.bytesInFlight < this.cc.cwnd / 2, cids });
      this.cc.onSent(total);
      this.pacer.onSent(total);
      this.lastAckElicitingSent = now;
    }
    if (++this.packetsUnderKey >= this.options.keyUpdateIntervalPackets) this.initiateKeyUpdate();
    return out;
  }
}

/** Close codes are 16-bit, as in WebSocket (and Colyseus) close frames. */
const MAX_CLOSE_CODE = 0xffff;

function checkCloseCode(code: number): void {
  if (!Number.isInteger(code) || code < 0 || code > MAX_CLOSE_CODE) {
    throw new FastnetError("INVALID_CLOSE_CODE", `close code must be an integer in 0..${MAX_CLOSE_CODE}, got ${String(code)}`);
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

/**
 * The most `ConnectionStats.heldBytes` can reach for these options, whatever the peer does (it holds
 * real keys and breaks every rule it can), given non-empty messages from the application. Each term:
 * - send queue: sendQueueBytes of messages plus their length prefixes (at most one byte per byte);
 * - receive side: out-of-order and parked bytes stay within receiveBufferBytes plus a turn's overshoot
 *   (4 KiB), in buffers with at most a quarter of slack, plus the minimum charge per piece; plus the
 *   partly reassembled message (allocated whole when its length arrives); plus the per-event charge
 *   of one turn of delivered messages (their bytes are counted in the first term);
 * - sent records, with at most MAX_STREAM_FRAMES_PER_PACKET ranges and the CID frames each;
 * - queued datagrams, path responses and challenges.
 */
export function maxHeldBytes(o: SessionOptions): number {
  const send = 2 * o.sendQueueBytes;
  const receive =
    Math.ceil(1.25 * (o.receiveBufferBytes + 4096)) +
    MIN_PIECE_CHARGE * (maxPieces(o.receiveBufferBytes) + 1) +
    o.maxMessageSize +
    OBJECT_CHARGE * (MAX_MESSAGES_PER_TURN + 8);
  const cidFrames = ACTIVE_CID_LIMIT + MAX_RETIRING_CIDS; // NEW/RETIRE_CONNECTION_ID sequence numbers a record lists
  const sent = MAX_SENT_PACKETS * (SENT_RECORD_CHARGE + 8 * (2 * MAX_STREAM_FRAMES_PER_PACKET + cidFrames));
  const queued = MAX_QUEUED_DATAGRAMS * (OBJECT_CHARGE + MAX_DATAGRAM_SIZE) + (MAX_PATH_RESPONSES + MAX_CHALLENGES) * OBJECT_CHARGE;
  return send + receive + sent + queued;
}

/** Placeholder for a polled slot of the event queue. */
const POLLED: ConnectionEvent = { type: "open" };

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
