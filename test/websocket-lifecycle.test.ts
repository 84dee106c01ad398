/**
 * The WebSocket path of the dual-stack FastnetTransport, with the stock @colyseus/sdk Client: join,
 * consented leave, unconsented drop with the SDK's automatic reconnection, reconnection by token, a
 * reconnection that replaces a connection the server still believes alive (WebSocket or fastnet), the
 * latency probe, server shutdown, and what `transport.clients` and the counters say throughout.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { CloseCode, Room, matchMaker, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { transportOf } from "../src/client.js";
import type { FastnetServerClient } from "../src/index.js";
import { ColyseusHarness, recordEvents, rejectionOf, waitFor, within } from "./support/colyseus-harness.js";
import { TcpRelay } from "./support/tcp-relay.js";
import { PlainClient, joinPlain } from "./support/websocket-sdk.js";

const LifeState = schema({ counter: t.number() }, "WsLifeState");

/** What the server room saw, in order. */
const roomLog: Array<{ what: "join" | "drop" | "reconnect" | "leave"; sessionId: string; code?: number }> = [];

class LifeRoom extends Room {
  override state = new LifeState();
  override onCreate(): void {
    this.state.counter = 0;
    this.onMessage("ping", (client, n: number) => client.send("pong", n));
    this.onMessage("bump", () => void this.state.counter++);
  }
  override onJoin(client: Client): void {
    roomLog.push({ what: "join", sessionId: client.sessionId });
  }
  override async onDrop(client: Client, code?: number): Promise<void> {
    roomLog.push({ what: "drop", sessionId: client.sessionId, code });
    await this.allowReconnection(client, 20);
  }
  override onReconnect(client: Client): void {
    roomLog.push({ what: "reconnect", sessionId: client.sessionId });
  }
  override onLeave(client: Client, code?: number): void {
    roomLog.push({ what: "leave", sessionId: client.sessionId, code });
  }
}

type LifeRoomState = { counter: number };
const events = () => roomLog.map((e) => (e.code === undefined ? e.what : `${e.what} ${e.code}`));

describe("Dual stack: the WebSocket path with a plain @colyseus/sdk client", function () {
  this.timeout(60_000);
  let h: ColyseusHarness;

  beforeEach(async () => {
    roomLog.length = 0;
    h = await new ColyseusHarness().start({ life: LifeRoom });
  });

  afterEach(async () => {
    await h.stop();
  });

  async function joinWeb(client = new PlainClient(h.endpoint)) {
    const room = await joinPlain<SdkRoom<any, LifeRoomState>>(h, client, "life");
    await waitFor(() => room.state?.counter === 0, 5000, "the initial state");
    const pongs: number[] = [];
    room.onMessage("pong", (n: number) => void pongs.push(n));
    return { room, pongs, sdk: recordEvents(room) };
  }

  /** The server-side WebSocket of `room`'s player. */
  const socketOf = (room: SdkRoom) => h.transport.webSocket!.clients.get(room.sessionId)!.ref;

  it("joins, gets state and messages, and leaves consented: onLeave 4000 on both sides, counters follow", async () => {
    const { room, pongs, sdk } = await joinWeb();
    assert.deepEqual([...h.transport.clients.keys()], [room.sessionId]);
    assert.equal(h.transport.engine.sessionCount, 0, "no fastnet session");
    room.send("ping", 7);
    room.send("bump");
    await waitFor(() => pongs.length === 1 && room.state.counter === 1, 5000, "pong and patch");
    await within(room.leave(true), 5000, "leave");
    await waitFor(() => roomLog.length === 2, 5000, "the room's onLeave");
    assert.deepEqual(events(), ["join", `leave ${CloseCode.CONSENTED}`]);
    assert.deepEqual(sdk.leave.map((l) => l.code), [CloseCode.CONSENTED]);
    await waitFor(() => h.transport.webSocket!.openCount === 0, 5000, "the socket to close");
    assert.equal(h.transport.clients.size, 0);
    const stats = h.transport.webSocket!.stats;
    assert.equal(stats.joins, 1);
    assert.equal(stats.joinsFailed, 0);
    assert.equal(h.transport.engine.stats.sessionsOpened, 0);
  });

  it("an unconsented drop (socket cut): the room sees onDrop 1006, the SDK reconnects by itself, state and messages carry on", async () => {
    const { room, pongs, sdk } = await joinWeb();
    room.reconnection.minUptime = 0;
    room.reconnection.maxDelay = 300;
    const sessionId = room.sessionId;
    socketOf(room).terminate();
    await waitFor(() => sdk.reconnect.length === 1, 10_000, "the SDK's onReconnect");
    assert.deepEqual(sdk.drop.map((d) => d.code), [CloseCode.ABNORMAL_CLOSURE]);
    assert.deepEqual(sdk.leave, []);
    assert.deepEqual(events(), ["join", "drop 1006", "reconnect"]);
    assert.equal(room.sessionId, sessionId);
    room.send("bump");
    room.send("ping", 2);
    await waitFor(() => room.state.counter === 1 && pongs.includes(2), 5000, "patch and pong after the reconnection");
    assert.deepEqual([...h.transport.clients.keys()], [sessionId]);
    assert.equal(h.transport.webSocket!.openCount, 1);
    assert.equal(h.transport.webSocket!.stats.joins, 2, "the join and the reconnection");
  });

  it("reconnects by token with a new Client after its socket was lost", async () => {
    const { room } = await joinWeb();
    room.reconnection.enabled = false; // the application reconnects by itself
    const token = room.reconnectionToken;
    socketOf(room).terminate();
    await waitFor(() => roomLog.some((e) => e.what === "drop"), 5000, "the room's onDrop");
    const again = h.track(await within(new PlainClient(h.endpoint).reconnect<LifeRoomState>(token), 10_000, "reconnect(token)"));
    assert.equal(again.sessionId, room.sessionId);
    await waitFor(() => roomLog.length === 3, 5000, "the room's onReconnect");
    assert.deepEqual(events(), ["join", "drop 1006", "reconnect"]);
    const pongs: number[] = [];
    again.onMessage("pong", (n: number) => void pongs.push(n));
    again.send("ping", 3);
    await waitFor(() => pongs.length === 1, 5000, "a pong on the new connection");
  });

  it("Client.reconnect(token) while the old socket is open: the room closes the old one (4002) and the new one takes the seat", async () => {
    const { room, sdk } = await joinWeb();
    room.reconnection.enabled = false;
    const old = socketOf(room);
    const again = h.track(await within(new PlainClient(h.endpoint).reconnect<LifeRoomState>(room.reconnectionToken), 10_000, "reconnect(token)"));
    await waitFor(() => old.readyState === old.CLOSED, 5000, "the old socket to close");
    await waitFor(() => roomLog.length === 3, 5000, "the room's onReconnect");
    // Colyseus' matchmaking 'reconnect' route closes a client still holding the token with 4002.
    assert.deepEqual(events(), ["join", `drop ${CloseCode.WITH_ERROR}`, "reconnect"]);
    await waitFor(() => sdk.leave.length + sdk.drop.length > 0, 5000, "the old SDK room to learn it lost the connection");
    assert.equal(h.transport.webSocket!.clients.get(again.sessionId)?.ref.readyState, 1);
    assert.equal(h.transport.webSocket!.openCount, 1);
  });

  it("a fastnet player's seat moves to WebSocket: Client.reconnect(token) over WebSocket replaces the live UDP session", async () => {
    const fast = await h.join<SdkRoom<any, LifeRoomState>>(h.client(), "life");
    fast.reconnection.enabled = false;
    await waitFor(() => fast.state?.counter === 0, 5000, "the initial state");
    const serverRoom = matchMaker.getLocalRoomById(fast.roomId)!;
    const udp = (serverRoom.clients.getById(fast.sessionId) as unknown as FastnetServerClient).session;
    const web = h.track(await within(new PlainClient(h.endpoint).reconnect<LifeRoomState>(fast.reconnectionToken), 10_000, "reconnect(token) over WebSocket"));
    assert.equal(web.sessionId, fast.sessionId);
    await waitFor(() => udp.readyState === 3, 5000, "the UDP session to close");
    await waitFor(() => roomLog.length === 3, 5000, "the room's onReconnect");
    assert.deepEqual(events(), ["join", `drop ${CloseCode.WITH_ERROR}`, "reconnect"]);
    await waitFor(() => !transportOf(fast).isOpen, 5000, "the old fastnet client session to end");
    assert.equal(h.transport.engine.sessionCount, 0);
    assert.deepEqual([...h.transport.clients.keys()], [web.sessionId]);
    const pongs: number[] = [];
    web.onMessage("pong", (n: number) => void pongs.push(n));
    web.send("ping", 4);
    await waitFor(() => pongs.length === 1, 5000, "a pong over WebSocket");
  });

  it("a reconnection to a live socket without its token is refused (4003); the live player is untouched", async () => {
    const { room, pongs } = await joinWeb();
    const url = `ws://127.0.0.1:${h.port}/${matchMaker.processId}/${room.roomId}?sessionId=${room.sessionId}&reconnectionToken=not-the-token`;
    const intruder = new WebSocket(url);
    const [closed] = (await within(once(intruder, "close"), 5000, "the intruder's close")) as [{ code: number }];
    assert.equal(closed.code, CloseCode.FAILED_TO_RECONNECT);
    assert.equal(h.transport.webSocket!.stats.joinsFailed, 1);
    assert.deepEqual(events(), ["join"]);
    room.send("ping", 5);
    await waitFor(() => pongs.length === 1, 5000, "the live player's pong");
  });

  it("serves the SDK's latency probe", async () => {
    const ms = await within(new PlainClient(h.endpoint).getLatency({ pingCount: 3 }), 5000, "getLatency");
    assert.ok(ms >= 0 && ms < 1000, `latency ${ms} ms`);
    assert.equal(h.transport.webSocket!.stats.probes, 1);
    assert.equal(h.transport.clients.size, 0, "a probe is no client");
  });

  it("a join with no valid seat fails with the named cause", async () => {
    const { room } = await joinWeb();
    const plain = new PlainClient(h.endpoint);
    // A seat reservation for a session the room never reserved.
    const err = await rejectionOf(
      plain.consumeSeatReservation({ name: "life", roomId: room.roomId, processId: matchMaker.processId, sessionId: "no-such-seat", publicAddress: undefined } as never),
      5000,
      "join with a made-up seat",
    );
    assert.match(err.message, /seat reservation expired/);
    assert.equal(h.transport.webSocket!.stats.joinsFailed, 1);
  });

  it("server shutdown: WebSocket players get onLeave 4001, fastnet players too; every socket closes", async () => {
    const fast = await h.join<SdkRoom<any, LifeRoomState>>(h.client(), "life");
    const fastEvents = recordEvents(fast);
    const { sdk } = await joinWeb();
    // A raw WebSocket that never answers a close frame (a latency probe that went silent).
    const silent = net.connect(h.port, "127.0.0.1");
    silent.write(
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    // It reads (so it sees the server's FIN) but never writes: no close frame comes back.
    const answered = new Promise<void>((resolve) => silent.once("data", () => resolve()));
    silent.on("data", () => {});
    await within(answered, 5000, "the 101");
    assert.equal(h.transport.webSocket!.openCount, 2);
    const silentClosed = once(silent, "close");
    const httpClosed = once(h.transport.server, "close");
    await within(h.server.gracefullyShutdown(false), 5000, "gracefullyShutdown");
    await waitFor(() => sdk.leave.length === 1 && fastEvents.leave.length === 1, 3000, "onLeave on both SDK rooms");
    assert.deepEqual(sdk.leave.map((l) => l.code), [CloseCode.SERVER_SHUTDOWN]);
    assert.deepEqual(fastEvents.leave.map((l) => l.code), [CloseCode.SERVER_SHUTDOWN]);
    await within(silentClosed, 5000, "the silent socket to be cut");
    await within(httpClosed, 5000, "the HTTP server to close (no socket left open)");
    await waitFor(() => h.transport.webSocket!.openCount === 0, 1000, "the WebSocket objects to see their sockets closed");
    assert.deepEqual([...h.transport.clients.keys()], []);
  });
});

describe("Dual stack: the SDK's own reconnection after its TCP path died silently", function () {
  this.timeout(60_000);
  let h: ColyseusHarness;
  let relay: TcpRelay;

  beforeEach(async () => {
    roomLog.length = 0;
    h = await new ColyseusHarness().start({ life: LifeRoom });
    relay = new TcpRelay(h.port);
  });

  afterEach(async () => {
    await h.stop();
    await relay.close();
  });

  it("replaces the socket the server still believes alive at once: onDrop 1006 then onReconnect, well before any timeout", async () => {
    const relayPort = await relay.listen();
    const room = await joinPlain<SdkRoom<any, LifeRoomState>>(h, new PlainClient(`http://127.0.0.1:${relayPort}`), "life");
    room.reconnection.minUptime = 0;
    await waitFor(() => room.state?.counter === 0, 5000, "the initial state");
    const sdk = recordEvents(room);
    const old = h.transport.webSocket!.clients.get(room.sessionId)!.ref;
    // The path dies (no FIN, no RST), and the client learns of it first, as a browser's 'offline'
    // event makes the SDK close with 4010 and reconnect: its close frame never reaches the server.
    relay.killWebSocketFlows();
    const t0 = performance.now();
    room.connection.close(CloseCode.MAY_TRY_RECONNECT);
    await waitFor(() => sdk.reconnect.length === 1, 5000, "the SDK's onReconnect");
    const took = performance.now() - t0;
    assert.ok(took < 3000, `reconnected after ${took.toFixed(0)} ms (without the takeover Colyseus waits for the old socket: heartbeat or 15 s)`);
    assert.deepEqual(sdk.drop.map((d) => d.code), [CloseCode.MAY_TRY_RECONNECT]);
    assert.deepEqual(events(), ["join", "drop 1006", "reconnect"]);
    assert.equal(old.readyState, old.CLOSED, "the stale socket was cut");
    assert.equal(h.transport.webSocket!.openCount, 1);
    const pongs: number[] = [];
    room.onMessage("pong", (n: number) => void pongs.push(n));
    room.send("ping", 6);
    await waitFor(() => pongs.length === 1, 5000, "a pong on the new connection");
  });
});
