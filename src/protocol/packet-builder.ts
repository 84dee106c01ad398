import type { AckTracker } from "./ack-tracker.js";
import { AEAD_TAG_LENGTH } from "./aead.js";
import type { Allocator } from "./allocator.js";
import type { ConnectionIds } from "./cid-set.js";
import type { Closing } from "./closing.js";
import type { Role } from "./connection-types.js";
import type { DatagramQueue } from "./datagram-queue.js";
import { FrameType, streamFrameOverhead, writeCloseFrame, writeStreamFrameHeader } from "./frames.js";
import { PacketType, writeHeader } from "./packet-header.js";
import type { PacketKeys } from "./packet-keys.js";
import { packetNumberLength } from "./packet-number.js";

/** Fewest packet-number bytes this implementation sends (receivers accept 1 to 4). */
const MIN_PN_LENGTH = 2;
import type { PathValidator } from "./path-validation.js";
import type { Recovery } from "./recovery.js";
import type { StreamSender } from "./stream-send.js";
import { MAX_DATAGRAM_SIZE } from "./version.js";

/**
 * What a packet may hold. `control`: ACK, path frames and PING only (what may bypass congestion
 * control); `probe`: anything, with a PING if nothing else elicits an ACK; `bind`: the client's
 * first packet, padded to the full size; `close`: a CLOSE frame alone.
 */
export type PacketKind = "data" | "control" | "ack" | "probe" | "bind" | "close";

/** Client packets are padded to this size: a shorter trigger could not draw a stateless reset. */
export const MIN_CLIENT_PACKET_LENGTH = 40;
/**
 * STREAM frames per packet at most. Each is a range in the packet's sent record; retransmitting many
 * scattered small lost ranges (a peer that acknowledged every other small packet) could otherwise put
 * hundreds in one record.
 */
export const MAX_STREAM_FRAMES_PER_PACKET = 16;

/** The parts of a connection a packet's frames come from (and whose state sending one changes). */
export interface PacketSources {
  role: Role;
  alloc: Allocator;
  keys: PacketKeys;
  acks: AckTracker;
  path: PathValidator;
  recovery: Recovery;
  cids: ConnectionIds;
  streamOut: StreamSender;
  datagrams: DatagramQueue;
  closing: Closing;
  /** The peer's receive window for the stream (bytes beyond the acknowledged offset). */
  peerWindow: number;
  /** The peer announced IMMEDIATE_ACK in the handshake: only then may it receive the frame. */
  peerImmediateAck: boolean;
}

/**
 * Assembles, seals and accounts for one packet at a time: frames in priority order (ACK, IMMEDIATE_ACK,
 * path frames, CID frames, datagrams, stream data, PING), padding, header, AEAD. It owns the packet
 * number and the small "owed" flags (a PING, a full-size probe) the connection raises.
 */
export class PacketBuilder {
  /** The packet number the next packet will carry. */
  nextPn = 0;
  packetsSent = 0;
  bytesSent = 0;
  /** The next packet must elicit an ACK (keep-alive, unreachable probe, path probe). */
  pingNeeded = false;
  /** Pad the next ack-eliciting packet to the full size (a path probe: it grants the peer's budget). */
  padNext = false;
  private readonly scratch = new Uint8Array(MAX_DATAGRAM_SIZE);
  /** The last plaintext view of `scratch` sealed: a flow's packets repeat their length, so it is reused. */
  private plain = this.scratch.subarray(0, 0);
  /** The stream ranges of the packet being built (Recovery copies them): reused, never reallocated. */
  private readonly streamRanges: number[] = [];
  private readonly segment = { offset: 0, len: 0 };
  private readonly role: Role;
  private readonly alloc: Allocator;
  private readonly keys: PacketKeys;
  private readonly acks: AckTracker;
  private readonly path: PathValidator;
  private readonly recovery: Recovery;
  private readonly cids: ConnectionIds;
  private readonly streamOut: StreamSender;
  private readonly datagrams: DatagramQueue;
  private readonly closing: Closing;
  private readonly peerWindow: number;
  private readonly peerImmediateAck: boolean;

  constructor(s: PacketSources) {
    this.role = s.role;
    this.alloc = s.alloc;
    this.keys = s.keys;
    this.acks = s.acks;
    this.path = s.path;
    this.recovery = s.recovery;
    this.cids = s.cids;
    this.streamOut = s.streamOut;
    this.datagrams = s.datagrams;
    this.closing = s.closing;
    this.peerWindow = s.peerWindow;
    this.peerImmediateAck = s.peerImmediateAck;
  }

  /**
   * What an open connection should send now: null for nothing, "overflow" when so many packets are
   * unacknowledged that the peer must be breaking the protocol (the connection closes). A probe
   * timeout's probes go first, past congestion control; so do the small control frames.
   */
  nextKind(now: number): PacketKind | "overflow" | null {
    const recovery = this.recovery;
    const ackDue = this.acks.due(now);
    const probe = recovery.probesPending > 0;
    const wantsElicit =
      probe ||
      this.pingNeeded ||
      this.closing.immediateAckNeeded ||
      this.datagrams.length > 0 ||
      this.path.responsesQueued > 0 ||
      this.path.challengeDue(now) ||
      this.cids.framesDue(recovery.largestAcked) ||
      this.streamOut.hasData(this.peerWindow);
    if (!wantsElicit) return ackDue ? "ack" : null;
    if (recovery.overflowing) return "overflow";
    if (!probe && recovery.sendBlocked(now)) {
      // Path responses, pings and a drain's IMMEDIATE_ACK are tiny and must not wait behind bulk
      // data; they go alone (the ACK the last one draws is what opens the window again).
      if (this.path.responsesQueued === 0 && !this.pingNeeded && !this.closing.immediateAckNeeded && !this.path.challengeDue(now)) {
        return ackDue ? "ack" : null;
      }
      return "control";
    }
    if (probe) recovery.probesPending--;
    return probe ? "probe" : "data";
  }

  /**
   * Builds the next packet of `kind` into a new buffer (from `alloc`), or null when nothing fits or
   * the anti-amplification budget is spent. Records it in the packet keys, the path's budget and, if
   * ack-eliciting, in recovery.
   */
  build(now: number, kind: PacketKind): Uint8Array | null {
    const maxSize = this.path.maxDatagram(MAX_DATAGRAM_SIZE);
    if (maxSize === 0) return null;
    const pn = this.nextPn;
    // At least 2 bytes, though RFC 9000 §17.1 allows 1: a 1-byte number is decoded wrongly (and the
    // packet fails authentication) once 128 later packets overtook it, which a bulk transfer behind
    // 20 ms of jitter does; with 2 bytes it takes 32,768. One byte per packet buys that.
    const pnLength = Math.max(MIN_PN_LENGTH, packetNumberLength(pn, this.recovery.largestAcked)) as 2 | 3 | 4;
    const cid = this.cids.current;
    const headerLength = 1 + cid.length + pnLength;
    const room = maxSize - headerLength - AEAD_TAG_LENGTH;
    const p = this.scratch;
    let off = 0;
    let ackEliciting = false;
    let ackLargest = -1;
    const stream = this.streamRanges;
    stream.length = 0;
    let cids: number[] | null = null;
    let appLimited = true;

    if (kind === "close") {
      off = writeCloseFrame(p, off, this.closing.code, this.closing.reasonBytes);
    } else {
      if ((this.closing.drain || kind === "probe") && this.peerImmediateAck && kind !== "ack" && kind !== "bind") {
        // Every ack-eliciting packet of a drain (data, probes, control) asks for an immediate ACK; first,
        // so that stream data cannot crowd it out. So does every probe (a tail-loss probe): its answer,
        // not the peer's ACK delay, decides how long a second loss costs. Never to a peer that did not
        // announce it.
        p[off++] = FrameType.ImmediateAck;
        ackEliciting = true;
        this.closing.immediateAckNeeded = false;
      }
      // Then the ACK, before stream data can crowd it out: when one is due; in any packet we
      // send anyway when packets of any kind arrived above the largest our last ACK reported (the
      // peer's ACK-only packets: it then learns we are reading it, which its stall rule counts, at no
      // extra packet and with no ACK ping-pong, RFC 9000 §13.2.1); and in a probe or a keep-alive
      // PING even when nothing new arrived, since our last ACK may have been lost and a peer that
      // hears only those must still learn what we received.
      const ack =
        this.acks.pending ||
        (kind !== "bind" && kind !== "ack" && (this.acks.unreported() || ((kind === "probe" || this.pingNeeded) && this.acks.hasRanges())));
      if (ack) {
        const o = this.acks.write(p, off, room, now);
        if (o > off) {
          ackLargest = this.acks.lastWrittenLargest;
          off = o;
        }
      }
      if (kind !== "ack") {
        let o = this.path.writeResponses(p, off, room);
        // Challenges are rare: no PTO computed for a packet without one.
        if (this.path.challenges.length > 0) o = this.path.writeChallenges(p, o, room, now, this.recovery.ptoBase());
        if (o > off) ackEliciting = true;
        off = o;
        if (kind !== "bind" && kind !== "control" && this.cids.framesDue(this.recovery.largestAcked)) {
          const o = this.cids.writeFrames(p, off, room, (cids = []));
          if (o > off) ackEliciting = true;
          else cids = null;
          off = o;
        }
        if (kind !== "control") {
          const o = this.datagrams.write(p, off, room);
          if (o > off) ackEliciting = true;
          off = o;
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
          stream.push(offset, offset + len);
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
    writeHeader(out, kind === "bind" ? PacketType.Bind : PacketType.Data, this.keys.sendPhase, cid, pn, pnLength);
    if (this.plain.length !== off) this.plain = p.subarray(0, off);
    this.keys.seal(out, headerLength, pn, this.plain);
    this.nextPn++;
    this.packetsSent++;
    this.bytesSent += total;
    this.path.onSent(total);
    if (ackEliciting) this.recovery.onSent(pn, now, total, stream, ackLargest, appLimited, cids);
    return out;
  }
}
