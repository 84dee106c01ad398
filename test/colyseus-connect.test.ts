/**
 * Colyseus over fastnet: what happens before a room is joined. Certificate verification (user
 * certificate with and without its CA, dev-certificate pinning on and off), an advertised UDP port that
 * does not answer, and latency probes (getLatency, selectByLatency).
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { Room, type Client } from "@colyseus/core";
import { FastnetTransport, generateDevCertificate, type DevCertificate } from "../src/index.js";
import { FastnetClient } from "../src/client.js";
import { ColyseusHarness, rejectionOf, waitFor, within } from "./support/colyseus-harness.js";

class PlainRoom extends Room {
  override onJoin(client: Client): void {
    client.send("hello", "world");
  }
}

/** A UDP socket on loopback that swallows everything and never answers (no ICMP either). */
async function blackHole(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  s.on("message", () => {});
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", () => resolve()));
  return s;
}

/** A loopback UDP port that was just free: datagrams to it draw ICMP port unreachable. */
async function closedPort(): Promise<number> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", () => resolve()));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe("Colyseus over fastnet: certificates", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;
  let cert: DevCertificate;

  before(async () => {
    cert = await generateDevCertificate();
  });

  afterEach(async () => {
    await h?.stop();
  });

  it("a server with its own certificate: a client without the CA is refused, naming the certificate problem", async () => {
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { tls: { cert: cert.cert, key: cert.key } });
    assert.equal(h.transport.fingerprint, undefined, "no dev fingerprint is published with a user certificate");
    const t0 = performance.now();
    const err = await rejectionOf(h.client().joinOrCreate("plain"), 10_000, "join without the CA");
    assert.match(err.message, /certificate rejected by CA verification: .*self[- ]signed/i);
    assert.ok(performance.now() - t0 < 5000);
    assert.equal(h.transport.engine.sessionCount, 0);
  });

  it("the same server with tls: { ca } works", async () => {
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { tls: { cert: cert.cert, key: cert.key } });
    const room = await h.join(h.client({ tls: { ca: cert.cert } }), "plain");
    const hello = await within(new Promise((resolve) => room.onMessage("hello", resolve)), 5000, "hello");
    assert.equal(hello, "world");
  });

  it("pinning the wrong fingerprint is refused", async () => {
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { tls: { cert: cert.cert, key: cert.key } });
    const other = await generateDevCertificate();
    const err = await rejectionOf(h.client({ fingerprint: other.fingerprint }).joinOrCreate("plain"), 10_000, "join with a wrong pin");
    assert.match(err.message, /certificate fingerprint mismatch: pinned [0-9A-F:]+ but server presented [0-9A-F:]+/);
  });

  it("a dev server: pinned from the matchmaking response by default; pinDevCertificate: false is refused", async () => {
    h = await new ColyseusHarness().start({ plain: PlainRoom });
    assert.equal(h.transport.fingerprint?.length, 32, "the dev server publishes its fingerprint");
    await h.join(h.client(), "plain");
    const err = await rejectionOf(h.client({ pinDevCertificate: false }).joinOrCreate("plain"), 10_000, "join without pinning");
    assert.match(err.message, /certificate rejected by CA verification: .*self[- ]signed/i);
  });
});

describe("Colyseus over fastnet: unreachable UDP port", function () {
  this.timeout(30_000);
  let h: ColyseusHarness | undefined;
  let hole: dgram.Socket | undefined;

  afterEach(async () => {
    await h?.stop();
    h = undefined;
    if (hole) await new Promise<void>((resolve) => hole!.close(() => resolve()));
    hole = undefined;
  });

  it("an advertised port that answers with ICMP unreachable: join rejects at once with a clear error", async () => {
    const port = await closedPort();
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { publicPort: port });
    const t0 = performance.now();
    const err = await rejectionOf(h.client({ path: "udp" }).joinOrCreate("plain"), 10_000, "join to a closed UDP port");
    const took = performance.now() - t0;
    assert.match(err.message, new RegExp(`UDP bind to 127\\.0\\.0\\.1:${port} failed`));
    assert.ok(took < 3000, `rejected after ${took.toFixed(0)} ms`);
    await waitFor(() => h!.transport.engine.sessionCount === 0, 5000, "the half-made server session to go");
  });

  it("an advertised port that swallows everything: join rejects after the bind timeout, naming it", async () => {
    hole = await blackHole();
    const port = hole.address().port;
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { publicPort: port });
    const t0 = performance.now();
    const err = await rejectionOf(h.client({ path: "udp", bindTimeoutMs: 1500 }).joinOrCreate("plain"), 10_000, "join to a black hole");
    const took = performance.now() - t0;
    assert.match(err.message, new RegExp(`UDP bind to 127\\.0\\.0\\.1:${port} failed`));
    assert.match(err.message, /bind timeout/);
    assert.ok(took >= 1400 && took < 5000, `rejected after ${took.toFixed(0)} ms`);
  });
});

describe("Colyseus over fastnet: latency probes", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;
  const extra: FastnetTransport[] = [];

  beforeEach(async () => {
    h = await new ColyseusHarness().start({ plain: PlainRoom });
  });

  afterEach(async () => {
    await h.stop();
    for (const t of extra.splice(0)) {
      t.shutdown();
      await waitFor(() => !t.server.listening, 5000, "the extra transport to close");
    }
  });

  it("getLatency() with the server's fingerprint measures a loopback round trip", async () => {
    const client = new FastnetClient(h.endpoint, { fingerprint: [...h.transport.fingerprint!] });
    const one = await within(client.getLatency(), 5000, "getLatency");
    assert.ok(one > 0 && one < 500, `latency ${one} ms`);
    const avg = await within(client.getLatency({ pingCount: 5 }), 5000, "getLatency x5");
    assert.ok(avg > 0 && avg < 500, `latency ${avg} ms`);
    // Probes are not room sessions: they are closed again.
    await waitFor(() => h.transport.engine.sessionCount === 0, 5000, "probe sessions to close");
  });

  it("getLatency() learns the pin from a join; without one it fails on the certificate", async () => {
    const client = h.client();
    const err = await rejectionOf(client.getLatency({ timeout: 3000 }), 5000, "getLatency without a pin");
    assert.match(err.message, /Failed to get latency: .*certificate/i);
    await h.join(client, "plain");
    const ms = await within(client.getLatency(), 5000, "getLatency after a join");
    assert.ok(ms > 0 && ms < 500);
  });

  it("selectByLatency() picks a live endpoint over dead ones, and fails when none answers", async () => {
    // A second live endpoint: a bare FastnetTransport answers latency probes without a Colyseus server.
    const cert = await generateDevCertificate();
    // The harness server uses a dev certificate; these two share a user certificate (one CA for all).
    const live: FastnetTransport[] = [];
    for (let i = 0; i < 2; i++) {
      const t = new FastnetTransport({ tls: { cert: cert.cert, key: cert.key } });
      extra.push(t);
      await within(
        new Promise<void>((resolve, reject) => t.listen(0, "127.0.0.1", undefined, (e?: Error) => (e ? reject(e) : resolve()))),
        5000,
        "extra transport listen",
      );
      live.push(t);
    }
    const deadTcp = `http://127.0.0.1:${await closedPort()}`;
    const endpoints = [deadTcp, `http://127.0.0.1:${live[0]!.engine.port}`, `http://127.0.0.1:${live[1]!.engine.port}`];
    const best = await within(FastnetClient.selectByLatency(endpoints, { tls: { ca: cert.cert } }, { timeout: 2000 }), 10_000, "selectByLatency");
    assert.ok(best instanceof FastnetClient);
    assert.ok(
      [live[0]!.engine.port, live[1]!.engine.port].includes(best.settings.port!),
      `picked port ${best.settings.port}`,
    );
    const none = await rejectionOf(
      FastnetClient.selectByLatency([deadTcp], { tls: { ca: cert.cert } }, { timeout: 1000 }),
      5000,
      "selectByLatency with no live endpoint",
    );
    assert.match(none.message, /All endpoints failed to respond/);
  });
});
