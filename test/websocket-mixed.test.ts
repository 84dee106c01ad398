/**
 * One room, two kinds of player: a stock @colyseus/sdk Client (WebSocket, on the transport's HTTP
 * port) and a FastnetClient (encrypted UDP) in the same room of a real Colyseus server. Messages flow
 * both ways in order with nothing lost, and each sees the other in the state, `@unreliable` fields
 * included (the WebSocket player gets those as unreliable patches over its socket).
 */
import assert from "node:assert/strict";
import { Protocol, ProtocolModifier, Room, matchMaker, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { transportOf } from "../src/client.js";
import { WebSocketRoomClient } from "../src/index.js";
import { ColyseusHarness, waitFor } from "./support/colyseus-harness.js";
import { PlainRecordingClient, joinPlain } from "./support/websocket-sdk.js";

const MixedPlayer = schema({ name: t.string(), x: t.number().unreliable() }, "MixedPlayer");
const MixedState = schema({ players: t.map(MixedPlayer) }, "MixedState");

/** What the room saw: the numbers each sender's "relay" messages carried, in arrival order. */
const relayed = new Map<string, number[]>();

class MixedRoom extends Room {
  override state = new MixedState();
  override onCreate(): void {
    // Each "relay" goes to every other player, in the order it arrived.
    this.onMessage("relay", (client, n: number) => {
      relayed.get(client.sessionId)!.push(n);
      for (const other of this.clients) if (other !== client) other.send("relayed", n);
    });
    this.onMessage("move", (client, x: number) => {
      this.state.players.get(client.sessionId)!.x = x;
    });
  }
  override onJoin(client: Client, options: { name: string }): void {
    relayed.set(client.sessionId, []);
    this.state.players.set(client.sessionId, new MixedPlayer({ name: options.name, x: 0 }));
  }
  override onLeave(client: Client): void {
    this.state.players.delete(client.sessionId);
  }
}

const MESSAGES = 1000;
const UNRELIABLE_PATCH = Protocol.ROOM_STATE_PATCH | ProtocolModifier.UNRELIABLE;

type MixedRoomState = { players: Map<string, { name: string; x: number }> };

describe("Dual stack: a plain @colyseus/sdk client and a FastnetClient in one room", function () {
  this.timeout(60_000);
  let h: ColyseusHarness;

  beforeEach(async () => {
    relayed.clear();
    h = await new ColyseusHarness().start({ mixed: MixedRoom });
  });

  afterEach(async () => {
    await h.stop();
  });

  async function joinBoth() {
    const fast = await h.join<SdkRoom<any, MixedRoomState>>(h.client(), "mixed", { name: "udp" });
    const plainClient = new PlainRecordingClient(h.endpoint);
    const web = await joinPlain<SdkRoom<any, MixedRoomState>>(h, plainClient, "mixed", { name: "web" });
    assert.equal(web.roomId, fast.roomId, "both joined the same room");
    assert.equal(transportOf(fast).isOpen, true, "the FastnetClient is on fastnet");
    const seesBoth = (r: SdkRoom<any, MixedRoomState>) => r.state?.players?.size === 2;
    await waitFor(() => seesBoth(fast) && seesBoth(web), 5000, "each to see both players");
    assert.equal(fast.state.players.get(web.sessionId)?.name, "web");
    assert.equal(web.state.players.get(fast.sessionId)?.name, "udp");
    return { fast, web, plainClient };
  }

  it("joins the same room; the server holds one fastnet session and one WebSocket client", async () => {
    const { fast, web } = await joinBoth();
    const server = matchMaker.getLocalRoomById(web.roomId)!;
    assert.equal(server.clients.length, 2);
    const wsClient = server.clients.getById(web.sessionId);
    assert.ok(wsClient instanceof WebSocketRoomClient, "the WebSocket player is a WebSocketRoomClient");
    assert.equal(typeof wsClient.rawUnreliable, "function");
    assert.equal(h.transport.engine.sessionCount, 1, "one fastnet session");
    assert.equal(h.transport.webSocket!.openCount, 1, "one WebSocket");
    assert.deepEqual([...h.transport.clients.keys()].sort(), [fast.sessionId, web.sessionId].sort());
    assert.equal(h.transport.webSocket!.stats.joins, 1);
    assert.equal(h.transport.engine.stats.sessionsOpened, 1);
  });

  it(`exchanges ${MESSAGES} messages each way, in order, nothing lost`, async () => {
    const { fast, web } = await joinBoth();
    const atFast: number[] = [];
    const atWeb: number[] = [];
    fast.onMessage("relayed", (n: number) => void atFast.push(n));
    web.onMessage("relayed", (n: number) => void atWeb.push(n));
    // Interleaved, both directions at once.
    for (let i = 0; i < MESSAGES; i++) {
      web.send("relay", i);
      fast.send("relay", i);
    }
    await waitFor(
      () => atFast.length >= MESSAGES && atWeb.length >= MESSAGES,
      20_000,
      "every relayed message",
      () => `FastnetClient got ${atFast.length}, WebSocket client got ${atWeb.length}`,
    );
    const expected = Array.from({ length: MESSAGES }, (_, i) => i);
    assert.deepEqual(relayed.get(web.sessionId), expected, "the room got the WebSocket player's messages in order");
    assert.deepEqual(relayed.get(fast.sessionId), expected, "the room got the FastnetClient's messages in order");
    assert.deepEqual(atFast, expected, "the FastnetClient got the WebSocket player's messages in order");
    assert.deepEqual(atWeb, expected, "the WebSocket player got the FastnetClient's messages in order");
  });

  it("each sees the other's @unreliable field change; the WebSocket player gets unreliable patches on its socket", async () => {
    const { fast, web, plainClient } = await joinBoth();
    const xOf = (r: SdkRoom<any, MixedRoomState>, id: string) => r.state.players.get(id)?.x;
    // Several moves, each awaited on the other side: every one after the join travels as an
    // unreliable patch (a reliable patch would carry it only along with an ADD).
    for (let step = 1; step <= 5; step++) {
      web.send("move", step * 10);
      fast.send("move", step * 100);
      await waitFor(
        () => xOf(fast, web.sessionId) === step * 10 && xOf(web, fast.sessionId) === step * 100,
        5000,
        `move ${step} on both sides`,
        () => `fast sees web.x=${xOf(fast, web.sessionId)}, web sees fast.x=${xOf(web, fast.sessionId)}`,
      );
    }
    const unreliableFrames = plainClient.framesOf(web).filter((b) => b === UNRELIABLE_PATCH).length;
    assert.ok(unreliableFrames >= 5, `the WebSocket player got ${unreliableFrames} unreliable patches for 10 moves`);
    assert.equal(h.transport.webSocket!.stats.unreliableDropped, 0, "none dropped on an idle loopback socket");
  });

  it("the room sees the WebSocket player leave (consented) and the FastnetClient stays", async () => {
    const { fast, web } = await joinBoth();
    await web.leave(true);
    await waitFor(() => fast.state.players.size === 1, 5000, "the FastnetClient to see the WebSocket player go");
    assert.equal(fast.state.players.has(fast.sessionId), true);
    await waitFor(() => h.transport.webSocket!.openCount === 0, 5000, "the WebSocket to close");
    assert.deepEqual([...h.transport.clients.keys()], [fast.sessionId]);
    assert.equal(transportOf(fast).isOpen, true);
  });
});
