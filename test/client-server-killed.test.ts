/**
 * A server process killed with SIGKILL, nothing restarting: the client learns it from the network's
 * "port unreachable" (ICMP, surfaced by the connected UDP socket as ECONNREFUSED), probes, and closes
 * with 1006 SERVER_UNREACHABLE once nothing authenticated answers for unreachableGraceMs (1.5 s),
 * instead of waiting for the 10 s idle timeout. A forged hint while the server lives changes nothing.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetServer, connect, type FastnetClientSession, type FastnetSession } from "../src/index.js";
import { FastnetClient, transportOf } from "../src/client.js";
import { ChildServer } from "./support/child-server.js";
import { recordEvents, waitFor } from "./support/colyseus-harness.js";
import { within } from "./support/wait.js";

describe("server killed (SIGKILL): the client notices within seconds", function () {
  this.timeout(60_000);
  let dir: string;
  let server: ChildServer | undefined;
  let room: SdkRoom | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "fastnet-killed-"));
  });

  afterEach(async () => {
    if (room) {
      room.reconnection.enabled = false;
      const t = transportOf(room);
      if (t.session && t.session.readyState < 3) t.session.abort(1000, "test teardown");
    }
    room = undefined;
    if (server && server.child.exitCode === null && server.child.signalCode === null) server.child.kill("SIGKILL");
    await server?.exited;
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("SIGKILL: the SDK gets onDrop 1006 SERVER_UNREACHABLE within 3 s (idle timeout: 10 s)", async () => {
    server = await ChildServer.start(dir, {});
    const client = new FastnetClient(`http://127.0.0.1:${server.info.port}`);
    room = await within(client.joinOrCreate("echo"), 10_000, "join");
    room.reconnection.enabled = false; // nothing restarts: a retry would only add noise
    const ev = recordEvents(room);
    const echoed = new Promise<unknown>((resolve) => room!.onMessage("echo", resolve));
    room.send("echo", "alive?");
    await within(echoed, 5000, "echo before the kill");

    const t0 = performance.now();
    server.child.kill("SIGKILL");
    await within(server.exited, 5000, "the child's exit");
    await waitFor(() => ev.drop.length > 0 || ev.leave.length > 0, 5000, "the SDK noticing the dead server");
    const first = ev.drop[0] ?? ev.leave[0]!;
    const took = first.at - t0;
    console.log(`      SIGKILL -> SDK ${ev.drop.length > 0 ? "onDrop" : "onLeave"} ${first.code}: ${took.toFixed(0)} ms (${first.reason})`);
    assert.equal(first.code, 1006);
    assert.match(first.reason ?? "", /^SERVER_UNREACHABLE: /);
    assert.ok(took < 3000, `noticed after ${took.toFixed(0)} ms`);
    assert.ok(took >= 1000, `not before the probes had their chance (${took.toFixed(0)} ms)`);
    assert.equal(transportOf(room).session, null, "the session is gone");
  });
});

describe("unreachable hint while the server lives (driver)", function () {
  this.timeout(30_000);
  let server: FastnetServer;
  let client: FastnetClientSession | undefined;

  beforeEach(async () => {
    server = new FastnetServer({});
    await server.listen(0, "127.0.0.1");
  });

  afterEach(async () => {
    if (client && client.readyState < 2) client.abort(1000);
    await server.close();
  });

  it("an injected ECONNREFUSED (a forged ICMP) is cleared by the server's answer: the session lives and carries messages", async () => {
    const peerP = once(server, "session") as Promise<[FastnetSession]>;
    client = await connect(`http://127.0.0.1:${server.port}`, { fingerprint: server.fingerprint!, unreachableGraceMs: 500 });
    const [peer] = await within(peerP, 5000, "server session");
    peer.on("message", (m) => peer.send(m));
    let closed = false;
    client.once("close", () => (closed = true));
    for (let i = 0; i < 5; i++) {
      client.socket!.emit("error", Object.assign(new Error("recv ECONNREFUSED (injected)"), { code: "ECONNREFUSED", errno: -111, syscall: "recv" }));
      await waitFor(() => !client!.connection.suspectedUnreachable, 2000, "the suspicion cleared by an authenticated packet");
    }
    // Well past the grace: still open, still carrying messages.
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(closed, false);
    assert.equal(client.readyState, 1);
    const echo = once(client, "message");
    client.send(Uint8Array.of(7));
    const [m] = await within(echo, 3000, "echo after the hints");
    assert.deepEqual([...(m as Uint8Array)], [7]);
    assert.equal(client.getStats().unreachableHints, 5);
  });
});
