import assert from "node:assert/strict";
import { AckTracker } from "../src/protocol/ack-tracker.js";
import { nobleBackend } from "../src/protocol/aead-noble.js";
import { ConnectionIds } from "../src/protocol/cid-set.js";
import { Closing } from "../src/protocol/closing.js";
import type { Role } from "../src/protocol/connection-types.js";
import { DatagramQueue } from "../src/protocol/datagram-queue.js";
import { AckFrame, PATH_DATA_LENGTH, walkFrames } from "../src/protocol/frames.js";
import { MIN_CLIENT_PACKET_LENGTH, PacketBuilder } from "../src/protocol/packet-builder.js";
import { PacketType, parseHeader, type ParsedHeader } from "../src/protocol/packet-header.js";
import { PacketKeys } from "../src/protocol/packet-keys.js";
import { PathValidator } from "../src/protocol/path-validation.js";
import { Recovery } from "../src/protocol/recovery.js";
import { StreamSender } from "../src/protocol/stream-send.js";
import { CID_LENGTH, MAX_DATAGRAM_SIZE } from "../src/protocol/version.js";

const km = Uint8Array.from({ length: 64 }, (_, i) => 255 - i);
const cid = new Uint8Array(CID_LENGTH).fill(7);
const alloc = (n: number): Uint8Array => new Uint8Array(n);

function setup(role: Role, validated = true) {
  const noop = (): void => {};
  const parts = {
    role,
    alloc,
    keys: new PacketKeys(nobleBackend, km, role),
    acks: new AckTracker(),
    path: new PathValidator(validated, (out: Uint8Array) => out.fill(0xaa)),
    recovery: new Recovery(100, 10, 25, { onAcked: noop, onLost: noop, onProbe: noop }),
    cids: new ConnectionIds(role, cid, null, null),
    streamOut: new StreamSender(alloc),
    datagrams: new DatagramQueue(alloc),
    closing: new Closing(),
    peerWindow: 1 << 20,
    peerImmediateAck: true,
  };
  const peer = new PacketKeys(nobleBackend, km, role === "client" ? "server" : "client");
  return { ...parts, peer, builder: new PacketBuilder(parts) };
}

interface Opened {
  header: ParsedHeader;
  frames: string[];
  stream: [number, number][];
  close?: [number, string];
}

/** Opens `pkt` with the peer's keys and lists its frames (PADDING is not listed). */
function openPacket(peer: PacketKeys, pkt: Uint8Array): Opened {
  const header: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  assert.ok(parseHeader(pkt, header));
  const payload = peer.open(header.truncatedPn, header.keyPhase, pkt.subarray(0, header.headerLength), pkt.subarray(header.headerLength), 0);
  assert.ok(payload, "the packet authenticates");
  const out: Opened = { header, frames: [], stream: [] };
  const ok = walkFrames(payload, {
    onPing: () => out.frames.push("ping"),
    onAck: () => out.frames.push("ack"),
    onStream: (offset, data) => {
      out.frames.push("stream");
      out.stream.push([offset, data.length]);
    },
    onDatagram: () => out.frames.push("datagram"),
    onClose: (code, reason) => {
      out.frames.push("close");
      out.close = [code, reason];
    },
    onPathChallenge: () => out.frames.push("challenge"),
    onPathResponse: () => out.frames.push("response"),
    onImmediateAck: () => out.frames.push("immediate-ack"),
  }, new AckFrame(), { ackEliciting: false, immediateAck: false });
  assert.ok(ok, "well-formed frames");
  return out;
}

describe("PacketBuilder", () => {
  it("a client's bind is a PING padded to the full datagram size, and is recorded as ack-eliciting", () => {
    const s = setup("client");
    const pkt = s.builder.build(0, "bind")!;
    assert.equal(pkt.length, MAX_DATAGRAM_SIZE);
    const o = openPacket(s.peer, pkt);
    assert.equal(o.header.type, PacketType.Bind);
    assert.deepEqual(o.frames, ["ping"]);
    assert.equal(s.builder.nextPn, 1);
    assert.deepEqual(s.recovery.sent.pns(), [0]);
    assert.equal(s.builder.bytesSent, MAX_DATAGRAM_SIZE);
  });

  it("a client's ACK-only packet is padded to MIN_CLIENT_PACKET_LENGTH and not recorded", () => {
    const s = setup("client");
    s.acks.onReceived(0, 0);
    s.acks.onAckEliciting(0, true, true, 0, 10, 25);
    const pkt = s.builder.build(1, "ack")!;
    assert.equal(pkt.length, MIN_CLIENT_PACKET_LENGTH);
    assert.deepEqual(openPacket(s.peer, pkt).frames, ["ack"]);
    assert.equal(s.acks.pending, false);
    assert.equal(s.recovery.sent.length, 0);
    assert.equal(s.builder.build(2, "ack"), null, "nothing left to send");
  });

  it("data packets carry ACK, datagrams and stream data, and record the stream ranges", () => {
    const s = setup("server");
    s.acks.onReceived(0, 0);
    s.acks.onAckEliciting(0, true, false, 0, 10, 25);
    s.datagrams.push(new Uint8Array(20), true, true);
    s.streamOut.push(new Uint8Array(3000));
    const first = openPacket(s.peer, s.builder.build(0, "data")!);
    assert.deepEqual(first.frames, ["ack", "datagram", "stream"]);
    const second = openPacket(s.peer, s.builder.build(0, "data")!);
    assert.deepEqual(second.frames, ["stream"]);
    const a = s.recovery.sent.record(0);
    const b = s.recovery.sent.record(1);
    assert.deepEqual(a.stream, [0, first.stream[0]![1]]);
    assert.equal(a.ackLargest, 0);
    assert.deepEqual(b.stream, [first.stream[0]![1], first.stream[0]![1] + second.stream[0]![1]]);
    assert.equal(b.ackLargest, -1);
  });

  it("control packets leave data and datagrams queued; a PING is added only when owed", () => {
    const s = setup("server");
    s.streamOut.push(new Uint8Array(10));
    s.datagrams.push(new Uint8Array(10), true, true);
    assert.equal(s.builder.build(0, "control"), null, "nothing that may bypass congestion control");
    s.builder.pingNeeded = true;
    assert.deepEqual(openPacket(s.peer, s.builder.build(0, "control")!).frames, ["ping"]);
    assert.equal(s.builder.pingNeeded, false);
    s.path.beginPacket();
    s.path.onChallenge(new Uint8Array(PATH_DATA_LENGTH));
    s.path.endPacket(true);
    assert.deepEqual(openPacket(s.peer, s.builder.build(0, "control")!).frames, ["response"]);
    assert.equal(s.datagrams.length, 1);
  });

  it("never sends an unproven address more than 3x what came from it", () => {
    const s = setup("server", false);
    s.path.onReceived(150, true);
    s.path.challenge(0, Infinity, true);
    s.streamOut.push(new Uint8Array(5000));
    const sizes: number[] = [];
    for (let pkt = s.builder.build(0, "data"); pkt; pkt = s.builder.build(0, "data")) sizes.push(pkt.length);
    assert.ok(sizes[0]! > 400, `the first packet uses the budget (${sizes[0]} bytes)`);
    assert.ok(sizes.reduce((x, y) => x + y, 0) <= 450, `sent ${sizes.join("+")} bytes`);
    s.path.onReceived(100, true);
    assert.ok(s.builder.build(0, "data"), "more budget: more data");
  });

  it("during a drain every ack-eliciting packet asks for an immediate ACK first", () => {
    const s = setup("client");
    s.closing.startDrain(1000, "", 0, true);
    s.streamOut.push(new Uint8Array(10));
    assert.deepEqual(openPacket(s.peer, s.builder.build(0, "data")!).frames, ["immediate-ack", "stream"]);
    assert.equal(s.closing.immediateAckNeeded, false);
  });

  it("a close packet holds the CLOSE frame alone; padNext makes a full-size probe", () => {
    const s = setup("server");
    s.closing.setLocal(4000, "bye");
    s.builder.pingNeeded = true;
    const close = openPacket(s.peer, s.builder.build(0, "close")!);
    assert.deepEqual(close.frames, ["close"]);
    assert.deepEqual(close.close, [4000, "bye"]);
    s.builder.padNext = true;
    const probe = s.builder.build(0, "probe")!;
    assert.equal(probe.length, MAX_DATAGRAM_SIZE);
    assert.deepEqual(openPacket(s.peer, probe).frames, ["immediate-ack"], "a probe asks for an immediate ACK, which makes it ack-eliciting without a PING");
    assert.equal(s.builder.padNext, false);
  });

  it("a probe repeats the last ACK even when nothing new arrived, and asks for an immediate ACK", () => {
    const s = setup("server");
    s.acks.onReceived(0, 0);
    s.acks.onAckEliciting(0, true, true, 0, 10, 25);
    assert.deepEqual(openPacket(s.peer, s.builder.build(1, "ack")!).frames, ["ack"]);
    assert.equal(s.acks.unreported(), false, "that ACK reported everything");
    s.streamOut.push(new Uint8Array(10));
    assert.deepEqual(openPacket(s.peer, s.builder.build(2, "data")!).frames, ["stream"], "an ordinary packet does not repeat it");
    assert.deepEqual(openPacket(s.peer, s.builder.build(3, "probe")!).frames, ["immediate-ack", "ack"], "a probe does: the last one may be lost");
    s.builder.pingNeeded = true;
    assert.deepEqual(openPacket(s.peer, s.builder.build(4, "data")!).frames, ["ack", "ping"], "so does a keep-alive PING");
  });

  it("towards a peer without IMMEDIATE_ACK a probe is the ACK and a PING", () => {
    const s = setup("server");
    const legacy = new PacketBuilder({ ...s, peerImmediateAck: false });
    s.acks.onReceived(0, 0);
    assert.deepEqual(openPacket(s.peer, legacy.build(1, "probe")!).frames, ["ack", "ping"]);
  });

  it("seals with the current key phase", () => {
    const s = setup("client");
    s.builder.pingNeeded = true;
    s.keys.rotateSend();
    const pkt = s.builder.build(0, "data")!;
    const h: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
    assert.ok(parseHeader(pkt, h));
    assert.equal(h.keyPhase, 1);
    assert.equal(pkt[h.headerLength - 1], 0, "packet number 0");
  });

  describe("nextKind", () => {
    it("nothing to send: null; only an ACK due: ack", () => {
      const s = setup("server");
      assert.equal(s.builder.nextKind(0), null);
      s.acks.onReceived(0, 0);
      s.acks.onAckEliciting(0, true, false, 0, 10, 25);
      assert.equal(s.builder.nextKind(24), null, "the ACK may still wait");
      assert.equal(s.builder.nextKind(25), "ack");
    });

    it("data while the window has room; when it is full only control frames go, past it", () => {
      const s = setup("server");
      s.streamOut.push(new Uint8Array(100));
      assert.equal(s.builder.nextKind(0), "data");
      for (let pn = 0; s.recovery.cc.bytesInFlight < s.recovery.cc.cwnd; pn++) s.recovery.onSent(pn, 0, 1200, null, -1, false, null);
      assert.equal(s.builder.nextKind(0), null, "blocked data waits");
      s.builder.pingNeeded = true;
      assert.equal(s.builder.nextKind(0), "control");
    });

    it("a probe timeout's probes bypass the window, one per call", () => {
      const s = setup("server");
      for (let pn = 0; s.recovery.cc.bytesInFlight < s.recovery.cc.cwnd; pn++) s.recovery.onSent(pn, 0, 1200, null, -1, false, null);
      s.recovery.onProbeTimeout();
      assert.equal(s.builder.nextKind(0), "probe");
      assert.equal(s.builder.nextKind(0), "probe");
      assert.equal(s.recovery.probesPending, 0);
      assert.equal(s.builder.nextKind(0), null);
    });

    it("too many unacknowledged packets: overflow (the peer breaks the protocol)", () => {
      const s = setup("server");
      for (let pn = 0; pn < 1024; pn++) s.recovery.onSent(pn, 0, 1, null, -1, false, null);
      s.builder.pingNeeded = true;
      assert.equal(s.builder.nextKind(0), "overflow");
    });
  });
});
