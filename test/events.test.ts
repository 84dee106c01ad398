import assert from "node:assert/strict";
import { EventQueue, OBJECT_CHARGE } from "../src/protocol/events.js";

describe("EventQueue", () => {
  it("returns events in order and accounts for the payload bytes it holds", () => {
    const q = new EventQueue();
    assert.equal(q.poll(), null);
    q.push({ type: "open" });
    q.push({ type: "message", data: new Uint8Array(100) });
    q.push({ type: "datagram", data: new Uint8Array(10) });
    assert.equal(q.heldBytes, 3 * OBJECT_CHARGE + 110);
    assert.equal(q.poll()?.type, "open");
    assert.equal(q.heldBytes, 2 * OBJECT_CHARGE + 110);
    const m = q.poll();
    assert.equal(m?.type === "message" && m.data.length, 100);
    assert.equal(q.heldBytes, OBJECT_CHARGE + 10);
    q.push({ type: "close", code: 1000, reason: "", remote: false });
    assert.equal(q.poll()?.type, "datagram");
    assert.equal(q.poll()?.type, "close");
    assert.equal(q.poll(), null);
    assert.equal(q.heldBytes, 0);
  });
});
