/**
 * Stateless reset over real loopback UDP (RFC 9000 §10.3): a server restarted with the same
 * `statelessResetKey` on the same UDP port answers a lost session's packets with a reset, and the client
 * closes at once instead of waiting for its idle timeout. Also: resets are always shorter than their
 * trigger, short triggers and CIDs whose tag does not verify get none, the rate limit holds; and under Colyseus the SDK
 * room drops quickly and its reconnection then fails promptly.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { Room, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import { generateDevCertificate, type FastnetServer } from "../src/index.js";
import { CidAuthority, deriveCidKey } from "../src/protocol/cid.js";
import { MIN_RESET_LENGTH } from "../src/protocol/stateless-reset.js";
import { CID_LENGTH } from "../src/protocol/version.js";
import { joinRoom, recordSignals, startColyseus, transportOf } from "./support/migration-colyseus.js";
import {
  Cleanup,
  RawUdp,
  lo,
  openSession,
  seqMessage,
  settle,
  startServer,
  tapClientSends,
  tapServerSends,
  waitFor,
  within,
} from "./support/migration-net.js";

/** A datagram shaped like a Data packet for `cid`. */
function trigger(length: number, cid: Uint8Array): Buffer {
  const d = randomBytes(Math.max(length, 1 + cid.length));
  d[0] = 0x40; // Data, key phase 0, 1-byte packet number
  d.set(cid, 1);
  return d.subarray(0, length);
}

/** A CID that a server with `statelessResetKey: key` (and no server id) issued: its tag verifies. */
function ourCid(key: string): Uint8Array {
  return new CidAuthority(deriveCidKey(new TextEncoder().encode(key))).generate((o) => void o.set(randomBytes(o.length)));
}

/** Closes `server` without a word to its clients: every datagram it would send (the CLOSE packets) is dropped. */
async function dieSilently(server: FastnetServer): Promise<void> {
  tapServerSends(server, () => "drop");
  await server.close();
}

describe("stateless reset over loopback UDP", function () {
  this.timeout(30_000);
  const c = new Cleanup();
  afterEach(() => c.run());

  it("after a server restart (same key, same UDP port) the client's next packet gets a reset: 1006 within milliseconds", async () => {
    const key = `reset key ${randomBytes(6).toString("hex")}`;
    const first = await startServer(c, { statelessResetKey: key });
    const { client, peer } = await openSession(c, first); // idle timeout: the default 10 s
    const got = once(peer, "message");
    client.send(seqMessage(0));
    await within(got, 3000, "a message before the restart");
    await dieSilently(first);
    assert.equal(client.readyState, 1, "the client does not know");

    const second = await startServer(c, { statelessResetKey: key, udpPort: first.udpPort });
    assert.equal(second.udpPort, first.udpPort);
    const incoming: Buffer[] = [];
    client.socket!.on("message", (m) => void incoming.push(m));
    const outgoing: Buffer[] = [];
    tapClientSends(client, (d) => void outgoing.push(Buffer.from(d)));
    const closed = once(client, "close") as Promise<[number, string, boolean]>;
    const t0 = performance.now();
    client.send(seqMessage(1, 100));
    const [code, reason, remote] = await within(closed, 3000, "the client's close");
    const elapsed = performance.now() - t0;
    assert.equal(code, 1006);
    assert.match(reason, /stateless reset/);
    assert.equal(remote, true);
    // At once (a round trip), not by the 10 s idle timeout; the margin holds on a loaded machine.
    assert.ok(elapsed < 2000, `closed ${elapsed.toFixed(1)} ms after sending (idle timeout is 10 s)`);
    assert.equal(client.getStats().statelessResets, 1);
    assert.equal(client.readyState, 3);
    assert.ok(second.stats.statelessResetsSent >= 1);
    assert.equal(second.stats.statelessResetsLimited, 0);
    assert.ok(second.stats.unknownCid >= 1);
    // The reset: shorter than what triggered it, the CID at offset 1, the token the client was given last.
    assert.ok(incoming.length >= 1);
    const reset = incoming[incoming.length - 1]!;
    const smallestTrigger = Math.min(...outgoing.map((d) => d.length));
    assert.ok(reset.length < smallestTrigger, `reset of ${reset.length} bytes for triggers of ${smallestTrigger}+ bytes`);
    assert.ok(reset.subarray(1, 1 + CID_LENGTH).equals(Buffer.from(client.connection.cid)));
    assert.ok(reset.subarray(reset.length - 16).equals(Buffer.from(client.resetToken)));
    if (process.env.FASTNET_TEST_VERBOSE) console.log(`      reset closed the client ${elapsed.toFixed(2)} ms after its send; reset ${reset.length} bytes`);
  });

  it("a restarted server with another key does not answer at all (the CID's tag fails under its key): the client times out", async () => {
    const first = await startServer(c, { statelessResetKey: "key one" });
    const { client } = await openSession(c, first, { idleTimeoutMs: 800, keepAliveMs: 200 });
    await dieSilently(first);
    const second = await startServer(c, { statelessResetKey: "key two", udpPort: first.udpPort });
    const closed = once(client, "close") as Promise<[number, string, boolean]>;
    client.send(seqMessage(1, 100));
    await waitFor(() => second.stats.unknownCid >= 1, 3000, "the new server sees the client's packets");
    const [code, reason] = await within(closed, 3000, "the idle timeout");
    assert.equal(code, 1006);
    assert.match(reason, /idle timeout/);
    assert.equal(second.stats.statelessResetsSent, 0);
    assert.equal(second.stats.statelessResetsLimited, 0);
    assert.equal(client.getStats().statelessResets, 0);
  });

  it("resets are strictly shorter than their trigger (at most 64 bytes); too short a trigger, a foreign CID or an oversized datagram get none", async () => {
    const server = await startServer(c, { statelessResetKey: "sizes" });
    const raw = await RawUdp.bind(c, lo(10));
    const cid = ourCid("sizes");
    // Too short (31 bytes: a reset could not be shorter and still look like a packet), then answered sizes.
    const m = MIN_RESET_LENGTH;
    const sizes = [m, m + 1, m + 2, m + 3, m + 4, 43, 64, 65, 66, 200, 1200];
    const answered = sizes.filter((s) => s > m);
    for (const s of sizes) await raw.send(trigger(s, cid), server.udpPort);
    await waitFor(() => raw.received.length === answered.length, 3000, "a reset per long enough trigger", () => `${raw.received.length}`);
    raw.received.forEach((r, i) => {
      const s = answered[i]!;
      assert.equal(r.length, Math.min(s - 1, 64), `reset for a ${s}-byte trigger`);
      assert.ok(r.subarray(1, 1 + CID_LENGTH).equals(Buffer.from(cid)), "the reset carries the trigger's CID");
      assert.equal(r[0]! & 0xdc, 0x40, "shaped like a Data packet");
    });
    const tokens = new Set(raw.received.map((r) => r.subarray(r.length - 16).toString("hex")));
    assert.equal(tokens.size, 1, "one CID, one token");
    // Another CID gets another token.
    await raw.send(trigger(100, ourCid("sizes")), server.udpPort);
    // Not answered: a CID this server did not issue (wrong config octet, wrong tag, another key's tag),
    // and datagrams outside the packet sizes.
    const foreign = trigger(100, ourCid("sizes"));
    foreign[1] = 0x00;
    await raw.send(foreign, server.udpPort);
    const badTag = trigger(100, ourCid("sizes"));
    badTag[CID_LENGTH]! ^= 0x01;
    await raw.send(badTag, server.udpPort);
    await raw.send(trigger(100, ourCid("another key")), server.udpPort);
    await raw.send(trigger(1201, cid), server.udpPort);
    await raw.send(trigger(10, cid), server.udpPort);
    await raw.send(trigger(200, cid), server.udpPort); // a marker: answered, so everything before was handled
    await waitFor(() => raw.received.length === answered.length + 2, 3000, "the last resets");
    await settle();
    assert.equal(raw.received.length, answered.length + 2);
    const other = raw.received[answered.length]!;
    assert.equal(tokens.has(other.subarray(other.length - 16).toString("hex")), false);
    assert.equal(server.stats.statelessResetsSent, answered.length + 2);
    assert.equal(server.stats.malformed, 2);
    assert.ok(raw.bytesReceived < raw.bytesSent, "resets never amplify");
  });

  it("statelessResetsPerSecond 2: a burst of triggers gets 2 resets, the rest are counted as limited", async () => {
    const server = await startServer(c, { statelessResetKey: "rate", statelessResetsPerSecond: 2 });
    const raw = await RawUdp.bind(c, lo(11));
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) await raw.send(trigger(100, ourCid("rate")), server.udpPort);
    await waitFor(() => server.stats.unknownCid === 10, 3000, "every trigger handled");
    const elapsed = performance.now() - t0;
    await settle();
    const sent = server.stats.statelessResetsSent;
    // The bucket holds 2 and refills at 2 per second: a burst this short earns at most one more.
    assert.ok(sent >= 2 && sent <= 2 + Math.floor((elapsed * 2) / 1000), `${sent} resets in ${elapsed.toFixed(0)} ms`);
    assert.equal(server.stats.statelessResetsLimited, 10 - sent);
    assert.equal(raw.received.length, sent);
  });
});

describe("server close versus a silent death", function () {
  this.timeout(30_000);
  const c = new Cleanup();
  afterEach(() => c.run());

  it("a closing server still tells a client whose data is unacknowledged (CLOSE 1001 after the drain), unlike a silent death", async () => {
    const server = await startServer(c);
    const { client, peer } = await openSession(c, server);
    const hello = once(client, "message");
    peer.send(seqMessage(0));
    await within(hello, 3000, "a first message");
    await waitFor(() => peer.getStats().bytesInFlight === 0, 3000, "the client's ACK (validates its address)");
    const closed = once(client, "close") as Promise<[number, string, boolean]>;
    // A slow path: the client's ACKs do not come back before close() returns, so the session drains.
    const untap = tapClientSends(client, () => "drop");
    peer.send(seqMessage(1, 50_000));
    await within(server.close(), 5000, "server.close()");
    untap();
    const [code, , remote] = await within(closed, 3000, "the client's close (idle timeout is 10 s)");
    assert.equal(code, 1001);
    assert.equal(remote, true);
  });
});

// ------------------------------------------------------------------------------------------------ Colyseus

const ResetTestState = schema({ n: t.number() }, "ResetTestState");
const joins: string[] = [];

class ResetRoom extends Room {
  override state = new ResetTestState();
  override onCreate(): void {
    this.state.n = 0;
    this.onMessage("bump", () => void this.state.n++);
  }
  override onJoin(client: Client): void {
    joins.push(client.sessionId);
  }
  override async onDrop(client: Client): Promise<void> {
    await this.allowReconnection(client, 20);
  }
}

describe("stateless reset under Colyseus: a server restart", function () {
  this.timeout(30_000);
  const c = new Cleanup();
  afterEach(() => c.run());

  it("after a restart with the same statelessResetKey on the same ports the SDK room drops at once, then its reconnection fails promptly", async () => {
    const key = `colyseus reset ${randomBytes(6).toString("hex")}`;
    joins.length = 0;
    // A restarted process keeps its certificate (and the client its pin): the reconnection's handshake
    // succeeds, and it is the room lookup that fails.
    const dev = await generateDevCertificate();
    const tls = { cert: dev.cert, key: dev.key };
    const first = await startColyseus(c, { reset: ResetRoom }, { statelessResetKey: key, tls });
    const room = await joinRoom(c, first.endpoint, "reset", { localAddress: lo(2), fingerprint: dev.fingerprint });
    room.reconnection.minUptime = 0; // reconnect even though the room was joined a moment ago
    room.reconnection.maxDelay = 300;
    const signals = recordSignals(room);
    room.send("bump");
    await waitFor(() => room.state?.n === 1, 5000, "a state patch before the restart");
    const session = transportOf(room).session!;

    // The old process dies without telling anyone: whatever it sends from now on (CLOSE included) is dropped.
    tapServerSends(first.transport.engine, () => "drop");
    await first.stop();
    assert.equal(session.readyState, 1, "the client does not know");
    assert.equal(signals.drop.length, 0);

    const second = await startColyseus(c, { reset: ResetRoom }, { statelessResetKey: key, tls }, first.port);
    assert.equal(second.port, first.port);
    assert.equal(second.transport.engine.udpPort, first.transport.engine.udpPort);
    const t0 = performance.now();
    room.send("bump"); // the next packet reaches the new process, which knows no such session
    await waitFor(() => signals.drop.length === 1, 2000, "the SDK's onDrop");
    const dropAfter = signals.drop[0]!.at - t0;
    assert.equal(signals.drop[0]!.code, 1006);
    assert.match(signals.drop[0]!.reason ?? "", /stateless reset/);
    assert.equal(session.getStats().statelessResets, 1);
    assert.ok(dropAfter < 500, `onDrop ${dropAfter.toFixed(1)} ms after the send (idle timeout is 10 s)`);
    assert.ok(second.transport.stats.statelessResetsSent >= 1);

    await waitFor(() => signals.leave.length === 1, 5000, "the SDK's onLeave after the failed reconnection");
    const leaveAfter = signals.leave[0]!.at - signals.drop[0]!.at;
    assert.ok(signals.leave[0]!.code >= 4000 && signals.leave[0]!.code !== 4000, `a failure code, got ${signals.leave[0]!.code}`);
    assert.equal(signals.leave[0]!.code, 4003, "FAILED_TO_RECONNECT: the new process has no such room");
    assert.ok(leaveAfter < 3000, `onLeave ${leaveAfter.toFixed(0)} ms after onDrop`);
    assert.deepEqual(signals.reconnect, []);
    assert.equal(signals.drop.length, 1, "one drop: the reconnection failed for good, not as another drop");
    assert.equal(joins.length, 1, "the new process did not seat the client anywhere");
    if (process.env.FASTNET_TEST_VERBOSE) {
      console.log(`      colyseus restart: onDrop ${dropAfter.toFixed(1)} ms after the send, onLeave(${signals.leave[0]!.code}) ${leaveAfter.toFixed(0)} ms later`);
    }
  });
});
