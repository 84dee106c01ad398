/**
 * The handshake server's queue (src/node/handshake-server.ts): upgrades over the pending limits wait for a
 * slot instead of getting a 503 at once, addresses take turns for free slots, and the queue is bounded in
 * length and in waiting time. Real TCP and TLS 1.3 on loopback; the second source address is 127.0.0.2
 * (Linux routes all of 127.0.0.0/8 to lo), bound as the client's local address.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import tls from "node:tls";
import { generateDevCertificate, type DevCertificate } from "../src/node/dev-certificate.js";
import { MessageReader, encodeHandshakeMessage, parseServerResponse, type TransportParams } from "../src/node/handshake-messages.js";
import { HandshakeServer, type HandshakeServerOptions, type PendingHandshake } from "../src/node/handshake-server.js";
import { CID_LENGTH } from "../src/protocol/version.js";
import { randomBytes } from "node:crypto";
import { pollUntil } from "./support/wait.js";

const PARAMS: TransportParams = { maxMessageSize: 64 * 1024, receiveBufferBytes: 1 << 20, idleTimeoutMs: 10_000 };
const UPGRADE_REQUEST = "GET /.fastnet HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: fastnet/2\r\n\r\n";
const A = "127.0.0.1";
const B = "127.0.0.2";
/** Bound on one client's whole handshake in these tests. */
const CLIENT_TIMEOUT_MS = 20_000;

type Outcome = "accepted" | "busy";

/** Polls `cond` every 5 ms until true; fails after `ms`. */
const until = (cond: () => boolean, ms: number, what: string): Promise<void> => pollUntil(cond, ms, what, undefined, 5);

describe("handshake queue: fair sharing of pending handshakes between addresses", function () {
  this.timeout(60_000);
  let dev: DevCertificate;
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    dev = await generateDevCertificate();
  });

  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function start(opts: Partial<HandshakeServerOptions>): Promise<{ hs: HandshakeServer; port: number }> {
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    const hs = new HandshakeServer({ server, cert: dev.cert, key: dev.key, timeoutMs: 15_000, maxPending: 64, maxPendingPerAddress: 16, ...opts });
    server.listen(0, A);
    await once(server, "listening");
    cleanups.push(async () => {
      hs.close();
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    });
    return { hs, port: (server.address() as AddressInfo).port };
  }

  function acceptNow(p: PendingHandshake): void {
    p.accept({ cid: randomBytes(CID_LENGTH), udpPort: 4567, resetToken: randomBytes(16), params: PARAMS });
    p.finish();
  }

  /**
   * One handshake from `localAddress` over real TCP and TLS: the Upgrade request, the 101 (or a 503:
   * "busy"), TLS 1.3 verified against the dev certificate, the ClientHello, the server's answer.
   */
  function handshake(port: number, localAddress: string): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      const socket = net.connect({ host: A, port, localAddress });
      let t: tls.TLSSocket | undefined;
      let done = false;
      const finish = (err: Error | null, outcome?: Outcome): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        t?.destroy();
        socket.destroy();
        if (err) reject(err);
        else resolve(outcome!);
      };
      const timer = setTimeout(() => finish(new Error(`handshake from ${localAddress} did not finish within ${CLIENT_TIMEOUT_MS} ms`)), CLIENT_TIMEOUT_MS);
      cleanups.push(() => finish(new Error("test ended")));
      socket.on("error", (err) => finish(err));
      socket.on("close", () => finish(new Error(`connection from ${localAddress} closed without an answer`)));
      socket.write(UPGRADE_REQUEST);
      let head = Buffer.alloc(0);
      const onHead = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        socket.off("data", onHead);
        const status = head.subarray(0, head.indexOf("\r\n")).toString();
        if (status.startsWith("HTTP/1.1 503")) return finish(null, "busy");
        if (!status.startsWith("HTTP/1.1 101")) return finish(new Error(`unexpected answer ${status}`));
        socket.pause();
        const rest = head.subarray(end + 4);
        if (rest.length > 0) socket.unshift(rest);
        t = tls.connect({ socket, host: A, ca: dev.cert, minVersion: "TLSv1.3" });
        t.on("error", (err) => finish(err));
        t.on("secureConnect", () => t!.write(encodeHandshakeMessage({ v: 2, path: "/fair", headers: {}, params: PARAMS })));
        const reader = new MessageReader();
        t.on("data", (chunk: Buffer) => {
          try {
            const msgs = reader.push(chunk);
            if (msgs.length === 0) return;
            const answer = parseServerResponse(msgs[0]);
            finish("error" in answer ? new Error(`rejected: ${answer.error}`) : null, "accepted");
          } catch (err) {
            finish(err as Error);
          }
        });
      };
      socket.on("data", onHead);
    });
  }

  it("takes a burst of 300 upgrades from one address whole, at most maxPendingPerAddress at a time", async () => {
    const { hs, port } = await start({ maxPending: 64, maxPendingPerAddress: 16 });
    // The first handshakes are held until the whole burst has arrived, so the burst really overlaps.
    const held: PendingHandshake[] = [];
    let release = false;
    let maxPending = 0;
    hs.on("handshake", (p) => {
      maxPending = Math.max(maxPending, hs.pendingCount);
      if (release) setImmediate(() => acceptNow(p));
      else held.push(p);
    });
    const burst = Promise.all(Array.from({ length: 300 }, () => handshake(port, A)));
    await until(() => held.length === 16 && hs.queuedCount === 284, 30_000, "16 pending and 284 queued");
    release = true;
    for (const p of held) acceptNow(p);
    const outcomes = await burst;
    assert.equal(outcomes.filter((o) => o === "accepted").length, 300);
    assert.equal(hs.stats.accepted, 300);
    assert.equal(hs.stats.busy, 0);
    assert.equal(hs.queueStats.queued, 284);
    assert.ok(maxPending <= 16, `at most 16 pending from the one address, saw ${maxPending}`);
    assert.equal(hs.queuedCount, 0);
    assert.equal(hs.pendingCount, 0);
  });

  it("serves another address within a turn while one address floods the queue", async () => {
    const limit = 4;
    const { hs, port } = await start({ maxPending: limit, maxPendingPerAddress: limit });
    let ended = false;
    cleanups.push(() => (ended = true));
    // The flooding address's handshakes take a while on the server (slow matchmaking); the other's do not.
    // The flood's first handshakes are held until all of it has arrived.
    const acceptedFrom = { [A]: 0, [B]: 0 };
    let floodHellos = 0;
    let floodHellosBeforeB = 0;
    const held: (() => void)[] = [];
    let release = false;
    hs.on("handshake", (p) => {
      const answer = (): void => {
        // After a failed assertion the server may be closed under a delayed answer: nothing left to answer.
        if (!ended) acceptNow(p);
        acceptedFrom[p.remoteAddress as typeof A]++;
      };
      if (p.remoteAddress === A) floodHellos++;
      else floodHellosBeforeB = floodHellos;
      if (p.remoteAddress !== A) answer();
      else if (release) setTimeout(answer, 5);
      else held.push(answer);
    });
    const flood = Promise.all(Array.from({ length: 150 }, () => handshake(port, A)));
    await until(() => held.length === limit && hs.queuedCount === 150 - limit, 30_000, "the flood to fill the slots and the queue");
    release = true;
    for (const answer of held) setTimeout(answer, 5);

    for (let i = 0; i < 3; i++) {
      const before = floodHellos;
      assert.equal(await handshake(port, B), "accepted");
      const waited = floodHellosBeforeB - before;
      // Its turn comes after the handshakes holding slots when it arrived and one more from the flood.
      // Counted from the client's side, more of the flood's hellos fall in: those that start while its
      // upgrade travels to the server, and those on the other slots that finish TLS while its own TLS
      // handshake runs; on a loaded machine a few more. 4 * limit leaves room for that and still fails
      // a first-come-first-served queue by far: there it waits for the whole flood (about 145).
      assert.ok(waited <= 4 * limit, `the second address waited for ${waited} of the flood's hellos (limit ${4 * limit})`);
    }
    assert.ok(hs.queuedCount > 0, "the flood was still queued when the other address was done");
    const outcomes = await flood;
    assert.equal(outcomes.filter((o) => o === "accepted").length, 150, "the flood itself is served in the end");
    assert.deepEqual(acceptedFrom, { [A]: 150, [B]: 3 });
    assert.equal(hs.stats.busy, 0);
  });

  it("answers 503 at once past the per-address and the overall queue bounds, and serves the queued ones later", async () => {
    const { hs, port } = await start({ maxPending: 2, maxPendingPerAddress: 2, maxQueued: 5, maxQueuedPerAddress: 3 });
    const held: PendingHandshake[] = [];
    let release = false;
    hs.on("handshake", (p) => (release ? acceptNow(p) : held.push(p)));

    const fromA = Array.from({ length: 5 }, () => handshake(port, A));
    await until(() => held.length === 2 && hs.queuedCount === 3, 10_000, "2 pending and 3 queued from the first address");
    assert.equal(await handshake(port, A), "busy", "a 4th waiting upgrade from one address is refused");
    const fromB = Array.from({ length: 2 }, () => handshake(port, B));
    await until(() => hs.queuedCount === 5, 10_000, "the second address's upgrades to queue");
    assert.equal(await handshake(port, B), "busy", "the whole queue is full");
    assert.equal(hs.stats.busy, 2);

    release = true;
    for (const p of held) acceptNow(p);
    const outcomes = await Promise.all([...fromA, ...fromB]);
    assert.deepEqual(outcomes, Array(7).fill("accepted"));
    assert.equal(hs.queueStats.queued, 5);
    assert.equal(hs.queueStats.expired, 0);
  });

  it("answers 503 to an upgrade that waited maxQueueWaitMs, and close() ends queued upgrades", async () => {
    const { hs, port } = await start({ maxPending: 1, maxPendingPerAddress: 1, maxQueueWaitMs: 200 });
    const held: PendingHandshake[] = [];
    hs.on("handshake", (p) => held.push(p));
    const first = handshake(port, A).then(
      () => "answered",
      (err: Error) => err.message,
    );
    await until(() => held.length === 1, 10_000, "the first handshake");
    const t0 = performance.now();
    assert.equal(await handshake(port, B), "busy");
    assert.ok(performance.now() - t0 >= 190, "it waited in the queue first");
    assert.equal(hs.queueStats.expired, 1);
    assert.equal(hs.queuedCount, 0);

    const queued = handshake(port, B).then(
      () => "answered",
      (err: Error) => err.message,
    );
    await until(() => hs.queuedCount === 1, 10_000, "the upgrade to queue");
    hs.close();
    assert.match(await queued, /closed without an answer/);
    assert.equal(hs.queuedCount, 0);
    assert.match(await first, /closed without an answer/, "close() ends the pending handshake too");
  });

  it("refuses bad queue options", async () => {
    const server = http.createServer();
    const base = { server, cert: dev.cert, key: dev.key, timeoutMs: 1000, maxPending: 1, maxPendingPerAddress: 1 };
    assert.throws(() => new HandshakeServer({ ...base, maxQueued: -1 }), /maxQueued must be a non-negative integer/);
    assert.throws(() => new HandshakeServer({ ...base, maxQueuedPerAddress: 1.5 }), /maxQueuedPerAddress must be a non-negative integer/);
    assert.throws(() => new HandshakeServer({ ...base, maxQueueWaitMs: 0 }), /maxQueueWaitMs must be a positive number/);
  });
});
