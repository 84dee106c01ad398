/**
 * The sans-IO server endpoint on its own (no sockets, no timers, no Node driver): a real client
 * Connection talks to an Endpoint through plain function calls, and the test decides which datagram
 * arrives from which address at which time. Covers stateless resets for unknown CIDs and their rate
 * limit, path migration through the session table (challenge, validation, address index), the
 * migration rate limit, CID issuance and retirement, and the bounds of every table and queue.
 */
import assert from "node:assert/strict";
import { ACTIVE_CID_LIMIT } from "../src/protocol/cid-set.js";
import { Connection, type ConnectionEvent } from "../src/protocol/connection.js";
import { Endpoint, type EndpointConfig, type EndpointSession } from "../src/protocol/endpoint.js";
import type { PathAddress } from "../src/protocol/migration.js";
import { MIN_RESET_LENGTH } from "../src/protocol/stateless-reset.js";
import { CID_LENGTH } from "../src/protocol/version.js";
import { Prng, fastBackend } from "./support/sim-network.js";

const PARAMS = { maxMessageSize: 512 * 1024, receiveBufferBytes: 1024 * 1024, idleTimeoutMs: 10_000 };
const A: PathAddress = { address: "10.0.0.1", port: 1001 };
const B: PathAddress = { address: "10.0.0.2", port: 2002 };
const C: PathAddress = { address: "10.0.0.3", port: 3003 };
const D: PathAddress = { address: "10.0.0.4", port: 4004 };
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const tail = (b: Uint8Array, n: number): string => hex(b.subarray(b.length - n));

type Session = EndpointSession<string, string>;

interface Harness {
  ep: Endpoint<string, string>;
  s: Session;
  client: Connection;
  cid: Uint8Array;
  now: number;
  rng: Prng;
  /** Events the driver got from the server session (path events must never be among them). */
  serverEvents: ConnectionEvent[];
  clientEvents: ConnectionEvent[];
  /** The server's datagrams of the last `down`. */
  sent: Uint8Array[];
}

/** An endpoint with one accepted session (handle "s1") and the client holding its keys; nothing sent yet. */
function setup(seed: number, config: Partial<EndpointConfig> = {}): Harness {
  const rng = new Prng(seed);
  const now = 1_000_000;
  const epRng = rng.fork();
  const ep = new Endpoint<string, string>({ secret: rng.bytes(32), random: (o) => void epRng.fill(o), now, ...config });
  const cid = ep.newCid();
  const keyingMaterial = rng.bytes(64);
  const aead = fastBackend();
  const s = ep.accept(cid, { keyingMaterial, aead, now, peerParams: PARAMS, initialRttMs: 10 })!;
  assert.ok(s, "accepted");
  s.handle = "s1";
  const clientRng = rng.fork();
  const client = new Connection({
    role: "client",
    cid,
    keyingMaterial,
    aead,
    now,
    random: (o) => void clientRng.fill(o),
    peerParams: PARAMS,
    resetToken: ep.resetToken(cid),
    initialRttMs: 10,
  });
  return { ep, s, client, cid, now, rng, serverEvents: [], clientEvents: [], sent: [] };
}

/** Everything the client has to send, arriving at the endpoint from `from` on local socket `local`. */
function up(h: Harness, from: PathAddress, local = "sock0"): Uint8Array[] {
  const sent: Uint8Array[] = [];
  for (let d = h.client.pollTransmit(h.now); d !== null; d = h.client.pollTransmit(h.now)) {
    sent.push(d);
    h.ep.receive(d, from, h.now, local);
  }
  return sent;
}

/** The driver's turn for the server session: its events (through the endpoint), then its datagrams, to the client unless `deliver` is false. */
function down(h: Harness, deliver = true): number {
  for (let ev = h.s.pollEvent(); ev !== null; ev = h.s.pollEvent()) h.serverEvents.push(ev);
  let n = 0;
  h.sent = [];
  for (let d = h.s.connection.pollTransmit(h.now); d !== null; d = h.s.connection.pollTransmit(h.now)) {
    n++;
    h.sent.push(d);
    if (deliver) h.client.handleDatagram(d, h.now);
  }
  for (let ev = h.client.pollEvent(); ev !== null; ev = h.client.pollEvent()) h.clientEvents.push(ev);
  return n;
}

/** Both sides' timers at `now`. */
function timers(h: Harness): void {
  const st = h.s.connection.pollTimeout();
  if (st !== null && st <= h.now) h.s.connection.handleTimeout(h.now);
  const ct = h.client.pollTimeout();
  if (ct !== null && ct <= h.now) h.client.handleTimeout(h.now);
}

/** Rounds of client → endpoint → server → client with the client at `from`, `stepMs` apart. */
function settle(h: Harness, from: PathAddress, local = "sock0", rounds = 12, stepMs = 10): void {
  for (let i = 0; i < rounds; i++) {
    up(h, from, local);
    down(h);
    h.now += stepMs;
    timers(h);
  }
  up(h, from, local);
  down(h);
}

/** Bind from `at` and exchange until the spare CIDs are delivered. */
function open(h: Harness, at: PathAddress, local = "sock0"): void {
  settle(h, at, local);
  assert.equal(h.client.state, "open");
  assert.equal(h.s.connection.state, "open");
}

const pathEvents = (events: ConnectionEvent[]): ConnectionEvent[] => events.filter((e) => e.type === "pathValidated" || e.type === "pathFailed");
const messages = (events: ConnectionEvent[]): string[] =>
  events.flatMap((e) => (e.type === "message" ? [Buffer.from(e.data).toString()] : []));

/** A datagram of the client's for its current CID (padded past MIN_RESET_LENGTH), not delivered. */
function clientDatagram(h: Harness): Uint8Array {
  h.client.send(new TextEncoder().encode("ping"));
  const d = h.client.pollTransmit(h.now);
  assert.ok(d !== null && d.length > MIN_RESET_LENGTH);
  return d;
}

describe("endpoint (sans-IO): datagrams for unknown connection IDs", function () {
  it("a datagram for a CID this endpoint issued but no session has draws a stateless reset the client accepts", function () {
    const h = setup(1);
    open(h, A);
    h.ep.remove(h.s);
    assert.equal(h.ep.sessionCount, 0);
    assert.equal(h.ep.table.cidCount, 0, "every CID of the session stopped routing");
    const trigger = clientDatagram(h);
    assert.equal(h.ep.receive(trigger, A, h.now, "sock7"), null);
    assert.equal(h.ep.stats.unknownCid, 1);
    const t = h.ep.pollTransmit();
    assert.ok(t, "a reset waits");
    assert.equal(h.ep.pollTransmit(), null, "one reset per trigger");
    assert.deepEqual(t.to, A);
    assert.equal(t.local, "sock7", "it leaves through the socket the trigger came in on");
    assert.ok(t.datagram.length < trigger.length, "shorter than its trigger");
    assert.equal(hex(t.datagram.subarray(1, 1 + CID_LENGTH)), hex(h.cid));
    assert.equal(tail(t.datagram, 16), hex(h.ep.resetToken(h.cid)));
    assert.equal(h.ep.stats.statelessResetsSent, 1);
    h.client.handleDatagram(t.datagram, h.now);
    const close = h.client.pollEvent();
    assert.ok(close?.type === "close" && /stateless reset/.test(close.reason), `client closed by the reset (${JSON.stringify(close)})`);
  });

  it("resets are rate-limited per second; random CIDs, short triggers and malformed datagrams get none", function () {
    const h = setup(2, { statelessResetsPerSecond: 2 });
    open(h, A);
    h.ep.remove(h.s);
    const trigger = clientDatagram(h);
    for (let i = 0; i < 5; i++) h.ep.receive(trigger, A, h.now);
    assert.equal(h.ep.stats.statelessResetsSent, 2);
    assert.equal(h.ep.stats.statelessResetsLimited, 3);
    let n = 0;
    while (h.ep.pollTransmit() !== null) n++;
    assert.equal(n, 2);
    h.now += 500; // one token back
    for (let i = 0; i < 3; i++) h.ep.receive(trigger, A, h.now);
    assert.equal(h.ep.stats.statelessResetsSent, 3);
    assert.equal(h.ep.stats.statelessResetsLimited, 5);
    while (h.ep.pollTransmit() !== null);

    h.now += 10_000; // a full bucket
    const sent = h.ep.stats.statelessResetsSent;
    // A CID the endpoint never issued (its tag does not verify): dropped without a reply.
    const forged = trigger.slice();
    forged.set(h.rng.bytes(CID_LENGTH), 1);
    forged[1] = trigger[1]!; // even with the right config octet
    assert.equal(h.ep.receive(forged, A, h.now), null);
    // A trigger too short to answer with something shorter.
    assert.equal(h.ep.receive(trigger.subarray(0, MIN_RESET_LENGTH), A, h.now), null);
    assert.equal(h.ep.stats.statelessResetsSent, sent);
    assert.equal(h.ep.pollTransmit(), null);
    // Malformed: not even counted as an unknown CID.
    const unknown = h.ep.stats.unknownCid;
    const malformed = h.ep.stats.malformed;
    assert.equal(h.ep.receive(new Uint8Array(5), A, h.now), null);
    assert.equal(h.ep.stats.malformed, malformed + 1);
    assert.equal(h.ep.stats.unknownCid, unknown);
  });
});

describe("endpoint (sans-IO): migration through the session table", function () {
  it("bind, then a move: challenged at the new address, moved in the address index only once validated", function () {
    const h = setup(3);
    open(h, A);
    const paths = h.s.paths;
    assert.equal(h.ep.stats.sessionsOpened, 1);
    assert.deepEqual(h.ep.sessionsAt(A), [h.s]);
    assert.deepEqual(paths.validated, A);

    h.client.send(new TextEncoder().encode("from B"));
    up(h, B, "sock1");
    assert.deepEqual(paths.current, B, "packets go to the new address at once");
    assert.deepEqual(paths.validated, A, "but it is not validated yet");
    assert.equal(paths.candidates.size, 1, "a challenge went out for it");
    assert.deepEqual(h.ep.sessionsAt(A), [h.s], "the index moves only on validation");
    assert.deepEqual(h.ep.sessionsAt(B), []);
    assert.equal(h.s.local, "sock1", "replies leave through the socket of the last authenticated packet");
    assert.equal(h.ep.pollEvent(), null);

    settle(h, B, "sock1");
    assert.deepEqual(paths.validated, B);
    assert.deepEqual(h.ep.sessionsAt(B), [h.s]);
    assert.deepEqual(h.ep.sessionsAt(A), []);
    assert.equal(h.ep.table.migration.indexedAddresses, 1);
    assert.equal(h.ep.stats.migrations, 1);
    assert.deepEqual(h.ep.pollEvent(), { type: "migrated", session: "s1", from: A, to: B });
    assert.equal(h.ep.pollEvent(), null);
    assert.deepEqual(messages(h.serverEvents), ["from B"]);
    assert.deepEqual(pathEvents(h.serverEvents), [], "path events stop at the endpoint");
  });

  it("an unanswered challenge fails: the session goes back to its validated address, and the index never moved", function () {
    const h = setup(4);
    open(h, A);
    h.client.send(new TextEncoder().encode("spoofed?"));
    up(h, B);
    assert.deepEqual(h.s.paths.current, B);
    // Nothing the server sends reaches the client (B is not really the client), for a long while.
    for (let i = 0; i < 100 && h.ep.stats.pathValidationsFailed === 0; i++) {
      down(h, false);
      h.now += 20;
      const st = h.s.connection.pollTimeout();
      if (st !== null && st <= h.now) h.s.connection.handleTimeout(h.now);
    }
    down(h, false);
    assert.equal(h.ep.stats.pathValidationsFailed, 1);
    assert.deepEqual(h.s.paths.current, A, "back to the last validated address");
    assert.deepEqual(h.ep.sessionsAt(A), [h.s]);
    assert.deepEqual(h.ep.sessionsAt(B), []);
    assert.equal(h.ep.stats.migrations, 0);
    assert.equal(h.ep.pollEvent(), null, "no migration event");
    // A is proven: sending there is limited by congestion control again, not by 3x what B sent.
    h.s.connection.send(new Uint8Array(20_000));
    down(h);
    const bytes = h.sent.reduce((n, d) => n + d.length, 0);
    assert.ok(bytes > 5000, `${bytes} bytes sent to A right after the failure`);
    settle(h, A);
    assert.equal(h.s.connection.state, "open", "the session works on A again");
  });

  it("a packet from the validated address undoes an unvalidated move at once; addresses are copied, not kept", function () {
    const h = setup(5, { migration: { maxCandidatePaths: 2 } });
    open(h, A);
    // Spoofed moves to three addresses (each with the newest packet): candidates stay bounded.
    for (const at of [B, C, D]) {
      h.client.send(new TextEncoder().encode(at.address));
      const from = { address: at.address, port: at.port };
      up(h, from);
      from.port = 1; // the caller's object is not kept
      assert.deepEqual(h.s.paths.current, at);
      down(h, false);
    }
    assert.ok(h.s.paths.candidates.size <= 2, `candidates ${h.s.paths.candidates.size}`);
    assert.equal(h.ep.table.migration.indexedAddresses, 1);
    h.client.send(new TextEncoder().encode("back"));
    up(h, A);
    assert.deepEqual(h.s.paths.current, A);
    assert.equal(h.s.paths.candidates.size, 0);
    settle(h, A);
    assert.deepEqual(messages(h.serverEvents), ["10.0.0.2", "10.0.0.3", "10.0.0.4", "back"], "every packet was processed");
    assert.equal(h.ep.stats.migrations, 0);
    assert.equal(h.ep.stats.pathValidationsFailed, 0);
  });

  it("migrations per session are rate-limited: refused moves keep the address, packets still count, the window reopens", function () {
    const h = setup(6, { migration: { maxMigrations: 2, migrationWindowMs: 1000 } });
    open(h, A);
    h.client.send(new TextEncoder().encode("1"));
    settle(h, B, "sock0", 3);
    h.client.send(new TextEncoder().encode("2"));
    settle(h, C, "sock0", 3);
    assert.equal(h.ep.stats.migrations, 2);
    assert.deepEqual(h.ep.sessionsAt(C), [h.s]);

    const cidAtC = hex(h.client.cid);
    assert.ok(h.client.switchCid(), "the client moves to D with a spare CID");
    h.client.send(new TextEncoder().encode("3"));
    up(h, D);
    h.client.send(new TextEncoder().encode("4"));
    up(h, D);
    assert.equal(h.ep.stats.migrationsRefused, 1, "counted once per refused address");
    assert.deepEqual(h.s.paths.current, C, "the session stays where it is");
    assert.equal(h.s.paths.candidates.size, 0, "no challenge for a refused move");
    down(h);
    assert.ok(h.sent.length > 0);
    for (const d of h.sent) assert.equal(hex(d.subarray(1, 1 + CID_LENGTH)), cidAtC, "C keeps seeing C's CID, never the one used from D");
    assert.deepEqual(messages(h.serverEvents), ["1", "2", "3", "4"], "packets from the refused address are still processed");

    h.now += 1000;
    h.client.send(new TextEncoder().encode("5"));
    settle(h, D, "sock0", 3);
    assert.equal(h.ep.stats.migrations, 3, "the window passed: the move goes through");
    assert.deepEqual(h.ep.sessionsAt(D), [h.s]);
    assert.deepEqual(h.ep.sessionsAt(C), []);
  });
});

describe("endpoint (sans-IO): connection IDs", function () {
  it("issues spares into the session table, unroutes retired ones (which then draw resets), forgets all at removal", function () {
    const h = setup(7);
    const bind = up(h, A)[0]!;
    open(h, A);
    assert.equal(h.client.spareCids, ACTIVE_CID_LIMIT - 1, "the client got its spares");
    const active = h.s.activeCids();
    assert.equal(active.length, ACTIVE_CID_LIMIT);
    assert.equal(h.ep.table.cidCount, ACTIVE_CID_LIMIT);
    for (const cid of active) {
      assert.equal(h.ep.table.lookup(cid, 0), h.s, `${hex(cid)} routes to the session`);
      assert.equal(cid[0], active[0]![0], "QUIC-LB config octet");
    }

    assert.ok(h.client.switchCid(), "the client moves to a spare");
    h.client.send(new TextEncoder().encode("on a spare"));
    settle(h, B);
    assert.equal(h.client.cidSequence, 1);
    assert.equal(h.ep.table.lookup(h.cid, 0), undefined, "the retired handshake CID stopped routing");
    assert.equal(h.ep.table.cidCount, ACTIVE_CID_LIMIT, "a replacement was issued");
    assert.ok(!h.s.activeCids().some((c) => hex(c) === hex(h.cid)));
    assert.deepEqual(messages(h.serverEvents), ["on a spare"]);

    // The old CID is still ours (its tag verifies), so an old packet under it draws a reset.
    assert.equal(h.ep.receive(bind, A, h.now), null);
    const reset = h.ep.pollTransmit();
    assert.ok(reset);
    assert.equal(tail(reset.datagram, 16), hex(h.ep.resetToken(h.cid)));

    h.ep.remove(h.s);
    assert.equal(h.ep.table.cidCount, 0);
    assert.equal(h.ep.sessionCount, 0);
    assert.deepEqual(h.ep.sessionsAt(B), []);
    assert.equal(h.ep.table.migration.indexedAddresses, 0);
    assert.equal(h.ep.table.route(h.ep.newCid(), h.s), false, "nothing routes to a removed session");
  });

  it("newCid never returns a CID in use, and every CID verifies only under the endpoint's secret", function () {
    const h = setup(8);
    const seen = new Set<string>([hex(h.cid)]);
    for (let i = 0; i < 200; i++) {
      const cid = h.ep.newCid();
      assert.equal(cid.length, CID_LENGTH);
      assert.ok(!seen.has(hex(cid)));
      seen.add(hex(cid));
    }
    // Another endpoint (another secret) does not answer this one's CIDs.
    const other = new Endpoint({ secret: new Uint8Array(32).fill(9), random: (o) => void h.rng.fill(o), now: h.now });
    const trigger = new Uint8Array(100);
    trigger[0] = 0x40;
    trigger.set(h.ep.newCid(), 1);
    assert.equal(other.receive(trigger, A, h.now), null);
    assert.equal(other.pollTransmit(), null);
    assert.equal(h.ep.receive(trigger, A, h.now), null);
    assert.ok(h.ep.pollTransmit(), "the issuer answers it");
  });
});

describe("endpoint (sans-IO): bounds", function () {
  it("maxSessions: admit() refuses (counted) and accept() returns null when full; a removal makes room", function () {
    const h = setup(9, { maxSessions: 2 });
    const config = { keyingMaterial: h.rng.bytes(64), aead: fastBackend(), now: h.now, peerParams: PARAMS };
    assert.ok(h.ep.admit());
    const second = h.ep.accept(h.ep.newCid(), config);
    assert.ok(second);
    assert.equal(h.ep.sessionCount, 2);
    assert.equal(h.ep.admit(), false);
    assert.equal(h.ep.stats.sessionsRefused, 1);
    assert.equal(h.ep.accept(h.ep.newCid(), config), null);
    assert.equal(h.ep.sessionCount, 2);
    assert.equal(h.ep.table.cidCount, 2, "the refused session's CID was not routed");
    h.ep.remove(second);
    assert.ok(h.ep.admit());
    assert.ok(h.ep.accept(h.ep.newCid(), config));
  });

  it("queued resets are bounded when the driver does not poll", function () {
    const h = setup(10, { statelessResetsPerSecond: 10_000 });
    open(h, A);
    h.ep.remove(h.s);
    const trigger = clientDatagram(h);
    for (let i = 0; i < 200; i++) h.ep.receive(trigger, A, h.now);
    let n = 0;
    while (h.ep.pollTransmit() !== null) n++;
    assert.ok(n > 0 && n <= 64, `${n} queued`);
    assert.equal(h.ep.stats.statelessResetsSent, n, "only queued resets count as sent");
  });

  it("a session's CIDs stay within ACTIVE_CID_LIMIT over many spare switches", function () {
    const h = setup(11);
    open(h, A);
    for (let i = 0; i < 20; i++) {
      if (h.client.spareCids > 0) assert.ok(h.client.switchCid());
      h.client.send(new TextEncoder().encode(`m${i}`));
      settle(h, A, "sock0", 4);
      assert.ok(h.ep.table.cidCount <= ACTIVE_CID_LIMIT, `${h.ep.table.cidCount} CIDs routed`);
      assert.equal(h.ep.table.lookup(h.client.cid, 0), h.s, "the CID in use routes");
    }
    assert.ok(h.client.cidSequence >= 10, `sequence ${h.client.cidSequence}`);
    assert.equal(messages(h.serverEvents).length, 20);
  });
});
