/**
 * `server.listen(port)` on all interfaces, reached at the host's second loopback address (127.0.0.2):
 * replies must leave from the address the client wrote to, or its connected UDP socket drops them and
 * the join ends in a bind timeout.
 */
import assert from "node:assert/strict";
import { Room, Server } from "@colyseus/core";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetTransport } from "../src/index.js";
import { FastnetClient } from "../src/client.js";
import { freePort } from "./support/redis-server.js";
import { within } from "./support/wait.js";

class EchoRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client, msg) => client.send("echo", msg));
  }
}

describe("a wildcard-bound server reached at a second local address", function () {
  this.timeout(30_000);
  let server: Server | undefined;
  const rooms: SdkRoom[] = [];

  afterEach(async () => {
    for (const room of rooms.splice(0)) await within(room.leave(true), 3000, "leave").catch(() => undefined);
    if (server) await within(server.gracefullyShutdown(false), 10_000, "shutdown").catch(() => undefined);
    server = undefined;
  });

  it("joins and echoes at 127.0.0.2 and at 127.0.0.1", async () => {
    const transport = new FastnetTransport();
    server = new Server({ transport, greet: false, gracefullyShutdown: false });
    server.define("echo", EchoRoom);
    const port = await freePort("0.0.0.0");
    await within(server.listen(port), 10_000, "listen on all interfaces");
    for (const host of ["127.0.0.2", "127.0.0.1"]) {
      const room = await within(new FastnetClient(`http://${host}:${port}`).joinOrCreate("echo"), 10_000, `join at ${host}`);
      rooms.push(room);
      const echoed = new Promise((resolve) => room.onMessage("echo", resolve));
      room.send("echo", host);
      assert.equal(await within(echoed, 5000, `echo at ${host}`), host);
    }
  });
});
