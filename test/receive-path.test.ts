/**
 * Bad input at the receive path of an open Connection pair. Every bad datagram must be dropped without effect:
 * no event, no reply, counted once under the right cause in `dropped`, and the session beside it keeps working.
 * A "control" twin of each scenario (same seed, no bad input) must produce byte-identical transmissions.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { AEAD_TAG_LENGTH } from "../src/protocol/aead.js";
import { Connection, Received } from "../src/protocol/connection.js";
import { AckFrame, FrameType, walkFrames } from "../src/protocol/frames.js";
import { PacketCipher, splitExportedSecrets } from "../src/protocol/key-schedule.js";
import { PacketType, parseHeader, writeHeader, type ParsedHeader } from "../src/protocol/packet-header.js";
import { decodePacketNumber } from "../src/protocol/packet-number.js";
import type { DropCounters } from "../src/protocol/stats.js";
import { writeVarint } from "../src/protocol/varint.js";
import { CID_LENGTH, MAX_DATAGRAM_SIZE } from "../src/protocol/version.js";
import { Prng, SimNetwork, fastBackend, makePair, openSim, other, type Side } from "./support/sim-network.js";

type Cause = keyof DropCounters;
const CAUSES: Cause[] = ["malformed", "unknownCid", "replay", "decrypt", "closed"];
const FC_SEED = 0x0fa57;

// ------------------------------------------------------------------------------------------------ helpers

function openLossless(seed: number, record = true): SimNetwork {
  return openSim({ seed }, { link: { delayMs: 20 }, record });
}

/** Runs until both sides have nothing in flight and nothing queued. */
function settle(sim: SimNetwork): void {
  sim.runUntilQuiet();
}

/** Sends `n` messages each way and checks they arrive (the session still works). */
function exchange(sim: SimNetwork, n: number, tag: number): void {
  const want: Record<Side, Uint8Array[]> = { client: [], server: [] };
  const base: Record<Side, number> = { client: sim.messages("client").length, server: sim.messages("server").length };
  const rng = new Prng(tag);
  for (const side of ["client", "server"] as const) {
    for (let i = 0; i < n; i++) {
      const m = rng.bytes(rng.range(1, 3000));
      m[0] = tag & 0xff;
      sim.conn(side).send(m);
      want[other(side)].push(m);
    }
  }
  sim.runUntil(
    () => sim.messages("client").length === base.client + n && sim.messages("server").length === base.server + n,
    30_000,
  );
  for (const side of ["client", "server"] as const) {
    const got = sim.messages(side).slice(base[side]);
    got.forEach((m, i) => assert.ok(Buffer.from(m).equals(Buffer.from(want[side][i]!)), `${side} message ${i} of exchange ${tag}`));
  }
}

/**
 * Takes the next datagram `from` emits off the network (it never arrives) while `action` runs; the side must
 * emit exactly one. Used to get a genuine packet whose packet number the receiver has not seen yet.
 */
function hold(sim: SimNetwork, from: Side, action: () => void): Uint8Array {
  const held: Uint8Array[] = [];
  sim.onTransmit = (f, data) => {
    if (f === from) {
      held.push(data.slice());
      return "drop";
    }
  };
  action();
  sim.flush();
  sim.onTransmit = null;
  assert.equal(held.length, 1, `expected exactly one datagram from ${from}`);
  return held[0]!;
}

/** Largest packet number `side` has sent (all delivered on a lossless, in-order link once settled). */
const lastPn = (conn: Connection): number => conn.getStats().packetsSent - 1;

/**
 * What the receive path must make of a datagram that is not a genuine fresh packet, derived from the wire
 * format alone: size and flags, then CID, then Bind rules, then packet number (seen or too old), else AEAD.
 * `largest` is the receiver's largest received packet number; every number up to it was received.
 */
function expectedCause(buf: Uint8Array, receiver: Connection, largest: number): Cause {
  if (buf.length < 1 + CID_LENGTH + 1 + 1 + AEAD_TAG_LENGTH || buf.length > MAX_DATAGRAM_SIZE) return "malformed";
  const flags = buf[0]!;
  const type = flags >>> 6;
  if (type !== 0b01 && type !== 0b10) return "malformed";
  if ((flags & 0b0001_1100) !== 0) return "malformed";
  const pnLength = (flags & 0b11) + 1;
  if (buf.length < 1 + CID_LENGTH + pnLength + AEAD_TAG_LENGTH + 1) return "malformed";
  for (let i = 0; i < CID_LENGTH; i++) if (buf[1 + i] !== receiver.cid[i]) return "unknownCid";
  if (type === 0b10 && (receiver.role === "client" || buf.length < MAX_DATAGRAM_SIZE)) return "malformed";
  let truncated = 0;
  for (let i = 0; i < pnLength; i++) truncated = truncated * 256 + buf[1 + CID_LENGTH + i]!;
  const pn = decodePacketNumber(largest, truncated, pnLength * 8);
  return pn <= largest ? "replay" : "decrypt";
}

interface Snapshot {
  dropped: DropCounters;
  timeout: number | null;
  events: number;
}
const snap = (sim: SimNetwork, side: Side): Snapshot => ({
  dropped: { ...sim.conn(side).dropped },
  timeout: sim.conn(side).pollTimeout(),
  events: sim.events[side].length,
});

/**
 * Hands `buf` to `to` and checks it was dropped without effect: Dropped returned, no transmission, no event,
 * the same next deadline, and exactly one drop counter up by one (`cause` when given). Returns the cause.
 */
function assertInert(sim: SimNetwork, to: Side, buf: Uint8Array, cause?: Cause, label = ""): Cause {
  sim.flush();
  const before = snap(sim, to);
  const copy = buf.slice();
  const r = sim.inject(to, buf);
  assert.ok(Buffer.from(buf).equals(Buffer.from(copy)), `${label}: handleDatagram modified its input`);
  assert.equal(r.result, Received.Dropped, `${label}: not dropped`);
  assert.equal(r.transmitted, 0, `${label}: caused a reply`);
  assert.equal(r.events, 0, `${label}: caused an event`);
  assert.equal(sim.conn(to).pollTimeout(), before.timeout, `${label}: moved a timer`);
  const after = sim.conn(to).dropped;
  const changed = CAUSES.filter((c) => after[c] !== before.dropped[c]);
  assert.equal(changed.length, 1, `${label}: counters changed: ${changed.join(",") || "none"}`);
  const got = changed[0]!;
  assert.equal(after[got], before.dropped[got] + 1, `${label}: counted more than once`);
  if (cause) assert.equal(got, cause, `${label}: counted as ${got}, expected ${cause}`);
  return got;
}

/** Seals a packet exactly as the sender would, from the keying material (what only a key holder can do). */
function sealPacket(opts: {
  keyingMaterial: Uint8Array;
  from: Side;
  cid: Uint8Array;
  pn: number;
  pnLength: 1 | 2 | 3 | 4;
  payload: Uint8Array;
  type?: PacketType;
  generation?: number;
}): Uint8Array {
  const secrets = splitExportedSecrets(opts.keyingMaterial);
  let cipher = new PacketCipher(fastBackend(), opts.from === "client" ? secrets.clientToServer : secrets.serverToClient);
  const gen = opts.generation ?? 0;
  for (let i = 0; i < gen; i++) cipher = cipher.next();
  const headerLength = 1 + CID_LENGTH + opts.pnLength;
  const out = new Uint8Array(headerLength + opts.payload.length + AEAD_TAG_LENGTH);
  writeHeader(out, opts.type ?? PacketType.Data, (gen & 1) as 0 | 1, opts.cid, opts.pn, opts.pnLength);
  cipher.seal(out, headerLength, opts.pn, out.subarray(0, headerLength), opts.payload);
  return out;
}

/** Opens a packet with a direction's generation-0 key; null when it does not authenticate. */
function openWith(keyingMaterial: Uint8Array, from: Side, buf: Uint8Array, pn: number): Uint8Array | null {
  const secrets = splitExportedSecrets(keyingMaterial);
  const cipher = new PacketCipher(fastBackend(), from === "client" ? secrets.clientToServer : secrets.serverToClient);
  const h: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  assert.ok(parseHeader(buf, h));
  const out = cipher.open(pn, buf.subarray(0, h.headerLength), buf.subarray(h.headerLength));
  return out ? out.slice() : null;
}

const PING = Uint8Array.of(FrameType.Ping);

// ------------------------------------------------------------------------------------------------ tests

describe("receive path: bad input is dropped without effect", function () {
  this.timeout(30_000);

  it("the packet forger reproduces genuine packets (sanity check of the test helper)", function () {
    const sim = openLossless(1);
    settle(sim);
    const pn = lastPn(sim.client) + 1;
    const forged = sealPacket({ keyingMaterial: sim.pair.keyingMaterial, from: "client", cid: sim.client.cid, pn, pnLength: 2, payload: PING });
    const r = sim.inject("server", forged);
    assert.equal(r.result, Received.AcceptedNewest);
  });

  it("truncated datagrams: every prefix of a fresh packet", function () {
    for (const from of ["client", "server"] as const) {
      const sim = openLossless(2);
      settle(sim);
      const to = other(from);
      const largest = lastPn(sim.conn(from));
      const pkt = hold(sim, from, () => sim.conn(from).send(new Prng(5).bytes(300)));
      for (let len = 0; len < pkt.length; len++) {
        const cut = pkt.slice(0, len);
        assertInert(sim, to, cut, expectedCause(cut, sim.conn(to), largest), `${from} prefix ${len}`);
      }
      assert.equal(sim.inject(to, pkt).result, Received.AcceptedNewest, "the genuine packet is still accepted");
      exchange(sim, 3, 1);
    }
  });

  it("oversized datagrams (over 1200 bytes), including a genuine packet with bytes appended", function () {
    const sim = openLossless(3);
    settle(sim);
    const pkt = hold(sim, "client", () => sim.client.send(new Uint8Array(100)));
    for (const size of [MAX_DATAGRAM_SIZE + 1, 1300, 1500, 9000, 65_507]) {
      const big = new Uint8Array(size);
      big.set(pkt);
      assertInert(sim, "server", big, "malformed", `appended to ${size}`);
      assertInert(sim, "client", new Prng(size).bytes(size), "malformed", `random ${size}`);
    }
    assert.equal(sim.inject("server", pkt).result, Received.AcceptedNewest);
    exchange(sim, 2, 2);
  });

  it("random bytes, and random bytes behind a valid header with the right CID", function () {
    const sim = openLossless(4);
    settle(sim);
    const rng = new Prng(44);
    const seen = new Set<Cause>();
    for (let i = 0; i < 400; i++) {
      const to: Side = i % 2 ? "client" : "server";
      const buf = rng.bytes(rng.range(0, 1300));
      if (i % 4 >= 2 && buf.length >= 30) {
        // Plausible header: Data type, random key phase and pn length, the session's CID.
        buf[0] = (PacketType.Data << 6) | (rng.int(2) << 5) | rng.int(4);
        buf.set(sim.conn(to).cid, 1);
      }
      const largest = lastPn(sim.conn(other(to)));
      seen.add(assertInert(sim, to, buf, expectedCause(buf, sim.conn(to), largest), `random ${i}`));
    }
    for (const c of ["malformed", "unknownCid", "decrypt"] as const) assert.ok(seen.has(c), `random input reached ${c}`);
    exchange(sim, 3, 4);
  });

  it("every single-bit flip of a fresh packet, both directions", function () {
    for (const from of ["client", "server"] as const) {
      const sim = openLossless(5);
      settle(sim);
      const to = other(from);
      const largest = lastPn(sim.conn(from));
      const pkt = hold(sim, from, () => sim.conn(from).send(new Prng(6).bytes(400)));
      const byCause = new Map<Cause, number>();
      for (let bit = 0; bit < pkt.length * 8; bit++) {
        const bad = pkt.slice();
        bad[bit >>> 3]! ^= 0x80 >>> (bit & 7);
        const cause = expectedCause(bad, sim.conn(to), largest);
        const byte = bit >>> 3;
        // The model agrees with the layout: flags → malformed except the key-phase bit, CID → unknownCid,
        // packet number → replay or decrypt, payload and tag → decrypt.
        if (byte === 0) assert.ok(cause === "malformed" || (bit & 7) === 2 || (bit & 7) >= 6);
        if (byte >= 1 && byte <= CID_LENGTH) assert.equal(cause, "unknownCid");
        if (byte > CID_LENGTH + 4) assert.equal(cause, "decrypt");
        assertInert(sim, to, bad, cause, `${from} bit ${bit}`);
        byCause.set(cause, (byCause.get(cause) ?? 0) + 1);
      }
      assert.equal(byCause.get("unknownCid"), CID_LENGTH * 8);
      assert.ok((byCause.get("decrypt") ?? 0) > (pkt.length - 20) * 8);
      assert.ok((byCause.get("malformed") ?? 0) >= 5, "type and reserved bits");
      // No flip burnt the packet number or disturbed the keys: the genuine packet still goes through.
      assert.equal(sim.inject(to, pkt).result, Received.AcceptedNewest);
      exchange(sim, 3, 5);
    }
  });

  it("exact replays of every packet received so far, and reflections of a side's own packets", function () {
    const sim = openLossless(6);
    exchange(sim, 10, 6);
    settle(sim);
    const sent = sim.sent.slice();
    assert.ok(sent.length > 20);
    for (const rec of sent) {
      const to = other(rec.from);
      assertInert(sim, to, rec.data, expectedCause(rec.data, sim.conn(to), lastPn(sim.conn(rec.from))), `replay of ${rec.from} packet`);
      // Reflected back to its sender: wrong direction's key (or an already-seen number).
      const self = rec.from;
      assertInert(sim, self, rec.data, expectedCause(rec.data, sim.conn(self), lastPn(sim.conn(to))), `reflection to ${self}`);
    }
    assert.ok(sim.server.dropped.replay >= sent.filter((r) => r.from === "client").length - 1);
    exchange(sim, 3, 7);
  });

  it("replays of early packets after more than 2048 newer ones are refused (old numbers beyond the replay window)", function () {
    const sim = openLossless(7, false);
    const early: Uint8Array[] = [];
    sim.onTransmit = (from, data) => {
      if (from === "client" && early.length < 12) early.push(data.slice());
    };
    exchange(sim, 10, 8);
    sim.onTransmit = null;
    assert.equal(early.length, 12);
    // Push more than 2048 further client packets (bulk data, one packet per ~1150 bytes).
    const chunk = new Uint8Array(200_000);
    while (lastPn(sim.client) < 2048 + 40) {
      sim.client.send(chunk);
      sim.runUntil(() => sim.client.queuedBytes === 0, 60_000);
    }
    settle(sim);
    const largest = lastPn(sim.client);
    const causes = new Map<Cause, number>();
    for (const pkt of early) {
      const cause = expectedCause(pkt, sim.server, largest);
      causes.set(cause, (causes.get(cause) ?? 0) + 1);
      assertInert(sim, "server", pkt, cause, "early packet");
    }
    // Their 1-byte truncated numbers now decode near the current largest (to numbers not yet received, so they
    // fail authentication rather than the replay check); whatever they decode to, they are refused and counted.
    assert.equal([...causes.values()].reduce((a, b) => a + b, 0), early.length);

    // A genuinely old number with a 4-byte encoding (decodes exactly) is refused as a replay before any AEAD work,
    // whether or not it would authenticate.
    const km = sim.pair.keyingMaterial;
    for (const age of [2048, 2049, 2080]) {
      const pn = largest - age;
      const genuine = sealPacket({ keyingMaterial: km, from: "client", cid: sim.client.cid, pn, pnLength: 4, payload: PING });
      assertInert(sim, "server", genuine, "replay", `pn ${age} behind`);
    }
    // Just inside the window and already seen: replay too.
    const seen = sealPacket({ keyingMaterial: km, from: "client", cid: sim.client.cid, pn: largest - 2047, pnLength: 4, payload: PING });
    assertInert(sim, "server", seen, "replay", "pn 2047 behind");
    exchange(sim, 3, 9);
  });

  it("packets sealed under other keying material with the same CID (a third Connection) fail authentication", function () {
    const sim = openLossless(8);
    settle(sim);
    // A session with different keys but the same CID, driven far enough that its numbers pass the replay check.
    const wrong = new SimNetwork(makePair({ seed: 1234, cid: sim.client.cid }), { seed: 1234, link: { delayMs: 5 }, record: true });
    wrong.runUntil(() => wrong.bothOpen());
    wrong.client.send(new Uint8Array(60_000));
    wrong.server.send(new Uint8Array(60_000));
    wrong.runUntil(() => wrong.messages("client").length === 1 && wrong.messages("server").length === 1);
    assert.ok(!Buffer.from(wrong.pair.keyingMaterial).equals(Buffer.from(sim.pair.keyingMaterial)));
    const causes = new Map<Cause, number>();
    for (const rec of wrong.sent) {
      const to = other(rec.from);
      const cause = expectedCause(rec.data, sim.conn(to), lastPn(sim.conn(rec.from)));
      assertInert(sim, to, rec.data, cause, `wrong-key ${rec.from} packet`);
      causes.set(cause, (causes.get(cause) ?? 0) + 1);
    }
    assert.ok((causes.get("decrypt") ?? 0) >= 50, `decrypt drops: ${causes.get("decrypt")}`);
    exchange(sim, 3, 10);
  });

  it("unknown CIDs: a genuine packet with any CID byte changed, and a session with the same keys but another CID", function () {
    const sim = openLossless(9);
    settle(sim);
    const pkt = hold(sim, "client", () => sim.client.send(new Uint8Array(50)));
    for (let i = 0; i < CID_LENGTH; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const bad = pkt.slice();
        bad[1 + i]! ^= x;
        assertInert(sim, "server", bad, "unknownCid", `cid byte ${i}`);
      }
    }
    const otherCid = makePair({ seed: 10, keyingMaterial: sim.pair.keyingMaterial }); // same keys, other CID
    assert.ok(!Buffer.from(otherCid.cid).equals(Buffer.from(sim.client.cid)));
    const stray = otherCid.client.pollTransmit(otherCid.now)!;
    assert.equal(stray.length, MAX_DATAGRAM_SIZE);
    assertInert(sim, "server", stray, "unknownCid", "bind with another CID");
    assert.equal(sim.inject("server", pkt).result, Received.AcceptedNewest);
    exchange(sim, 3, 11);
  });

  it("Bind-type packets: under 1200 bytes to the server, and any size to the client, are refused even when authentic", function () {
    const sim = openLossless(10);
    settle(sim);
    const km = sim.pair.keyingMaterial;
    const cid = sim.client.cid;
    // To the server: a correctly sealed Bind with a fresh number but padded to less than 1200 bytes.
    for (const size of [40, 600, MAX_DATAGRAM_SIZE - 1]) {
      const pn = lastPn(sim.client) + 1;
      const payload = new Uint8Array(size - (1 + CID_LENGTH + 2) - AEAD_TAG_LENGTH);
      payload[0] = FrameType.Ping;
      const bind = sealPacket({ keyingMaterial: km, from: "client", cid, pn, pnLength: 2, payload, type: PacketType.Bind });
      assert.equal(bind.length, size);
      assert.ok(openWith(km, "client", bind, pn), "the short bind is authentic");
      assertInert(sim, "server", bind, "malformed", `bind of ${size}`);
    }
    // To the client: a Bind sealed with the server→client key. A "client" built on swapped keying material
    // produces exactly that as its first datagram.
    const swapped = new Uint8Array(64);
    swapped.set(km.subarray(32), 0);
    swapped.set(km.subarray(0, 32), 32);
    const mirror = makePair({ seed: 11, keyingMaterial: swapped, cid });
    const toClient = mirror.client.pollTransmit(mirror.now)!;
    assert.equal(toClient.length, MAX_DATAGRAM_SIZE);
    assert.equal(toClient[0]! >>> 6, PacketType.Bind);
    assert.ok(openWith(km, "server", toClient, 0), "it authenticates under the client's receive key");
    assertInert(sim, "client", toClient, "malformed", "bind to the client");
    // A forged authentic Bind with a fresh number, to the client.
    const fresh = sealPacket({
      keyingMaterial: km, from: "server", cid, pn: lastPn(sim.server) + 1, pnLength: 2,
      payload: new Uint8Array(MAX_DATAGRAM_SIZE - 11 - AEAD_TAG_LENGTH).fill(0).fill(FrameType.Ping, 0, 1), type: PacketType.Bind,
    });
    assertInert(sim, "client", fresh, "malformed", "fresh bind to the client");
    // The client's own first bind, reflected to it.
    const ownBind = sim.sent.find((r) => r.from === "client")!.data;
    assert.equal(ownBind[0]! >>> 6, PacketType.Bind);
    assertInert(sim, "client", ownBind, "malformed", "reflected bind");
    exchange(sim, 3, 12);
    settle(sim);
    // Control: the same short forged packet as Data type is accepted, so only the Bind rule stopped them.
    // (Last: a forged packet takes a number the real client will use next, so nothing may follow it.)
    const control = sealPacket({ keyingMaterial: km, from: "client", cid, pn: lastPn(sim.client) + 1, pnLength: 2, payload: PING });
    assert.equal(sim.inject("server", control).result, Received.AcceptedNewest);
  });

  it("authentic packets whose frames do not parse are dropped as malformed and do not burn their packet number", function () {
    const sim = openLossless(11);
    settle(sim);
    const km = sim.pair.keyingMaterial;
    const cid = sim.client.cid;
    let pn = lastPn(sim.client) + 1;
    const bad: [string, Uint8Array][] = [
      ["unknown frame type", Uint8Array.of(FrameType.Ping, 0x08)],
      ["type 0xff", Uint8Array.of(0xff)],
      ["truncated STREAM", Uint8Array.of(FrameType.Stream, 0, 10, 1, 2, 3)],
      ["truncated DATAGRAM", Uint8Array.of(FrameType.Datagram, 5, 1)],
      ["ACK first range above largest", Uint8Array.of(FrameType.Ack, 3, 0, 0, 4)],
      ["ACK gap below zero", Uint8Array.of(FrameType.Ack, 5, 0, 1, 0, 5, 0)],
      ["ACK too many ranges", Uint8Array.of(FrameType.Ack, 0x40, 200, 0, 33, 0)],
      ["CLOSE reason past the end", Uint8Array.of(FrameType.Close, 0x43, 0xe8, 20, 0x61)],
      ["truncated PATH_CHALLENGE", Uint8Array.of(FrameType.PathChallenge, 1, 2, 3)],
      ["varint past 2^53", Uint8Array.of(FrameType.Stream, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0)],
    ];
    const closeTooLong = new Uint8Array(1 + 2 + 2 + 300);
    closeTooLong[0] = FrameType.Close;
    writeVarint(closeTooLong, 1, 1000);
    writeVarint(closeTooLong, 3, 300);
    bad.push(["CLOSE reason over 256 bytes", closeTooLong]);
    for (const [name, payload] of bad) {
      const pkt = sealPacket({ keyingMaterial: km, from: "client", cid, pn, pnLength: 2, payload });
      assertInert(sim, "server", pkt, "malformed", name);
      assert.equal(sim.server.state, "open", `${name}: the session is not closed by unauthenticated-looking garbage`);
    }
    // Still working: the client's own next packets (one of them numbered pn) go through.
    exchange(sim, 3, 13);
    settle(sim);
    for (const [name, payload] of bad) {
      const pkt = sealPacket({ keyingMaterial: km, from: "client", cid, pn: lastPn(sim.client) + 1, pnLength: 2, payload });
      assertInert(sim, "server", pkt, "malformed", `${name} (again)`);
    }
    pn = lastPn(sim.client) + 1;
    assert.equal(lastPn(sim.client) + 1, pn);
    // The number was never marked: a valid packet with it is accepted. (Last, as it takes the client's next number.)
    const good = sealPacket({ keyingMaterial: km, from: "client", cid, pn, pnLength: 2, payload: PING });
    assert.equal(sim.inject("server", good).result, Received.AcceptedNewest);
  });

  it("a packet of PATH_CHALLENGEs is answered once, with the 8 bytes of the last one", function () {
    const sim = openLossless(17);
    settle(sim);
    const km = sim.pair.keyingMaterial;
    const challenges = Array.from({ length: 6 }, (_, i) => new Prng(100 + i).bytes(8));
    const payload = new Uint8Array(challenges.length * 9);
    challenges.forEach((c, i) => {
      payload[i * 9] = FrameType.PathChallenge;
      payload.set(c, i * 9 + 1);
    });
    const pn = lastPn(sim.client) + 1;
    const replies: Uint8Array[] = [];
    sim.onTransmit = (from, data) => void (from === "server" && replies.push(data.slice()));
    const r = sim.inject("server", sealPacket({ keyingMaterial: km, from: "client", cid: sim.client.cid, pn, pnLength: 2, payload }));
    sim.onTransmit = null;
    assert.equal(r.result, Received.AcceptedNewest);
    assert.ok(r.transmitted >= 1, "answered at once");
    const answered: Uint8Array[] = [];
    for (const pkt of replies) {
      const h: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
      assert.ok(parseHeader(pkt, h));
      const full = decodePacketNumber(lastPn(sim.server) - replies.length + 1, h.truncatedPn, h.pnLength * 8);
      const plain = openWith(km, "server", pkt, full);
      assert.ok(plain, "reply authenticates");
      const ok = walkFrames(plain, {
        onPing: () => {}, onAck: () => {}, onStream: () => {}, onDatagram: () => {}, onClose: () => {},
        onPathChallenge: () => assert.fail("the server does not challenge back"),
        onPathResponse: (d) => void answered.push(d.slice()),
      }, new AckFrame(), { ackEliciting: false });
      assert.ok(ok);
    }
    assert.equal(answered.length, 1, "one response per packet");
    assert.ok(Buffer.from(answered[0]!).equals(Buffer.from(challenges[challenges.length - 1]!)), "to the last challenge");
  });

  it("an authentic ACK for packets never sent closes the session with 1002 (RFC 9000 §13.1)", function () {
    const sim = openLossless(18);
    exchange(sim, 2, 40);
    settle(sim);
    const km = sim.pair.keyingMaterial;
    const ack = new Uint8Array(40);
    ack[0] = FrameType.Ack;
    let o = writeVarint(ack, 1, 1_000_000); // largest, far beyond anything the server sent
    o = writeVarint(ack, o, 0);
    o = writeVarint(ack, o, 0);
    o = writeVarint(ack, o, 1_000_000); // first range down to 0
    const pkt = sealPacket({ keyingMaterial: km, from: "client", cid: sim.client.cid, pn: lastPn(sim.client) + 1, pnLength: 2, payload: ack.subarray(0, o) });
    const before = sim.server.getStats();
    assert.equal(sim.inject("server", pkt).result, Received.AcceptedNewest);
    const after = sim.server.getStats();
    assert.equal(after.packetsLost, before.packetsLost, "nothing was taken as acknowledged or lost");
    assert.equal(after.bytesInFlight, before.bytesInFlight);
    // The client hears why.
    sim.runUntil(() => sim.closeEvent("client") !== null, 10_000);
    assert.equal(sim.closeEvent("server")!.code, 1002);
    assert.match(sim.closeEvent("client")!.reason, /^protocol violation: ACK of packet 1000000, never sent/);
  });

  it("datagrams after close are counted as 'closed'", function () {
    const sim = openLossless(12);
    settle(sim);
    const pkt = hold(sim, "client", () => sim.client.send(new Uint8Array(10)));
    sim.server.close(4000, "done");
    sim.flush();
    assert.equal(sim.server.state, "closed");
    const before = sim.server.dropped.closed;
    assert.equal(sim.server.handleDatagram(pkt, sim.now), Received.Dropped);
    assert.equal(sim.server.handleDatagram(new Uint8Array(5), sim.now), Received.Dropped);
    assert.equal(sim.server.dropped.closed, before + 2);
    assert.equal(sim.server.pollTransmit(sim.now), null);
    assert.equal(sim.server.pollEvent(), null);
  });

  it("control: a session fed all this garbage transmits byte-for-byte what an untouched twin transmits", function () {
    const transcript = (garbage: boolean) => {
      const sim = openLossless(13);
      const rng = new Prng(1313);
      const km = sim.pair.keyingMaterial;
      const wrong = makePair({ seed: 77, cid: sim.client.cid });
      const wrongBind = wrong.client.pollTransmit(wrong.now)!;
      const battery = (to: Side, fresh: Uint8Array | null) => {
        const from = other(to);
        const list: Uint8Array[] = [new Uint8Array(0), rng.bytes(26), rng.bytes(1201), rng.bytes(700), wrongBind];
        // Replays of packets that already arrived (a copy of one still in flight would be genuine and fresh).
        for (const rec of sim.delivered.slice(-30)) if (rec.from === from) list.push(rec.data);
        if (fresh) {
          for (let bit = 0; bit < fresh.length * 8; bit += 7) {
            const b = fresh.slice();
            b[bit >>> 3]! ^= 0x80 >>> (bit & 7);
            list.push(b);
          }
          list.push(fresh.slice(0, fresh.length - 1));
        }
        if (fresh) {
          const otherCid = fresh.slice();
          otherCid[3]! ^= 0x10;
          list.push(otherCid);
        }
        const pn = lastPn(sim.conn(from)) + 1;
        list.push(sealPacket({ keyingMaterial: km, from, cid: sim.client.cid, pn, pnLength: 2, payload: Uint8Array.of(0x09) }));
        for (const [i, b] of list.entries()) {
          if (garbage) assertInert(sim, to, b, undefined, `battery to ${to}, item ${i} of ${list.length}`);
          else sim.flush(); // the same polling, without the input
        }
      };
      exchange(sim, 5, 20);
      settle(sim); // nothing in flight: every replay below is of a packet that already arrived
      const held = hold(sim, "client", () => sim.client.send(rng.bytes(500)));
      battery("server", held);
      assert.equal(sim.inject("server", held).result, Received.AcceptedNewest);
      // Mid-transfer, with data in flight both ways.
      sim.client.send(rng.bytes(100_000));
      sim.server.send(rng.bytes(100_000));
      sim.runFor(150);
      battery("server", null);
      battery("client", null);
      sim.runUntil(() => sim.messages("server").length === 7 && sim.messages("client").length === 6, 60_000);
      exchange(sim, 5, 21);
      settle(sim);
      const { dropped: _d1, ...clientStats } = sim.client.getStats();
      const { dropped: _d2, ...serverStats } = sim.server.getStats();
      return { sim, clientStats, serverStats };
    };
    const dirty = transcript(true);
    const clean = transcript(false);
    assert.equal(dirty.sim.sent.length, clean.sim.sent.length, "same number of datagrams");
    dirty.sim.sent.forEach((r, i) => {
      const c = clean.sim.sent[i]!;
      assert.equal(r.from, c.from);
      assert.equal(r.time, c.time, `datagram ${i} time`);
      assert.ok(Buffer.from(r.data).equals(Buffer.from(c.data)), `datagram ${i} differs`);
    });
    assert.deepEqual(dirty.sim.events, clean.sim.events);
    assert.deepEqual(dirty.clientStats, clean.clientStats);
    assert.deepEqual(dirty.serverStats, clean.serverStats);
    const d = dirty.sim.server.dropped;
    assert.ok(d.malformed > 0 && d.unknownCid > 0 && d.replay > 0 && d.decrypt > 0, JSON.stringify(d));
    assert.ok(dirty.sim.client.dropped.replay > 0 && dirty.sim.client.dropped.malformed > 0, JSON.stringify(dirty.sim.client.dropped));
    assert.deepEqual(clean.sim.server.dropped, { malformed: 0, unknownCid: 0, replay: 0, decrypt: 0, closed: 0 });
  });

  it("garbage to a server that is still binding neither opens it nor makes it send", function () {
    const pair = makePair({ seed: 14 });
    const rng = new Prng(14);
    const bind = pair.client.pollTransmit(pair.now)!;
    for (let i = 0; i < 200; i++) {
      const bad = bind.slice();
      bad[rng.int(bad.length)]! ^= 1 << rng.int(8);
      assert.equal(pair.server.handleDatagram(bad, pair.now + i), Received.Dropped);
      assert.equal(pair.server.handleDatagram(rng.bytes(rng.range(0, 1300)), pair.now + i), Received.Dropped);
      assert.equal(pair.server.pollTransmit(pair.now + i), null);
      assert.equal(pair.server.pollEvent(), null);
    }
    assert.equal(pair.server.state, "binding");
    assert.equal(pair.server.handleDatagram(bind, pair.now + 300), Received.AcceptedNewest);
    assert.deepEqual(pair.server.pollEvent(), { type: "open" });
  });
});

describe("receive path: handleDatagram never throws (property)", function () {
  this.timeout(30_000);

  it("for arbitrary byte arrays, each dropped one counted exactly once, nothing sent or raised", function () {
    const sim = openLossless(15, false);
    settle(sim);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1400 }), fc.boolean(), (buf, toClient) => {
        const to: Side = toClient ? "client" : "server";
        const before = { ...sim.conn(to).dropped };
        const r = sim.inject(to, buf);
        assert.equal(r.result, Received.Dropped);
        assert.equal(r.transmitted + r.events, 0);
        const after = sim.conn(to).dropped;
        assert.equal(CAUSES.reduce((n, c) => n + after[c] - before[c], 0), 1);
      }),
      { seed: FC_SEED, numRuns: 500 },
    );
    exchange(sim, 2, 30);
  });

  it("for mutations of real packets (flips, overwrites, truncation, extension, splices): dropped unless identical to a fresh packet", function () {
    const sim = openLossless(16, false);
    settle(sim);
    // Fresh genuine packets the server has not seen yet, of several sizes, held back from the network.
    const fresh: Uint8Array[] = [];
    sim.onTransmit = (from, data) => {
      if (from === "client") {
        fresh.push(data.slice());
        return "drop";
      }
    };
    sim.client.send(new Prng(1).bytes(5000));
    sim.flush();
    sim.onTransmit = null;
    assert.ok(fresh.length >= 4);
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant("set" as const), pos: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant("truncate" as const), pos: fc.nat() }),
      fc.record({ kind: fc.constant("extend" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 80 }) }),
      fc.record({ kind: fc.constant("splice" as const), pos: fc.nat(), from: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
    );
    let accepted = 0;
    fc.assert(
      fc.property(fc.nat({ max: fresh.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (which, muts) => {
        let b = fresh[which]!.slice();
        for (const m of muts) {
          if (m.kind === "flip" && b.length > 0) b[m.pos % b.length]! ^= 1 << m.bit;
          else if (m.kind === "set" && b.length > 0) b[m.pos % b.length] = m.value;
          else if (m.kind === "truncate") b = b.slice(0, m.pos % (b.length + 1));
          else if (m.kind === "extend") b = Uint8Array.from([...b, ...m.bytes]);
          else if (m.kind === "splice" && b.length > 0) {
            const src = fresh[m.from % fresh.length]!;
            const at = m.pos % b.length;
            const start = m.from % src.length;
            b.set(src.subarray(start, Math.min(src.length, start + m.len)).subarray(0, b.length - at), at);
          }
        }
        const r = sim.inject("server", b);
        if (r.result !== Received.Dropped) {
          accepted++;
          assert.ok(fresh.some((f) => Buffer.from(b).equals(Buffer.from(f))), "only an unmodified genuine packet may be accepted");
        } else {
          assert.equal(r.transmitted + r.events, 0);
        }
      }),
      { seed: FC_SEED, numRuns: 600 },
    );
    assert.ok(accepted <= fresh.length, "each genuine packet is accepted at most once");
    // The held packets that were not accepted are recovered by retransmission: the 5000-byte message arrives.
    sim.runUntil(() => sim.messages("server").length === 1, 30_000);
    assert.equal(sim.messages("server")[0]!.length, 5000);
    settle(sim);
    exchange(sim, 2, 31);
  });
});

