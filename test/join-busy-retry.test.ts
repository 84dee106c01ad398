/**
 * A burst of joins against a server that cannot queue them: with one handshake slot and no queue,
 * most upgrades of a burst get a 503, and connect() retries them with jittered, growing pauses
 * within its handshake timeout, so every client of the burst ends up with a session.
 */
import assert from "node:assert/strict";
import { FastnetServer, connect, type FastnetClientSession } from "../src/index.js";
import { within } from "./support/wait.js";

describe("connect() retries a busy (503) handshake", function () {
  this.timeout(60_000);
  let server: FastnetServer;
  const clients: FastnetClientSession[] = [];

  afterEach(async () => {
    for (const c of clients.splice(0)) if (c.readyState < 2) c.close();
    await server?.close();
  });

  it("20 concurrent joins against 1 handshake slot and no queue: all get a session", async () => {
    server = new FastnetServer({ maxPendingHandshakes: 1, maxQueuedHandshakes: 0 });
    await server.listen(0, "127.0.0.1");
    const url = `http://127.0.0.1:${server.port}`;
    const joins = Array.from({ length: 20 }, () =>
      connect(url, { fingerprint: server.fingerprint! }).then((c) => {
        clients.push(c);
        return c;
      }),
    );
    const settled = await within(Promise.allSettled(joins), 30_000, "the burst of joins");
    const failed = settled.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(failed, [], "every join of the burst got in");
    assert.equal(server.sessionCount, 20);
    // The server did refuse some of them: the retries, not a lenient server, let them in.
    const busy = (server as unknown as { handshakes: { stats: { busy: number } } }).handshakes.stats.busy;
    assert.ok(busy > 0, "the server answered 503 to part of the burst");
    console.log(`      ${busy} busy answers retried`);
  });
});
