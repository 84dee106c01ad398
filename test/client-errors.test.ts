/**
 * The rows of docs/errors.md, provoked for real: what an SDK user receives (error type, WebSocket-style
 * code, and the named fastnet code on the error object or at the start of the close reason).
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { Room } from "@colyseus/core";
import { MatchMakeError, ServerError } from "@colyseus/sdk";
import { FastnetError, generateDevCertificate } from "../src/index.js";
import { FastnetJoinError, fastnetCodeOf, transportOf } from "../src/client.js";
import { ColyseusHarness, recordEvents, rejectionOf, waitFor } from "./support/colyseus-harness.js";

class PlainRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client, m) => client.send("echo", m));
  }
}

/** A loopback UDP port that was just free: datagrams to it draw ICMP port unreachable. */
async function closedPort(): Promise<number> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", () => resolve()));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A loopback UDP socket that reads and never answers. */
async function blackHole(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  s.on("message", () => {});
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", () => resolve()));
  return s;
}

/** What docs/errors.md promises for a failed join: a MatchMakeError with `code`, named by `fastnetCode`. */
function assertJoinError(err: unknown, code: number, fastnetCode: string): asserts err is FastnetJoinError {
  assert.ok(err instanceof FastnetJoinError, `a FastnetJoinError, got ${String(err)}`);
  assert.ok(err instanceof MatchMakeError, "still the SDK's MatchMakeError");
  assert.equal(err.code, code);
  assert.equal(err.fastnetCode, fastnetCode);
  assert.equal(fastnetCodeOf(err), fastnetCode);
  assert.ok(err.cause instanceof FastnetError && err.cause.code === fastnetCode);
  assert.ok(err.message.startsWith(`${fastnetCode}: `), err.message);
}

describe("errors as SDK users receive them (docs/errors.md)", function () {
  this.timeout(30_000);
  let h: ColyseusHarness | undefined;
  let hole: dgram.Socket | undefined;

  afterEach(async () => {
    await h?.stop();
    h = undefined;
    if (hole) await new Promise<void>((resolve) => hole!.close(() => resolve()));
    hole = undefined;
  });

  it("CERTIFICATE_REJECTED: a certificate that does not verify -> MatchMakeError 1015", async () => {
    const cert = await generateDevCertificate();
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { tls: { cert: cert.cert, key: cert.key } });
    const err = await rejectionOf(h.client().joinOrCreate("plain"), 10_000, "join without the CA");
    assertJoinError(err, 1015, "CERTIFICATE_REJECTED");
    assert.match(err.message, /certificate rejected by CA verification/);
  });

  it("CERTIFICATE_REJECTED through consumeSeatReservation: the SDK's ServerError, with fastnetCode and cause", async () => {
    h = await new ColyseusHarness().start({ plain: PlainRoom });
    const client = h.client({ pinDevCertificate: false });
    const reservation = await client.http.post("/matchmake/joinOrCreate/plain", { body: {}, headers: { "Content-Type": "application/json" } });
    const err = await rejectionOf(client.consumeSeatReservation(reservation.data as any), 10_000, "consume without the pin");
    assert.ok(err instanceof ServerError);
    assert.equal(err.code, 1015);
    assert.equal(fastnetCodeOf(err), "CERTIFICATE_REJECTED");
    assert.equal((err as ServerError & { fastnetCode?: string }).fastnetCode, "CERTIFICATE_REJECTED");
  });

  it("SERVER_UNREACHABLE: the UDP port answers ICMP unreachable -> MatchMakeError 1006 at once", async () => {
    const port = await closedPort();
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { publicPort: port });
    const t0 = performance.now();
    const err = await rejectionOf(h.client({ path: "udp" }).joinOrCreate("plain"), 10_000, "join to a closed UDP port");
    assertJoinError(err, 1006, "SERVER_UNREACHABLE");
    assert.match(err.message, /UDP bind to 127\.0\.0\.1:\d+ failed: ECONNREFUSED/);
    assert.ok(performance.now() - t0 < 3000, "at once, not after bindTimeoutMs");
  });

  it('SERVER_UNREACHABLE under path "auto": the WebSocket path is tried, and the room joins over it', async () => {
    const port = await closedPort();
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { publicPort: port });
    const room = await h.join(h.client(), "plain");
    assert.equal(transportOf(room).path, "websocket");
  });

  it("SERVER_BUSY: a full server (maxSessions) -> MatchMakeError 1006, no fallback to WebSocket", async () => {
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { maxSessions: 1, webSocket: false });
    await h.join(h.client({ path: "udp" }), "plain");
    const err = await rejectionOf(h.client({ handshakeTimeoutMs: 1500 }).joinOrCreate("plain"), 10_000, "join to a full server");
    assertJoinError(err, 1006, "SERVER_BUSY");
    assert.match(err.message, /server full: 1 sessions open/);
  });

  it('SERVER_BUSY: a full WebSocket path (maxConnections) -> MatchMakeError 1006 with path "websocket"', async () => {
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { webSocket: { maxConnections: 1 } });
    await h.join(h.client({ path: "websocket" }), "plain");
    const err = await rejectionOf(h.client({ path: "websocket" }).joinOrCreate("plain"), 10_000, "join to a full WebSocket path");
    assertJoinError(err, 1006, "SERVER_BUSY");
    assert.match(err.message, /503/);
  });

  it("BIND_TIMEOUT: the UDP port swallows everything -> MatchMakeError 1006 after bindTimeoutMs", async () => {
    hole = await blackHole();
    h = await new ColyseusHarness().start({ plain: PlainRoom }, { publicPort: hole.address().port });
    const err = await rejectionOf(h.client({ path: "udp", bindTimeoutMs: 800 }).joinOrCreate("plain"), 10_000, "join to a black hole");
    assertJoinError(err, 1006, "BIND_TIMEOUT");
    assert.match(err.message, /bind timeout/);
  });

  it("MESSAGE_TOO_LARGE: thrown by room.send(), a FastnetError (no close)", async () => {
    h = await new ColyseusHarness().start({ plain: PlainRoom });
    const room = await h.join(h.client(), "plain");
    assert.throws(
      () => room.send("echo", "x".repeat(600_000)),
      (e: unknown) => e instanceof FastnetError && e.code === "MESSAGE_TOO_LARGE" && fastnetCodeOf(e) === "MESSAGE_TOO_LARGE",
    );
    assert.equal(transportOf(room).isOpen, true);
  });

  it("MESSAGE_TOO_LARGE from the server (a message above the client's maxMessageSize): onLeave 1009 naming the limit", async () => {
    h = await new ColyseusHarness().start({ plain: PlainRoom });
    const room = await h.join(h.client({ maxMessageSize: 10_000 }), "plain");
    const ev = recordEvents(room);
    room.send("echo", "y".repeat(9_000)); // the echo adds a few bytes of framing: still fits
    room.send("echo", "y".repeat(20_000)); // this one's echo does not
    await waitFor(() => ev.leave.length + ev.drop.length > 0, 5000, "the close");
    assert.equal(ev.leave[0]?.code, 1009);
    assert.match(ev.leave[0]?.reason ?? "", /^MESSAGE_TOO_LARGE: message of \d+ bytes exceeds maxMessageSize 10000/);
    assert.equal(fastnetCodeOf(ev.leave[0]?.reason), "MESSAGE_TOO_LARGE");
  });

  it("SERVER_UNREACHABLE: the reason of onDrop/onLeave starts with the code (fastnetCodeOf reads it)", () => {
    // Provoked for real in test/client-server-killed.test.ts (SIGKILL); here the parsing of such a reason.
    const reason = "SERVER_UNREACHABLE: the network reported the server's UDP port closed and nothing was heard from the server for 1500 ms";
    assert.equal(fastnetCodeOf(reason), "SERVER_UNREACHABLE");
    assert.equal(fastnetCodeOf("idle timeout"), undefined);
    assert.equal(fastnetCodeOf(new Error("x")), undefined);
  });
});
