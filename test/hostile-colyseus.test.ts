/**
 * Issue 7, the Colyseus adapter against a hostile player: one who holds valid keys (a real fastnet
 * session through the public `connect()`) and claims whatever it likes in its hello. Every test has a
 * well-behaved player beside it and checks that player is unaffected.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { Client as PlainSdkClient } from "@colyseus/sdk";
import { Room, matchMaker, type AuthContext, type Client } from "@colyseus/core";
import { FastnetClient } from "../src/client.js";
import { FastnetError, type FastnetServerClient, type FastnetTransportOptions } from "../src/index.js";
import { transportOf } from "../src/client.js";
import { ColyseusHarness, recordEvents, rejectionOf, waitFor, within } from "./support/colyseus-harness.js";
import { UdpRelay } from "./support/colyseus-udp-relay.js";
import { HeaderProxy } from "./support/header-proxy.js";
import { captureConsoleError, type ConsoleCapture } from "./support/console-capture.js";
import { abortRawPlayers, rawPlayer, roomPath } from "./support/raw-player.js";

/** What the arena room saw, in order. */
const arenaLog: Array<{ what: "join" | "drop" | "reconnect" | "leave"; sessionId: string; code?: number }> = [];

class ArenaRoom extends Room {
  override onCreate(): void {
    this.onMessage("ping", (client, n: number) => client.send("pong", n));
    this.onMessage("boom", () => {
      throw new Error("room handler bug");
    });
    this.onMessage("kick-me", (client, code: number) => client.leave(code));
  }
  override onJoin(client: Client): void {
    arenaLog.push({ what: "join", sessionId: client.sessionId });
  }
  override async onDrop(client: Client, code?: number): Promise<void> {
    arenaLog.push({ what: "drop", sessionId: client.sessionId, code });
    await this.allowReconnection(client, 20).catch(() => {});
  }
  override onReconnect(client: Client): void {
    arenaLog.push({ what: "reconnect", sessionId: client.sessionId });
  }
  override onLeave(client: Client, code?: number): void {
    arenaLog.push({ what: "leave", sessionId: client.sessionId, code });
  }
}

/** What onAuth saw of each join's auth context. */
const authSeen: Array<{ ip: string | undefined; forwardedFor: string | null; realIp: string | null; forwarded: string | null; custom: string | null }> = [];

class AuthRoom extends Room {
  override onAuth(_client: Client, _options: unknown, context: AuthContext): boolean {
    authSeen.push({
      ip: context.ip,
      forwardedFor: context.headers.get("x-forwarded-for"),
      realIp: context.headers.get("x-real-ip"),
      forwarded: context.headers.get("forwarded"),
      custom: context.headers.get("x-custom"),
    });
    return true;
  }
}

/** Proxy headers a player puts in its hello, hoping to pick its own IP (and a header that is kept). */
const LYING_HEADERS = { "x-forwarded-for": "1.2.3.4", "X-Real-IP": "5.6.7.8", Forwarded: "for=9.9.9.9", "x-custom": "kept" };

describe("hostile players against the Colyseus adapter", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;
  let relay: UdpRelay | undefined;
  let capture: ConsoleCapture | undefined;

  async function start(options: FastnetTransportOptions = {}): Promise<void> {
    h = await new ColyseusHarness().start({ arena: ArenaRoom, auth: AuthRoom }, options);
  }

  /** A well-behaved player in the arena, answering pings. */
  async function victim() {
    const room = await h.join(h.client(), "arena");
    room.reconnection.minUptime = 0;
    const pongs: number[] = [];
    room.onMessage("pong", (n: number) => void pongs.push(n));
    const events = recordEvents(room);
    const serverRoom = matchMaker.getLocalRoomById(room.roomId) as ArenaRoom;
    const serverClient = serverRoom.clients.get(room.sessionId) as unknown as FastnetServerClient;
    const stillFine = async (n: number): Promise<void> => {
      room.send("ping", n);
      await waitFor(() => pongs.includes(n), 5000, `the victim's pong ${n}`);
      assert.deepEqual(events.drop, [], "the victim saw no drop");
      assert.deepEqual(events.leave, [], "the victim saw no leave");
      assert.equal(serverClient.readyState, 1, "the victim's server-side session is open");
    };
    // Its own session: after a reconnection the old Client object reports the new one.
    const serverSession = serverClient.session;
    return { room, pongs, events, serverRoom, serverClient, serverSession, stillFine };
  }

  beforeEach(() => {
    arenaLog.length = 0;
    authSeen.length = 0;
  });

  afterEach(async () => {
    capture?.restore();
    capture = undefined;
    abortRawPlayers();
    if (relay) relay.cut = false;
    await h?.stop();
    await relay?.close();
    relay = undefined;
  });

  it("a reconnection with a wrong token for a live session is refused, and the victim is untouched", async () => {
    await start();
    const v = await victim();
    const attacker = await rawPlayer(h, roomPath(v.room.roomId, `sessionId=${v.room.sessionId}&reconnectionToken=anything`));
    const closed = await within(attacker.closed, 5000, "the attacker's close");
    assert.deepEqual(
      arenaLog.map((e) => e.what),
      ["join"],
      "the room ran no onDrop for the victim",
    );
    await v.stillFine(1);
    assert.equal(v.serverRoom.clients.length, 1);
    assert.equal(closed.code, 4003, "a refused reconnection closes with FAILED_TO_RECONNECT");
    assert.equal(closed.reason, "bad reconnection token");
  });

  it("a claimed sessionId is not indexed before Colyseus accepts it: the victim's own fast reconnection still replaces its stale session", async () => {
    // The victim reaches the server through a relay, so its path can die without the server noticing.
    relay = new UdpRelay();
    const relayPort = await relay.listen();
    await start({ publicPort: relayPort });
    relay.setTarget(h.transport.engine.udpPort);
    const v = await victim();

    // The attacker claims the victim's sessionId without any token: Colyseus refuses it.
    const attacker = await rawPlayer(h, roomPath(v.room.roomId, `sessionId=${v.room.sessionId}`));
    const closed = await within(attacker.closed, 5000, "the attacker's close");
    assert.equal(closed.code, 4002);
    await v.stillFine(1);

    // The victim's path dies and it gives its session up; the server still believes it alive (10 s idle).
    relay.killExistingFlows();
    const t0 = performance.now();
    transportOf(v.room).session!.abort(1006, "test: network changed");
    await waitFor(() => v.events.reconnect.length === 1, 8000, "the victim's onReconnect");
    const took = performance.now() - t0;
    assert.ok(took < 4000, `reconnected after ${took.toFixed(0)} ms: the stale session was found and replaced at once`);
    assert.equal(v.serverSession.readyState, 3, "the stale session was closed");
    assert.deepEqual(
      arenaLog.map((e) => [e.what, e.code]),
      [
        ["join", undefined],
        ["drop", 1006],
        ["reconnect", undefined],
      ],
    );
  });

  it("proxy headers in the hello do not change the IP onAuth sees: it is the Upgrade request's peer", async () => {
    await start();
    await h.join(h.client({ headers: LYING_HEADERS }), "auth");
    assert.equal(authSeen.length, 1);
    assert.deepEqual(authSeen[0], { ip: "127.0.0.1", forwardedFor: null, realIp: null, forwarded: null, custom: "kept" });
  });

  it("behind a reverse proxy, the IP is the one the proxy put on the Upgrade request, whatever the hello says", async () => {
    await start();
    const proxy = new HeaderProxy(h.port, "X-Forwarded-For: 203.0.113.7");
    try {
      const port = await proxy.listen();
      const client = new FastnetClient(`http://127.0.0.1:${port}`, { headers: LYING_HEADERS });
      await h.track(await within(client.joinOrCreate("auth"), 10_000, "join through the proxy"));
      assert.equal(authSeen.length, 1);
      assert.deepEqual(authSeen[0], { ip: "203.0.113.7", forwardedFor: "203.0.113.7", realIp: null, forwarded: null, custom: "kept" });
    } finally {
      await proxy.close();
    }
  });

  it("a room message handler that throws is reported through Colyseus' logger with the session id, and the session carries on", async () => {
    await start();
    const v = await victim();
    capture = captureConsoleError(); // Colyseus' default logger is console
    v.room.send("boom", 1);
    v.room.send("ping", 2);
    await v.stillFine(2);
    const reports = capture.lines.filter((l) => l.includes("room handler bug"));
    assert.equal(reports.length, 1, capture.lines.join("\n"));
    assert.ok(reports[0]!.includes(v.room.sessionId), `the report names the session: ${reports[0]}`);
    // The throw skipped no acknowledgement: everything the client sent gets acknowledged (a probe
    // timeout is no evidence either way: a loaded machine may delay an ACK past one PTO).
    await waitFor(() => transportOf(v.room).getStats()!.bytesInFlight === 0, 5000, "the server to acknowledge everything");
  });

  it("an SDK message handler that throws on the client is reported with console.error; the room stays connected", async () => {
    await start();
    const v = await victim();
    capture = captureConsoleError();
    let calls = 0;
    v.room.onMessage("pong", () => {
      if (++calls === 1) throw new Error("client handler bug");
    });
    v.room.send("ping", 1);
    await waitFor(() => calls === 1, 5000, "the throwing handler ran");
    await v.stillFine(2);
    assert.equal(calls, 2);
    assert.equal(capture.lines.filter((l) => l.includes("client handler bug")).length, 1, capture.lines.join("\n"));
    assert.equal(transportOf(v.room).isOpen, true);
  });

  it("a hello path that new URL() cannot parse fails that handshake with a clear error; nothing else notices", async () => {
    await start();
    const v = await victim();
    const before = h.transport.engine.stats.sessionsOpened;
    for (const path of ["//[", "//:99999/x/y", "not-a-path"]) {
      const err = await rejectionOf(rawPlayer(h, path), 5000, `connect with path ${path}`);
      assert.match(err.message, /server rejected the handshake: invalid hello path/, `${path}: ${err.message}`);
    }
    assert.equal(h.transport.engine.stats.sessionsOpened, before, "no session was opened for them");
    assert.equal(h.transport.engine.sessionCount, 1, "only the victim's session exists");
    await v.stillFine(1);
  });

  it("with webSocket: false, a plain @colyseus/sdk (WebSocket) client fails within seconds, told to use FastnetClient", async () => {
    await start({ webSocket: false });
    const v = await victim();
    const plain = new PlainSdkClient(h.endpoint);
    capture = captureConsoleError(); // the SDK warns about the unexpected close
    const err = await rejectionOf(plain.joinOrCreate("arena"), 5000, "a plain SDK join");
    assert.match(err.message, /this server's rooms use fastnet, not WebSocket: connect with FastnetClient/);
    await v.stillFine(1);
  });

  it("50 Upgrades that no one takes are answered and closed at once, none held open", async () => {
    await start();
    const answers = await Promise.all(
      Array.from(
        { length: 50 },
        (_, i) =>
          new Promise<string>((resolve, reject) => {
            const s = net.connect(h.port, "127.0.0.1");
            let got = "";
            const timer = setTimeout(() => {
              s.destroy();
              reject(new Error(`socket ${i} still open after 3 s`));
            }, 3000);
            s.on("data", (d: Buffer) => (got += d.toString("latin1")));
            s.on("error", () => {});
            s.on("close", () => {
              clearTimeout(timer);
              resolve(got);
            });
            s.write(`GET /${i}/room HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: custom/${i}\r\n\r\n`);
          }),
      ),
    );
    for (const a of answers) assert.match(a, /^HTTP\/1\.1 404 Not Found\r\n[\s\S]*fastnet handshakes use/);
  });

  for (const code of [-1, 4000.5, 70_000]) {
    it(`server: client.leave(${code}) does not throw into Colyseus; the player is closed with 4002 naming the code`, async () => {
      await start();
      const v = await victim();
      const other = await victim();
      capture = captureConsoleError();
      const warnings: string[] = [];
      const warn = console.warn;
      console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(" "));
      try {
        v.room.send("kick-me", code);
        await waitFor(() => v.events.leave.length === 1, 5000, "the kicked player's onLeave");
      } finally {
        console.warn = warn;
      }
      assert.deepEqual(
        v.events.leave.map((e) => [e.code, e.reason]),
        [[4002, `invalid close code ${code}`]],
      );
      assert.ok(warnings.some((w) => w.includes(`client.leave(${code})`)), warnings.join("\n"));
      assert.deepEqual(capture.lines, [], "nothing threw");
      await waitFor(() => arenaLog.some((e) => e.what === "drop" && e.sessionId === v.room.sessionId), 5000, "the room's onDrop");
      assert.equal(arenaLog.find((e) => e.what === "drop")!.code, 4002);
      await other.stillFine(1);
    });
  }

  it("client: the transport's close(-1) does not throw; the session closes with 1000", async () => {
    await start();
    const v = await victim();
    const warn = console.warn;
    const warnings: string[] = [];
    console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(" "));
    try {
      assert.doesNotThrow(() => transportOf(v.room).close(-1, "bye"));
      assert.doesNotThrow(() => transportOf(v.room).close(4000.5));
      await waitFor(() => v.events.leave.length === 1, 5000, "the SDK's onLeave");
    } finally {
      console.warn = warn;
    }
    assert.deepEqual(v.events.leave.map((e) => [e.code, e.reason]), [[1000, "bye"]]);
    assert.ok(warnings.some((w) => w.includes("close(-1)")), warnings.join("\n"));
    await waitFor(() => arenaLog.some((e) => e.what === "drop"), 5000, "the room's onDrop");
    assert.equal(arenaLog.find((e) => e.what === "drop")!.code, 1000);
  });

  it("a latency probe whose send queue is full is closed, not reported once per ping", async () => {
    await start();
    // Stand in for a probe that never acknowledges: its server-side session refuses every send.
    h.transport.engine.once("session", (session) => {
      session.send = () => {
        throw new FastnetError("SEND_QUEUE_FULL", "send queue full (test)");
      };
    });
    capture = captureConsoleError();
    const probe = await rawPlayer(h, "/");
    probe.session.send(Uint8Array.of(9)); // Protocol.PING
    const closed = await within(probe.closed, 5000, "the probe's close");
    assert.equal(closed.code, 1000);
    assert.deepEqual(capture.lines, [], "no error reported");
  });
});
