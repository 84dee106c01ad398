/** `ConnectionStats.heldBytes`: what one session's engine holds, by its own accounting. */
import assert from "node:assert/strict";
import { writeVarint } from "../src/protocol/varint.js";
import { maxHeldBytes } from "../src/protocol/connection.js";
import { FrameType } from "../src/protocol/frames.js";
import { HostileClient, ackFrame, frames, message, pathFrame, streamFrame } from "./support/hostile-core.js";

describe("core hostile: heldBytes accounting", function () {
  it("counts out-of-order pieces, the partial message, and releases them on delivery", function () {
    const h = new HostileClient(1);
    h.bind();
    const base = h.server.getStats().heldBytes;
    const body = new Uint8Array(3000).fill(7);
    const stream = message(body);
    // The tail first: held out of order.
    h.send(streamFrame(1000, stream.subarray(1000, 1800)));
    const held = h.server.getStats().heldBytes;
    assert.ok(held - base >= 800, `an 800-byte piece held: ${held - base}`);
    // The head: parsed at once into a partial 3000-byte message, plus the held piece.
    h.send(streamFrame(0, stream.subarray(0, 1000)));
    assert.ok(h.server.getStats().heldBytes - base >= 3000, "the partial message is counted at its full size");
    h.send(streamFrame(1800, stream.subarray(1800, 2600)));
    h.send(streamFrame(2600, stream.subarray(2600)));
    // Delivered but not yet polled: the event still holds it.
    assert.ok(h.server.getStats().heldBytes - base >= 3000, "an unpolled message event is counted");
    h.poll();
    assert.equal(h.events.filter((e) => e.type === "message").length, 1);
    const after = h.server.getStats().heldBytes;
    assert.ok(after < 1000, `after delivery only bookkeeping remains: ${after}`);
  });

  it("counts the send queue until it is acknowledged", function () {
    const h = new HostileClient(2);
    h.bind();
    h.server.send(new Uint8Array(20_000));
    assert.ok(h.server.getStats().heldBytes >= 20_000);
    h.poll();
    const sent = h.server.getStats();
    assert.ok(sent.heldBytes >= 20_000, "sent but unacknowledged bytes stay held");
    for (let i = 0; i < 20 && h.server.queuedBytes > 0; i++) {
      h.send(frames(ackFrame(h.largestServerPn, 0)));
      h.poll();
    }
    assert.ok(h.server.getStats().heldBytes < 2000, `acknowledged: ${h.server.getStats().heldBytes}`);
  });

  it("a message prefix announcing a large body is charged for the body at once", function () {
    const h = new HostileClient(3);
    h.bind();
    const prefix = new Uint8Array(4);
    writeVarint(prefix, 0, 400_000);
    h.send(streamFrame(0, prefix));
    assert.ok(h.server.getStats().heldBytes >= 400_000);
  });

  it("one hostile session doing everything at once stays under maxHeldBytes (3,560,448 bytes with the defaults)", function () {
    const h = new HostileClient(4);
    h.bind();
    const bound = maxHeldBytes(h.server.options);
    assert.equal(bound, 3_560_448, "the number docs/security.md quotes");
    let peak = 0;
    const check = (what: string): void => {
      const held = h.server.getStats().heldBytes;
      peak = Math.max(peak, held);
      assert.ok(held <= bound, `${what}: heldBytes ${held} > ${bound}`);
    };
    // The application fills the send queue; the peer will never acknowledge it.
    for (let i = 0; i < 1000; i++) {
      try {
        h.server.send(new Uint8Array(5000));
      } catch {
        break;
      }
    }
    h.poll();
    check("send queue full");
    // A 512 KiB message announced at offset 0: its buffer is allocated whole.
    const prefix = new Uint8Array(8);
    const n = writeVarint(prefix, 0, h.server.options.maxMessageSize);
    h.send(streamFrame(0, prefix.subarray(0, n)));
    check("partial message");
    // Then the whole window beyond it in 1024 separate pieces (the most allowed).
    const window = h.server.options.receiveBufferBytes;
    const step = Math.floor((window - 16) / 1024);
    for (let k = 0; k < 1024; k++) {
      const at = 16 + k * step;
      h.send(streamFrame(at, new Uint8Array(step - 1).fill(k & 0xff)));
      if (k % 64 === 0) check(`piece ${k}`);
    }
    assert.equal(h.server.state, "open");
    check("window full");
    // And challenges it never acknowledges, until the sent records run out.
    for (let i = 0; i < 2000 && h.server.state === "open"; i++) {
      h.send(pathFrame(FrameType.PathChallenge, new Uint8Array(8).fill(i & 0xff)));
      h.poll();
      check(`challenge ${i}`);
      h.now += 1;
    }
    assert.match(h.closeEvent()?.reason ?? "", /^protocol violation: .*unacknowledged/);
    assert.ok(peak > bound / 2, `peak ${peak}: the attack came near the bound`);
  });
});
