import assert from "node:assert/strict";
import { DRAIN_PROBE_ROUNDS } from "../src/protocol/closing.js";
import { AckFrame, FrameType, walkFrames } from "../src/protocol/frames.js";
import { PacketCipher, splitExportedSecrets } from "../src/protocol/key-schedule.js";
import { DEFAULT_SESSION_OPTIONS, transportParams, type SessionOptions } from "../src/protocol/options.js";
import { PacketType, parseHeader, type ParsedHeader } from "../src/protocol/packet-header.js";
import { decodePacketNumber } from "../src/protocol/packet-number.js";
import { Connection } from "../src/protocol/connection.js";
import { SimNetwork, fastBackend, makePair, other, type LinkProfile, type Pair, type Side } from "./support/sim-network.js";
import { sweep } from "./support/sim-seeds.js";

/**
 * The IMMEDIATE_ACK frame of a draining close (docs/protocol.md §4, §5): who sends it and when, what
 * it buys (the CLOSE a round trip after the last data instead of after the peer's ACK delay), that a
 * peer which did not announce it never gets it, and that the drain delivers everything under loss
 * yet stays bounded when the peer is gone. Deterministic simulations of the sans-IO core.
 */

/** What one recorded datagram held. */
interface Seen {
  time: number;
  from: Side;
  types: number[];
  ackEliciting: boolean;
}

/** Opens every recorded datagram of a simulation with the pair's keys (no key updates in these tests). */
function openRecorded(sim: SimNetwork, pair: Pair): Seen[] {
  const secrets = splitExportedSecrets(pair.keyingMaterial);
  const aead = fastBackend();
  const openers = { client: new PacketCipher(aead, secrets.clientToServer), server: new PacketCipher(aead, secrets.serverToClient) };
  const largest = { client: -1, server: -1 };
  const h: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  const out: Seen[] = [];
  for (const r of sim.sent) {
    assert.ok(parseHeader(r.data, h), "a recorded datagram parses");
    const pn = decodePacketNumber(largest[r.from], h.truncatedPn, h.pnLength * 8);
    const payload = openers[r.from].open(pn, r.data.subarray(0, h.headerLength), r.data.subarray(h.headerLength));
    assert.ok(payload, `packet ${pn} from the ${r.from} opens`);
    largest[r.from] = Math.max(largest[r.from], pn);
    const types: number[] = [];
    const note = (t: number) => (): void => void types.push(t);
    const flags = { ackEliciting: false };
    assert.ok(
      walkFrames(
        payload,
        {
          onPing: note(FrameType.Ping),
          onAck: note(FrameType.Ack),
          onStream: note(FrameType.Stream),
          onDatagram: note(FrameType.Datagram),
          onClose: note(FrameType.Close),
          onPathChallenge: note(FrameType.PathChallenge),
          onPathResponse: note(FrameType.PathResponse),
          onNewConnectionId: note(FrameType.NewConnectionId),
          onRetireConnectionId: note(FrameType.RetireConnectionId),
          onImmediateAck: note(FrameType.ImmediateAck),
        },
        new AckFrame(),
        flags,
      ),
    );
    out.push({ time: r.time, from: r.from, types, ackEliciting: flags.ackEliciting });
  }
  return out;
}

interface Setup {
  seed: number;
  link: LinkProfile;
  /** The peer of `closer` announced no immediateAck (an implementation that predates the frame). */
  legacyPeer?: boolean;
  closer: Side;
  options?: Partial<SessionOptions>;
}

function open(s: Setup): { sim: SimNetwork; pair: Pair } {
  // A peer that predates IMMEDIATE_ACK also predates the maxAckDelayMs parameter: it delays ACKs by 25 ms.
  const options = s.legacyPeer ? { maxAckDelayMs: 25, ...s.options } : s.options;
  const pair = makePair({ seed: s.seed, ...(options ? { options } : {}) });
  if (s.legacyPeer) {
    // What the closer was told by a peer whose handshake params lack both fields.
    const { immediateAck: _, maxAckDelayMs: __, ...legacy } = transportParams(pair[s.closer].options);
    const rebuilt = new Connection({
      role: s.closer,
      cid: pair.cid,
      keyingMaterial: pair.keyingMaterial,
      aead: fastBackend(),
      now: pair.now,
      random: () => {},
      ...(options ? { options } : {}),
      peerParams: legacy,
    });
    pair[s.closer] = rebuilt;
  }
  const sim = new SimNetwork(pair, { seed: s.seed, link: s.link, record: true });
  sim.runUntil(() => sim.bothOpen(), 30_000);
  return { sim, pair };
}

describe("close: IMMEDIATE_ACK while draining", function () {
  this.timeout(60_000);

  for (const closer of ["client", "server"] as const) {
    it(`${closer} close right after a send: CLOSE reaches the peer a round trip after the data, not after the 25 ms ACK delay; a legacy peer gets no frame and the old timing`, function () {
      sweep(this, [11], (seed) => {
        for (const legacyPeer of [false, true]) {
          const { sim, pair } = open({ seed, link: { delayMs: 10 }, closer, legacyPeer });
          sim.runFor(2_000); // settled: spare CIDs acknowledged, nothing owed
          const peer = other(closer);
          const recordedBefore = sim.sent.length;
          sim.conn(closer).send(Uint8Array.of(7, 7, 7));
          const t0 = sim.now;
          sim.conn(closer).close(4000, "bye");
          sim.runUntil(() => sim.conn(peer).state === "closed" && sim.conn(closer).state === "closed", 10_000);
          assert.deepEqual([...sim.messages(peer).at(-1)!], [7, 7, 7]);
          const peerClose = sim.closeEvent(peer)!;
          assert.deepEqual([peerClose.code, peerClose.reason, peerClose.remote], [4000, "bye", true]);
          const took = peerClose.time - t0;
          const seen = openRecorded(sim, pair);
          const drainPackets = seen.slice(recordedBefore).filter((p) => p.from === closer && !p.types.includes(FrameType.Close) && p.ackEliciting);
          assert.ok(drainPackets.length >= 1);
          if (legacyPeer) {
            // data 10 ms, the peer's delayed ACK 25 ms + 10 ms, CLOSE 10 ms
            assert.ok(took >= 55, `${took} ms`);
            assert.ok(seen.every((p) => !p.types.includes(FrameType.ImmediateAck)), "a peer that did not announce it never receives IMMEDIATE_ACK");
          } else {
            // data 10 ms, ACK 10 ms, CLOSE 10 ms (timers fire on whole milliseconds)
            assert.ok(took >= 30 && took <= 31, `${took} ms`);
            for (const p of drainPackets) assert.equal(p.types[0], FrameType.ImmediateAck, "every packet of the drain starts with IMMEDIATE_ACK");
            assert.ok(seen.slice(0, recordedBefore).every((p) => !p.types.includes(FrameType.ImmediateAck)), "no IMMEDIATE_ACK before the close");
          }
        }
      });
    });
  }

  it("close() with all data already in flight sends an IMMEDIATE_ACK on its own at once", function () {
    sweep(this, [12], (seed) => {
      const { sim, pair } = open({ seed, link: { delayMs: 10 }, closer: "client" });
      sim.runFor(2_000);
      sim.client.send(new Uint8Array(100).fill(1));
      sim.flush(); // the STREAM packet leaves, without the frame: no close yet
      sim.runFor(3);
      const before = sim.sent.length;
      const t0 = sim.now;
      sim.client.close(4000, "bye");
      sim.flush();
      const seen = openRecorded(sim, pair);
      const next = seen.slice(before).filter((p) => p.from === "client");
      assert.equal(next.length, 1, "one packet at close()");
      assert.equal(next[0]!.time, t0);
      assert.deepEqual(next[0]!.types.filter((t) => t !== FrameType.Padding && t !== FrameType.Ack), [FrameType.ImmediateAck]);
      sim.runUntil(() => sim.server.state === "closed", 10_000);
      // The STREAM packet's ACK was due at t0 - 3 + 10 + 25; the IMMEDIATE_ACK draws one at t0 + 10.
      assert.ok(sim.closeEvent("server")!.time - t0 <= 31, `${sim.closeEvent("server")!.time - t0} ms`);
    });
  });

  it("without a close, only probes carry IMMEDIATE_ACK: keep-alives and data keep the ACK delay (5% loss)", function () {
    sweep(this, [13], (seed) => {
      const { sim, pair } = open({ seed, link: { delayMs: 15, jitterMs: 5, loss: 0.05 }, closer: "client" });
      // Probe timeouts of the bind (a lost Bind is resent as a Bind, never with IMMEDIATE_ACK) do not count.
      const bindTimeouts = { client: sim.client.getStats().probeTimeouts, server: sim.server.getStats().probeTimeouts };
      for (let i = 0; i < 40; i++) sim.after(i * 150, () => sim.conn(i % 2 ? "client" : "server").send(new Uint8Array(200 + i * 50)));
      sim.runFor(12_000); // traffic, then keep-alives
      const seen = openRecorded(sim, pair);
      const keepAlives = seen.filter((p) => p.types.length === 1 && p.types[0] === FrameType.Ping);
      assert.ok(keepAlives.length > 0, "keep-alive PINGs were sent");
      let asked = 0;
      let probeTimeouts = 0;
      for (const side of ["client", "server"] as const) {
        const immediate = seen.filter((p) => p.from === side && p.types.includes(FrameType.ImmediateAck));
        asked += immediate.length;
        // A probe timeout sends at most two probes; nothing else asks for an immediate ACK.
        const probes = sim.conn(side).getStats().probeTimeouts - bindTimeouts[side];
        probeTimeouts += probes;
        assert.ok(immediate.length <= 2 * probes, `${side}: ${immediate.length} packets asked for an immediate ACK after ${probes} probe timeouts`);
        for (const p of immediate) assert.ok(p.ackEliciting && !(p.types.length === 1 && p.types[0] === FrameType.Ping));
      }
      assert.equal(asked > 0, probeTimeouts > 0, `${asked} packets asked for an immediate ACK, ${probeTimeouts} probe timeouts`);
      assert.equal(sim.messages("client").length + sim.messages("server").length, 40);
    });
  });

  // At 30% loss a long drain goes through dozens of probe timeouts, and three unanswered rounds in a
  // row (1.8% each time) end it: that case sends less (docs/protocol.md §4 states the rule).
  const lossCases: [number, number[]][] = [
    [0.15, [10, 3000, 40_000, 7, 120_000, 1]],
    [0.3, [10, 3000, 10_000, 7, 1]],
  ];
  for (const [loss, sizes] of lossCases) {
    it(`messages sent before a close are all delivered before it at ${loss * 100}% loss, both ways (24 seeds, ${sizes.reduce((a, b) => a + b, 0)} bytes)`, function () {
      sweep(this, 951, 24, (seed) => {
        const closer: Side = seed % 2 ? "client" : "server";
        const { sim } = open({ seed, link: { loss, delayMs: 20, jitterMs: 10 }, closer });
        sizes.forEach((n, i) => sim.conn(closer).send(new Uint8Array(n).fill(i + 1)));
        sim.conn(closer).close(4000, "bye");
        sim.runUntil(() => sim.client.state === "closed" && sim.server.state === "closed", 60_000);
        const got = sim.messages(other(closer));
        assert.deepEqual(got.map((m) => m.length), sizes, `seed ${seed}: every message before the close`);
        assert.deepEqual(got.map((m) => m[0]), sizes.map((_, i) => i + 1), `seed ${seed}: in order`);
        const peer = sim.closeEvent(other(closer))!;
        // All five CLOSE packets can be lost (0.24% at 30% loss): then the peer times out, data delivered.
        if (peer.remote) assert.deepEqual([peer.code, peer.reason], [4000, "bye"], `seed ${seed}`);
        else assert.deepEqual([peer.code, peer.reason], [1006, "idle timeout"], `seed ${seed}`);
        assert.deepEqual([sim.closeEvent(closer)!.code, sim.closeEvent(closer)!.remote], [4000, false]);
      });
    });
  }

  for (const delayMs of [5, 60, 400]) {
    it(`a drain towards a peer that vanished ends within 2 s, with a bounded number of probes (one-way delay ${delayMs} ms)`, function () {
      sweep(this, 1201, 4, (seed) => {
        const closer: Side = seed % 2 ? "client" : "server";
        const { sim, pair } = open({ seed, link: { delayMs }, closer });
        sim.runFor(1_000);
        sim.cut("both");
        sim.conn(closer).send(new Uint8Array(30_000));
        const t0 = sim.now;
        const before = sim.sent.length;
        sim.conn(closer).close(4000, "bye");
        sim.runUntil(() => sim.conn(closer).state === "closed", 10_000);
        const ev = sim.closeEvent(closer)!;
        assert.deepEqual([ev.code, ev.remote], [4000, false], `seed ${seed}`);
        assert.ok(ev.time - t0 <= 2_000 + 1, `seed ${seed}: the drain took ${ev.time - t0} ms`);
        const drain = openRecorded(sim, pair).slice(before).filter((p) => p.from === closer);
        // The first flight (the 12,000-byte initial window, paced: 10 or 11 packets), DRAIN_PROBE_ROUNDS
        // rounds of two probes, then the CLOSEs.
        const closes = DEFAULT_SESSION_OPTIONS.closePackets;
        assert.ok(drain.length <= 11 + DRAIN_PROBE_ROUNDS * 2 + closes, `seed ${seed}: ${drain.length} packets while draining`);
        assert.equal(drain.filter((p) => p.types.includes(FrameType.Close)).length, closes);
        assert.ok(drain.every((p) => p.types.includes(FrameType.Close) || p.types[0] === FrameType.ImmediateAck), `seed ${seed}`);
      });
    });
  }
});
