/**
 * Bounds of the WebSocket path: open connections (`maxConnections`, then 503), what may wait unsent
 * to a client that stops reading (`@unreliable` patches dropped past `unreliableDropBytes`, the
 * client cut past `maxBufferedBytes`), and close codes a WebSocket cannot carry.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { CloseCode, Protocol, Room, matchMaker, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import WebSocket from "ws";
import type { FastnetTransportOptions } from "../src/index.js";
import { ColyseusHarness, recordEvents, waitFor, within } from "./support/colyseus-harness.js";
import { PlainClient, joinPlain } from "./support/websocket-sdk.js";

const LimitState = schema({ pos: t.number().unreliable() }, "WsLimitState");
const CHUNK = "x".repeat(64 * 1024);

const roomLog: string[] = [];

class LimitRoom extends Room {
  override state = new LimitState();
  override onCreate(): void {
    this.state.pos = 0;
  }
  override onDrop(_client: Client, code?: number): void {
    roomLog.push(`drop ${code}`);
  }
  override onLeave(_client: Client, code?: number): void {
    roomLog.push(`leave ${code}`);
  }
}

describe("Dual stack: bounds of the WebSocket path", function () {
  this.timeout(60_000);
  let h: ColyseusHarness;
  const sockets: WebSocket[] = [];

  async function start(options: FastnetTransportOptions): Promise<void> {
    roomLog.length = 0;
    h = await new ColyseusHarness().start({ limits: LimitRoom }, options);
  }

  afterEach(async () => {
    for (const ws of sockets.splice(0)) ws.terminate();
    await h.stop();
  });

  /**
   * A player on a raw `ws` client that joins (acknowledging JOIN_ROOM as the SDK does) and then stops
   * reading: its socket is paused, so whatever the server sends piles up.
   */
  async function stalledPlayer(): Promise<{ room: LimitRoom; client: Client }> {
    const listing = await matchMaker.createRoom("limits", {});
    const seat = await matchMaker.reserveSeatFor(listing, {});
    const room = matchMaker.getLocalRoomById(listing.roomId) as LimitRoom;
    const ws = new WebSocket(`ws://127.0.0.1:${h.port}/${seat.processId}/${seat.roomId}?sessionId=${seat.sessionId}`);
    sockets.push(ws);
    const [first] = (await within(once(ws, "message"), 5000, "JOIN_ROOM")) as [Buffer];
    assert.equal(first[0], Protocol.JOIN_ROOM);
    ws.send(Uint8Array.of(Protocol.JOIN_ROOM));
    await waitFor(() => room.clients.length === 1 && room.clients[0]!.state === 1, 5000, "the client to be JOINED");
    (ws as unknown as { _socket: net.Socket })._socket.pause();
    return { room, client: room.clients[0]! };
  }

  it("maxConnections: one more WebSocket upgrade gets a 503 naming the limit", async () => {
    await start({ webSocket: { maxConnections: 1 } });
    await joinPlain(h, new PlainClient(h.endpoint), "limits");
    const s = net.connect(h.port, "127.0.0.1");
    s.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    let answer = "";
    s.on("data", (d: Buffer) => void (answer += d.toString("latin1")));
    await within(once(s, "close"), 5000, "the refused upgrade to close");
    assert.match(answer, /^HTTP\/1\.1 503 /);
    assert.match(answer, /server full: 1 WebSocket connections open/);
    assert.equal(h.transport.webSocket!.stats.refused, 1);
    assert.equal(h.transport.webSocket!.openCount, 1);
  });

  it("a client that stops reading: @unreliable patches are dropped (counted) once its backlog passes unreliableDropBytes", async () => {
    await start({ webSocket: { unreliableDropBytes: 64 * 1024, maxBufferedBytes: 64 * 1024 * 1024 } });
    const { room, client } = await stalledPlayer();
    const stats = h.transport.webSocket!.stats;
    // Far more than loopback's socket buffers take: the rest waits in ws, above unreliableDropBytes.
    for (let i = 0; i < 160; i++) client.send("chunk", CHUNK);
    assert.ok((client.ref as WebSocket).bufferedAmount > 64 * 1024, "the backlog built up");
    // The first change rides along with the state's ADD in a reliable patch; later ones are unreliable
    // patches, one per patch tick (50 ms): move on every tick until three were dropped.
    let pos = 0;
    while (stats.unreliableDropped < 3) {
      assert.ok(++pos <= 100, `only ${stats.unreliableDropped} unreliable patches dropped after ${pos - 1} moves`);
      room.state.pos = pos;
      await new Promise((resolve) => setTimeout(resolve, room.patchRate! + 10));
    }
    assert.equal(stats.overflowClosed, 0);
    assert.equal((client.ref as WebSocket).readyState, WebSocket.OPEN, "reliable traffic is not dropped: the client stays");
  });

  it("a client that stops reading is cut once its backlog passes maxBufferedBytes; the room sees a drop at once", async () => {
    await start({ webSocket: { maxBufferedBytes: 256 * 1024 } });
    const { client } = await stalledPlayer();
    const t0 = performance.now();
    for (let i = 0; i < 200 && (client.ref as WebSocket).readyState === WebSocket.OPEN; i++) client.send("chunk", CHUNK);
    await waitFor(() => roomLog.length > 0, 5000, "the room to see the client go");
    assert.equal(roomLog[0], `drop ${CloseCode.ABNORMAL_CLOSURE}`);
    assert.ok(performance.now() - t0 < 3000, "at once, not by heartbeat");
    assert.equal(h.transport.webSocket!.stats.overflowClosed, 1);
    await waitFor(() => h.transport.webSocket!.openCount === 0, 5000, "the socket to close");
  });

  it("client.leave() with a code a WebSocket cannot carry closes with 4002 instead of throwing", async () => {
    await start({});
    const web = await joinPlain(h, new PlainClient(h.endpoint), "limits");
    const sdk = recordEvents(web);
    const serverClient = h.transport.webSocket!.clients.get(web.sessionId)!;
    assert.doesNotThrow(() => serverClient.leave(1006, "x".repeat(500)));
    await waitFor(() => sdk.leave.length === 1, 5000, "the SDK's onLeave");
    assert.equal(sdk.leave[0]!.code, CloseCode.WITH_ERROR);
    assert.equal(Buffer.byteLength(sdk.leave[0]!.reason ?? ""), 123, "the reason cut to what a close frame holds");
  });
});
