/**
 * Spare connection IDs (issue 7, "unlinkable migration") on the sans-IO core: the NEW_CONNECTION_ID and
 * RETIRE_CONNECTION_ID encodings, issuance and reliable delivery of spares, the client's switch and
 * retirement, which CID each side sends with, reset tokens of every used CID, and a hostile client
 * holding the keys: bogus retires close the session, retire storms grow nothing.
 */
import assert from "node:assert/strict";
import { ACTIVE_CID_LIMIT } from "../src/protocol/cid-set.js";
import { CloseCode } from "../src/protocol/connection.js";
import {
  AckFrame,
  FrameType,
  newConnectionIdFrameSize,
  retireConnectionIdFrameSize,
  walkFrames,
  writeNewConnectionIdFrame,
  writeRetireConnectionIdFrame,
} from "../src/protocol/frames.js";
import { buildStatelessReset } from "../src/protocol/stateless-reset.js";
import { CID_LENGTH } from "../src/protocol/version.js";
import { cidOf, cidPair, framesOf, hex, seal, type CidPair } from "./support/cid-pair.js";
import { collect, eventsOf, exchange, transfer } from "./support/migration-core.js";

const random = (o: Uint8Array): void => void o.fill(0x5a);

/** The payload of one frame written by `write`. */
function frame(size: number, write: (b: Uint8Array) => number): Uint8Array {
  const b = new Uint8Array(size);
  assert.equal(write(b), size);
  return b;
}

function retire(...seqs: number[]): Uint8Array {
  const parts = seqs.map((s) => frame(retireConnectionIdFrameSize(s), (b) => writeRetireConnectionIdFrame(b, 0, s)));
  return Uint8Array.from(parts.flatMap((x) => [...x]));
}

/** Closes reported by `side` so far. */
const closesOf = (p: CidPair, side: "client" | "server") => {
  collect(p);
  return eventsOf(p.log[side], "close");
};

describe("CID frames: encodings", function () {
  it("NEW_CONNECTION_ID is 0x08, sequence varint, the CID, the 16-byte token; RETIRE_CONNECTION_ID is 0x09, sequence varint", function () {
    const cid = Uint8Array.from({ length: CID_LENGTH }, (_, i) => 0xc0 + i);
    const token = Uint8Array.from({ length: 16 }, (_, i) => i);
    const ncid = frame(newConnectionIdFrameSize(1), (b) => writeNewConnectionIdFrame(b, 0, 1, cid, token));
    assert.equal(hex(ncid), "0801" + hex(cid) + hex(token));
    assert.equal(ncid.length, 1 + 1 + 12 + 16);
    assert.equal(hex(frame(newConnectionIdFrameSize(300), (b) => writeNewConnectionIdFrame(b, 0, 300, cid, token))).slice(0, 6), "08412c");
    assert.equal(hex(retire(0)), "0900");
    assert.equal(hex(retire(300)), "09412c");
    const seen: string[] = [];
    const flags = { ackEliciting: false };
    const ok = walkFrames(
      Uint8Array.from([...ncid, ...retire(7)]),
      {
        onPing() {},
        onAck() {},
        onStream() {},
        onDatagram() {},
        onClose() {},
        onPathChallenge() {},
        onPathResponse() {},
        onNewConnectionId: (s, c, t) => void seen.push(`n${s}:${hex(c)}:${hex(t)}`),
        onRetireConnectionId: (s) => void seen.push(`r${s}`),
      },
      new AckFrame(),
      flags,
    );
    assert.equal(ok, true);
    assert.deepEqual(seen, [`n1:${hex(cid)}:${hex(token)}`, "r7"]);
    assert.equal(flags.ackEliciting, true, "both are ack-eliciting");
    assert.equal(FrameType.NewConnectionId, 0x08);
    assert.equal(FrameType.RetireConnectionId, 0x09);
  });

  it("every truncation of either frame is malformed", function () {
    const ncid = frame(newConnectionIdFrameSize(70_000), (b) => writeNewConnectionIdFrame(b, 0, 70_000, new Uint8Array(CID_LENGTH).fill(1), new Uint8Array(16).fill(2)));
    const ret = retire(70_000);
    for (const f of [ncid, ret]) {
      for (let n = 1; n < f.length; n++) assert.equal(walkFrames(f.subarray(0, n), null, new AckFrame(), { ackEliciting: false }), false, `${hex(f.subarray(0, 1))} cut at ${n}`);
      assert.equal(walkFrames(f, null, new AckFrame(), { ackEliciting: false }), true);
    }
  });
});

describe("spare CIDs: issuance and the client's switch (sans-IO)", function () {
  it(`the server issues ${ACTIVE_CID_LIMIT - 1} spares right after the bind; the session then has ${ACTIVE_CID_LIMIT} routable CIDs`, function () {
    const p = cidPair(1);
    exchange(p);
    assert.equal(p.server.spareCids, ACTIVE_CID_LIMIT - 1);
    assert.equal(p.client.spareCids, ACTIVE_CID_LIMIT - 1);
    assert.equal(p.table.routed.size, ACTIVE_CID_LIMIT);
    assert.deepEqual(p.server.activeCids().map(hex).sort(), [...p.table.routed].sort());
  });

  it("NEW_CONNECTION_ID frames are resent when lost, until acknowledged", function () {
    const p = cidPair(2, {}, false); // the bind's answer, which carried the spares, is lost
    assert.equal(p.client.spareCids, 0);
    assert.equal(p.client.state, "binding");
    // The client's bind timer and the server's probe timer fire; the spares come again.
    for (let i = 0; i < 20 && p.client.spareCids < ACTIVE_CID_LIMIT - 1; i++) {
      p.now += 400;
      p.client.handleTimeout(p.now);
      p.server.handleTimeout(p.now);
      exchange(p);
    }
    assert.equal(p.client.state, "open");
    assert.equal(p.client.spareCids, ACTIVE_CID_LIMIT - 1);
    // Once acknowledged they are not sent again.
    const later: Uint8Array[] = [];
    for (let i = 0; i < 6; i++) {
      p.now += 30;
      p.server.send(new Uint8Array(10));
      transfer(p, "client");
      later.push(...transfer(p, "server"));
    }
    assert.ok(later.length >= 6);
    assert.deepEqual(later.flatMap((d) => framesOf(p, "server", d)).filter((f) => f.t === "ncid"), []);
  });

  it("after switchCid every packet both ways carries the new CID; the old one is retired once the new path works, replaced, then unknown", function () {
    const p = cidPair(3);
    exchange(p);
    const oldCid = p.client.cid.slice();
    assert.equal(p.client.switchCid(), true);
    const newCid = p.client.cid.slice();
    assert.notEqual(hex(newCid), hex(oldCid));
    assert.equal(p.client.cidSequence, 1, "the lowest unused spare");
    p.client.send(new Uint8Array(100));
    const c1 = transfer(p, "client");
    assert.ok(c1.length > 0);
    for (const d of c1) assert.equal(cidOf(d), hex(newCid), "client packets after the switch");
    assert.equal(hex(p.server.cid), hex(newCid), "the server answers with the CID of the newest packet");
    const s1 = transfer(p, "server");
    for (const d of s1) assert.equal(cidOf(d), hex(newCid), "server packets after the switch");
    // The new path works (an acknowledgement of a packet sent after the switch): RETIRE goes out.
    const retires: number[] = [];
    const all: Uint8Array[] = [...c1, ...s1];
    for (let i = 0; i < 10; i++) {
      p.now += 30;
      const cs = transfer(p, "client");
      for (const d of cs) for (const f of framesOf(p, "client", d)) if (f.t === "retire") retires.push(f.seq);
      all.push(...cs, ...transfer(p, "server"));
    }
    assert.deepEqual(retires, [0], "the old CID (sequence 0) is retired, once");
    for (const d of all) assert.equal(cidOf(d), hex(newCid), "nothing carries the old CID");
    assert.equal(p.table.routed.has(hex(oldCid)), false, "the server stopped routing it");
    assert.deepEqual(p.table.retired.map(hex), [hex(oldCid)]);
    assert.equal(p.table.routed.size, ACTIVE_CID_LIMIT, "a replacement was issued");
    assert.equal(p.client.spareCids, ACTIVE_CID_LIMIT - 1, "the client has two spares again");
    // The old CID now reaches neither side.
    const serverUnknown = p.server.getStats().dropped.unknownCid;
    p.server.handleDatagram(seal(p, "client", oldCid, 5000, Uint8Array.of(FrameType.Ping)), p.now);
    assert.equal(p.server.getStats().dropped.unknownCid, serverUnknown + 1);
    const clientUnknown = p.client.getStats().dropped.unknownCid;
    p.client.handleDatagram(seal(p, "server", oldCid, 5000, Uint8Array.of(FrameType.Ping)), p.now);
    assert.equal(p.client.getStats().dropped.unknownCid, clientUnknown + 1);
    assert.equal(p.client.state, "open");
    assert.equal(p.server.state, "open");
  });

  it("switches again and again: each switch takes the next sequence number, the table never holds more than 3", function () {
    const p = cidPair(4);
    exchange(p);
    for (let i = 1; i <= 20; i++) {
      assert.equal(p.client.switchCid(), true, `switch ${i}`);
      assert.equal(p.client.cidSequence, i);
      p.client.send(new Uint8Array(20));
      for (let k = 0; k < 6; k++) {
        p.now += 30;
        exchange(p);
      }
      assert.equal(p.table.routed.size, ACTIVE_CID_LIMIT);
      assert.equal(p.table.retired.length, i);
    }
    assert.equal(p.table.maxRouted, ACTIVE_CID_LIMIT);
    assert.equal(closesOf(p, "client").length + closesOf(p, "server").length, 0);
  });

  it("without a spare, switchCid changes nothing", function () {
    const p = cidPair(6);
    // Two spares, no replacement yet (nothing was acknowledged): the third switch finds none.
    assert.equal(p.client.switchCid(), true);
    assert.equal(p.client.switchCid(), true);
    const cid = hex(p.client.cid);
    assert.equal(p.client.switchCid(), false);
    assert.equal(p.client.cidSequence, 2);
    assert.equal(hex(p.client.cid), cid);
  });

  it("the client accepts a stateless reset with the token of any CID it used, not of a spare it never used", function () {
    for (const used of [false, true]) {
      const p = cidPair(7);
      exchange(p);
      const spare = p.table.issued[0]!;
      if (used) {
        assert.equal(p.client.switchCid(), true);
        assert.equal(hex(p.client.cid), hex(spare));
      }
      // A reset answering a packet with the spare CID (carrying it, ending in its token).
      p.client.handleDatagram(buildStatelessReset(spare, p.table.token(spare), 100, random)!, p.now);
      assert.equal(p.client.getStats().statelessResets, used ? 1 : 0, used ? "used" : "unused");
      assert.equal(p.client.state, used ? "closed" : "open");
      // The first CID's token still counts after the switch (it was used).
      if (used) continue;
      p.client.handleDatagram(buildStatelessReset(p.cid, p.resetToken, 100, random)!, p.now);
      assert.equal(p.client.state, "closed");
    }
  });

  it("a failed validation and a refused move keep the CID of the validated path on it", function () {
    const p = cidPair(8);
    exchange(p);
    const oldCid = hex(p.server.cid);
    p.server.rememberValidatedCid();
    assert.equal(p.client.switchCid(), true);
    p.client.send(new Uint8Array(10));
    transfer(p, "client");
    assert.notEqual(hex(p.server.cid), oldCid);
    p.server.startPathValidation(p.now, 1200, false);
    p.server.restoreValidatedCid(); // the driver reverted to the validated address
    assert.equal(hex(p.server.cid), oldCid);
    // A refused move: the next packet switches the CID, the driver undoes it.
    p.client.send(new Uint8Array(10));
    transfer(p, "client");
    assert.notEqual(hex(p.server.cid), oldCid);
    p.server.keepPreviousCid();
    assert.equal(hex(p.server.cid), oldCid);
  });
});

describe("CID frames from a peer that breaks the rules (holding the session keys)", function () {
  /** A hostile client's packet: `frames` sealed under the client key, numbered far above the real client's. */
  let pn = 100_000;
  const hostile = (p: CidPair, cid: Uint8Array, frames: Uint8Array): Uint8Array => seal(p, "client", cid, pn++, frames);

  it("RETIRE_CONNECTION_ID of a sequence number never issued: close 1002", function () {
    const p = cidPair(20);
    exchange(p);
    p.server.handleDatagram(hostile(p, p.cid, retire(ACTIVE_CID_LIMIT)), p.now);
    const closes = closesOf(p, "server");
    assert.equal(p.server.state, "closing");
    assert.equal(closes.length, 0, "the CLOSE is sent first");
    transfer(p, "server", () => false);
    assert.equal(eventsOf(p.log.server, "close")[0]?.code, CloseCode.ProtocolError);
    assert.match(eventsOf(p.log.server, "close")[0]!.reason, /protocol violation: retired connection ID 3, which was never issued/);
  });

  it("RETIRE_CONNECTION_ID of the CID its own packet carries: close 1002", function () {
    const p = cidPair(21);
    exchange(p);
    p.server.handleDatagram(hostile(p, p.cid, retire(0)), p.now);
    transfer(p, "server", () => false);
    assert.match(closesOf(p, "server")[0]?.reason ?? "", /protocol violation: retired connection ID 0, which its own packet carries/);
    assert.equal(closesOf(p, "server")[0]?.code, CloseCode.ProtocolError);
  });

  it("NEW_CONNECTION_ID from a client, RETIRE_CONNECTION_ID from a server: close 1002", function () {
    const p = cidPair(22);
    exchange(p);
    const ncid = frame(newConnectionIdFrameSize(9), (b) => writeNewConnectionIdFrame(b, 0, 9, new Uint8Array(CID_LENGTH).fill(3), new Uint8Array(16)));
    p.server.handleDatagram(hostile(p, p.cid, ncid), p.now);
    transfer(p, "server", () => false);
    assert.match(closesOf(p, "server")[0]?.reason ?? "", /NEW_CONNECTION_ID sent by a client/);
    const q = cidPair(23);
    exchange(q);
    q.client.handleDatagram(seal(q, "server", q.cid, 100_000, retire(1)), q.now);
    transfer(q, "client", () => false);
    assert.match(closesOf(q, "client")[0]?.reason ?? "", /RETIRE_CONNECTION_ID sent by a server/);
  });

  it("a server announcing a 4th active CID, or another value for a known sequence number: the client closes 1002", function () {
    const p = cidPair(24);
    exchange(p);
    const extra = frame(newConnectionIdFrameSize(3), (b) => writeNewConnectionIdFrame(b, 0, 3, new Uint8Array(CID_LENGTH).fill(9), new Uint8Array(16)));
    p.client.handleDatagram(seal(p, "server", p.cid, 100_000, extra), p.now);
    transfer(p, "client", () => false);
    assert.match(closesOf(p, "client")[0]?.reason ?? "", /more than 3 connection IDs active/);
    const q = cidPair(25);
    exchange(q);
    const changed = frame(newConnectionIdFrameSize(1), (b) => writeNewConnectionIdFrame(b, 0, 1, new Uint8Array(CID_LENGTH).fill(9), new Uint8Array(16)));
    q.client.handleDatagram(seal(q, "server", q.cid, 100_000, changed), q.now);
    transfer(q, "client", () => false);
    assert.match(closesOf(q, "client")[0]?.reason ?? "", /connection ID 1 announced twice with different values/);
    // The same values again (a retransmission) are fine.
    const r = cidPair(26);
    exchange(r);
    const s1 = r.table.issued[0]!;
    const same = frame(newConnectionIdFrameSize(1), (b) => writeNewConnectionIdFrame(b, 0, 1, s1, r.table.token(s1)));
    r.client.handleDatagram(seal(r, "server", r.cid, 100_000, same), r.now);
    assert.equal(r.client.state, "open");
    assert.equal(r.client.spareCids, ACTIVE_CID_LIMIT - 1);
  });

  it("retiring an already retired sequence number again is ignored and grows nothing", function () {
    const p = cidPair(27);
    exchange(p);
    const spare = p.table.issued[0]!;
    p.server.handleDatagram(hostile(p, spare, retire(0)), p.now); // legitimate: retire 0 from a packet on CID 1
    assert.equal(p.server.state, "open");
    assert.equal(p.table.retired.length, 1);
    for (let i = 0; i < 200; i++) p.server.handleDatagram(hostile(p, spare, retire(0, 0, 0, 0)), p.now);
    assert.equal(p.server.state, "open");
    assert.equal(p.table.retired.length, 1);
    assert.equal(p.table.routed.size, ACTIVE_CID_LIMIT);
    assert.equal(p.table.issued.length, ACTIVE_CID_LIMIT, "one replacement in all");
  });

  it("a retire storm (every packet retires every CID it may) keeps at most 3 CIDs routed and issues at most 2 per packet", function () {
    const p = cidPair(28);
    exchange(p);
    // Only the server's own work is timed: the loop's bookkeeping above it grows with the storm.
    let serverMs = 0;
    let maxIssuedPerPacket = 0;
    let packets = 0;
    for (let i = 0; i < 2000; i++) {
      // Send on one routed CID; retire every other sequence number issued so far (0 .. issued).
      const routed = p.table.issued.filter((c) => p.table.routed.has(hex(c)));
      const carrier = routed[routed.length - 1] ?? p.cid;
      const carrierSeq = p.table.issued.indexOf(carrier) + 1;
      const seqs: number[] = [];
      for (let s = p.table.issued.length; s >= 0 && seqs.length < 300; s--) if (s !== carrierSeq) seqs.push(s);
      const before = p.table.issued.length;
      const datagram = hostile(p, carrier, retire(...seqs));
      // CPU time, not wall time: on a loaded machine the process may wait for a core in the middle of a call.
      const c0 = process.cpuUsage();
      p.server.handleDatagram(datagram, p.now);
      const c = process.cpuUsage(c0);
      serverMs += (c.user + c.system) / 1000;
      packets++;
      maxIssuedPerPacket = Math.max(maxIssuedPerPacket, p.table.issued.length - before);
      assert.ok(p.table.routed.size <= ACTIVE_CID_LIMIT);
      // The server's answers: NEW_CONNECTION_ID frames only for live CIDs, at most 3 in any packet.
      for (const d of transfer(p, "server", () => false)) {
        const n = framesOf(p, "server", d).filter((f) => f.t === "ncid").length;
        assert.ok(n <= ACTIVE_CID_LIMIT, `${n} NEW_CONNECTION_ID frames in one packet`);
      }
      assert.equal(p.server.state, "open", `packet ${i}`);
    }
    assert.equal(p.table.maxRouted, ACTIVE_CID_LIMIT);
    assert.ok(p.table.retired.length >= 2000, `the storm retired ${p.table.retired.length} CIDs`);
    assert.ok(maxIssuedPerPacket <= ACTIVE_CID_LIMIT - 1, `${maxIssuedPerPacket} CIDs issued for one packet`);
    assert.ok(p.table.issued.length <= 2 + packets * (ACTIVE_CID_LIMIT - 1));
    // Each packet carries 300 RETIRE_CONNECTION_ID frames; linear work is tens of µs, a quadratic walk
    // over the 4,000 CIDs retired by the end would be far above this generous bound.
    assert.ok(serverMs / packets < 1, `the server spent ${(serverMs / packets).toFixed(3)} ms of CPU per storm packet`);
  });
});
