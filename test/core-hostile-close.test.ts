/**
 * Close codes and reasons at the edge of the core: a code that cannot go on the wire is refused at the
 * call, synchronously, changing nothing (it used to throw later, inside pollTransmit, perhaps in a
 * timer); a long reason is cut safely; a peer's out-of-range code is not handed onward.
 */
import assert from "node:assert/strict";
import { FastnetError } from "../src/protocol/errors.js";
import { MAX_CLOSE_REASON_BYTES, writeCloseFrame } from "../src/protocol/frames.js";
import { HostileClient } from "./support/hostile-core.js";
import { openSim } from "./support/sim-network.js";

const BAD_CODES = [-1, 4000.5, 65536, 2 ** 40, Number.NaN, Number.POSITIVE_INFINITY, -0.5];

describe("core hostile: close codes and reasons", function () {
  for (const method of ["close", "abort"] as const) {
    it(`${method}() with a code outside 0..65535 or not an integer throws INVALID_CLOSE_CODE and changes nothing`, function () {
      const sim = openSim({ seed: 50 }, { link: { delayMs: 10 } });
      sim.server.send(new Uint8Array(5000)); // unacknowledged data: close() would start a drain
      for (const code of BAD_CODES) {
        assert.throws(
          () => sim.server[method](code, "bye"),
          (err: unknown) => err instanceof FastnetError && err.code === "INVALID_CLOSE_CODE",
          `code ${code}`,
        );
        assert.equal(sim.server.state, "open");
        assert.equal(sim.server.closing, false, `code ${code}: no drain started`);
      }
      // Nothing throws later either: the session works, then closes with a valid code.
      sim.runUntil(() => sim.messages("client").length === 1, 10_000);
      sim.server[method](65535, "last valid code");
      sim.runUntil(() => sim.closeEvent("client") !== null, 10_000);
      assert.equal(sim.closeEvent("client")!.code, 65535);
    });
  }

  it("a long reason reaches the peer cut to 256 bytes on a character boundary", function () {
    for (const reason of ["x".repeat(100_000), "😀".repeat(1000), "é".repeat(300), "a" + "😀".repeat(100)]) {
      const sim = openSim({ seed: 51 }, { link: { delayMs: 10 } });
      sim.server.close(4000, reason);
      sim.runUntil(() => sim.closeEvent("client") !== null, 10_000);
      const got = sim.closeEvent("client")!.reason;
      const bytes = Buffer.byteLength(got);
      assert.ok(bytes <= MAX_CLOSE_REASON_BYTES && bytes > MAX_CLOSE_REASON_BYTES - 4, `${bytes} bytes`);
      assert.ok(reason.startsWith(got), "a prefix of the reason, with no replacement character");
      assert.equal(sim.closeEvent("server")!.reason, reason, "the local event keeps the whole reason");
    }
  });

  it("a peer's CLOSE with a code beyond 16 bits is reported as a protocol violation, not passed on", function () {
    const h = new HostileClient(52);
    h.bind();
    const frame = new Uint8Array(32);
    const n = writeCloseFrame(frame, 0, 2 ** 40, new TextEncoder().encode("x"));
    h.send(frame.subarray(0, n));
    h.poll();
    const close = h.closeEvent();
    assert.ok(close);
    assert.equal(close.code, 1002);
    assert.equal(close.remote, true);
    assert.match(close.reason, /out of range/);
  });
});
