/**
 * Connection migration over real loopback UDP, engine level (FastnetServer + connect): clients bound to
 * 127.0.0.2.. move to other addresses and ports and keep their session; 100 moves in a row under load;
 * attacks from other 127.0.0.x sockets (wrong keys, replays, an older authentic packet, a forged
 * stateless reset, a spoofed move that must stay under the anti-amplification cap); the per-session
 * migration rate limit; and the automatic rebind of a client whose path went dead one way.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { FastnetError, type FastnetClientSession, type FastnetServer, type FastnetSession } from "../src/index.js";
import type { MigrationEvent } from "../src/node/server.js";
import { PacketCipher } from "../src/protocol/key-schedule.js";
import { PacketType, writeHeader } from "../src/protocol/packet-header.js";
import { buildStatelessReset } from "../src/protocol/stateless-reset.js";
import { CID_LENGTH } from "../src/protocol/version.js";
import { assertUnlinkable, recordCidsByPath } from "./support/cid-paths.js";
import { fastBackend } from "./support/sim-network.js";
import {
  Cleanup,
  RawUdp,
  lo,
  localOf,
  openSession,
  readSeq,
  seqMessage,
  serverSocket,
  settle,
  startServer,
  tapClientSends,
  tapServerSends,
  waitFor,
  within,
} from "./support/migration-net.js";

/** Records the server's 'migration' events. */
function recordMigrations(server: FastnetServer): MigrationEvent[] {
  const events: MigrationEvent[] = [];
  server.on("migration", (e) => void events.push(e));
  return events;
}

/**
 * Numbered reliable messages one way: `send()` sends the next number, the receiver checks that every
 * number arrives exactly once and in order. `failures` lists any violation.
 */
class Sequence {
  sent = 0;
  received = 0;
  readonly failures: string[] = [];
  constructor(
    private readonly from: FastnetSession,
    to: FastnetSession,
    readonly name: string,
  ) {
    to.on("message", (m) => {
      let n: number;
      try {
        n = readSeq(m);
      } catch (err) {
        this.failures.push(`${name}: ${(err as Error).message}`);
        return;
      }
      if (n !== this.received) this.failures.push(`${name}: got #${n}, expected #${this.received}`);
      this.received = n + 1;
    });
  }

  /** Sends the next message of `size` bytes; false (nothing sent) when the send queue is full. */
  send(size = 32): boolean {
    try {
      this.from.send(seqMessage(this.sent, size));
    } catch (err) {
      if (err instanceof FastnetError && err.code === "SEND_QUEUE_FULL") return false;
      throw err;
    }
    this.sent++;
    return true;
  }

  get done(): boolean {
    return this.received === this.sent;
  }
}

/** Numbered unreliable datagrams one way; a number seen twice is a failure. */
class DatagramSequence {
  sent = 0;
  readonly seen = new Set<number>();
  readonly failures: string[] = [];
  constructor(
    private readonly from: FastnetSession,
    to: FastnetSession,
    name: string,
  ) {
    to.on("datagram", (d) => {
      const n = readSeq(d);
      if (this.seen.has(n)) this.failures.push(`${name}: datagram #${n} delivered twice`);
      this.seen.add(n);
    });
  }

  send(): void {
    if (this.from.sendUnreliable(seqMessage(this.sent, 48))) this.sent++;
  }
}

/** A datagram for `cid` with a packet number the session has not seen, sealed under an unrelated key. */
function sealedUnderOtherKey(cid: Uint8Array, pn: number, keyPhase: 0 | 1, payloadBytes: number): Buffer {
  const cipher = new PacketCipher(fastBackend(), randomBytes(32));
  const payload = new Uint8Array(payloadBytes); // PING then PADDING
  payload[0] = 0x01;
  const headerLength = 1 + 8 + 4;
  const out = Buffer.alloc(headerLength + payloadBytes + 16);
  writeHeader(out, PacketType.Data, keyPhase, cid, pn, 4);
  cipher.seal(out, headerLength, pn, out.subarray(0, headerLength), payload);
  return out;
}

/** The right header (flags, CID, a fresh packet number), then random bytes. */
function randomAfterHeader(cid: Uint8Array, pn: number, length: number): Buffer {
  const out = randomBytes(length);
  writeHeader(out, PacketType.Data, 0, cid, pn, 4);
  return out;
}

async function roundTrip(client: FastnetClientSession, peer: FastnetSession, tag: number): Promise<void> {
  const atServer = once(peer, "message") as Promise<[Uint8Array]>;
  client.send(seqMessage(tag));
  const [m1] = await within(atServer, 3000, "client -> server message");
  assert.equal(readSeq(m1), tag);
  const atClient = once(client, "message") as Promise<[Uint8Array]>;
  peer.send(seqMessage(tag + 1));
  const [m2] = await within(atClient, 3000, "server -> client message");
  assert.equal(readSeq(m2), tag + 1);
}

describe("migration over loopback UDP: a client that changes address or port keeps its session", function () {
  this.timeout(30_000);
  const c = new Cleanup();
  afterEach(() => c.run());

  it("a port-only change (rebind({})), then 127.0.0.2 -> 127.0.0.3: same session, 'migration' with both addresses, index updated", async () => {
    const server = await startServer(c);
    const { client, peer } = await openSession(c, server);
    const migrations = recordMigrations(server);
    const paths = recordCidsByPath(client, server);
    const c2s = new Sequence(client, peer, "c2s");
    const s2c = new Sequence(peer, client, "s2c");
    for (let i = 0; i < 5; i++) c2s.send(), s2c.send();
    await waitFor(() => c2s.done && s2c.done, 3000, "the first messages");
    const a0 = localOf(client);
    assert.equal(a0.address, lo(2));
    assert.deepEqual(server.sessionsAt(a0.address, a0.port), [peer]);

    await within(client.rebind({}), 3000, "port-only rebind");
    await waitFor(() => migrations.length === 1, 3000, "the migration event");
    const a1 = localOf(client);
    assert.equal(a1.address, lo(2), "the same local address: only the port changed");
    assert.notEqual(a1.port, a0.port);
    assert.equal(migrations[0]!.session, peer, "the same server session moved");
    assert.deepEqual(migrations[0]!.from, a0);
    assert.deepEqual(migrations[0]!.to, a1);
    assert.deepEqual(server.sessionsAt(a0.address, a0.port), [], "the old address left the index");
    assert.deepEqual(server.sessionsAt(a1.address, a1.port), [peer]);
    for (let i = 0; i < 5; i++) c2s.send(), s2c.send();
    await waitFor(() => c2s.done && s2c.done, 3000, "messages after the port change");

    await within(client.rebind({ localAddress: lo(3) }), 3000, "rebind to 127.0.0.3");
    await waitFor(() => migrations.length === 2, 3000, "the second migration event");
    const a2 = localOf(client);
    assert.equal(a2.address, lo(3));
    assert.deepEqual(migrations[1]!.from, a1);
    assert.deepEqual(migrations[1]!.to, a2);
    assert.deepEqual(server.sessionsAt(a1.address, a1.port), []);
    assert.deepEqual(server.sessionsAt(a2.address, a2.port), [peer]);
    assert.equal(server.migration.indexedAddresses, 1);
    for (let i = 0; i < 5; i++) c2s.send(), s2c.send();
    await waitFor(() => c2s.done && s2c.done, 3000, "messages after the move");

    assert.deepEqual([...c2s.failures, ...s2c.failures], []);
    assert.equal(c2s.received, 15);
    assert.equal(s2c.received, 15);
    assert.equal(server.stats.migrations, 2);
    assert.equal(server.stats.migrationsRefused, 0);
    assert.equal(server.stats.pathValidationsFailed, 0);
    assert.equal(server.sessionCount, 1);
    assert.equal(client.rebinds, 2);
    assert.equal(client.readyState, 1);
    assert.equal(peer.readyState, 1);
    // Each path carried its own connection ID, both ways: an observer cannot link them.
    assertUnlinkable(paths, 3);
    assert.equal(client.connection.cidSequence, 2);
  });

  it("100 migrations in a row (127.0.0.2/3/4, fresh ports) under traffic both ways and 200 KB messages: exactly once, in order", async function () {
    this.timeout(60_000);
    const server = await startServer(c, { maxMigrations: 1000 });
    const { client, peer } = await openSession(c, server);
    const paths = recordCidsByPath(client, server);
    const c2s = new Sequence(client, peer, "c2s");
    const s2c = new Sequence(peer, client, "s2c");
    const dc2s = new DatagramSequence(client, peer, "datagrams c2s");
    const ds2c = new DatagramSequence(peer, client, "datagrams s2c");
    const small = (n: number): number => 8 + ((n * 397) % 3000); // one to three packets
    const pump = setInterval(() => {
      for (let k = 0; k < 3; k++) {
        c2s.send(small(c2s.sent));
        s2c.send(small(s2c.sent));
      }
      dc2s.send();
      ds2c.send();
    }, 2);
    c.add(() => clearInterval(pump));
    const used: Array<{ address: string; port: number }> = [localOf(client)];
    const times: number[] = [];
    const bigs: Array<{ seq: Sequence; n: number }> = [];
    let bigsAcross = 0;
    for (let i = 0; i < 100; i++) {
      if (i % 20 === 3) {
        // A 200 KB message each way, sent just before the move: it is still in flight when the path changes.
        for (const seq of [c2s, s2c]) {
          await waitFor(() => seq.send(200_000), 10_000, "room in the send queue for 200 KB");
          bigs.push({ seq, n: seq.sent - 1 });
        }
      }
      const prev = localOf(client);
      const marks = { c: c2s.sent, s: s2c.sent };
      const moved = once(server, "migration") as Promise<[MigrationEvent]>;
      const t0 = performance.now();
      await within(client.rebind({ localAddress: lo(2 + ((i + 1) % 3)) }), 10_000, `rebind #${i + 1}`);
      const [ev] = await within(moved, 10_000, `migration #${i + 1}`);
      times.push(performance.now() - t0);
      const now = localOf(client);
      assert.deepEqual(ev.from, prev, `migration #${i + 1} from`);
      assert.deepEqual(ev.to, now, `migration #${i + 1} to`);
      assert.equal(ev.session, peer);
      used.push(now);
      for (const b of bigs) if (b.seq.received <= b.n) bigsAcross++;
      // Continuous traffic: messages sent after this move started arrive both ways before the next one.
      await waitFor(
        () => c2s.received > marks.c && s2c.received > marks.s && c2s.sent > marks.c && s2c.sent > marks.s,
        10_000,
        `traffic across migration #${i + 1}`,
        () => `c2s ${c2s.received}/${c2s.sent}, s2c ${s2c.received}/${s2c.sent}`,
      );
    }
    clearInterval(pump);
    await waitFor(
      () => c2s.done && s2c.done,
      20_000,
      "every reliable message after the last move",
      () => `c2s ${c2s.received}/${c2s.sent}, s2c ${s2c.received}/${s2c.sent}`,
    );
    assert.deepEqual([...c2s.failures, ...s2c.failures, ...dc2s.failures, ...ds2c.failures], []);
    assert.ok(c2s.sent > 200 && s2c.sent > 200, `traffic was continuous (${c2s.sent} / ${s2c.sent} messages)`);
    assert.ok(bigsAcross > 0, "a 200 KB message was in flight across a migration");
    for (const b of bigs) assert.ok(b.seq.received > b.n, "every 200 KB message arrived");
    assert.ok(dc2s.seen.size > 0 && ds2c.seen.size > 0, "datagrams arrived both ways");
    assert.equal(server.stats.migrations, 100);
    assert.equal(server.stats.migrationsRefused, 0);
    assert.equal(server.stats.pathValidationsFailed, 0);
    assert.equal(client.rebinds, 100);
    // A connection ID per path (at least the 100 new ones; the first may see no traffic), none on two paths.
    assertUnlinkable(paths, 100);
    assert.ok(client.connection.cidSequence >= 100, `CID sequence ${client.connection.cidSequence} after 100 moves`);
    assert.equal(server.migration.indexedAddresses, 1, "only the current address is indexed");
    const last = used[used.length - 1]!;
    assert.deepEqual(server.sessionsAt(last.address, last.port), [peer]);
    for (const a of used.slice(0, -1)) assert.deepEqual(server.sessionsAt(a.address, a.port), [], `${a.address}:${a.port} left the index`);
    times.sort((a, b) => a - b);
    const st = client.getStats();
    if (process.env.FASTNET_TEST_VERBOSE) {
      console.log(
        `      100 migrations: median ${times[50]!.toFixed(1)} ms, p90 ${times[90]!.toFixed(1)} ms, max ${times[99]!.toFixed(1)} ms; ` +
          `${c2s.sent}/${s2c.sent} messages, ${dc2s.seen.size}/${dc2s.sent} + ${ds2c.seen.size}/${ds2c.sent} datagrams, ` +
          `lost packets client ${st.packetsLost} / server ${peer.getStats().packetsLost}, retransmitted ${st.bytesRetransmitted} / ${peer.getStats().bytesRetransmitted} bytes, ${bigsAcross} big-message crossings`,
      );
    }
  });
});

describe("migration over loopback UDP: attacks never move a session", function () {
  this.timeout(30_000);
  const c = new Cleanup();
  afterEach(() => c.run());

  it("packets for the session's CID from a new address under a wrong key: decrypt drops, no move, no answer", async () => {
    const server = await startServer(c);
    const { client, peer } = await openSession(c, server);
    await roundTrip(client, peer, 0);
    const migrations = recordMigrations(server);
    const attacker = await RawUdp.bind(c, lo(5));
    const real = localOf(client);
    const cid = client.connection.cid;
    const before = peer.getStats();
    const base = client.connection.nextPacketNumber + 1000;
    const forged: Buffer[] = [];
    for (let k = 0; k < 10; k++) forged.push(sealedUnderOtherKey(cid, base + k, (k % 2) as 0 | 1, 40 + k * 100));
    for (let k = 0; k < 10; k++) forged.push(randomAfterHeader(cid, base + 100 + k, 40 + k * 110));
    for (const d of forged) await attacker.send(d, server.udpPort);
    await waitFor(
      () => peer.getStats().dropped.decrypt === before.dropped.decrypt + forged.length,
      3000,
      "every forged packet counted as a decrypt drop",
      () => JSON.stringify(peer.getStats().dropped),
    );
    await settle();
    const after = peer.getStats();
    assert.equal(after.dropped.replay, before.dropped.replay);
    assert.equal(after.dropped.malformed, before.dropped.malformed);
    assert.equal(peer.connection.keyGeneration, 0, "a wrong key phase bit did not rotate keys");
    assert.equal(attacker.bytesReceived, 0, "nothing was sent to the attacker");
    assert.deepEqual(migrations, []);
    assert.equal(server.stats.migrations + server.stats.migrationsRefused + server.stats.pathValidationsFailed, 0);
    assert.deepEqual(server.sessionsAt(attacker.address.address, attacker.address.port), []);
    assert.deepEqual(server.sessionsAt(real.address, real.port), [peer]);
    await roundTrip(client, peer, 10);
    assert.equal(attacker.bytesReceived, 0);
  });

  it("replays of captured real packets from a spoofed address: replay drops, no move, no duplicate delivery", async () => {
    const server = await startServer(c);
    const { client, peer } = await openSession(c, server);
    const captured: Buffer[] = [];
    const untap = tapClientSends(client, (d) => void captured.push(Buffer.from(d)));
    const c2s = new Sequence(client, peer, "c2s");
    const s2c = new Sequence(peer, client, "s2c");
    const datagrams: number[] = [];
    peer.on("datagram", (d) => void datagrams.push(readSeq(d)));
    for (let i = 0; i < 10; i++) {
      c2s.send(i % 3 === 0 ? 2500 : 64);
      s2c.send(64);
      client.sendUnreliable(seqMessage(i, 48));
    }
    await waitFor(() => c2s.done && s2c.done && datagrams.length >= 1, 3000, "the traffic to capture");
    await settle();
    untap();
    assert.ok(captured.length >= 5, `captured ${captured.length} packets`);
    const migrations = recordMigrations(server);
    const spoof = await RawUdp.bind(c, lo(6));
    const real = localOf(client);
    const before = peer.getStats();
    const datagramsBefore = datagrams.length;
    // Every captured packet, newest first and then oldest first: each is a replay.
    const replays = [...captured].reverse().concat(captured);
    for (const d of replays) await spoof.send(d, server.udpPort);
    await waitFor(
      () => peer.getStats().dropped.replay === before.dropped.replay + replays.length,
      3000,
      "every replay counted",
      () => JSON.stringify(peer.getStats().dropped),
    );
    await settle();
    assert.equal(peer.getStats().messagesReceived, before.messagesReceived, "no message delivered twice");
    assert.equal(datagrams.length, datagramsBefore, "no datagram delivered twice");
    assert.equal(peer.getStats().dropped.decrypt, before.dropped.decrypt);
    assert.equal(spoof.bytesReceived, 0, "nothing was sent to the spoofed address");
    assert.deepEqual(migrations, []);
    assert.equal(server.stats.migrations + server.stats.migrationsRefused + server.stats.pathValidationsFailed, 0);
    assert.deepEqual(server.sessionsAt(real.address, real.port), [peer]);
    assert.deepEqual(server.sessionsAt(spoof.address.address, spoof.address.port), []);
    for (let i = 0; i < 5; i++) c2s.send(), s2c.send();
    await waitFor(() => c2s.done && s2c.done, 3000, "traffic after the replays");
    assert.deepEqual([...c2s.failures, ...s2c.failures], []);
  });

  it("an older, never-seen authentic packet from a new address is processed but does not move the session", async () => {
    const server = await startServer(c);
    const { client, peer } = await openSession(c, server);
    await roundTrip(client, peer, 0);
    const migrations = recordMigrations(server);
    const attacker = await RawUdp.bind(c, lo(8));
    const real = localOf(client);
    const received: string[] = [];
    peer.on("datagram", (d) => void received.push(Buffer.from(d).toString()));
    let hold = false;
    let held: Buffer | null = null;
    tapClientSends(client, (d) => {
      if (!hold) return;
      hold = false;
      held = Buffer.from(d);
      return "drop"; // lost on the way, but captured
    });
    hold = true;
    assert.equal(client.sendUnreliable(Buffer.from("held datagram")), true);
    await waitFor(() => held !== null, 2000, "the packet to hold");
    assert.equal(client.sendUnreliable(Buffer.from("newer datagram")), true);
    await waitFor(() => received.includes("newer datagram"), 2000, "the newer packet");
    const before = peer.getStats();
    await attacker.send(held!, server.udpPort);
    await waitFor(() => received.includes("held datagram"), 2000, "the held packet to be processed");
    await settle();
    assert.deepEqual(received, ["newer datagram", "held datagram"], "the held packet is authentic and was processed, once");
    // Datagrams, not packets: the client's probes for the packet it lost may arrive meanwhile.
    assert.equal(peer.getStats().datagramsReceived, before.datagramsReceived + 1);
    assert.equal(attacker.bytesReceived, 0, "no reply went to the new address");
    assert.deepEqual(migrations, []);
    assert.equal(server.stats.migrations + server.stats.migrationsRefused + server.stats.pathValidationsFailed, 0);
    assert.deepEqual(server.sessionsAt(real.address, real.port), [peer]);
    assert.deepEqual(server.sessionsAt(attacker.address.address, attacker.address.port), []);
    await roundTrip(client, peer, 10);
    assert.equal(attacker.bytesReceived, 0);
  });

  it("a forged stateless reset (right CID, wrong token) from the server's own address is ignored by the client", async () => {
    const server = await startServer(c);
    const { client, peer } = await openSession(c, server);
    await roundTrip(client, peer, 0);
    const cid = client.connection.cid;
    const token = client.resetToken;
    assert.equal(token.length, 16);
    const forgedTokens: Uint8Array[] = [new Uint8Array(16), randomBytes(16)];
    for (let i = 0; i < 16; i++) {
      const t = token.slice();
      t[i]! ^= 1 << (i % 8);
      forgedTokens.push(t);
    }
    const forged = forgedTokens.flatMap((t) => [41, 65, 1200].map((len) => buildStatelessReset(cid, t, len, (o) => void o.set(randomBytes(o.length)))!));
    const to = localOf(client);
    const sock = serverSocket(server);
    const before = client.getStats().dropped;
    const closes: number[] = [];
    client.on("close", (code) => void closes.push(code));
    for (const d of forged) await new Promise<void>((resolve, reject) => sock.send(d, to.port, to.address, (err) => (err ? reject(err) : resolve())));
    await waitFor(
      () => {
        const d = client.getStats().dropped;
        return d.decrypt + d.replay === before.decrypt + before.replay + forged.length;
      },
      3000,
      "every forged reset dropped",
      () => JSON.stringify(client.getStats().dropped),
    );
    assert.equal(client.readyState, 1);
    assert.equal(client.getStats().statelessResets, 0);
    assert.deepEqual(closes, []);
    await roundTrip(client, peer, 10);
    // Control: the same construction with the real token does end the session.
    const t0 = performance.now();
    const closed = once(client, "close") as Promise<[number, string, boolean]>;
    sock.send(buildStatelessReset(cid, token, 65, (o) => void o.set(randomBytes(o.length)))!, to.port, to.address);
    const [code, reason] = await within(closed, 2000, "the client's close on the real reset");
    assert.equal(code, 1006);
    assert.match(reason, /stateless reset/);
    assert.equal(client.getStats().statelessResets, 1);
    assert.ok(performance.now() - t0 < 1000);
  });

  it("a spoofed move to an address that never answers: at most 3x its bytes go there, the path fails and the session returns", async () => {
    const server = await startServer(c);
    const { client, peer } = await openSession(c, server);
    await roundTrip(client, peer, 0);
    const migrations = recordMigrations(server);
    const spoof = await RawUdp.bind(c, lo(7));
    const real = localOf(client);
    let mode: "capture" | "block" | "pass" = "pass";
    let captured: Buffer | null = null;
    tapClientSends(client, (d) => {
      if (mode === "pass") return;
      if (mode === "capture") {
        captured = Buffer.from(d);
        mode = "block";
      }
      return "drop"; // the real client is cut off while the spoofed path is tried
    });
    const c2s = new Sequence(client, peer, "c2s");
    const s2c = new Sequence(peer, client, "s2c");
    mode = "capture";
    c2s.send(1100); // one ~1.1 KB packet: the newest packet the server has not seen
    await waitFor(() => captured !== null, 2000, "the captured packet");
    const trigger = captured!.length;
    assert.ok(trigger > 1000 && trigger <= 1200);
    await spoof.send(captured!, server.udpPort);
    await waitFor(() => spoof.received.length > 0, 2000, "the path challenge to the spoofed address");
    // The server now has 200 KB to send, and sends to the unproven address: the cap must hold.
    s2c.send(200_000);
    const challengedAt = performance.now();
    await waitFor(() => server.stats.pathValidationsFailed === 1, 5000, "the path validation to fail");
    const failedAfter = performance.now() - challengedAt;
    await settle();
    assert.ok(spoof.bytesReceived > 0);
    assert.ok(
      spoof.bytesReceived <= 3 * spoof.bytesSent,
      `sent ${spoof.bytesReceived} bytes to an address that sent ${spoof.bytesSent}`,
    );
    for (const d of spoof.received) assert.ok(d.subarray(1, 1 + CID_LENGTH).equals(Buffer.from(client.connection.cid)), "datagrams of this session");
    if (process.env.FASTNET_TEST_VERBOSE) {
      console.log(`      spoofed path: ${spoof.bytesReceived} bytes in ${spoof.received.length} datagrams for ${spoof.bytesSent} received; failed ${failedAfter.toFixed(0)} ms after the challenge`);
    }
    assert.equal(c2s.received, 1, "the authentic packet was processed once");
    mode = "pass";
    await waitFor(() => s2c.done && c2s.done, 10_000, "the 200 KB message on the original path", () => `${s2c.received}/${s2c.sent}`);
    const spoofBytes = spoof.bytesReceived;
    for (let i = 0; i < 5; i++) c2s.send(), s2c.send();
    await waitFor(() => s2c.done && c2s.done, 3000, "traffic on the original path");
    assert.equal(spoof.bytesReceived, spoofBytes, "nothing more went to the spoofed address");
    assert.deepEqual([...c2s.failures, ...s2c.failures], []);
    assert.deepEqual(migrations, []);
    assert.equal(server.stats.migrations, 0);
    assert.equal(server.stats.pathValidationsFailed, 1);
    assert.deepEqual(server.sessionsAt(real.address, real.port), [peer]);
    assert.deepEqual(server.sessionsAt(spoof.address.address, spoof.address.port), []);
  });

  it("a spoofed move is undone at once by the real client's next packet (back to the validated address, no failure)", async () => {
    const server = await startServer(c);
    const { client, peer } = await openSession(c, server);
    await roundTrip(client, peer, 0);
    const migrations = recordMigrations(server);
    const spoof = await RawUdp.bind(c, lo(9));
    const real = localOf(client);
    let capture = false;
    let captured: Buffer | null = null;
    tapClientSends(client, (d) => {
      if (!capture) return;
      capture = false;
      captured = Buffer.from(d);
      return "drop";
    });
    capture = true;
    client.sendUnreliable(seqMessage(1, 1000));
    await waitFor(() => captured !== null, 2000, "the captured packet");
    await spoof.send(captured!, server.udpPort);
    await waitFor(() => spoof.received.length > 0, 2000, "the path challenge to the spoofed address");
    const t0 = performance.now();
    await roundTrip(client, peer, 10); // the real client's newer packet brings the session back
    const back = performance.now() - t0;
    const spoofBytes = spoof.bytesReceived;
    assert.ok(spoofBytes <= 3 * spoof.bytesSent);
    // Past the validation deadline (max(3 PTO, 200 ms)): the abandoned challenge must not count as a failure.
    await new Promise((r) => setTimeout(r, 400));
    await roundTrip(client, peer, 20);
    assert.equal(server.stats.pathValidationsFailed, 0);
    assert.equal(server.stats.migrations, 0);
    assert.deepEqual(migrations, []);
    assert.equal(spoof.bytesReceived, spoofBytes, "nothing more went to the spoofed address");
    assert.deepEqual(server.sessionsAt(real.address, real.port), [peer]);
    assert.ok(back < 1000, `back on the real path in ${back.toFixed(1)} ms`);
    if (process.env.FASTNET_TEST_VERBOSE) console.log(`      spoofed move undone: round trip on the real path in ${back.toFixed(1)} ms; ${spoofBytes} bytes went to the spoofed address for ${spoof.bytesSent}`);
  });
});

describe("migration over loopback UDP: rate limit", function () {
  this.timeout(30_000);
  const c = new Cleanup();
  afterEach(() => c.run());

  it("with maxMigrations 2 a third move within the window is refused; the session keeps working and moves once the window passes", async () => {
    const windowMs = 1500;
    const server = await startServer(c, { maxMigrations: 2, migrationWindowMs: windowMs });
    const { client, peer } = await openSession(c, server, { bindTimeoutMs: 8000 });
    const migrations = recordMigrations(server);
    const c2s = new Sequence(client, peer, "c2s");
    const s2c = new Sequence(peer, client, "s2c");
    const t0 = performance.now();
    await within(client.rebind({ localAddress: lo(3) }), 3000, "rebind 1");
    await waitFor(() => migrations.length === 1, 3000, "migration 1");
    await within(client.rebind({ localAddress: lo(4) }), 3000, "rebind 2");
    await waitFor(() => migrations.length === 2, 3000, "migration 2");
    const second = localOf(client);
    const third = client.rebind({ localAddress: lo(5) });
    let thirdDone = false;
    void third.then(() => (thirdDone = true), () => {});
    await waitFor(() => server.stats.migrationsRefused >= 1, 3000, "the refusal");
    const refusedAt = performance.now() - t0;
    // Refused: the server still processes what the client sends from the new address ...
    c2s.send();
    c2s.send(5000);
    await waitFor(() => c2s.done, 3000, "client messages while the move is refused");
    // ... but keeps sending to the last validated address, so the client hears nothing yet.
    s2c.send();
    assert.equal(migrations.length, 2);
    assert.deepEqual(server.sessionsAt(second.address, second.port), [peer]);
    if (refusedAt < windowMs - 200) assert.equal(thirdDone, false, "the refused rebind is not acknowledged");
    await within(third, 8000, "the third rebind once the window passed");
    const movedAt = performance.now() - t0;
    await waitFor(() => migrations.length === 3, 3000, "migration 3");
    if (process.env.FASTNET_TEST_VERBOSE) console.log(`      rate limit: refused at ${refusedAt.toFixed(0)} ms, moved at ${movedAt.toFixed(0)} ms (window ${windowMs} ms)`);
    assert.ok(movedAt >= windowMs, `moved ${movedAt.toFixed(0)} ms after the first migration, inside the ${windowMs} ms window`);
    assert.deepEqual(migrations[2]!.from, second);
    assert.deepEqual(migrations[2]!.to, localOf(client));
    await waitFor(() => s2c.done, 3000, "the server's message after the move");
    for (let i = 0; i < 3; i++) c2s.send(), s2c.send();
    await waitFor(() => c2s.done && s2c.done, 3000, "traffic after the move");
    assert.deepEqual([...c2s.failures, ...s2c.failures], []);
    assert.equal(server.stats.migrations, 3);
    assert.equal(server.stats.migrationsRefused, 1, "one refused address, counted once however many packets it sent");
    assert.equal(server.stats.pathValidationsFailed, 0);
    assert.equal(client.readyState, 1);
  });
  it("without options the server allows 30 migrations per 10 s: the 31st is refused, and client packets are still processed", async () => {
    const server = await startServer(c);
    const { client, peer } = await openSession(c, server);
    const migrations = recordMigrations(server);
    for (let i = 0; i < 30; i++) {
      await within(client.rebind({ localAddress: lo(3 + (i % 2)) }), 3000, `rebind #${i + 1}`);
      await waitFor(() => migrations.length === i + 1, 3000, `migration #${i + 1}`);
    }
    const last = localOf(client);
    const refused = client.rebind({ localAddress: lo(5) }).then(
      () => null,
      (err: unknown) => err,
    );
    await waitFor(() => server.stats.migrationsRefused === 1, 3000, "the 31st move refused");
    const got = once(peer, "message") as Promise<[Uint8Array]>;
    client.send(seqMessage(31));
    const [m] = await within(got, 3000, "a message from the refused address");
    assert.equal(readSeq(m), 31);
    assert.equal(server.stats.migrations, 30);
    assert.equal(migrations.length, 30);
    assert.deepEqual(server.sessionsAt(last.address, last.port), [peer], "the session stays at its last validated address");
    // The 31st rebind can only complete after the window; end the session instead.
    client.abort(1000, "done");
    const err = await within(refused, 3000, "the pending rebind to settle");
    assert.ok(err instanceof FastnetError && err.code === "NOT_OPEN", `the pending rebind failed with NOT_OPEN (${String(err)})`);
  });
});

describe("migration over loopback UDP: automatic rebind", function () {
  this.timeout(30_000);
  const c = new Cleanup();
  afterEach(() => c.run());

  it("autoRebindAfterKeepAlives 2: a path dead towards the client heals by itself (fresh port, server migrates, messages flow)", async () => {
    const server = await startServer(c);
    const keepAliveMs = 200;
    const { client, peer } = await openSession(c, server, { autoRebindAfterKeepAlives: 2, keepAliveMs });
    await roundTrip(client, peer, 0);
    const migrations = recordMigrations(server);
    const dead = localOf(client);
    let dropped = 0;
    tapServerSends(server, (_d, port, address) => {
      if (port !== dead.port || address !== dead.address) return;
      dropped++;
      return "drop";
    });
    const s2c = new Sequence(peer, client, "s2c");
    const c2s = new Sequence(client, peer, "c2s");
    const t0 = performance.now();
    s2c.send(3000); // into the dead path
    await waitFor(() => client.rebinds >= 1, 5000, "an automatic rebind");
    const rebindAt = performance.now() - t0;
    await waitFor(() => migrations.length === 1, 5000, "the server's migration");
    await waitFor(() => s2c.done, 5000, "the message sent into the dead path");
    const healedAt = performance.now() - t0;
    assert.ok(dropped > 0, "the dead path really ate packets");
    assert.ok(rebindAt >= 2 * keepAliveMs - 50, `rebound after ${rebindAt.toFixed(0)} ms of silence`);
    assert.ok(healedAt < 3000, `healed in ${healedAt.toFixed(0)} ms`);
    assert.equal(client.rebinds, 1);
    if (process.env.FASTNET_TEST_VERBOSE) console.log(`      auto rebind ${rebindAt.toFixed(0)} ms after the path died, healed (message delivered) at ${healedAt.toFixed(0)} ms; ${dropped} datagrams eaten`);
    const now = localOf(client);
    assert.equal(now.address, lo(2), "the same local address ...");
    assert.notEqual(now.port, dead.port, "... and a fresh port");
    assert.deepEqual(migrations[0]!.from, dead);
    assert.deepEqual(migrations[0]!.to, now);
    for (let i = 0; i < 5; i++) c2s.send(), s2c.send();
    await waitFor(() => c2s.done && s2c.done, 3000, "traffic after healing");
    assert.deepEqual([...c2s.failures, ...s2c.failures], []);
    assert.equal(client.readyState, 1);
  });

  it("autoRebindAfterKeepAlives 0: the client never rebinds by itself", async () => {
    const server = await startServer(c);
    const keepAliveMs = 200;
    const { client, peer } = await openSession(c, server, { autoRebindAfterKeepAlives: 0, keepAliveMs });
    await roundTrip(client, peer, 0);
    const migrations = recordMigrations(server);
    const dead = localOf(client);
    const untap = tapServerSends(server, (_d, port, address) => (port === dead.port && address === dead.address ? "drop" : undefined));
    const sentBefore = client.getStats().packetsSent;
    // Six keep-alive intervals of silence: three times what rebinds with autoRebindAfterKeepAlives 2.
    await waitFor(() => performance.now() - client.connection.lastReceivedAt >= 6 * keepAliveMs, 5000, "silence");
    assert.ok(client.getStats().packetsSent > sentBefore, "the client kept sending keep-alives");
    assert.equal(client.rebinds, 0);
    assert.deepEqual(migrations, []);
    assert.deepEqual(localOf(client), dead);
    assert.equal(client.readyState, 1);
    untap();
    await roundTrip(client, peer, 10);
    assert.equal(client.rebinds, 0);
  });
});
