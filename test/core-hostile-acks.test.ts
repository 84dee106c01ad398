/**
 * A key holder that floods PATH_CHALLENGEs, never acknowledges, stuffs packets with ACK frames, or
 * acknowledges packets that were never sent. The server Connection answers each packet once, keeps its
 * sent-packet records bounded, applies one ACK frame per packet, and closes with 1002 where the peer
 * broke the protocol.
 */
import assert from "node:assert/strict";
import type { Connection } from "../src/protocol/connection.js";
import { AckFrame, FrameType, walkFrames } from "../src/protocol/frames.js";
import { RangeSet } from "../src/protocol/range-set.js";
import { DEFAULT_SESSION_OPTIONS } from "../src/protocol/options.js";
import { StreamSender } from "../src/protocol/stream-send.js";
import { HostileClient, PING, ackFrame, frames, pathFrame } from "./support/hostile-core.js";
import { Prng } from "./support/sim-network.js";

const sentRecords = (c: Connection): number => (c as unknown as { sent: unknown[] }).sent.length;
const challenge = (n: number): Uint8Array => new Uint8Array(8).fill(n & 0xff);

describe("core hostile: challenges, acknowledgements and the sent-packet records", function () {
  it("a packet holding 100 PATH_CHALLENGEs draws exactly one PATH_RESPONSE, echoing the last", function () {
    const h = new HostileClient(30);
    h.bind();
    const payload = frames(...Array.from({ length: 100 }, (_, i) => pathFrame(FrameType.PathChallenge, challenge(i))));
    h.send(payload);
    const out = h.poll();
    const responses: Uint8Array[] = [];
    const ignore = (): void => {};
    for (const p of out) {
      const visitor = { onPing: ignore, onAck: ignore, onStream: ignore, onDatagram: ignore, onClose: ignore, onPathChallenge: ignore,
        onPathResponse: (d: Uint8Array) => void responses.push(d.slice()) };
      assert.ok(walkFrames(p.payload, visitor, new AckFrame(), { ackEliciting: false }));
    }
    assert.equal(responses.length, 1);
    assert.ok(Buffer.from(responses[0]!).equals(Buffer.from(challenge(99))));
  });

  it("a peer that floods challenges and never acknowledges: answers carry no data, `sent` stays bounded, then 1002", function () {
    const h = new HostileClient(31);
    h.bind();
    h.server.send(new Uint8Array(400_000)); // fills the congestion window, never acknowledged
    h.poll();
    let peak = 0;
    let bigAnswers = 0;
    let rounds = 0;
    for (; rounds < 5000 && h.server.state === "open"; rounds++) {
      h.send(pathFrame(FrameType.PathChallenge, challenge(rounds)));
      for (const p of h.poll()) if (p.size > 200) bigAnswers++;
      peak = Math.max(peak, sentRecords(h.server));
      assert.ok(h.server.getStats().heldBytes < 1_000_000, `heldBytes ${h.server.getStats().heldBytes}`);
      h.now += 1;
    }
    assert.ok(peak <= 1024, `sent records peaked at ${peak}`);
    assert.equal(bigAnswers, 0, "answers sent beyond the congestion window carry no stream data");
    const close = h.closeEvent();
    assert.ok(close, `closed after ${rounds} challenge packets`);
    assert.equal(close.code, 1002);
    assert.match(close.reason, /^protocol violation: .*unacknowledged/);
  });

  it("only the first ACK frame of a packet is applied; later ones are ignored and counted", function () {
    const h = new HostileClient(32);
    h.bind();
    h.send(ackFrame(h.largestServerPn, 0));
    h.poll();
    h.server.send(new Uint8Array(8000));
    const out = h.poll();
    assert.ok(out.length >= 6);
    const first = out[0]!.pn;
    const last = out[out.length - 1]!.pn;
    const inFlight = h.server.getStats().bytesInFlight;
    h.send(frames(ackFrame(first, first), ackFrame(last, first)));
    const st = h.server.getStats();
    assert.equal(st.ackFramesIgnored, 1);
    assert.equal(st.bytesInFlight, inFlight - out[0]!.size, "only the first frame's packet left flight");
    // A packet stuffed with ACK frames costs one.
    const stuffed = frames(...Array.from({ length: 150 }, () => ackFrame(last, first)));
    h.send(stuffed);
    assert.equal(h.server.getStats().ackFramesIgnored, 150);
    assert.equal(h.server.state, "open");
  });

  it("an ACK of the next packet number (never sent) closes with 1002; the last one sent is fine", function () {
    const h = new HostileClient(33);
    h.bind();
    h.server.send(new Uint8Array(100));
    h.poll();
    const next = h.server.nextPacketNumber;
    h.send(frames(ackFrame(next - 1, 0), PING));
    assert.equal(h.server.state, "open");
    h.poll();
    const inFlight = h.server.getStats().bytesInFlight;
    h.send(frames(ackFrame(h.server.nextPacketNumber, 0)));
    assert.equal(h.server.getStats().bytesInFlight, inFlight, "nothing of it was applied");
    const out = h.poll();
    const close = h.closeEvent();
    assert.ok(close);
    assert.equal(close.code, 1002);
    assert.match(close.reason, /^protocol violation: ACK of packet \d+, never sent/);
    assert.ok(out.length >= 1, "the CLOSE goes out");
  });

  it("the sender's loss handling skips acknowledged ranges below the lost one (every other packet acknowledged)", function () {
    // A peer acknowledging every other small packet, never the first, leaves many acknowledged ranges
    // above the floor; each loss used to scan all of them (20k losses: about 10 s).
    const s = new StreamSender();
    const n = 40_000;
    s.push(new Uint8Array(n * 20 - 4)); // with its 4-byte length prefix: exactly n * 20 stream bytes
    const seg = { offset: 0, len: 0 };
    for (let k = 0; k < n; k++) s.nextSegment(20, Infinity, seg);
    for (let k = 1; k < n; k += 2) s.onAcked(k * 20, k * 20 + 20);
    const t0 = performance.now();
    for (let k = 0; k < n; k += 2) s.onLost(k * 20, k * 20 + 20);
    assert.ok(performance.now() - t0 < 1000, `${performance.now() - t0} ms`);
    // And it is still right: exactly the unacknowledged segments come back, in order.
    for (let k = 0; k < n; k += 2) {
      s.nextSegment(1000, Infinity, seg);
      assert.deepEqual([seg.offset, seg.len], [k * 20, 20]);
    }
    assert.equal(s.hasData(Infinity), false);
  });

  it("RangeSet.firstEndingAfter agrees with a linear scan", function () {
    const r = new RangeSet();
    const rng = new Prng(7);
    for (let i = 0; i < 300; i++) {
      const a = rng.int(5000);
      r.add(a, a + 1 + rng.int(30));
    }
    for (let v = -2; v < 5100; v += 3) {
      let want = 0;
      while (want < r.size && r.ends[want]! <= v) want++;
      assert.equal(r.firstEndingAfter(v), want, `v ${v}`);
    }
  });

  it("a peer flipping the key phase on every packet gets at most one key update per PTO (each costs a derivation)", function () {
    const h = new HostileClient(34);
    h.bind();
    let generation = 0;
    let accepted = 0;
    const start = h.now;
    for (let i = 0; i < 1000; i++) {
      // Always the next generation after the newest one the server accepted.
      const r = h.server.handleDatagram(h.packet(PING, h.pn++, 1 /* Data */, generation + 1), h.now);
      if (r !== 0) {
        generation++;
        accepted++;
      }
      h.poll();
      h.now += 1;
    }
    const elapsed = h.now - start;
    // initial RTT 10 ms: srtt + 4 rttvar + the max ack delay the (default-configured) client announced
    const pto = 10 + 4 * 5 + DEFAULT_SESSION_OPTIONS.maxAckDelayMs;
    assert.ok(accepted >= 2, "updates are still possible");
    assert.ok(accepted <= elapsed / pto + 2, `${accepted} key updates in ${elapsed} ms`);
    assert.equal(h.server.getStats().keyUpdates, accepted, "and the server followed each with its send key");
    assert.equal(h.server.state, "open");
  });
});
