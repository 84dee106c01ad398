import assert from "node:assert/strict";
import { STALL_OLDEST_FACTOR, Timers, type TimerOptions } from "../src/protocol/timers.js";

const o: TimerOptions = { idleTimeoutMs: 10_000, bindTimeoutMs: 3000, keepAliveMs: 1000, stallTimeoutMs: 4000, unreachableGraceMs: 800 };

describe("Timers", () => {
  it("the idle timeout is the shorter of ours and the peer's, from the last packet heard", () => {
    assert.equal(new Timers(100, o, 0).idleAt, 10_100, "the peer announced none");
    const t = new Timers(100, o, 5000);
    assert.equal(t.idleAt, 5100);
    assert.equal(t.bindDeadline, 3100);
    t.onHeard(2000);
    assert.equal(t.idleAt, 7000);
    assert.equal(t.keepAliveAt(2500), 3500, "keep-alive counts from the later of heard and sent");
  });

  it("stalls only after 2 unanswered probe rounds and stallTimeoutMs without an ACK, while the peer is heard", () => {
    const t = new Timers(0, o, 0);
    assert.equal(t.stallAt(false, 5), Infinity, "nothing unacknowledged");
    t.onHeard(3000);
    assert.equal(t.stallAt(true, 1), Infinity, "one probe round: an overloaded peer may be slow");
    assert.equal(t.stallAt(true, 2), 4000);
    t.ackedAt = 500;
    assert.equal(t.stallAt(true, 2), 4500, "any new ACK restarts the count");
    t.onHeard(1000);
    assert.equal(t.stallAt(true, 2), Infinity, "silent peer: left to the idle timeout");
  });

  it("the oldest byte may wait STALL_OLDEST_FACTOR stall timeouts whatever the probes", () => {
    const t = new Timers(0, o, 0);
    t.ackedAt = 1e9; // acknowledges everything else
    t.onHeard(STALL_OLDEST_FACTOR * 4000);
    assert.equal(t.stallAt(true, 0), STALL_OLDEST_FACTOR * 4000);
    assert.match(t.stallReason(STALL_OLDEST_FACTOR * 4000), /oldest reliable data unacknowledged for 24000 ms/);
    const u = new Timers(0, o, 0);
    assert.match(u.stallReason(5000), /no acknowledgement of reliable data for 5000 ms/);
  });

  it("an unreachable hint probes at 1/8, 1/4 and 1/2 of the grace; any packet heard ends it", () => {
    const t = new Timers(0, o, 0);
    t.suspectUnreachable(1000);
    assert.equal(t.suspectingUnreachable, true);
    assert.equal(t.unreachableDeadline, 1800);
    assert.equal(t.unreachableProbeAt, 1100);
    assert.equal(t.takeUnreachableProbes(1099), false);
    assert.equal(t.takeUnreachableProbes(1250), true, "two probes due at once count once");
    assert.equal(t.unreachableProbeAt, 1400);
    t.onHeard(1300);
    assert.equal(t.suspectingUnreachable, false);
    assert.equal(t.unreachableProbeAt, Infinity);
    assert.equal(t.takeUnreachableProbes(2000), false);
  });
});
