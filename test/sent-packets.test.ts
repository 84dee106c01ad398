import assert from "node:assert/strict";
import { SentPackets } from "../src/protocol/sent-packets.js";

/** Removes, in order, the records whose packet number `drop` names: the walk Recovery does. */
function removeWhere(s: SentPackets, drop: (pn: number) => boolean): number[] {
  const removed: number[] = [];
  const n = s.length;
  s.beginCompaction();
  for (let k = 0; k < n; k++) {
    const slot = s.slot(k);
    if (drop(s.pn[slot]!)) {
      removed.push(s.pn[slot]!);
      s.drop(slot);
    } else {
      s.keep(k, slot);
    }
  }
  s.endCompaction();
  return removed;
}

describe("SentPackets", () => {
  it("keeps every field of a record, the first stream range in the slot and the rest beside it", () => {
    const s = new SentPackets(8, 2);
    s.push(7, 1.5, 1200, [0, 100, 200, 250], 3, true, [4, 5]);
    s.push(8, 2.5, 60, null, -1, false, null);
    assert.deepEqual(s.record(0), { pn: 7, timeSent: 1.5, size: 1200, stream: [0, 100, 200, 250], ackLargest: 3, appLimited: true, cids: [4, 5] });
    assert.deepEqual(s.record(1), { pn: 8, timeSent: 2.5, size: 60, stream: [], ackLargest: -1, appLimited: false, cids: null });
    assert.equal(s.extraEntries(), 4, "two extra range entries and two CIDs");
  });

  it("removing the oldest records moves the head and copies nothing; gaps behind a kept record close up in order", () => {
    const s = new SentPackets(16, 8);
    for (let pn = 0; pn < 6; pn++) s.push(pn, pn, 100, [pn * 10, pn * 10 + 10], -1, false, null);
    assert.deepEqual(removeWhere(s, (pn) => pn < 2), [0, 1]);
    assert.equal(s.slot(0), 2, "the head moved past the two removed");
    assert.deepEqual(removeWhere(s, (pn) => pn === 3 || pn === 5), [3, 5]);
    assert.deepEqual(s.pns(), [2, 4]);
    assert.deepEqual(s.record(1).stream, [40, 50], "the moved record took its fields along");
  });

  it("wraps around its slots and grows (in order) up to its capacity, then refuses", () => {
    const s = new SentPackets(8, 2);
    let next = 0;
    for (let round = 0; round < 5; round++) {
      s.push(next, next, 1, null, -1, false, null);
      next++;
      removeWhere(s, () => true);
    }
    assert.equal(s.slots, 2, "pushing and removing one at a time wraps without growing");
    for (let i = 0; i < 8; i++) s.push(next + i, 0, 1, null, -1, false, [i]);
    assert.equal(s.slots, 8);
    assert.deepEqual(s.pns(), [5, 6, 7, 8, 9, 10, 11, 12]);
    assert.deepEqual(s.record(7).cids, [7]);
    assert.throws(() => s.push(99, 0, 1, null, -1, false, null), /beyond their capacity of 8/);
  });

  it("matches a plain array under random pushes and removals across wraps and growth", () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const s = new SentPackets(256, 4);
    let model: number[] = [];
    let next = 0;
    for (let step = 0; step < 3000; step++) {
      if (rand() < 0.55 && model.length < 256) {
        const more = rand() < 0.2 ? [next * 3 + 1, next * 3 + 2] : [];
        s.push(next, step, next % 1500, [next * 3, next * 3 + 1, ...more], next - 1, next % 2 === 0, next % 7 === 0 ? [next] : null);
        model.push(next++);
      } else {
        const cut = rand();
        const drop = (pn: number) => (pn * 2654435761) % 1000 / 1000 < cut * 0.5;
        const expected = model.filter(drop);
        assert.deepEqual(removeWhere(s, drop), expected);
        model = model.filter((pn) => !drop(pn));
      }
      assert.deepEqual(s.pns(), model);
    }
    for (let k = 0; k < s.length; k++) {
      const r = s.record(k);
      assert.equal(r.size, r.pn % 1500);
      assert.equal(r.ackLargest, r.pn - 1);
      assert.equal(r.appLimited, r.pn % 2 === 0);
      assert.deepEqual(r.cids, r.pn % 7 === 0 ? [r.pn] : null);
      assert.deepEqual(r.stream.slice(0, 2), [r.pn * 3, r.pn * 3 + 1]);
    }
    assert.ok(next > 400 && s.slots > 4, `records pushed: ${next}, slots ${s.slots}`);
  });
});
