/**
 * SIGTERM to a server process (a deploy, `docker stop`): Colyseus' own handler runs
 * gracefullyShutdown(true), which makes every room leave its clients with 4001, calls
 * transport.shutdown() without awaiting it and exits. The 4001 must reach the client before the
 * process is gone, as it does with ws-transport, instead of the client noticing at its idle timeout.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetClient } from "../src/client.js";
import { ChildServer } from "./support/child-server.js";
import { within } from "./support/wait.js";

describe("lifecycle: SIGTERM to a server process", function () {
  this.timeout(60_000);
  let dir: string;
  let server: ChildServer | undefined;
  let room: SdkRoom | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "fastnet-sigterm-"));
  });

  afterEach(async () => {
    room?.removeAllListeners();
    if (room) await within(room.leave(true), 3000, "leave").catch(() => undefined);
    room = undefined;
    await server?.stop();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("a joined client gets onLeave 4001 within 1 s of the signal, and the process exits", async () => {
    server = await ChildServer.start(dir, {});
    const client = new FastnetClient(`http://127.0.0.1:${server.info.port}`);
    room = await within(client.joinOrCreate("echo"), 10_000, "join");
    // Traffic just before the signal: the leave must not wait behind it.
    const echoed = new Promise((resolve) => room!.onMessage("echo", resolve));
    room.send("echo", { n: 1 });
    await within(echoed, 5000, "echo");

    const left = new Promise<{ code: number; at: number }>((resolve) => room!.onLeave((code) => resolve({ code, at: performance.now() })));
    const dropped = new Promise<number>((resolve) => room!.onDrop((code) => resolve(code)));
    const sent = performance.now();
    server.child.kill("SIGTERM");
    const outcome = await within(
      Promise.race([left, dropped.then((code) => ({ code: -code, at: performance.now() }))]),
      15_000,
      "onLeave after SIGTERM",
    );
    const ms = outcome.at - sent;
    assert.equal(outcome.code, 4001, `onLeave 4001 expected (a negative code is an onDrop); server output:\n${server.output}`);
    assert.ok(ms < 1000, `4001 arrived ${ms.toFixed(0)} ms after SIGTERM (limit 1000)`);
    const exitCode = await within(server.exited, 10_000, "server process exit");
    assert.equal(exitCode, 0, `server output:\n${server.output}`);
    console.log(`      SIGTERM -> onLeave 4001: ${ms.toFixed(0)} ms`);
  });
});
