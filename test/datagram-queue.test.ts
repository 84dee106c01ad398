import assert from "node:assert/strict";
import { DatagramQueue, MAX_DATAGRAM_PAYLOAD, MAX_QUEUED_DATAGRAMS } from "../src/protocol/datagram-queue.js";
import { OBJECT_CHARGE } from "../src/protocol/events.js";
import { FrameType } from "../src/protocol/frames.js";

const alloc = (n: number): Uint8Array => new Uint8Array(n);

describe("DatagramQueue", () => {
  it("drops, and counts, what is too large, what congestion control has no room for, and a full queue", () => {
    const q = new DatagramQueue(alloc);
    assert.equal(q.push(new Uint8Array(MAX_DATAGRAM_PAYLOAD + 1), true, true), false);
    assert.equal(q.push(new Uint8Array(1), true, false), false);
    assert.equal(q.push(new Uint8Array(1), false, true), false);
    for (let i = 0; i < MAX_QUEUED_DATAGRAMS; i++) assert.equal(q.push(new Uint8Array(MAX_DATAGRAM_PAYLOAD), true, true), true);
    assert.equal(q.push(new Uint8Array(1), true, true), false);
    assert.deepEqual(q.dropped, { tooLarge: 1, congestion: 2, queueFull: 1 });
    assert.equal(q.length, MAX_QUEUED_DATAGRAMS);
  });

  it("copies at once, writes oldest first while they fit, and releases what it wrote", () => {
    const q = new DatagramQueue(alloc);
    const a = Uint8Array.of(1, 2, 3);
    q.push(a, true, true);
    a[0] = 9; // the caller may reuse its buffer
    q.push(new Uint8Array(50), true, true);
    assert.equal(q.heldBytes, 2 * OBJECT_CHARGE + 53);
    const buf = new Uint8Array(40);
    const off = q.write(buf, 0, 40);
    assert.ok(off > 3 && off < 10, "only the first fits");
    assert.equal(buf[0]! & 0xfe, FrameType.Datagram & 0xfe);
    assert.deepEqual(buf.subarray(off - 3, off), Uint8Array.of(1, 2, 3));
    assert.equal(q.sent, 1);
    assert.equal(q.length, 1);
    assert.equal(q.heldBytes, OBJECT_CHARGE + 50);
  });
});
