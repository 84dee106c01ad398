/**
 * What the handshake hands the sans-IO core (docs/protocol.md §2.3, §2.4, §3.1): the peer's
 * maxAckDelayMs in the probe timeout, the server's first RTT estimate from ServerAccept→Bind, and the
 * server's 40-byte floor for client packets. Two Connections driven by hand, no sockets.
 */
import assert from "node:assert/strict";
import { Connection, type ConnectionConfig } from "../src/protocol/connection.js";
import type { TransportParams } from "../src/protocol/options.js";
import { CID_LENGTH } from "../src/protocol/version.js";
import { cidPair, seal } from "./support/cid-pair.js";
import { Prng, fastBackend } from "./support/sim-network.js";

const PARAMS: TransportParams = { maxMessageSize: 512 * 1024, receiveBufferBytes: 1024 * 1024, idleTimeoutMs: 10_000 };

interface Pair {
  client: Connection;
  server: Connection;
  now: number;
}

/** A client and a server with the same keys; `extra` goes into each side's config. Not yet bound. */
function pair(seed: number, extra: { client?: Partial<ConnectionConfig>; server?: Partial<ConnectionConfig> } = {}): Pair {
  const rng = new Prng(seed);
  const cid = rng.bytes(CID_LENGTH);
  cid[0] = CID_LENGTH - 1;
  const keyingMaterial = rng.bytes(64);
  const now = 1_000_000;
  const common = { cid, keyingMaterial, aead: fastBackend(), now, peerParams: PARAMS };
  const cr = rng.fork();
  const sr = rng.fork();
  const client = new Connection({ ...common, role: "client", random: (o) => void cr.fill(o), initialRttMs: 10, ...extra.client });
  const server = new Connection({ ...common, role: "server", random: (o) => void sr.fill(o), ...extra.server });
  return { client, server, now };
}

/** Delivers the client's Bind to the server at `at` and the server's answer back at once. */
function bind(p: Pair, at: number): void {
  const b = p.client.pollTransmit(p.now)!;
  p.now = at;
  assert.equal(p.server.handleDatagram(b, p.now) > 0, true, "the bind is accepted");
  for (let d = p.server.pollTransmit(p.now); d !== null; d = p.server.pollTransmit(p.now)) p.client.handleDatagram(d, p.now);
  assert.equal(p.client.state, "open");
}

/** How long after sending one reliable message, with nothing answered, the client's next timer fires. */
function firstProbeDelay(p: Pair): number {
  p.client.send(new Uint8Array([1, 2, 3]));
  for (let d = p.client.pollTransmit(p.now); d !== null; d = p.client.pollTransmit(p.now)) {
    /* sent and lost */
  }
  const at = p.client.pollTimeout();
  assert.notEqual(at, null);
  return at! - p.now;
}

describe("handshake parameters in the core", () => {
  it("the probe timeout adds the peer's announced maxAckDelayMs, not our own", () => {
    const withAckDelay = (ms: number | undefined): number => {
      const p = pair(7, { client: { peerParams: ms === undefined ? PARAMS : { ...PARAMS, maxAckDelayMs: ms } } });
      bind(p, p.now + 1);
      return firstProbeDelay(p);
    };
    const slow = withAckDelay(100);
    const fast = withAckDelay(1);
    const older = withAckDelay(undefined);
    // Same RTT state on all three: only the peer's ACK delay differs.
    assert.equal(Math.round(slow - fast), 99, `PTO ${slow} ms with a 100 ms peer ACK delay vs ${fast} ms with 1 ms`);
    assert.equal(Math.round(older - fast), 24, "a peer that announced nothing is taken to delay up to 25 ms");
  });

  it("the server's first RTT estimate is the time from its ServerAccept to the Bind, capped at the default", () => {
    const start = 1_000_000;
    const measured = pair(3, { server: { acceptedAt: start - 12 } });
    bind(measured, start);
    assert.equal(measured.server.getStats().rtt.smoothedMs, 12);

    const dawdler = pair(3, { server: { acceptedAt: start - 5000 } });
    bind(dawdler, start);
    assert.equal(dawdler.server.getStats().rtt.smoothedMs, 333, "a late Bind never raises the estimate above 333 ms");

    const none = pair(3);
    bind(none, start);
    assert.equal(none.server.getStats().rtt.smoothedMs, 333, "without the handshake time: the default");
  });

  it("the 40-byte floor binds client senders only: a server takes an authentic 34-byte client packet", () => {
    const p = cidPair(11);
    const short = seal(p, "client", p.cid, 50, Uint8Array.of(0x01)); // PING: 17 + 1 + 16 = 34 bytes
    assert.equal(short.length, 34);
    assert.notEqual(p.server.handleDatagram(short, p.now), 0, "accepted");
    assert.deepEqual(p.server.getStats().dropped, { ...p.server.getStats().dropped, malformed: 0, decrypt: 0 });
  });
});
