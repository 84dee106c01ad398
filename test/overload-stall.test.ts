/**
 * A server that falls behind (CPU-starved: it reads its UDP socket slower than datagrams arrive, the
 * receive buffer overflows and drops the rest, and what it reads has waited seconds in the buffer) must
 * slow its players down, not end their sessions. The stall timeout (test/core-hostile-stall) exists for a
 * peer that never acknowledges; an overloaded peer still acknowledges some packets, seconds late, and must
 * never be taken for one.
 *
 * The overloaded server is modelled on the simulator: every datagram to it goes into a bounded FIFO (its
 * socket's receive buffer), from which it reads one every `serviceMs` (none while its event loop is
 * blocked); a datagram that finds the buffer full is dropped, as the kernel does.
 */
import assert from "node:assert/strict";
import { openSim, type Side, type SimNetwork } from "./support/sim-network.js";
import { sweep } from "./support/sim-seeds.js";

interface Overload {
  /** The server reads one queued datagram every serviceMs; Infinity: its event loop is blocked. */
  serviceMs: number;
  /** Datagrams the receive buffer holds. */
  capacity: number;
}

/** Game traffic: each side sends a numbered reliable message every 50 ms while open. */
function play(sim: SimNetwork): Record<Side, number> {
  const sent: Record<Side, number> = { client: 0, server: 0 };
  const tick = (side: Side): void => {
    const c = sim.conn(side);
    if (c.state !== "open") return;
    const m = new Uint8Array(100);
    new DataView(m.buffer).setUint32(0, sent[side]);
    c.send(m);
    sent[side]++;
    sim.after(50, () => tick(side));
  };
  tick("client");
  tick("server");
  return sent;
}

/** Installs the slow reader in front of the server; returns the counters and a switch. */
function slowServer(sim: SimNetwork) {
  const buffer: Uint8Array[] = [];
  const counters = { queued: 0, dropped: 0, read: 0 };
  let mode: Overload | null = null;
  let reading = false;
  const readOne = (): void => {
    reading = false;
    if (!mode || mode.serviceMs === Infinity) return;
    const d = buffer.shift();
    if (d) {
      counters.read++;
      sim.inject("server", d);
    }
    if (buffer.length > 0 || mode) {
      reading = true;
      sim.after(mode.serviceMs, readOne);
    }
  };
  sim.onTransmit = (from, data) => {
    if (from !== "client" || mode === null) return;
    if (buffer.length >= mode.capacity) counters.dropped++;
    else {
      buffer.push(data.slice());
      counters.queued++;
    }
    return "drop";
  };
  const set = (next: Overload | null): void => {
    mode = next;
    if (next === null) {
      // Recovered: it reads its backlog at once, then the socket is fast again.
      for (let d = buffer.shift(); d; d = buffer.shift()) {
        counters.read++;
        sim.inject("server", d);
      }
      return;
    }
    if (!reading && next.serviceMs !== Infinity) {
      reading = true;
      sim.after(next.serviceMs, readOne);
    }
  };
  return { counters, set };
}

/** Every message `side` received is the next number: nothing lost, duplicated or reordered. */
function assertInOrder(sim: SimNetwork, side: Side): number {
  const got = sim.messages(side).map((m) => new DataView(m.buffer, m.byteOffset).getUint32(0));
  got.forEach((n, i) => assert.equal(n, i, `${side} message ${i} is number ${n}`));
  return got.length;
}

describe("overload: a server that falls behind keeps its players' sessions", function () {
  this.timeout(120_000);

  it("a path that carries a fifth of the client's traffic for 30 s (3 s queue, drops): both sessions stay open and catch up", function () {
    sweep(this, [71], (seed) => {
      const sim = openSim({ seed }, { link: { delayMs: 1 } });
      const sent = play(sim);
      sim.runFor(2000);
      // The server drains 500 B/s of the client's ~3 kB/s into a queue that holds 3 s, and 20 % more is lost.
      sim.setLink("client", { loss: 0.2, delayMs: 1, bytesPerMs: 0.5, maxQueueMs: 3000 });
      sim.runFor(30_000);
      const link = sim.linkStats.client;
      assert.ok(link.queueDropped > 100, `the queue overflowed (${link.queueDropped} dropped)`);
      assert.ok(sim.client.getStats().rtt.smoothedMs > 1000, `round trip grew to seconds (${sim.client.getStats().rtt.smoothedMs} ms)`);
      assert.equal(sim.closeEvent("client"), null, "the client kept its session");
      assert.equal(sim.closeEvent("server"), null, "the server kept its session");
      sim.setLink("client", { delayMs: 1 });
      sim.runUntil(() => sim.messages("server").length === sent.client && sim.messages("client").length === sent.server, 120_000);
      assert.equal(sim.closeEvent("client"), null);
      assert.equal(sim.closeEvent("server"), null);
      assert.equal(assertInOrder(sim, "server"), sent.client);
      assert.equal(assertInOrder(sim, "client"), sent.server);
    });
  });

  it("an event loop blocked for 8 s, then slow for 20 s: both sessions stay open and every message arrives in order", function () {
    sweep(this, [72], (seed) => {
      const sim = openSim({ seed }, { link: { delayMs: 1 } });
      const sent = play(sim);
      const server = slowServer(sim);
      sim.runFor(2000);
      server.set({ serviceMs: Infinity, capacity: 64 });
      // A blocked server runs no timers and sends nothing either.
      const serverOut = sim.onTransmit!;
      let blocked = true;
      sim.onTransmit = (from, data, time) => (from === "server" && blocked ? "drop" : serverOut(from, data, time));
      sim.runFor(8000);
      blocked = false;
      // Then it reads about 4 datagrams a second of the 25 that keep coming, for 20 s.
      server.set({ serviceMs: 250, capacity: 64 });
      sim.runFor(20_000);
      assert.ok(server.counters.dropped > 0, "the buffer overflowed while blocked");
      assert.equal(sim.closeEvent("client"), null, "the client kept its session");
      assert.equal(sim.closeEvent("server"), null, "the server kept its session");
      server.set(null);
      sim.runUntil(() => sim.messages("server").length === sent.client && sim.messages("client").length === sent.server, 60_000);
      assert.equal(assertInOrder(sim, "server"), sent.client);
      assert.equal(assertInOrder(sim, "client"), sent.server);
    });
  });
});
