/**
 * Colyseus' `express` option with FastnetTransport: Colyseus' router asks the transport for its
 * Express app synchronously while the Server is built, and `listen` then mounts the user's routes.
 * The routes answer on the transport's HTTP port beside matchmaking, and a client still joins.
 */
import assert from "node:assert/strict";
import { Room, Server } from "@colyseus/core";
import { FastnetTransport } from "../src/index.js";
import { FastnetClient } from "../src/client.js";
import { within } from "./support/colyseus-harness.js";

class EmptyRoom extends Room {}

describe("Colyseus over fastnet: the express option", function () {
  this.timeout(30_000);

  let server: Server | undefined;

  afterEach(async () => {
    await server?.gracefullyShutdown(false);
    server = undefined;
  });

  it("serves the user's Express routes on the transport's port, beside matchmaking", async () => {
    const transport = new FastnetTransport();
    server = new Server({
      transport,
      greet: false,
      gracefullyShutdown: false,
      express: (app: { get(path: string, handler: (req: unknown, res: { json(v: unknown): void }) => void): void }) => {
        app.get("/hello", (_req, res) => res.json({ hello: "world" }));
      },
    });
    server.define("empty", EmptyRoom);
    await within(server.listen(0, "127.0.0.1"), 10_000, "server.listen");
    const port = transport.engine.port;

    const res = await fetch(`http://127.0.0.1:${port}/hello`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { hello: "world" });
    assert.equal(transport.getExpressApp(), transport.getExpressApp(), "one app per transport");

    const room = await within(new FastnetClient(`http://127.0.0.1:${port}`).joinOrCreate("empty"), 10_000, "join");
    assert.ok(room.sessionId);
    await room.leave();
  });
});
