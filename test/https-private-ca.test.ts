/**
 * https matchmaking with a private CA given as FastnetClient's `tls: { ca }`: the SDK's HTTP requests
 * verify with it too (node's global fetch takes no CA and failed with "fetch failed").
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
import { FastnetClient } from "../src/client.js";
import { privateCa } from "./support/private-ca.js";
import { within } from "./support/wait.js";

class EchoRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client, msg) => client.send("echo", msg));
  }
}

describe("https matchmaking with a private CA in FastnetClient's tls options", function () {
  this.timeout(30_000);
  let dir: string;
  let server: Server | undefined;
  let room: SdkRoom | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "fastnet-ca-"));
  });

  afterEach(async () => {
    if (room) await within(room.leave(true), 3000, "leave").catch(() => undefined);
    room = undefined;
    if (server) await within(server.gracefullyShutdown(false), 10_000, "shutdown").catch(() => undefined);
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("joins with tls: { ca } and no NODE_EXTRA_CA_CERTS; without the CA matchmaking is refused", async () => {
    const { ca, cert, key } = await privateCa(dir);
    const httpsServer = https.createServer({ cert, key });
    const transport = new FastnetTransport({ server: httpsServer as unknown as http.Server, tls: { cert, key } });
    server = new Server({ transport, greet: false, gracefullyShutdown: false });
    server.define("echo", EchoRoom);
    await within(server.listen(0, "127.0.0.1"), 10_000, "listen");
    const endpoint = `https://127.0.0.1:${transport.engine.port}`;

    room = await within(new FastnetClient(endpoint, { tls: { ca } }).joinOrCreate("echo"), 10_000, "join over https");
    const echoed = new Promise((resolve) => room!.onMessage("echo", resolve));
    room.send("echo", "hi");
    assert.equal(await within(echoed, 5000, "echo"), "hi");

    await assert.rejects(
      within(new FastnetClient(endpoint).joinOrCreate("echo"), 10_000, "join without the CA"),
      /fetch failed|certificate/i,
      "the CA is what made the difference",
    );
  });
});
