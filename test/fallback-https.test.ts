/**
 * The WebSocket path of FastnetClient over https with a private CA: `wss://` verifies with the same
 * `tls: { ca }` as matchmaking and the fastnet handshake (the global WebSocket takes no trust anchors),
 * and without the CA it fails naming the certificate.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import type http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Room, Server } from "@colyseus/core";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetTransport } from "../src/index.js";
import { FastnetClient, pathOf } from "../src/client.js";
import { createTlsFetch } from "../src/client/tls-fetch.js";
import { rejectionOf } from "./support/colyseus-harness.js";
import { privateCa } from "./support/private-ca.js";
import { within } from "./support/wait.js";

class EchoRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client, msg) => client.send("echo", msg));
  }
}

describe("FastnetClient's WebSocket path over https with a private CA", function () {
  this.timeout(30_000);
  let dir: string;
  let server: Server | undefined;
  let room: SdkRoom | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "fastnet-wss-"));
  });

  afterEach(async () => {
    if (room) await within(room.leave(true), 3000, "leave").catch(() => undefined);
    room = undefined;
    if (server) await within(server.gracefullyShutdown(false), 10_000, "shutdown").catch(() => undefined);
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('path: "websocket" joins over wss:// verified with tls: { ca }', async () => {
    const { ca, cert, key } = await privateCa(dir);
    const httpsServer = https.createServer({ cert, key });
    const transport = new FastnetTransport({ server: httpsServer as unknown as http.Server, tls: { cert, key } });
    server = new Server({ transport, greet: false, gracefullyShutdown: false });
    server.define("echo", EchoRoom);
    await within(server.listen(0, "127.0.0.1"), 10_000, "listen");
    const endpoint = `https://127.0.0.1:${transport.engine.port}`;

    room = await within(new FastnetClient(endpoint, { tls: { ca }, path: "websocket" }).joinOrCreate("echo"), 10_000, "join over wss");
    assert.equal(pathOf(room), "websocket");
    const echoed = new Promise((resolve) => room!.onMessage("echo", resolve));
    room.send("echo", "hi");
    assert.equal(await within(echoed, 5000, "echo"), "hi");

    // Matchmaking trusts the CA through its own fetch, the WebSocket does not: the certificate is named.
    const other = new FastnetClient(endpoint, { path: "websocket", fetchFn: createTlsFetch({ ca }) });
    const err = await rejectionOf(other.joinOrCreate("echo"), 10_000, "wss join without the CA");
    assert.match(err.message, /^WebSocket to wss:\/\/127\.0\.0\.1:\d+\/\S+ failed: unable to verify the first certificate; .*certificate \(tls option\)/);
  });
});
