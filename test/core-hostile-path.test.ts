/**
 * Address validation by PATH_RESPONSE only. A key holder knows the server's packet numbers, so it can
 * acknowledge packets sent to an address it spoofs; if an ACK proved an address, it could lift the
 * 3x anti-amplification limit toward a victim. These tests drive a server Connection by hand.
 */
import assert from "node:assert/strict";
import type { Connection } from "../src/protocol/connection.js";
import { FrameType } from "../src/protocol/frames.js";
import { HostileClient, PING, ackFrame, frames, pathFrame, type OpenedPacket } from "./support/hostile-core.js";
import { SimNetwork, makePair } from "./support/sim-network.js";

const sum = (ps: OpenedPacket[]): number => ps.reduce((n, p) => n + p.size, 0);
const validated = (c: Connection): boolean => (c as unknown as { addressValidated: boolean }).addressValidated;

/**
 * The hostile peer acknowledges every packet the server sent (it knows their numbers) from the address
 * under test, for `rounds` rounds, and never answers a challenge. Returns bytes the server sent there
 * and bytes it received from there (`budgetFrom`: bytes already received from there).
 */
function ackFlood(h: HostileClient, rounds: number, budgetFrom: number, sentBefore = 0): { sent: number; received: number } {
  let sent = sentBefore;
  let received = budgetFrom;
  for (let r = 0; r < rounds && h.server.state === "open"; r++) {
    sent += sum(h.poll());
    if (h.largestServerPn >= 0) {
      const pkt = h.packet(frames(ackFrame(h.largestServerPn, 0), PING), h.pn++);
      received += pkt.length;
      h.server.handleDatagram(pkt, h.now);
    }
    sent += sum(h.poll());
    h.now += 5;
    sent += sum(h.tick(h.now));
  }
  return { sent, received };
}

describe("core hostile: address validation by PATH_RESPONSE only", function () {
  it("after a move, ACKs of every later packet do not lift the 3x limit toward the new (spoofed) address", function () {
    const h = new HostileClient(10);
    h.bind(); // the first address is proven
    h.server.send(new Uint8Array(10));
    h.poll();
    h.send(ackFrame(h.largestServerPn, 0));
    h.poll();
    assert.equal(validated(h.server), true);
    h.now += 10;
    const trigger = 100;
    h.server.startPathValidation(h.now, trigger, true); // the hostile peer's packet "from the victim"
    h.server.send(new Uint8Array(200_000));
    const { sent, received } = ackFlood(h, 60, trigger);
    assert.ok(sent > 0);
    assert.ok(sent <= 3 * received, `sent ${sent} bytes to an unproven address for ${received} received`);
    assert.equal(validated(h.server), false);
    assert.equal(h.server.state, "open");
  });

  it("the server's first address is not proven by ACKs either: only the answer to the challenge in its first reply", function () {
    const h = new HostileClient(11);
    h.send(PING, 2 /* Bind */);
    const first = h.poll();
    assert.equal(h.server.state, "open");
    assert.ok(first.length >= 1 && first[0]!.challenges.length === 1, "the first reply carries a PATH_CHALLENGE");
    h.server.send(new Uint8Array(200_000));
    const { sent, received } = ackFlood(h, 60, 1200, sum(first));
    assert.ok(sent <= 3 * received, `sent ${sent} bytes to an unproven first address for ${received} received`);
    assert.equal(validated(h.server), false);
    // The challenge rode the server's packets all along; answering any copy of it proves the address.
    const challenges = h.received.flatMap((p) => p.challenges.map((c) => Buffer.from(c).toString("hex")));
    assert.ok(challenges.length > 1, "resent");
    assert.equal(new Set(challenges).size, 1, "one challenge for the first path");
    h.answer([h.received[h.received.length - 1]!]);
    assert.equal(validated(h.server), true);
    assert.equal(h.events.filter((e) => e.type === "pathValidated" || e.type === "pathFailed").length, 0, "no path events for the first path");
    const after = ackFlood(h, 5, 0);
    assert.ok(after.sent > 3 * after.received, "unlimited once proven");
  });

  it("going back to an unproven first address (revertPath) does not lift the limit; it is challenged again", function () {
    const h = new HostileClient(12);
    h.bind(false); // from a spoofed address: never answered
    h.now += 10;
    h.server.startPathValidation(h.now, 300, false); // moves to the attacker's real address...
    h.poll();
    h.server.revertPath(); // ...and a packet "from" the first address brings it back
    assert.equal(validated(h.server), false);
    h.server.send(new Uint8Array(200_000));
    const { sent, received } = ackFlood(h, 60, 0);
    assert.ok(sent <= 3 * received, `sent ${sent} bytes for ${received} received after returning`);
    const fresh = h.received.flatMap((p) => p.challenges);
    assert.ok(fresh.length > 0, "the first address is challenged again");
    h.answer([h.received[h.received.length - 1]!]);
    assert.equal(validated(h.server), true);
  });

  it("revertPath to a proven address lifts the limit at once", function () {
    const h = new HostileClient(13);
    h.bind();
    h.server.startPathValidation(h.now, 100, false);
    h.server.revertPath();
    assert.equal(validated(h.server), true);
  });

  it("an answer to an older candidate's challenge does not prove the address the server sends to now", function () {
    const h = new HostileClient(14);
    h.bind();
    const c1 = h.server.startPathValidation(h.now, 100, false); // candidate A (answered below)
    const c2 = h.server.startPathValidation(h.now, 100, false); // candidate B: where the server sends now
    h.send(pathFrame(FrameType.PathResponse, c1));
    assert.equal(validated(h.server), false, "the answer for A proves nothing about B");
    h.poll();
    assert.equal(h.events.filter((e) => e.type === "pathValidated").length, 1, "A is still reported (the driver ignores it)");
    h.send(pathFrame(FrameType.PathResponse, c2));
    assert.equal(validated(h.server), true);
  });

  for (const loseFirst of [false, true]) {
    it(`honest pair: the client answers the first reply's challenge at once${loseFirst ? ", also when that reply is lost" : ""}`, function () {
      const sim = new SimNetwork(makePair({ seed: 20 }), { seed: 20, link: { delayMs: 20 } });
      let dropped = !loseFirst;
      sim.onTransmit = (from) => {
        if (from === "server" && !dropped) {
          dropped = true;
          return "drop";
        }
      };
      let clientOpenAt = -1;
      sim.runUntil(() => {
        if (clientOpenAt < 0 && sim.client.state === "open") clientOpenAt = sim.now;
        return validated(sim.server) && sim.bothOpen();
      }, 5000);
      assert.ok(dropped);
      // The client opens on the server's first packet that arrives (a lost one costs a PTO, as it
      // always did) and answers its challenge in the same instant: 20 ms later the server has it.
      assert.ok(sim.now - clientOpenAt <= 21, `validated ${sim.now - clientOpenAt} ms after the client opened`);
      assert.equal(sim.countEvents("server", "pathValidated") + sim.countEvents("server", "pathFailed"), 0);
    });
  }
});

describe("core hostile: no timer spin while blocked by the 3x limit", function () {
  it("a server whose unproven peer acked data, then went silent, arms no due timer until the peer is heard (RFC 9002 §6.2.2.1)", function () {
    const h = new HostileClient(40);
    h.bind(false); // never answers the challenge: the address stays unproven
    h.server.send(new Uint8Array(50_000));
    // The peer acknowledges what arrives (a small RTT is measured) and then vanishes.
    ackFlood(h, 5, 1200);
    let wakeups = 0;
    const end = h.now + 8_000; // inside the 10 s idle timeout
    for (let guard = 0; guard < 100_000 && h.server.state === "open"; guard++) {
      const at = h.server.pollTimeout();
      if (at === null || at > end) break;
      wakeups++;
      h.tick(Math.max(at, h.now));
    }
    // Each PTO doubles up to 64x; without the rule the deadline stays due once the backoff caps.
    assert.ok(wakeups < 50, `${wakeups} timer wake-ups in 8 s of silence while blocked`);
    assert.equal(h.server.state, "open");
  });
});
