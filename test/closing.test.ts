import assert from "node:assert/strict";
import { CloseCode } from "../src/protocol/connection-types.js";
import { checkCloseCode, Closing, DRAIN_MAX_MS, MAX_CLOSE_CODE } from "../src/protocol/closing.js";
import { FastnetError } from "../src/protocol/errors.js";
import { MAX_CLOSE_REASON_BYTES } from "../src/protocol/frames.js";

describe("Closing", () => {
  it("accepts 16-bit integer close codes only", () => {
    checkCloseCode(0);
    checkCloseCode(MAX_CLOSE_CODE);
    for (const bad of [-1, MAX_CLOSE_CODE + 1, 1000.5, Number.NaN]) {
      assert.throws(() => checkCloseCode(bad), (e: unknown) => e instanceof FastnetError && e.code === "INVALID_CLOSE_CODE");
    }
  });

  it("sends a reason cut to MAX_CLOSE_REASON_BYTES of UTF-8 but reports it whole", () => {
    const c = new Closing();
    const long = "é".repeat(MAX_CLOSE_REASON_BYTES);
    c.setLocal(4000, long);
    assert.equal(c.code, 4000);
    assert.equal(c.reasonText, long);
    assert.ok(c.reasonBytes.length <= MAX_CLOSE_REASON_BYTES);
    assert.equal(new TextDecoder("utf-8", { fatal: true }).decode(c.reasonBytes), "é".repeat(MAX_CLOSE_REASON_BYTES / 2), "cut on a character boundary");
  });

  it("reports a peer's out-of-range close code as its protocol violation", () => {
    const c = new Closing();
    c.setRemote(4001, "bye");
    assert.deepEqual([c.code, c.reasonText], [4001, "bye"]);
    c.setRemote(2 ** 40, "bye");
    assert.equal(c.code, CloseCode.ProtocolError);
    assert.match(c.reasonText, /close code 1099511627776 is out of range/);
  });

  it("a drain keeps the first close, restarts its wait on progress, and ends once", () => {
    const c = new Closing();
    c.startDrain(4000, "first", 100, true);
    assert.equal(c.immediateAckNeeded, true);
    c.immediateAckNeeded = false;
    c.startDrain(4001, "second", 200, true);
    assert.deepEqual(c.drain, { code: 4000, reason: "first", deadline: 100 + DRAIN_MAX_MS });
    assert.equal(c.immediateAckNeeded, false, "a second close changes nothing");
    c.onDrainProgress(500);
    assert.equal(c.drain?.deadline, 500 + DRAIN_MAX_MS);
    assert.equal(c.endDrain()?.reason, "first");
    assert.equal(c.drain, null);
    assert.equal(c.endDrain(), null);
    const quiet = new Closing();
    quiet.startDrain(1000, "", 0, false);
    assert.equal(quiet.immediateAckNeeded, false, "never to a peer that did not announce IMMEDIATE_ACK");
  });
});
