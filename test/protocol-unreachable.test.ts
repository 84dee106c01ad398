/**
 * The sans-IO core's handling of "port unreachable" hints (ICMP, unauthenticated): a hint starts a
 * suspicion with probes; any authenticated packet clears it; only silence for unreachableGraceMs
 * closes the session, with 1006 and a reason naming SERVER_UNREACHABLE. A forged hint sent while
 * the peer is alive never ends the session.
 */
import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { availableAeadBackends } from "../src/node/aead-select.js";
import { Connection } from "../src/protocol/connection.js";

const cid = Uint8Array.from({ length: 12 }, (_, i) => (i === 0 ? 11 : i));
const keyingMaterial = Uint8Array.from({ length: 64 }, (_, i) => i * 3);

/** A client and a server Connection joined by an in-memory wire with a virtual clock. */
class Pair {
  now = 0;
  /** When false, the client's packets never reach the server (it is dead or unreachable). */
  serverAlive = true;
  clientPackets = 0;
  readonly client: Connection;
  readonly server: Connection;
  constructor() {
    const aead = availableAeadBackends()[0]!;
    this.client = new Connection({ role: "client", cid, keyingMaterial, aead, now: 0, random: randomFillSync });
    this.server = new Connection({ role: "server", cid, keyingMaterial, aead, now: 0, random: randomFillSync });
    this.pump();
    assert.equal(this.client.state, "open");
  }

  /** Moves every packet both ways until neither side has anything to send (bounded). */
  pump(): void {
    for (let round = 0; round < 100; round++) {
      let moved = false;
      let d: Uint8Array | null;
      while ((d = this.client.pollTransmit(this.now)) !== null) {
        moved = true;
        this.clientPackets++;
        if (this.serverAlive) this.server.handleDatagram(d, this.now);
      }
      while ((d = this.server.pollTransmit(this.now)) !== null) {
        moved = true;
        if (this.serverAlive) this.client.handleDatagram(d, this.now);
      }
      if (!moved) return;
    }
    throw new Error("the pair kept sending for 100 rounds");
  }

  /** Advances the clock to `until`, running both sides' timers on the way. */
  runUntil(until: number): void {
    for (let i = 0; i < 10_000 && this.now < until; i++) {
      const next = Math.min(until, this.client.pollTimeout() ?? Infinity, this.serverAlive ? (this.server.pollTimeout() ?? Infinity) : Infinity);
      this.now = Math.max(this.now, next);
      this.client.handleTimeout(this.now);
      if (this.serverAlive) this.server.handleTimeout(this.now);
      this.pump();
    }
  }

  clientClose(): { code: number; reason: string } | null {
    let ev;
    while ((ev = this.client.pollEvent()) !== null) if (ev.type === "close") return { code: ev.code, reason: ev.reason };
    return null;
  }
}

describe("core: port-unreachable hints", () => {
  it("a hint while the peer is alive: a probe at once, acknowledged within the ACK delay, and the session lives on", () => {
    const p = new Pair();
    p.runUntil(100);
    const before = p.clientPackets;
    p.client.onUnreachableHint(p.now);
    assert.equal(p.client.suspectedUnreachable, true);
    p.pump();
    assert.ok(p.clientPackets > before, "a probe went out at once");
    p.runUntil(p.now + 30); // the peer acknowledges a lone PING within its ACK delay (25 ms)
    assert.equal(p.client.suspectedUnreachable, false, "the peer's ACK cleared the suspicion");
    p.runUntil(5000);
    assert.equal(p.client.state, "open");
    assert.equal(p.clientClose(), null);
    assert.equal(p.client.getStats().unreachableHints, 1);
  });

  it("forged hints over and over while the peer is alive never end the session", () => {
    const p = new Pair();
    for (let t = 10; t < 8000; t += 10) {
      p.runUntil(t);
      p.client.onUnreachableHint(p.now);
      p.pump();
    }
    assert.equal(p.client.state, "open");
    assert.equal(p.clientClose(), null);
  });

  it("a hint and then silence: probes at 0, 1/8, 1/4 and 1/2 of the grace, then 1006 SERVER_UNREACHABLE at the grace", () => {
    const p = new Pair();
    p.runUntil(100);
    p.serverAlive = false;
    const t0 = p.now;
    const sentBefore = p.clientPackets;
    p.client.onUnreachableHint(t0);
    p.pump();
    p.runUntil(t0 + 1499);
    assert.equal(p.client.state, "open", "still open just before the grace ends");
    assert.ok(p.clientPackets - sentBefore >= 4, `probes sent: ${p.clientPackets - sentBefore}`);
    // Later hints during the suspicion neither extend nor restart it.
    p.client.onUnreachableHint(p.now);
    p.runUntil(t0 + 1500);
    p.pump();
    const close = p.clientClose();
    assert.ok(close, "closed at the grace");
    assert.equal(close.code, 1006);
    assert.match(close.reason, /^SERVER_UNREACHABLE: /);
    assert.equal(p.client.state, "closed");
    assert.equal(p.client.getStats().unreachableHints, 1);
  });

  it("a late answer within the grace clears the suspicion (a hint is never enough on its own)", () => {
    const p = new Pair();
    p.runUntil(100);
    p.serverAlive = false;
    p.client.onUnreachableHint(p.now);
    p.runUntil(p.now + 1000);
    p.serverAlive = true;
    p.client.handleTimeout(p.now);
    // The next probe (keep-alive or retransmission) reaches the server; its answer clears the suspicion.
    p.runUntil(p.now + 5000);
    assert.equal(p.client.state, "open");
    assert.equal(p.client.suspectedUnreachable, false);
  });

  it("the grace is an option (unreachableGraceMs)", () => {
    const aead = availableAeadBackends()[0]!;
    const c = new Connection({ role: "client", cid, keyingMaterial, aead, now: 0, random: randomFillSync, options: { unreachableGraceMs: 300 } });
    const s = new Connection({ role: "server", cid, keyingMaterial, aead, now: 0, random: randomFillSync });
    s.handleDatagram(c.pollTransmit(0)!, 0);
    let d;
    while ((d = s.pollTransmit(0)) !== null) c.handleDatagram(d, 0);
    assert.equal(c.state, "open");
    c.onUnreachableHint(10);
    c.handleTimeout(309);
    assert.equal(c.state, "open");
    c.handleTimeout(310);
    assert.notEqual(c.state, "open");
  });
});
