import assert from "node:assert/strict";
import { FrameType, PATH_DATA_LENGTH } from "../src/protocol/frames.js";
import { MAX_CHALLENGES, MAX_PATH_RESPONSES, PathValidator } from "../src/protocol/path-validation.js";

/** Deterministic "randomness": each challenge is 8 bytes of a counter. */
function counter(): (out: Uint8Array) => void {
  let n = 0;
  return (out) => out.fill(++n);
}

describe("PathValidator", () => {
  it("an unproven address gets 3x the bytes received, and nothing below 64 bytes of budget", () => {
    const p = new PathValidator(false, counter());
    assert.equal(p.blocked, true);
    assert.equal(p.maxDatagram(1200), 0);
    p.onReceived(100, true);
    p.onReceived(1000, false); // from another address: earns nothing for this one
    assert.equal(p.budget(), 300);
    assert.equal(p.maxDatagram(1200), 300);
    p.onSent(250);
    assert.equal(p.budget(), 50);
    assert.equal(p.blocked, true);
    assert.equal(p.maxDatagram(1200), 0);
  });

  it("only the answer to the current challenge proves the address; an ACK-like echo of another does not", () => {
    const p = new PathValidator(true, counter());
    const first = p.start(0, 1200, 500);
    const second = p.start(10, 1200, 510);
    assert.equal(p.validated, false);
    assert.equal(p.budget(), 3600);
    const c1 = p.onResponse(first.slice());
    assert.ok(c1, "the older challenge is answered");
    assert.equal(p.validated, false, "but it proves nothing about the address used now");
    assert.equal(p.onResponse(new Uint8Array(PATH_DATA_LENGTH)), null, "unsolicited");
    const c2 = p.onResponse(second.slice());
    assert.equal(c2?.initial, false);
    assert.equal(p.validated, true);
    assert.equal(p.budget(), Infinity);
    assert.equal(p.onResponse(second.slice()), null, "a second answer is late");
  });

  it("keeps at most MAX_CHALLENGES and drops the first-address challenge on a move", () => {
    const p = new PathValidator(false, counter());
    p.challenge(0, Infinity, true);
    for (let i = 0; i < MAX_CHALLENGES + 2; i++) p.start(i, 100, 1000 + i);
    assert.equal(p.challenges.length, MAX_CHALLENGES);
    assert.equal(p.challenges.some((c) => c.initial), false);
  });

  it("challenges that passed their deadline fail; the first-address one never does", () => {
    const p = new PathValidator(false, counter());
    p.challenge(0, Infinity, true);
    const moved = p.start(0, 100, 500);
    assert.equal(p.nextTimeout(false), 0, "due to be sent");
    assert.equal(p.nextTimeout(true), 500, "blocked: only the deadline");
    assert.equal(p.expire(499), null);
    const failed = p.expire(500);
    assert.deepEqual(failed?.map((c) => c.data), [moved]);
    assert.equal(p.expire(1e9), null);
  });

  it("reverting to a proven address lifts the limit; to an unproven one challenges it afresh", () => {
    const proven = new PathValidator(true, counter());
    proven.start(0, 100, 500);
    proven.revert(10, 0);
    assert.equal(proven.validated, true);
    assert.equal(proven.challenges.length, 0);
    const unproven = new PathValidator(false, counter());
    unproven.start(0, 100, 500);
    unproven.revert(10, 200);
    assert.equal(unproven.validated, false);
    assert.equal(unproven.budget(), 600);
    assert.equal(unproven.challenges.length, 1);
    assert.equal(unproven.challenges[0]!.initial, true);
  });

  it("writes due challenges, resends them a PTO later, and the current one in every packet until answered", () => {
    const p = new PathValidator(true, counter());
    const other = p.start(0, 1200, 1000);
    const current = p.start(0, 1200, 1000);
    const buf = new Uint8Array(100);
    let off = p.writeChallenges(buf, 0, 100, 0, 50);
    assert.equal(off, 2 * (1 + PATH_DATA_LENGTH));
    assert.equal(buf[0], FrameType.PathChallenge);
    assert.deepEqual(buf.subarray(1, 9), other);
    assert.equal(p.challengeDue(49), false);
    off = p.writeChallenges(buf, 0, 100, 10, 50);
    assert.equal(off, 1 + PATH_DATA_LENGTH, "only the current address's challenge rides along");
    assert.deepEqual(buf.subarray(1, 9), current);
    assert.equal(p.writeChallenges(buf, 0, 8, 100, 50), 0, "nothing fits");
  });

  it("answers the last challenge of a packet once, and queues at most MAX_PATH_RESPONSES", () => {
    const p = new PathValidator(true, counter());
    p.beginPacket();
    p.onChallenge(new Uint8Array(PATH_DATA_LENGTH).fill(1));
    p.onChallenge(new Uint8Array(PATH_DATA_LENGTH).fill(2));
    p.endPacket(true);
    assert.equal(p.responsesQueued, 1);
    p.beginPacket();
    p.endPacket(true);
    assert.equal(p.responsesQueued, 1, "a packet without a challenge adds nothing");
    p.beginPacket();
    p.onChallenge(new Uint8Array(PATH_DATA_LENGTH).fill(3));
    p.endPacket(false);
    assert.equal(p.responsesQueued, 1, "not answered while closing");
    for (let i = 0; i < 10; i++) {
      p.beginPacket();
      p.onChallenge(new Uint8Array(PATH_DATA_LENGTH).fill(4));
      p.endPacket(true);
    }
    assert.equal(p.responsesQueued, MAX_PATH_RESPONSES);
    const buf = new Uint8Array(100);
    const off = p.writeResponses(buf, 0, 1 + PATH_DATA_LENGTH);
    assert.equal(off, 1 + PATH_DATA_LENGTH);
    assert.equal(buf[0], FrameType.PathResponse);
    assert.deepEqual(buf.subarray(1, 9), new Uint8Array(PATH_DATA_LENGTH).fill(2), "the last challenge of the first packet");
    assert.equal(p.heldObjects, MAX_PATH_RESPONSES - 1);
  });
});
