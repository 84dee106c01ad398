/**
 * Upgrade routing of the dual-stack FastnetTransport: one listener decides (fastnet handshake ->
 * fastnet, WebSocket to a room of this process or the latency probe -> WebSocket path, anything else
 * -> another listener, or a refusal naming the cause when there is none), so another 'upgrade'
 * listener added before or after ours changes nothing; and `webSocket: false` turns the WebSocket path
 * off, so a plain @colyseus/sdk client fails within seconds, told why.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import type http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { Room, matchMaker } from "@colyseus/core";
import { WebSocketServer } from "ws";
import { transportOf } from "../src/client.js";
import { captureConsoleError, type ConsoleCapture } from "./support/console-capture.js";
import { ColyseusHarness, rejectionOf, waitFor, within } from "./support/colyseus-harness.js";
import { PlainClient, joinPlain } from "./support/websocket-sdk.js";

class EchoRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client, text: string) => client.send("echo", text));
  }
}

/** How a raw WebSocket ended: its close code and reason, and whether it ever opened. */
async function webSocketOutcome(url: string): Promise<{ opened: boolean; code: number; reason: string; first?: string }> {
  const ws = new WebSocket(url);
  let opened = false;
  let first: string | undefined;
  ws.addEventListener("open", () => void (opened = true));
  ws.addEventListener("message", (ev) => {
    first ??= String(ev.data);
    ws.close(1000);
  });
  const [ev] = (await within(once(ws, "close"), 5000, `the WebSocket to ${url} to close`)) as [{ code: number; reason: string }];
  return { opened, code: ev.code, reason: ev.reason, first };
}

/** The HTTP status line a raw Upgrade request gets. */
async function upgradeAnswer(port: number, request: string): Promise<string> {
  const s = net.connect(port, "127.0.0.1");
  s.write(request);
  let got = "";
  s.on("data", (d: Buffer) => void (got += d.toString("latin1")));
  await within(once(s, "close"), 5000, "the refused socket to close");
  return got.split("\r\n")[0]!;
}

describe("Dual stack: upgrade routing", function () {
  this.timeout(60_000);
  let h: ColyseusHarness;
  let custom: WebSocketServer | null = null;
  let capture: ConsoleCapture | null = null;

  afterEach(async () => {
    capture?.restore();
    capture = null;
    await h.stop();
    if (custom) for (const ws of custom.clients) ws.terminate();
    custom?.close();
    custom = null;
  });

  /** Another upgrade listener, as an application might add: a ws server of its own on /custom, ignoring every other request. */
  function addForeignListener(where: "before" | "after"): { handled: string[] } {
    const seen = { handled: [] as string[] };
    custom = new WebSocketServer({ noServer: true });
    custom.on("connection", (ws) => ws.send("custom ok"));
    const listener = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
      if (!req.url?.startsWith("/custom")) return;
      seen.handled.push(req.url);
      custom!.handleUpgrade(req, socket, head, (ws) => custom!.emit("connection", ws, req));
    };
    if (where === "before") h.transport.server.prependListener("upgrade", listener);
    else h.transport.server.on("upgrade", listener);
    return seen;
  }

  async function everyPathWorks(foreign: { handled: string[] }): Promise<void> {
    const fast = await h.join(h.client(), "echo");
    assert.equal(transportOf(fast).isOpen, true);
    const web = await joinPlain(h, new PlainClient(h.endpoint), "echo");
    assert.equal(web.roomId, fast.roomId);
    const got: string[] = [];
    fast.onMessage("echo", (t: string) => void got.push(`fast:${t}`));
    web.onMessage("echo", (t: string) => void got.push(`web:${t}`));
    fast.send("echo", "a");
    web.send("echo", "b");
    await waitFor(() => got.length === 2, 5000, "both echoes");
    assert.deepEqual(got.sort(), ["fast:a", "web:b"]);
    const outcome = await webSocketOutcome(`ws://127.0.0.1:${h.port}/custom`);
    assert.equal(outcome.first, "custom ok", "the other listener's WebSocket works");
    assert.deepEqual(foreign.handled, ["/custom"], "the other listener took only its own request");
    assert.equal(h.transport.webSocket!.stats.connections, 1, "the WebSocket path took only the SDK's connection");
  }

  it("another upgrade listener added BEFORE ours: fastnet, WebSocket rooms and its own path all work", async () => {
    h = await new ColyseusHarness().start({ echo: EchoRoom });
    await everyPathWorks(addForeignListener("before"));
  });

  it("another upgrade listener added AFTER ours: fastnet, WebSocket rooms and its own path all work", async () => {
    h = await new ColyseusHarness().start({ echo: EchoRoom });
    await everyPathWorks(addForeignListener("after"));
  });

  it("with no other listener, what no path takes is refused at once, naming the cause", async () => {
    h = await new ColyseusHarness().start({ echo: EchoRoom });
    const noRoom = /no room of this server at this path: WebSocket room connections go to \/<processId>\/<roomId>/;
    const nowhere = await webSocketOutcome(`ws://127.0.0.1:${h.port}/nowhere`);
    assert.equal(nowhere.code, 1008);
    assert.match(nowhere.reason, noRoom);
    // A room path naming another process: that room does not live here.
    const elsewhere = await webSocketOutcome(`ws://127.0.0.1:${h.port}/not-${matchMaker.processId}/someroom?sessionId=x`);
    assert.equal(elsewhere.code, 1008);
    assert.match(elsewhere.reason, noRoom);
    const h2c = await upgradeAnswer(h.port, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
    assert.equal(h2c, "HTTP/1.1 404 Not Found");
    assert.equal(h.transport.webSocket!.stats.connections, 0, "none reached the WebSocket path");
  });

  it("a WebSocket to a room path of this process with no valid seat is told so by Colyseus (4002)", async () => {
    h = await new ColyseusHarness().start({ echo: EchoRoom });
    const outcome = await webSocketOutcome(`ws://127.0.0.1:${h.port}/${matchMaker.processId}/noroom?sessionId=nobody`);
    assert.equal(outcome.opened, true);
    assert.equal(outcome.code, 4002);
    assert.equal(h.transport.webSocket!.stats.joinsFailed, 1);
  });

  it("webSocket: false: a plain SDK join fails within seconds naming the cause; FastnetClient joins as before", async () => {
    h = await new ColyseusHarness().start({ echo: EchoRoom }, { webSocket: false });
    assert.equal(h.transport.webSocket, null);
    capture = captureConsoleError(); // the SDK warns about the unexpected close
    const t0 = performance.now();
    const err = await rejectionOf(new PlainClient(h.endpoint).joinOrCreate("echo"), 5000, "a plain SDK join");
    assert.match(err.message, /this server's rooms use fastnet, not WebSocket: connect with FastnetClient/);
    assert.ok(performance.now() - t0 < 3000, `failed after ${(performance.now() - t0).toFixed(0)} ms`);
    const fast = await h.join(h.client(), "echo");
    assert.equal(transportOf(fast).isOpen, true);
    assert.equal(h.transport.clients.size, 1);
  });
});
