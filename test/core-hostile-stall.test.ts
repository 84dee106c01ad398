/**
 * A key holder that keeps sending (so the idle timer never fires) but never acknowledges would pin the
 * server's send queue forever. The stall timeout ends such a session; honest slow or lossy peers,
 * which acknowledge, are never mistaken for it, and a silent peer is still the idle timeout's.
 */
import assert from "node:assert/strict";
import { HostileClient, PING } from "./support/hostile-core.js";
import { Prng, openSim } from "./support/sim-network.js";
import { sweep } from "./support/sim-seeds.js";

/** Runs the server's due timers and the hostile peer's PINGs every `stepMs` until `until` or a close. */
function pingFor(h: HostileClient, untilMs: number, stepMs = 100): void {
  const end = h.now + untilMs;
  let nextPing = h.now + stepMs;
  while (h.now < end && h.server.state === "open") {
    h.tick(Math.min(nextPing, end, h.server.pollTimeout() ?? Infinity));
    if (h.now >= nextPing && h.server.state === "open") {
      h.send(PING);
      h.poll();
      nextPing += stepMs;
    }
  }
}

describe("core hostile: a peer that never acknowledges", function () {
  it("keeps sending PINGs, acknowledges nothing: closed 1006 'stalled' after stallTimeoutMs, not before", function () {
    const h = new HostileClient(40);
    h.bind();
    const stall = 10_000; // the default stallTimeoutMs
    const t0 = h.now;
    h.server.send(new Uint8Array(300_000));
    h.poll();
    pingFor(h, stall - 200);
    assert.equal(h.server.state, "open", "not before the timeout");
    pingFor(h, 1000);
    const close = h.closeEvent();
    assert.ok(close, `closed: ${h.server.state}`);
    assert.equal(close.code, 1006);
    assert.match(close.reason, /^stalled: /);
    assert.ok(h.now - t0 >= stall && h.now - t0 <= stall + 100, `closed ${h.now - t0} ms after the data was queued`);
    assert.equal(h.server.options.stallTimeoutMs, stall);
  });

  it("the stall clock starts when data is queued, not at the last acknowledgement long before", function () {
    const h = new HostileClient(41);
    h.bind();
    pingFor(h, 30_000); // nothing to acknowledge: no stall
    assert.equal(h.server.state, "open");
    const t0 = h.now;
    h.server.send(new Uint8Array(1000));
    h.poll();
    pingFor(h, 20_000);
    assert.ok(h.closeEvent());
    assert.ok(h.now - t0 >= 10_000 && h.now - t0 <= 10_100);
  });

  it("a peer that went silent with data outstanding is closed by the idle timeout, not as stalled", function () {
    const h = new HostileClient(42);
    h.bind();
    h.server.send(new Uint8Array(10_000));
    h.poll();
    for (let i = 0; i < 200 && h.server.state === "open"; i++) h.tick(h.server.pollTimeout()!);
    assert.equal(h.closeEvent()?.reason, "idle timeout");
  });

  it("an honest peer on a slow, lossy link (a 512 KiB message taking about 30 s) is never taken for stalled", function () {
    sweep(this, [43], (seed) => {
      // Bound on a clean link first: at 30 % loss each way a bind can run out its 10 s (seen on 4 seeds
      // in 1000), which is the bind timeout's business, not the stall rule's.
      const sim = openSim({ seed }, { link: { delayMs: 60, jitterMs: 20, bytesPerMs: 20 } });
      const lossy = { loss: 0.3, delayMs: 60, jitterMs: 20, bytesPerMs: 20 };
      sim.setLink("client", lossy);
      sim.setLink("server", lossy);
      const big = new Prng(1).bytes(512 * 1024);
      const start = sim.now;
      sim.server.send(big);
      sim.runUntil(() => sim.messages("client").length === 1, 300_000);
      assert.ok(sim.now - start > 20_000, `took ${sim.now - start} ms: slow enough to matter`);
      assert.equal(sim.closeEvent("server"), null);
      assert.equal(sim.closeEvent("client"), null);
    });
  });
});
