/**
 * A key holder that floods PATH_CHALLENGEs, never acknowledges, stuffs packets with ACK frames, or
 * acknowledges packets that were never sent. The server Connection answers each packet once, keeps its
 * sent-packet records bounded, applies one ACK frame per packet, and closes with 1002 where the peer
 * broke the protocol.
 */
import assert from "node:assert/strict";
import type { Connection } from "../src/protocol/connection.js";
import { AckFrame, FrameType, walkFrames } from "../src/protocol/frames.js";
import { HostileClient, PING, ackFrame, frames, pathFrame } from "./support/hostile-core.js";

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
});
