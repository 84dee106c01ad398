/**
 * Connection migration and stateless reset in the sans-IO core: path validation on a Connection pair
 * driven by hand (PATH_CHALLENGE / PATH_RESPONSE, the failure deadline, the anti-amplification limit
 * while a path is unproven), the stateless reset check, and the MigrationManager's policy and address
 * index as plain unit tests.
 */
import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { CloseCode } from "../src/protocol/connection.js";
import { MigrationManager, SessionPaths, addressKey, sameAddress, type PathAddress, type PathDecision } from "../src/protocol/migration.js";
import { MIN_RESET_LENGTH, RateLimiter, buildStatelessReset, statelessResetToken } from "../src/protocol/stateless-reset.js";
import { CID_LENGTH, MAX_DATAGRAM_SIZE } from "../src/protocol/version.js";
import { collect, eventsOf, exchange, openPair, sum, tick, transfer } from "./support/migration-core.js";

const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** Asserts a rate-limit refusal; `first`: the first refusal of that address (the one counted). */
function assertRefused(d: PathDecision, first: boolean, what = ""): void {
  assert.equal(d.kind, "stay", what);
  assert.equal(d.kind === "stay" && d.reason, "rate-limited", what);
  assert.equal(d.kind === "stay" && d.reason === "rate-limited" && d.first, first, `${what} first`);
}

describe("migration core: path validation on a Connection pair", function () {
  it("a PATH_CHALLENGE is answered by the peer on its own; the challenger gets pathValidated with the same data", function () {
    const p = openPair(1);
    exchange(p);
    p.now += 10;
    const data = p.server.startPathValidation(p.now, MAX_DATAGRAM_SIZE, false);
    assert.equal(data.length, 8);
    const challenge = transfer(p, "server");
    assert.ok(challenge.length >= 1, "the challenge leaves at once");
    const response = transfer(p, "client");
    assert.ok(response.length >= 1, "the client answers without any application send");
    const validated = eventsOf(p.log.server, "pathValidated");
    assert.equal(validated.length, 1);
    assert.ok(bytesEqual(validated[0]!.data, data), "the event carries the challenge data");
    assert.equal(eventsOf(p.log.client, "pathValidated").length, 0, "the answering side gets no path event");
    // Nothing fails later: the challenge is gone.
    tick(p, "server", p.now + 5000);
    assert.equal(eventsOf(p.log.server, "pathFailed").length, 0);
  });

  it("two challenges in one packet: the peer answers the last (the newest, for the current address) only", function () {
    const p = openPair(2);
    exchange(p);
    p.now += 10;
    const first = p.server.startPathValidation(p.now, MAX_DATAGRAM_SIZE, false);
    const second = p.server.startPathValidation(p.now, MAX_DATAGRAM_SIZE, false);
    assert.ok(!bytesEqual(first, second), "each challenge has fresh random data");
    exchange(p);
    const validated = eventsOf(p.log.server, "pathValidated").map((e) => Buffer.from(e.data).toString("hex"));
    // One PATH_RESPONSE per packet (a challenge flood gets one answer); the older challenge was for an
    // address the server had already left, so leaving it unanswered loses nothing.
    assert.deepEqual(validated, [Buffer.from(second).toString("hex")]);
  });

  it("an unanswered challenge is resent and fails with pathFailed after max(3 PTO, 200 ms), not before", function () {
    const p = openPair(3);
    exchange(p);
    p.now += 10;
    const t0 = p.now;
    const data = p.server.startPathValidation(t0, MAX_DATAGRAM_SIZE, false);
    let serverPackets = transfer(p, "server", () => false).length; // lost
    let failedAt = -1;
    for (let i = 0; i < 200 && failedAt < 0; i++) {
      const t = p.server.pollTimeout();
      assert.ok(t !== null);
      tick(p, "server", t);
      serverPackets += transfer(p, "server", () => false).length;
      if (eventsOf(p.log.server, "pathFailed").length > 0) failedAt = p.now;
    }
    assert.ok(failedAt >= t0 + 200, `failed ${failedAt - t0} ms after the challenge: at least 200 ms expected`);
    assert.ok(failedAt <= t0 + 2000, `failed ${failedAt - t0} ms after the challenge: far beyond 3 PTO`);
    assert.ok(serverPackets >= 2, `the challenge was resent (${serverPackets} packets)`);
    const failed = eventsOf(p.log.server, "pathFailed");
    assert.equal(failed.length, 1);
    assert.ok(bytesEqual(failed[0]!.data, data));
    assert.equal(eventsOf(p.log.server, "pathValidated").length, 0);
    assert.equal(p.server.state, "open", "a failed path does not end the session");
  });

  it("while the new path is unproven the server sends at most 3x what it received; the response lifts the limit", function () {
    const p = openPair(4);
    exchange(p);
    p.now += 10;
    const trigger = 300;
    const t0 = p.now;
    p.server.startPathValidation(t0, trigger, true);
    p.server.send(new Uint8Array(60_000));
    const first = transfer(p, "server", () => false);
    assert.ok(sum(first) > 0, "the challenge left");
    assert.ok(sum(first) <= 3 * trigger, `sent ${sum(first)} bytes for a ${trigger}-byte trigger`);
    // Timers do not get around the limit either.
    for (let i = 0; i < 20; i++) {
      const t = p.server.pollTimeout();
      if (t === null || t > t0 + 150) break; // the challenge fails at t0 + 200 ms
      tick(p, "server", t);
      first.push(...transfer(p, "server", () => false));
    }
    assert.ok(sum(first) <= 3 * trigger, `sent ${sum(first)} bytes (with timers) for a ${trigger}-byte trigger`);
    // More bytes from the peer raise the budget by 3x each.
    assert.equal(p.client.sendUnreliable(new Uint8Array(500)), true);
    const fromClient = transfer(p, "client");
    const received = trigger + sum(fromClient);
    const second = transfer(p, "server", () => false);
    assert.ok(sum(second) > 0, "the larger budget was used");
    assert.ok(sum(first) + sum(second) <= 3 * received, `sent ${sum(first) + sum(second)} for ${received} received`);
    // Now the path works both ways: the challenge is resent, answered, and the 60 KB flow without a cap.
    for (let i = 0; i < 2000; i++) {
      if (eventsOf(p.log.client, "message").length > 0 && eventsOf(p.log.server, "pathValidated").length > 0) break;
      const next = Math.min(p.server.pollTimeout() ?? Infinity, p.client.pollTimeout() ?? Infinity);
      p.now = Math.max(p.now, next);
      tick(p, "server", p.now);
      tick(p, "client", p.now);
      exchange(p);
    }
    assert.equal(eventsOf(p.log.server, "pathValidated").length, 1, "the resent challenge was answered");
    assert.equal(eventsOf(p.log.server, "pathFailed").length, 0);
    assert.equal(eventsOf(p.log.client, "message").length, 1, "the message arrived");
    assert.equal(eventsOf(p.log.client, "message")[0]!.data.length, 60_000);
  });

  it("revertPath() (back to a validated address) ends the limit and drops the outstanding challenges", function () {
    const p = openPair(5);
    exchange(p);
    p.now += 10;
    p.server.startPathValidation(p.now, 100, true);
    p.server.send(new Uint8Array(20_000));
    const limited = transfer(p, "server", () => false);
    assert.ok(sum(limited) <= 300);
    p.server.revertPath();
    const after = transfer(p, "server");
    assert.ok(sum(after) > 3000, `unlimited again: ${sum(after)} bytes`);
    tick(p, "server", p.now + 3000);
    assert.equal(eventsOf(p.log.server, "pathFailed").length, 0, "no failure for a dropped challenge");
    assert.equal(eventsOf(p.log.server, "pathValidated").length, 0);
  });

  it("probePath() makes the client's next packet a full-size PING (so the server may answer with 3x that)", function () {
    const p = openPair(6);
    exchange(p);
    p.now += 10;
    p.client.probePath();
    const out = transfer(p, "client");
    assert.equal(out.length, 1);
    assert.equal(out[0]!.length, MAX_DATAGRAM_SIZE);
    exchange(p);
    assert.equal(p.server.state, "open");
  });
});

describe("migration core: stateless reset detection", function () {
  const random = (o: Uint8Array): void => void randomFillSync(o);

  it("a reset carrying exactly the client's token closes it at once: 1006, remote, counted", function () {
    const p = openPair(10);
    exchange(p);
    const reset = buildStatelessReset(p.cid, p.resetToken, 200, random)!;
    assert.ok(reset.length < 200 && reset.length >= MIN_RESET_LENGTH);
    p.client.handleDatagram(reset, p.now);
    collect(p);
    const close = eventsOf(p.log.client, "close");
    assert.equal(close.length, 1);
    assert.equal(close[0]!.code, CloseCode.Abnormal);
    assert.equal(close[0]!.remote, true);
    assert.match(close[0]!.reason, /stateless reset/);
    assert.equal(p.client.getStats().statelessResets, 1);
    assert.equal(p.client.state, "closed");
  });

  it("any other token (each single-bit flip, a zero token, the token of another CID) is dropped and changes nothing", function () {
    const p = openPair(11);
    exchange(p);
    const tokens: Uint8Array[] = [new Uint8Array(16), statelessResetToken(new Uint8Array(32).fill(9), p.cid)];
    for (let bit = 0; bit < 128; bit++) {
      const t = p.resetToken.slice();
      t[bit >> 3]! ^= 1 << (bit & 7);
      tokens.push(t);
    }
    const dropsBefore = p.client.getStats().dropped;
    for (const t of tokens) {
      for (const len of [40, 64]) {
        p.client.handleDatagram(buildStatelessReset(p.cid, t, len + 1, random)!, p.now);
      }
    }
    collect(p);
    assert.equal(p.client.state, "open");
    assert.equal(eventsOf(p.log.client, "close").length, 0);
    const st = p.client.getStats();
    assert.equal(st.statelessResets, 0);
    const dropped = st.dropped.decrypt + st.dropped.replay - dropsBefore.decrypt - dropsBefore.replay;
    assert.equal(dropped, tokens.length * 2, "every forged reset counted as a decrypt or replay drop");
    // The session still works.
    p.server.send(Uint8Array.of(1, 2, 3));
    exchange(p);
    assert.equal(eventsOf(p.log.client, "message").length, 1);
  });

  it("the right token under another CID is not for this session", function () {
    const p = openPair(12);
    exchange(p);
    const otherCid = p.cid.slice();
    otherCid[CID_LENGTH - 1]! ^= 0xff;
    p.client.handleDatagram(buildStatelessReset(otherCid, p.resetToken, 100, random)!, p.now);
    collect(p);
    assert.equal(p.client.state, "open");
    assert.equal(p.client.getStats().dropped.unknownCid, 1);
  });

  it("a server never closes on a reset-shaped packet, even one ending in a token", function () {
    const p = openPair(13);
    exchange(p);
    p.server.handleDatagram(buildStatelessReset(p.cid, p.resetToken, 100, random)!, p.now);
    collect(p);
    assert.equal(p.server.state, "open");
    assert.equal(p.server.getStats().statelessResets, 0);
  });

  it("buildStatelessReset: strictly shorter than the trigger, at most 64 bytes, token last, CID at offset 1; none for short triggers", function () {
    const cid = Uint8Array.from([0x0b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const token = new Uint8Array(16).fill(0xab);
    assert.equal(buildStatelessReset(cid, token, MIN_RESET_LENGTH, random), null);
    assert.equal(buildStatelessReset(cid, token, 10, random), null);
    for (const trigger of [MIN_RESET_LENGTH + 1, MIN_RESET_LENGTH + 2, MIN_RESET_LENGTH + 3, 64, 65, 66, 200, 1200]) {
      const r = buildStatelessReset(cid, token, trigger, random)!;
      assert.equal(r.length, Math.min(trigger - 1, 64), `trigger ${trigger}`);
      assert.ok(r.length < trigger);
      assert.ok(bytesEqual(r.subarray(1, 1 + CID_LENGTH), cid));
      assert.ok(bytesEqual(r.subarray(r.length - 16), token));
      assert.equal(r[0]! & 0xdc, 0x40, "Data type with reserved bits clear");
    }
  });

  it("the reset rate limiter allows a burst of `perSecond` and refills at that rate", function () {
    const rl = new RateLimiter(2, 0);
    assert.deepEqual([rl.take(0), rl.take(0), rl.take(0)], [true, true, false]);
    assert.equal(rl.take(400), false, "0.8 token after 400 ms");
    assert.equal(rl.take(500), true, "1 token after 500 ms");
    assert.equal(rl.take(10_000), true);
    assert.equal(rl.take(10_000), true);
    assert.equal(rl.take(10_000), false, "the bucket never holds more than perSecond");
  });
});

describe("migration core: MigrationManager", function () {
  const A: PathAddress = { address: "127.0.0.2", port: 5000 };
  const A2: PathAddress = { address: "127.0.0.2", port: 5001 };
  const B: PathAddress = { address: "127.0.0.3", port: 6000 };
  const C: PathAddress = { address: "127.0.0.4", port: 7000 };
  const data = (n: number): Uint8Array => new Uint8Array(8).fill(n);

  function bound(options = {}) {
    const m = new MigrationManager<string>(options);
    const paths = new SessionPaths();
    m.bind("s", paths, A);
    return { m, paths };
  }

  it("bind sets the current and validated address and indexes the session", function () {
    const { m, paths } = bound();
    assert.deepEqual(paths.current, A);
    assert.deepEqual(paths.validated, A);
    assert.deepEqual(m.sessionsAt(A), ["s"]);
    assert.deepEqual(m.sessionsAt({ ...A }), ["s"], "by value, not identity");
    assert.equal(m.indexedAddresses, 1);
  });

  it("a packet from where we send changes nothing; an older packet from elsewhere stays", function () {
    const { m, paths } = bound();
    assert.deepEqual(m.consider(paths, { ...A }, true, 0), { kind: "same" });
    assert.deepEqual(m.consider(paths, { ...A }, false, 0), { kind: "same" });
    assert.deepEqual(m.consider(paths, B, false, 0), { kind: "stay", reason: "older" });
    assert.deepEqual(paths.current, A);
    assert.equal(paths.recent.length, 0, "an older packet uses no migration budget");
    assert.equal(paths.refused, 0);
  });

  it("the newest packet from a new address migrates at once: newNetwork for a new IP, not for a new port", function () {
    const { m, paths } = bound();
    assert.deepEqual(m.consider(paths, A2, true, 0), { kind: "migrate", from: A, newNetwork: false });
    assert.deepEqual(paths.current, A2);
    assert.deepEqual(paths.validated, A, "not validated yet");
    assert.deepEqual(m.sessionsAt(A), ["s"], "the index moves only on validation");
    assert.deepEqual(m.sessionsAt(A2), []);
    assert.deepEqual(m.consider(paths, B, true, 1), { kind: "migrate", from: A2, newNetwork: true });
  });

  it("validated(): the answered current address becomes validated, the index moves, the migration is counted", function () {
    const { m, paths } = bound();
    m.consider(paths, B, true, 0);
    m.challenged(paths, data(1), B);
    assert.equal(m.validated("s", paths, data(9)), null, "unknown data");
    const moved = m.validated("s", paths, data(1));
    assert.deepEqual(moved, { from: A, to: B });
    assert.deepEqual(paths.validated, B);
    assert.deepEqual(m.sessionsAt(A), []);
    assert.deepEqual(m.sessionsAt(B), ["s"]);
    assert.equal(m.indexedAddresses, 1);
    assert.equal(paths.migrations, 1);
    assert.equal(paths.candidates.size, 0);
    assert.equal(m.validated("s", paths, data(1)), null, "a second response for the same challenge does nothing");
    assert.equal(paths.migrations, 1);
  });

  it("validated() for an address the session already left does not move it", function () {
    const { m, paths } = bound();
    m.consider(paths, B, true, 0);
    m.challenged(paths, data(1), B);
    m.consider(paths, C, true, 1);
    m.challenged(paths, data(2), C);
    assert.equal(m.validated("s", paths, data(1)), null);
    assert.deepEqual(paths.validated, A);
    assert.deepEqual(paths.current, C);
    assert.deepEqual(m.sessionsAt(A), ["s"]);
    assert.deepEqual(m.validated("s", paths, data(2)), { from: A, to: C });
    assert.deepEqual(m.sessionsAt(C), ["s"]);
    assert.deepEqual(m.sessionsAt(B), []);
  });

  it("failed(): a failed current candidate sends the session back to its validated address", function () {
    const { m, paths } = bound();
    m.consider(paths, B, true, 0);
    m.challenged(paths, data(1), B);
    assert.equal(m.failed(paths, data(7)), null, "unknown data");
    assert.deepEqual(m.failed(paths, data(1)), A);
    assert.deepEqual(paths.current, A);
    assert.deepEqual(paths.validated, A);
    assert.deepEqual(m.sessionsAt(A), ["s"]);
    assert.deepEqual(m.sessionsAt(B), []);
    assert.equal(paths.migrations, 0);
  });

  it("failed() of a candidate that is no longer current changes nothing", function () {
    const { m, paths } = bound();
    m.consider(paths, B, true, 0);
    m.challenged(paths, data(1), B);
    m.consider(paths, C, true, 1);
    m.challenged(paths, data(2), C);
    assert.equal(m.failed(paths, data(1)), null);
    assert.deepEqual(paths.current, C);
  });

  it("a newest packet from the validated address returns there at once, without a challenge, even when rate-limited", function () {
    const { m, paths } = bound({ maxMigrations: 1, migrationWindowMs: 1000 });
    assert.equal(m.consider(paths, B, true, 0).kind, "migrate");
    m.challenged(paths, data(1), B);
    assert.deepEqual(m.consider(paths, { ...A }, true, 1), { kind: "return" });
    assert.deepEqual(paths.current, A);
    assert.equal(paths.candidates.size, 0, "the candidate is dropped");
    assert.equal(m.validated("s", paths, data(1)), null, "a late response for B no longer counts");
    // The return used no budget, but the move to B did: C, then B, are refused.
    assertRefused(m.consider(paths, C, true, 2), true, "C");
    assertRefused(m.consider(paths, B, true, 3), true, "B");
    assert.equal(paths.refused, 2);
    assert.deepEqual(paths.current, A);
    // And the validated address is still welcome while refusing others.
    assert.deepEqual(m.consider(paths, { ...A }, true, 4), { kind: "same" });
  });

  it("rate limit: maxMigrations starts per window; refusals take no slot, count once per address; the window slides", function () {
    const { m, paths } = bound({ maxMigrations: 2, migrationWindowMs: 1000 });
    assert.equal(m.consider(paths, B, true, 0).kind, "migrate");
    assert.equal(m.consider(paths, C, true, 100).kind, "migrate");
    assertRefused(m.consider(paths, A2, true, 200), true);
    assert.deepEqual(paths.current, C, "a refused move leaves the session where it was");
    assert.equal(paths.refused, 1);
    assertRefused(m.consider(paths, A2, true, 999), false, "the same address asking again");
    assert.equal(paths.refused, 1);
    assert.equal(paths.recent.length, 2, "refusals take no slot");
    // The first start (t=0) leaves the window after t=1000.
    assert.equal(m.consider(paths, A2, true, 1001).kind, "migrate");
    assert.deepEqual(paths.current, A2);
    assertRefused(m.consider(paths, B, true, 1050), true);
    assert.equal(paths.refused, 2);
    assert.equal(m.consider(paths, B, true, 1101).kind, "migrate");
  });

  it("defaults: 30 migrations per 10 s, 3 candidates; options given as undefined keep the defaults", function () {
    const m = new MigrationManager<string>({ maxMigrations: undefined, migrationWindowMs: undefined, maxCandidatePaths: undefined } as never);
    assert.deepEqual({ ...m.options }, { maxMigrations: 30, migrationWindowMs: 10_000, maxCandidatePaths: 3 });
    const paths = new SessionPaths();
    m.bind("s", paths, A);
    for (let i = 0; i < 30; i++) assert.equal(m.consider(paths, { address: "127.0.0.9", port: 1000 + i }, true, i).kind, "migrate", `move ${i + 1}`);
    assertRefused(m.consider(paths, { address: "127.0.0.9", port: 999 }, true, 9_999), true, "the 31st within 10 s");
    assert.equal(m.consider(paths, { address: "127.0.0.9", port: 999 }, true, 10_001).kind, "migrate");
  });

  it("challenged() keeps at most maxCandidatePaths candidates, dropping the oldest", function () {
    const { m, paths } = bound({ maxCandidatePaths: 2 });
    m.consider(paths, B, true, 0);
    m.challenged(paths, data(1), B);
    m.challenged(paths, data(2), B);
    m.challenged(paths, data(3), B);
    assert.equal(paths.candidates.size, 2);
    assert.equal(m.validated("s", paths, data(1)), null, "the oldest was dropped");
    assert.deepEqual(m.validated("s", paths, data(3)), { from: A, to: B });
  });

  it("the index holds several sessions per address, keys IPv6 distinctly, and forgets removed sessions", function () {
    const m = new MigrationManager<string>();
    const p1 = new SessionPaths();
    const p2 = new SessionPaths();
    const v6: PathAddress = { address: "::1", port: 5000 };
    m.bind("s1", p1, A);
    m.bind("s2", p2, A);
    assert.deepEqual(m.sessionsAt(A).sort(), ["s1", "s2"]);
    assert.equal(addressKey(v6), "[::1]:5000");
    assert.equal(addressKey(A), "127.0.0.2:5000");
    const p3 = new SessionPaths();
    m.bind("s3", p3, v6);
    assert.equal(m.indexedAddresses, 2);
    m.remove("s1", p1);
    assert.deepEqual(m.sessionsAt(A), ["s2"]);
    m.remove("s2", p2);
    m.remove("s3", p3);
    assert.equal(m.indexedAddresses, 0);
    assert.deepEqual(m.sessionsAt(A), []);
  });

  it("sameAddress compares address and port, and never matches null", function () {
    assert.equal(sameAddress(A, { ...A }), true);
    assert.equal(sameAddress(A, A2), false);
    assert.equal(sameAddress(A, { address: "127.0.0.3", port: A.port }), false);
    assert.equal(sameAddress(null, A), false);
    assert.equal(sameAddress(A, null), false);
    assert.equal(sameAddress(null, null), false);
  });
});
