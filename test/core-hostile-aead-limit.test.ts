/**
 * The AEAD integrity limit (RFC 9001 §6.6): after that many packets fail authentication over the
 * session's life, under any key, the session closes and processes nothing more. The limit is 2^36 for
 * ChaCha20-Poly1305; the tests inject a small one through ConnectionConfig.
 */
import assert from "node:assert/strict";
import { AEAD_INTEGRITY_LIMIT, Received } from "../src/protocol/connection.js";
import { HostileClient, PING } from "./support/hostile-core.js";

/** A packet with a valid header whose tag does not verify (one ciphertext byte flipped). */
function forged(h: HostileClient): Uint8Array {
  const p = h.packet(PING, h.pn++);
  p[p.length - 1]! ^= 0x01;
  return p;
}

describe("core hostile: AEAD integrity limit", function () {
  it("defaults to 2^36 for ChaCha20-Poly1305", function () {
    assert.equal(AEAD_INTEGRITY_LIMIT, 2 ** 36);
  });

  it("closes once the failed decryptions reach the limit, counting across good packets, then processes nothing", function () {
    const h = new HostileClient(60, {}, { aeadIntegrityLimit: 5 });
    h.bind();
    for (let i = 0; i < 4; i++) {
      assert.equal(h.server.handleDatagram(forged(h), h.now), Received.Dropped);
      assert.equal(h.server.state, "open", `after ${i + 1} failures`);
      assert.equal(h.send(PING), Received.AcceptedNewest, "good packets still pass (and do not reset the count)");
    }
    assert.equal(h.server.getStats().dropped.decrypt, 4);
    assert.equal(h.server.handleDatagram(forged(h), h.now), Received.Dropped);
    const out = h.poll();
    const close = h.closeEvent();
    assert.ok(close, `state ${h.server.state}`);
    assert.equal(close.code, 1006);
    assert.match(close.reason, /^AEAD_LIMIT_REACHED/);
    assert.ok(out.length >= 1, "the peer is told");
    assert.equal(h.send(PING), Received.Dropped, "nothing more is processed");
  });
});
