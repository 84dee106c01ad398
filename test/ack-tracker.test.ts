import assert from "node:assert/strict";
import { AckTracker } from "../src/protocol/ack-tracker.js";
import { AckFrame, walkFrames, type FrameVisitor } from "../src/protocol/frames.js";

/** Decodes the ACK frame at the start of `buf` into [smallest, largest] pairs, highest first. */
function readAck(buf: Uint8Array): { ranges: [number, number][]; delayUs: number } {
  const ack = new AckFrame();
  let ranges: [number, number][] = [];
  let delayUs = -1;
  const visitor: FrameVisitor = {
    onPing() {}, onStream() {}, onDatagram() {}, onClose() {}, onPathChallenge() {}, onPathResponse() {},
    onAck(a) {
      delayUs = a.delayUs;
      ranges = Array.from({ length: a.count }, (_, i) => [a.smallest[i]!, a.largestOf[i]!] as [number, number]);
    },
  };
  assert.ok(walkFrames(buf, visitor, ack, { ackEliciting: false, immediateAck: false }));
  return { ranges, delayUs };
}

function receive(t: AckTracker, pn: number, now: number, eliciting = true): boolean {
  assert.ok(t.isNew(pn), `packet ${pn} is new`);
  const newest = t.onReceived(pn, now);
  if (eliciting) t.onAckEliciting(pn, newest, false, now, 10, 25);
  return newest;
}

describe("AckTracker", () => {
  it("rejects a packet number received before; reports the newest", () => {
    const t = new AckTracker();
    assert.equal(receive(t, 0, 0), true);
    assert.equal(receive(t, 2, 0), true);
    assert.equal(receive(t, 1, 0), false);
    assert.equal(t.isNew(1), false);
    assert.equal(t.isNew(2), false);
    assert.equal(t.largest, 2);
    assert.equal(t.decode(3, 8), 3);
  });

  it("delays an in-order ACK by maxAckDelay; a threshold of packets or a gap sends it at once", () => {
    const t = new AckTracker();
    receive(t, 0, 100);
    assert.equal(t.pending, true);
    assert.equal(t.deadline, 125);
    assert.equal(t.due(124), false);
    assert.equal(t.due(125), true);
    receive(t, 1, 110);
    assert.equal(t.deadline, 125, "a later packet does not push the deadline back");
    receive(t, 3, 112); // 2 missing: a hole below the newest
    assert.equal(t.deadline, 112);

    const u = new AckTracker();
    for (let pn = 0; pn < 9; pn++) receive(u, pn, 0);
    assert.equal(u.deadline, 25);
    receive(u, 9, 1);
    assert.equal(u.deadline, 1, "the 10th ack-eliciting packet is acknowledged at once");

    const v = new AckTracker();
    v.onReceived(0, 5);
    v.onAckEliciting(0, true, true, 5, 10, 25);
    assert.equal(v.deadline, 5, "immediate when asked");
  });

  it("packets that elicit nothing leave nothing pending", () => {
    const t = new AckTracker();
    receive(t, 0, 0, false);
    assert.equal(t.pending, false);
    assert.equal(t.deadline, Infinity);
  });

  it("writes the received ranges with the delay since the newest packet, then clears the pending ACK", () => {
    const t = new AckTracker();
    for (const pn of [0, 1, 2, 5, 6]) receive(t, pn, 1000);
    const buf = new Uint8Array(100);
    const end = t.write(buf, 0, 100, 1002);
    assert.ok(end > 0);
    const { ranges, delayUs } = readAck(buf.subarray(0, end));
    assert.deepEqual(ranges, [[5, 6], [0, 2]]);
    assert.equal(delayUs, 2000);
    assert.equal(t.lastWrittenLargest, 6);
    assert.equal(t.pending, false);
    assert.equal(t.deadline, Infinity);
    assert.equal(t.write(buf, 0, 2, 1002), 0, "does not fit: nothing written");
  });

  it("stops repeating ranges below the largest of an ACK the peer has (that one packet stays)", () => {
    const t = new AckTracker();
    for (const pn of [0, 1, 2, 5, 6]) receive(t, pn, 0);
    t.onAckAcked(2);
    const buf = new Uint8Array(100);
    const end = t.write(buf, 0, 100, 0);
    assert.deepEqual(readAck(buf.subarray(0, end)).ranges, [[5, 6], [2, 2]]);
  });
});
