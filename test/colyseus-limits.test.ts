/**
 * Limits of the Colyseus adapters: nothing is ever silently lost. Sends beyond the engine's bounded send
 * queue wait in a bounded backlog (as a WebSocket buffers), and what cannot be delivered at all closes
 * the connection with 1009 so the room and the client both learn of it.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { Room, Server } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import { FastnetTransport } from "../src/index.js";
import { transportOf } from "../src/client.js";
import { ColyseusHarness, recordEvents, waitFor } from "./support/colyseus-harness.js";

class ChattyRoom extends Room {
  override onJoin(): void {}
  override onCreate(): void {
    this.onMessage("burst", (client) => {
      for (let i = 0; i < 20; i++) client.send("chunk", { i, data: "x".repeat(100_000) });
    });
    this.onMessage("chunk", (_client, m: { i: number }) => void chunksAtServer.push(m.i));
  }
}
const chunksAtServer: number[] = [];

const HugeState = schema({ lines: t.array("string") }, "KnownBugsHugeState");
class HugeStateRoom extends Room {
  override state = new HugeState();
  override onJoin(): void {}
  override onCreate(): void {
    for (let i = 0; i < 700; i++) this.state.lines.push(String(i).padEnd(1000, "x")); // ~700 KB full state
  }
}

class LifecycleRoom extends Room {
  override onJoin(): void {}
}

describe("Colyseus transport limits: nothing silently lost", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;

  beforeEach(async () => {
    chunksAtServer.length = 0;
    h = await new ColyseusHarness().start({ chatty: ChattyRoom, huge: HugeStateRoom, lifecycle: LifecycleRoom });
  });

  afterEach(async () => {
    await h.stop();
  });

  it("server-side sends beyond sendQueueBytes wait and all arrive, in order, with no close", async () => {
    const room = await h.join(h.client(), "chatty");
    const ev = recordEvents(room);
    const got: number[] = [];
    room.onMessage("chunk", (m: { i: number }) => void got.push(m.i));
    room.send("burst");
    // ws-transport delivers all 20 (2 MB, four times the 512 KiB send queue); so must we.
    await waitFor(() => got.length === 20, 10_000, "all 20 chunks", () => `got ${got.join(",")}`);
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i));
    assert.equal(ev.leave.length + ev.drop.length, 0);
  });

  it("room.send() beyond sendQueueBytes does not throw into user code, and every message arrives in order", async () => {
    const room = await h.join(h.client(), "chatty");
    for (let i = 0; i < 20; i++) room.send("chunk", { i, data: "x".repeat(100_000) }); // throws SEND_QUEUE_FULL at i = 5
    await waitFor(() => chunksAtServer.length === 20, 10_000, "all 20 chunks at the server");
    assert.deepEqual(chunksAtServer, Array.from({ length: 20 }, (_, i) => i));
  });

  it("a full state above maxMessageSize is not silently dropped: the client leaves with 1009 and the reason", async () => {
    const room = await h.join(h.client(), "huge");
    const ev = recordEvents(room);
    await waitFor(() => ev.leave.length + ev.drop.length > 0, 5000, "a close", () =>
      `state ${room.state?.lines?.length}, open ${transportOf(room).isOpen}`,
    );
    assert.equal(ev.leave[0]?.code, 1009);
    assert.match(ev.leave[0]?.reason ?? "", /maxMessageSize/);
  });

  it("shutdown closes an http.Server passed as { server } that it started (as ws-transport does; @colyseus/tools passes one)", async () => {
    await h.stop();
    const httpServer = http.createServer();
    const transport = new FastnetTransport({ server: httpServer });
    const server = new Server({ transport, greet: false, gracefullyShutdown: false });
    server.define("lifecycle", LifecycleRoom);
    await server.listen(0, "127.0.0.1");
    assert.equal(httpServer.listening, true);
    await server.gracefullyShutdown(false);
    try {
      await waitFor(() => !httpServer.listening, 2000, "the given http server to close");
    } finally {
      if (httpServer.listening) await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    }
  });
});


