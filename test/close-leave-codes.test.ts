/**
 * Leave codes, consented and unconsented, over ws-transport and over fastnet in the same test: the
 * codes the room and the SDK see must be the same pair by pair. `room.leave(false)` closes the SDK's
 * transport without a code: a WebSocket then reports 1005, a drop (the room runs onDrop and may allow a
 * reconnection, the SDK reconnects); `room.leave()` is a consented leave (4000 on both sides).
 */
import assert from "node:assert/strict";
import { Room, Server, matchMaker, type Client as ServerClient } from "@colyseus/core";
import { Client } from "@colyseus/sdk";
import { WebSocketTransport } from "@colyseus/ws-transport";
import { FastnetTransport } from "../src/index.js";
import { FastnetClient } from "../src/client.js";
import { recordEvents, waitFor, within } from "./support/colyseus-harness.js";

const roomLog: Array<{ what: "join" | "drop" | "reconnect" | "leave"; code?: number }> = [];

class LeaveRoom extends Room {
  override onJoin(): void {
    roomLog.push({ what: "join" });
  }
  override async onDrop(client: ServerClient, code?: number): Promise<void> {
    roomLog.push({ what: "drop", code });
    await this.allowReconnection(client, 10);
  }
  override onReconnect(): void {
    roomLog.push({ what: "reconnect" });
  }
  override onLeave(_client: ServerClient, code?: number): void {
    roomLog.push({ what: "leave", code });
  }
}

type Kind = "ws" | "fastnet";

/** Runs `scenario` against a fresh Server on `kind`, returning what it observed; everything is closed after. */
async function withServer<T>(kind: Kind, scenario: (client: Client) => Promise<T>): Promise<T> {
  const transport = kind === "ws" ? new WebSocketTransport() : new FastnetTransport();
  const server = new Server({ transport, greet: false, gracefullyShutdown: false });
  server.define("leave", LeaveRoom);
  await within(server.listen(0, "127.0.0.1"), 10_000, `${kind} listen`);
  const port = kind === "ws" ? ((transport as WebSocketTransport).server!.address() as { port: number }).port : (transport as FastnetTransport).engine.port;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = kind === "ws" ? new Client(endpoint) : new FastnetClient(endpoint);
  roomLog.length = 0;
  try {
    return await scenario(client);
  } finally {
    await within(server.gracefullyShutdown(false), 10_000, `${kind} shutdown`);
    await matchMaker.query({}); // nothing left behind: the next server starts clean
  }
}

interface Observed {
  sdk: { drop: number[]; leave: number[]; reconnected: boolean };
  room: Array<{ what: string; code?: number }>;
}

async function unconsented(kind: Kind): Promise<Observed> {
  return withServer(kind, async (client) => {
    const room = await within(client.joinOrCreate("leave"), 10_000, `${kind} join`);
    room.reconnection.minUptime = 0;
    room.reconnection.minDelay = 10;
    room.reconnection.maxDelay = 100;
    const ev = recordEvents(room);
    void room.leave(false);
    await waitFor(() => ev.reconnect.length > 0 || ev.leave.length > 0, 8000, `${kind}: SDK reconnect (or leave)`);
    await waitFor(() => roomLog.some((e) => e.what === "reconnect"), 5000, `${kind}: room onReconnect`, () => JSON.stringify(roomLog));
    const observed: Observed = {
      sdk: { drop: ev.drop.map((e) => e.code), leave: ev.leave.map((e) => e.code), reconnected: ev.reconnect.length > 0 },
      room: [...roomLog],
    };
    await within(room.leave(), 5000, `${kind}: consented leave after the reconnection`);
    return observed;
  });
}

async function consented(kind: Kind): Promise<Observed> {
  return withServer(kind, async (client) => {
    const room = await within(client.joinOrCreate("leave"), 10_000, `${kind} join`);
    const ev = recordEvents(room);
    const code = await within(room.leave(), 5000, `${kind}: consented leave`);
    await waitFor(() => roomLog.some((e) => e.what === "leave"), 5000, `${kind}: room onLeave`);
    assert.equal(code, ev.leave[0]?.code);
    return { sdk: { drop: ev.drop.map((e) => e.code), leave: ev.leave.map((e) => e.code), reconnected: ev.reconnect.length > 0 }, room: [...roomLog] };
  });
}

describe("leave codes: fastnet matches ws-transport", function () {
  this.timeout(60_000);

  it("room.leave(false) is a drop with 1005 on both sides: the room runs onDrop, the SDK reconnects", async () => {
    const ws = await unconsented("ws");
    const fastnet = await unconsented("fastnet");
    const expected: Observed = {
      sdk: { drop: [1005], leave: [], reconnected: true },
      room: [{ what: "join" }, { what: "drop", code: 1005 }, { what: "reconnect" }],
    };
    assert.deepEqual(ws, expected, "ws-transport (the reference)");
    assert.deepEqual(fastnet, expected, "fastnet");
  });

  it("room.leave() is consented: 4000 at the room and at the SDK, no drop", async () => {
    const ws = await consented("ws");
    const fastnet = await consented("fastnet");
    const expected: Observed = { sdk: { drop: [], leave: [4000], reconnected: false }, room: [{ what: "join" }, { what: "leave", code: 4000 }] };
    assert.deepEqual(ws, expected, "ws-transport (the reference)");
    assert.deepEqual(fastnet, expected, "fastnet");
  });
});
