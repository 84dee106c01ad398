/**
 * A key holder that cuts the reliable stream into tiny out-of-order pieces: the receiver holds a
 * bounded number of pieces, places each in O(log n), merges contiguous ones, and closes with 1002 when
 * the count bound is passed. Honest senders under heavy loss never come near the bound.
 */
import assert from "node:assert/strict";
import type { Connection } from "../src/protocol/connection.js";
import { writeCloseFrame } from "../src/protocol/frames.js";
import { StreamReceiver, maxPieces } from "../src/protocol/stream-receive.js";
import { HostileClient, frames, message, streamFrame } from "./support/hostile-core.js";
import { Prng, openSim } from "./support/sim-network.js";
import { sweep } from "./support/sim-seeds.js";

const WINDOW = 1024 * 1024;
/** Packets of 1-byte STREAM frames at `first`, `first + step`, ... below `end`, as many frames as fit each. */
function* oneBytePieces(first: number, step: number, end: number): Generator<Uint8Array> {
  const buf = new Uint8Array(1100);
  let size = 0;
  for (let at = first; at < end; at += step) {
    const f = streamFrame(at, Uint8Array.of(at & 0xff));
    if (size + f.length > buf.length) {
      yield buf.slice(0, size);
      size = 0;
    }
    buf.set(f, size);
    size += f.length;
  }
  if (size > 0) yield buf.slice(0, size);
}

const receiverOf = (c: Connection): StreamReceiver => (c as unknown as { streamIn: StreamReceiver }).streamIn;

describe("core hostile: out-of-order stream pieces", function () {
  this.timeout(20_000);

  it("1-byte pieces with 1-byte gaps across the whole 1 MiB window: closed with 1002 past the piece cap, in bounded work", function () {
    const h = new HostileClient(1);
    h.bind();
    const cap = maxPieces(WINDOW);
    assert.equal(cap, 1024);
    const rx = receiverOf(h.server);
    const t0 = performance.now();
    let packets = 0;
    // 512 Ki pieces, every other byte missing, about 150 to a packet.
    for (const p of oneBytePieces(1, 2, WINDOW)) {
      if (h.server.state !== "open") break;
      h.send(p);
      packets++;
      assert.ok(rx.pieceCount <= cap, `pieces held ${rx.pieceCount} > cap ${cap}`);
      // Before the fix this loop ran for minutes (quadratic insertion of up to 512 Ki pieces).
      assert.ok(performance.now() - t0 < 5000, `still going after ${packets} packets and ${rx.pieceCount} pieces`);
    }
    h.poll();
    const close = h.closeEvent();
    assert.ok(close, "the server closed");
    assert.equal(close.code, 1002);
    assert.match(close.reason, /^protocol violation: too-many-pieces/);
    assert.ok(rx.peakPieces <= cap, `peak ${rx.peakPieces}`);
    assert.ok(packets <= Math.ceil(cap / 100) + 1, `closed after ${packets} packets: soon after the cap`);
    assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`);
  });

  for (const order of ["ascending", "descending"] as const) {
    it(`contiguous 1-byte pieces behind a hole (${order}) merge into one piece; growth is amortized`, function () {
      const got: Uint8Array[] = [];
      const rx = new StreamReceiver(WINDOW, WINDOW, (m) => got.push(m));
      const body = new Prng(7).bytes(256 * 1024);
      const stream = message(body);
      const t0 = performance.now();
      const n = stream.length - 1;
      for (let k = 0; k < n; k++) {
        const at = order === "ascending" ? 1 + k : stream.length - 1 - k;
        assert.equal(rx.onData(at, stream.subarray(at, at + 1)), null);
      }
      assert.equal(rx.pieceCount, 1);
      assert.equal(rx.peakPieces, 1);
      assert.ok(rx.heldBytes <= 1.25 * n + 128, `held ${rx.heldBytes} for ${n} bytes`);
      assert.equal(rx.onData(0, stream.subarray(0, 1)), null);
      assert.equal(got.length, 1);
      assert.ok(Buffer.from(got[0]!).equals(Buffer.from(body)));
      assert.equal(rx.heldBytes, 0);
      assert.equal(rx.bufferedBytes, 0);
      // 256 Ki single-byte inserts; quadratic copying would take seconds.
      assert.ok(performance.now() - t0 < 3000, `took ${performance.now() - t0} ms`);
    });
  }

  it("pieces that fill the holes between many pieces merge them all; a frame covering several pieces too", function () {
    const got: Uint8Array[] = [];
    const rx = new StreamReceiver(WINDOW, WINDOW, (m) => got.push(m));
    const body = new Prng(8).bytes(20_000);
    const stream = message(body);
    // Every other 100-byte block, then the gaps (in a shuffled order), then one big frame over the lot.
    for (let at = 100; at < stream.length; at += 200) assert.equal(rx.onData(at, stream.subarray(at, Math.min(at + 100, stream.length))), null);
    const peak = rx.pieceCount;
    assert.ok(peak >= 99);
    const gaps: number[] = [];
    for (let at = 200; at < stream.length; at += 200) gaps.push(at);
    new Prng(9).shuffle(gaps);
    for (const at of gaps) assert.equal(rx.onData(at, stream.subarray(at, at + 100)), null);
    assert.equal(rx.pieceCount, 1, "all merged");
    assert.equal(rx.onData(50, stream.subarray(50, 5000)), null, "a frame overlapping a held piece");
    assert.equal(rx.pieceCount, 1);
    assert.equal(got.length, 0);
    assert.equal(rx.onData(0, stream.subarray(0, 100)), null);
    assert.equal(got.length, 1);
    assert.ok(Buffer.from(got[0]!).equals(Buffer.from(body)));
    assert.equal(rx.pieceCount, 0);
  });

  it("honest transfers under 30% loss and reordering never come near the piece cap", function () {
    let peak = 0;
    sweep(this, [1, 2, 3], (seed) => {
      // Bound on a clean link first: at 30 % loss each way a bind can run out its 10 s (1 seed in 1000),
      // which is the bind timeout's business, not the piece cap's.
      const sim = openSim({ seed }, { link: { delayMs: 25, jitterMs: 20 } });
      const lossy = { loss: 0.3, delayMs: 25, jitterMs: 20 };
      sim.setLink("client", lossy);
      sim.setLink("server", lossy);
      const rng = new Prng(seed);
      const want = 150;
      for (let k = 0; k < want; k++) {
        sim.client.send(rng.bytes(rng.range(1, 3000)));
        sim.server.send(rng.bytes(rng.range(1, 3000)));
      }
      sim.onStep = () => {
        peak = Math.max(peak, receiverOf(sim.client).pieceCount, receiverOf(sim.server).pieceCount);
      };
      sim.runUntil(() => sim.messages("client").length === want && sim.messages("server").length === want, 120_000);
      assert.equal(sim.closeEvent("client"), null);
      assert.equal(sim.closeEvent("server"), null);
      peak = Math.max(peak, receiverOf(sim.client).peakPieces, receiverOf(sim.server).peakPieces);
    });
    assert.ok(peak > 1, "the loss did leave holes");
    assert.ok(peak <= maxPieces(WINDOW) / 8, `peak pieces ${peak}`);
  });

  it("a filled hole that makes a million empty messages contiguous delivers them in turns of at most 2048", function () {
    const h = new HostileClient(5);
    h.bind();
    const zeros = new Uint8Array(1100); // each 0x00 byte is one empty message
    for (let at = 1; at < WINDOW; at += zeros.length) h.send(streamFrame(at, zeros.subarray(0, Math.min(zeros.length, WINDOW - at))));
    assert.equal(receiverOf(h.server).pieceCount, 1, "contiguous pieces merged");
    // Events are counted and dropped here, not kept: a million of them.
    let delivered = 0;
    const drainEvents = (): void => {
      for (let e = h.server.pollEvent(); e; e = h.server.pollEvent()) if (e.type === "message") delivered++;
    };
    const messages = (): number => delivered;
    h.send(streamFrame(0, zeros.subarray(0, 1)));
    drainEvents();
    assert.ok(messages() <= 2048, `${messages()} messages in one call`);
    let turns = 0;
    for (let before = messages(); messages() < WINDOW; before = messages()) {
      assert.equal(h.server.pollTimeout(), h.now, "the next turn is due at once");
      h.server.handleTimeout(h.now);
      drainEvents();
      assert.ok(messages() - before <= 2048 && messages() > before, `turn ${turns}: ${messages() - before} messages`);
      assert.ok(h.server.getStats().heldBytes <= WINDOW + 64 * 1024, `heldBytes ${h.server.getStats().heldBytes}`);
      assert.ok(++turns <= WINDOW / 2048 + 1);
    }
    assert.equal(messages(), WINDOW);
    assert.equal(h.server.state, "open");
  });

  it("parked messages stay in order with new in-order data and are all delivered before a CLOSE", function () {
    const h = new HostileClient(6);
    h.bind();
    // 6000 two-byte messages [1-byte length 1][k & 0xff]; everything but the first byte first.
    const n = 6000;
    const stream = new Uint8Array(2 * n);
    for (let k = 0; k < n; k++) {
      stream[2 * k] = 1;
      stream[2 * k + 1] = k & 0xff;
    }
    const cut = 2 * 5000;
    for (let at = 1; at < cut; at += 1000) h.send(streamFrame(at, stream.subarray(at, Math.min(at + 1000, cut))));
    h.send(streamFrame(0, stream.subarray(0, 1))); // 5000 messages contiguous: 2048 now, the rest parked
    h.send(streamFrame(cut, stream.subarray(cut, cut + 1000))); // in order while parked
    const close = new Uint8Array(8);
    const closeLength = writeCloseFrame(close, 0, 4000, new Uint8Array(0));
    h.send(frames(streamFrame(cut + 1000, stream.subarray(cut + 1000)), close.subarray(0, closeLength)));
    h.poll();
    const got = h.events.filter((e) => e.type === "message").map((e) => (e as { data: Uint8Array }).data);
    assert.equal(got.length, n);
    got.forEach((m, k) => assert.ok(m.length === 1 && m[0] === (k & 0xff), `message ${k}`));
    const last = h.events[h.events.length - 1]!;
    assert.equal(last.type, "close");
    assert.equal((last as { code: number }).code, 4000);
  });
});
