import assert from "node:assert/strict";
import { AckFrame } from "../src/protocol/frames.js";
import { Recovery, SENT_SLOT_CHARGE } from "../src/protocol/recovery.js";
import type { SentPackets } from "../src/protocol/sent-packets.js";

/** An ACK frame for inclusive ranges given highest first. */
function ack(ranges: [number, number][], delayUs = 0): AckFrame {
  const a = new AckFrame();
  a.count = ranges.length;
  a.largest = ranges[0]![1];
  a.delayUs = delayUs;
  ranges.forEach(([lo, hi], i) => {
    a.smallest[i] = lo;
    a.largestOf[i] = hi;
  });
  return a;
}

function setup(initialRtt = 100): { r: Recovery; acked: number[]; lost: number[]; probed: number[] } {
  const acked: number[] = [];
  const lost: number[] = [];
  const probed: number[] = [];
  const r = new Recovery(initialRtt, 10, 25, {
    onAcked: (sent: SentPackets, s: number) => acked.push(sent.pn[s]!),
    onLost: (sent: SentPackets, s: number) => lost.push(sent.pn[s]!),
    onProbe: (sent: SentPackets, s: number) => probed.push(sent.pn[s]!),
  });
  return { r, acked, lost, probed };
}

describe("Recovery", () => {
  it("an ACK removes the acknowledged records, counts their bytes out of flight and takes an RTT sample", () => {
    const { r, acked } = setup();
    for (let pn = 0; pn < 4; pn++) r.onSent(pn, 0, 1000, null, -1, true, null);
    assert.equal(r.cc.bytesInFlight, 4000);
    assert.equal(r.onAck(ack([[2, 3], [0, 0]], 5000), 40), true);
    assert.deepEqual(acked, [0, 2, 3]);
    assert.deepEqual(r.sent.pns(), [1]);
    assert.equal(r.cc.bytesInFlight, 1000);
    assert.equal(r.largestAcked, 3);
    assert.equal(r.rtt.latest, 35, "the sample less the peer's 5 ms ACK delay");
    assert.equal(r.onAck(ack([[2, 3]]), 50), false, "a duplicate ACK acknowledges nothing new");
  });

  it("an ACK that reports a delay far beyond the peer's max_ack_delay (a repeat of a lost ACK) gives no RTT sample", () => {
    const { r, acked } = setup(100);
    r.onSent(0, 0, 1000, null, -1, true, null);
    r.onSent(1, 0, 1000, null, -1, true, null);
    // Packet 0 arrived at 20; its ACK was lost and repeated at 400: 400 ms after sending, delay 380 ms.
    assert.equal(r.onAck(ack([[0, 0]], 380_000), 400), true);
    assert.deepEqual(acked, [0]);
    assert.equal(r.rtt.hasSample, false, "no sample from a stale ACK");
    assert.equal(r.rtt.smoothed, 100);
    // A peer late by less than max(smoothed RTT, 25 ms) past its 25 ms: still a sample, the delay capped.
    assert.equal(r.onAck(ack([[1, 1]], 120_000), 160), true);
    assert.equal(r.rtt.latest, 135);
  });

  it("declares lost a packet 3 below the largest acknowledged, and one older than 9/8 RTT", () => {
    const { r, lost } = setup(100);
    for (let pn = 0; pn < 5; pn++) r.onSent(pn, pn, 1200, null, -1, false, null);
    r.onAck(ack([[4, 4]]), 100);
    r.detectLoss(100);
    assert.deepEqual(lost, [0, 1], "packet threshold 3");
    assert.equal(r.packetsLost, 2);
    // 2 and 3 remain; the time threshold is 9/8 of max(latest 96, smoothed 96) = 108 ms after sending.
    assert.equal(r.lossTime, 2 + 108);
    assert.equal(r.lossDeadline(), 110);
    r.detectLoss(110);
    assert.deepEqual(lost, [0, 1, 2]);
    assert.equal(r.lossTime, 3 + 108);
  });

  it("without an ACK the probe timeout backs off exponentially and probes the oldest packet", () => {
    const { r, probed } = setup(100);
    assert.equal(r.lossDeadline(), Infinity, "nothing outstanding: no timer");
    r.onSent(0, 0, 1200, [0, 100], -1, false, null);
    r.onSent(1, 10, 1200, null, -1, false, null);
    const pto = r.ptoBase();
    assert.equal(pto, 100 + 4 * 50 + 25);
    assert.equal(r.lossDeadline(), 10 + pto);
    r.onProbeTimeout();
    assert.deepEqual(probed, [0]);
    assert.equal(r.probesPending, 2);
    assert.equal(r.lossDeadline(), 10 + 2 * pto);
    r.onProbeTimeout();
    assert.equal(r.lossDeadline(), 10 + 4 * pto);
    assert.equal(r.probeTimeouts, 2);
    r.onAck(ack([[1, 1]]), 20);
    assert.equal(r.ptoCount, 0, "an ACK of something new resets the backoff");
  });

  it("blocks data when the window is full, and paces a full window over the RTT", () => {
    const { r } = setup(100);
    assert.equal(r.sendBlocked(0), false);
    let pn = 0;
    while (r.cc.bytesInFlight < r.cc.cwnd) r.onSent(pn++, 0, 1200, null, -1, false, null);
    assert.equal(r.sendBlocked(0), true);
    assert.equal(r.pacerWait, Infinity, "blocked by the window, not the pacer");
    r.onAck(ack([[0, pn - 1]]), 100);
    assert.equal(r.cc.cwnd, 24000, "slow start doubled the window");
    assert.equal(r.sendBlocked(100), false, "the pacer refilled over the RTT");
    for (let i = 0; i < 10; i++) r.onSent(pn++, 100, 1200, null, -1, false, null);
    assert.equal(r.sendBlocked(100), true, "the burst is spent: the pacer holds the next packet");
    assert.ok(r.pacerWait > 100 && r.pacerWait < 110, `pacer wait ${r.pacerWait}`);
    r.expirePacer(r.pacerWait);
    assert.equal(r.pacerWait, Infinity);
  });

  it("a new network path restarts the window and the RTT estimate", () => {
    const { r } = setup(100);
    r.onSent(0, 0, 1200, null, -1, false, null);
    r.onAck(ack([[0, 0]]), 30);
    assert.equal(r.rtt.hasSample, true);
    r.cc.cwnd = 2400;
    r.resetForNewPath();
    assert.equal(r.rtt.hasSample, false);
    assert.equal(r.cc.cwnd, 12000);
  });

  it("charges heldBytes for the record slots and the extra lists they hold", () => {
    const { r } = setup();
    const empty = r.heldBytes();
    assert.equal(empty, r.sent.slots * SENT_SLOT_CHARGE);
    r.onSent(0, 0, 100, [0, 10, 20, 30], -1, false, [1]);
    assert.equal(r.heldBytes(), empty + 3 * 8, "the second range (2 entries) and one CID; the first range is in the slot");
  });
});
