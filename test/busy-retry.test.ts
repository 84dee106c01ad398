/**
 * src/node/busy-retry.ts: the client's retry of a busy (HTTP 503) handshake, as a unit (its pauses and
 * budgets) and against a real HandshakeServer that refuses at once (no queue) while its one slot is held.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { busyRetryDelay, retryWhenBusy } from "../src/node/busy-retry.js";
import { generateDevCertificate } from "../src/node/dev-certificate.js";
import { performHandshake } from "../src/node/handshake-client.js";
import { HandshakeServer, type PendingHandshake } from "../src/node/handshake-server.js";
import { FastnetError } from "../src/protocol/errors.js";
import { CID_LENGTH } from "../src/protocol/version.js";

const busy = (): FastnetError => new FastnetError("SERVER_BUSY", "server http://x is busy (HTTP 503), try again later");

describe("retryWhenBusy", () => {
  it("pauses with full jitter under a doubling bound capped at maxDelayMs", () => {
    assert.equal(busyRetryDelay(1, () => 0.5, 100, 2000), 50);
    assert.equal(busyRetryDelay(2, () => 0.5, 100, 2000), 100);
    assert.equal(busyRetryDelay(4, () => 0.999, 100, 2000), 799.2);
    assert.equal(busyRetryDelay(10, () => 0.5, 100, 2000), 1000);
    assert.equal(busyRetryDelay(100, () => 0, 100, 2000), 0);
  });

  it("retries busy answers until one succeeds, with the pauses it computed", async () => {
    const pauses: number[] = [];
    const seen: number[] = [];
    const v = await retryWhenBusy(
      async (n) => {
        seen.push(n);
        if (n < 4) throw busy();
        return "in";
      },
      { random: () => 0.5, sleep: async (ms) => void pauses.push(ms), baseDelayMs: 100 },
    );
    assert.equal(v, "in");
    assert.deepEqual(seen, [1, 2, 3, 4]);
    assert.deepEqual(pauses, [50, 100, 200]);
  });

  it("throws other errors at once, untouched", async () => {
    const other = new FastnetError("CERTIFICATE_REJECTED", "pin mismatch");
    let calls = 0;
    await assert.rejects(
      retryWhenBusy(async () => {
        calls++;
        throw other;
      }),
      (err) => err === other,
    );
    assert.equal(calls, 1);
  });

  it("gives up after maxAttempts with a SERVER_BUSY that names the attempts and keeps the cause", async () => {
    let calls = 0;
    const last = busy();
    await assert.rejects(
      retryWhenBusy(
        async () => {
          calls++;
          throw last;
        },
        { maxAttempts: 3, sleep: async () => undefined },
      ),
      (err: unknown) =>
        err instanceof FastnetError && err.code === "SERVER_BUSY" && /busy \(HTTP 503\).*gave up after 3 attempts/.test(err.message) && err.cause === last,
    );
    assert.equal(calls, 3);
  });

  it("does not begin a pause that would end past the time budget", async () => {
    let clock = 0;
    const pauses: number[] = [];
    await assert.rejects(
      retryWhenBusy(
        async () => {
          clock += 10; // each attempt takes 10 ms
          throw busy();
        },
        {
          maxAttempts: 100,
          budgetMs: 1000,
          random: () => 0.99,
          now: () => clock,
          sleep: async (ms) => {
            pauses.push(ms);
            clock += ms;
          },
        },
      ),
      /gave up after \d+ attempts in \d+ ms \(retry budget 1000 ms\)/,
    );
    assert.ok(clock <= 1000 + 10, `spent ${clock} ms`);
    assert.ok(pauses.length >= 3, "it did retry within the budget");
  });

  it("refuses bad options", async () => {
    const ok = async (): Promise<number> => 1;
    await assert.rejects(retryWhenBusy(ok, { maxAttempts: 0 }), /maxAttempts must be an integer >= 1/);
    await assert.rejects(retryWhenBusy(ok, { budgetMs: -1 }), /budgetMs must be a finite number >= 0/);
  });

  it("gets a real handshake in once the busy server frees its slot", async function () {
    this.timeout(20_000);
    const dev = await generateDevCertificate();
    const server = http.createServer();
    // No queue: over the one slot, a 503 at once.
    const hs = new HandshakeServer({ server, cert: dev.cert, key: dev.key, timeoutMs: 10_000, maxPending: 1, maxPendingPerAddress: 1, maxQueued: 0 });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const params = { maxMessageSize: 65536, receiveBufferBytes: 1 << 20, idleTimeoutMs: 10_000 };
    const held: PendingHandshake[] = [];
    hs.on("handshake", (p) => {
      p.accept({ cid: randomBytes(CID_LENGTH), udpPort: 4567, resetToken: randomBytes(16), params });
      if (held.length === 0) held.push(p); // the first one keeps the slot until the retries have been refused
      else p.finish();
    });
    const connect = () => performHandshake({ url, hello: { path: "/r", headers: {}, params }, fingerprint: dev.fingerprint, timeoutMs: 5000 });
    try {
      const first = await connect();
      let attempts = 0;
      const second = retryWhenBusy(
        (n) => {
          attempts = n;
          // Free the slot once two attempts were refused.
          if (n === 3) held[0]!.finish();
          return connect();
        },
        { baseDelayMs: 20, maxDelayMs: 50 },
      );
      const c = await second;
      assert.equal(attempts, 3);
      assert.equal(hs.stats.busy, 2);
      assert.equal(hs.stats.accepted, 2);
      await Promise.all([first.closed, c.closed]);
    } finally {
      hs.close();
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    }
  });
});
