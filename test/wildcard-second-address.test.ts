/**
 * `server.listen(port)` on all interfaces, reached at the host's second loopback address (127.0.0.2):
 * replies must leave from the address the client wrote to, or its connected UDP socket drops them and
 * the join ends in a bind timeout.
 *
 * The client is forced onto UDP (`path: "udp"`) and the test checks the room's path: under the default
 * "auto" a UDP failure at 127.0.0.2 can end in a WebSocket join that passes the echo without one UDP
 * reply having reached the client. Checked by breaking the server on purpose: with no UDP socket for
 * 127.0.0.2 (ECONNREFUSED) the "auto" version of this test passed over WebSocket, this one fails with
 * SERVER_UNREACHABLE; with replies sent from the primary socket, this one fails with BIND_TIMEOUT.
 */
import assert from "node:assert/strict";
import { Room, Server } from "@colyseus/core";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetTransport } from "../src/index.js";
import { FastnetClient, FastnetJoinError, transportOf } from "../src/client.js";
import { freePort } from "./support/redis-server.js";
import { within } from "./support/wait.js";

/** A lost reply fails the join with BIND_TIMEOUT after this (default 10 s: kept inside the join's bound). */
const BIND_TIMEOUT_MS = 4000;

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
      const client = new FastnetClient(`http://${host}:${port}`, { path: "udp", bindTimeoutMs: BIND_TIMEOUT_MS });
      const room = await within(client.joinOrCreate("echo"), 10_000, `join at ${host}`).catch((err: unknown) => {
        const why = err instanceof FastnetJoinError ? ` (${err.fastnetCode})` : "";
        throw new Error(`join over UDP at ${host} failed${why}: is UDP ${host}:${port} served, and do replies leave from it? ${(err as Error).message}`, { cause: err });
      });
      rooms.push(room);
      assert.equal(transportOf(room).path, "udp", `the room at ${host} is on the UDP path`);
      const echoed = new Promise((resolve) => room.onMessage("echo", resolve));
      room.send("echo", host);
      assert.equal(await within(echoed, 5000, `echo at ${host}`), host);
    }
  });
});
