/**
 * devMode restarts (the `tsx watch` workflow) on real processes: a server child process in devMode is
 * stopped and started again in the same working directory on the same port; Colyseus restores the
 * room with the client's seat, and the client, still pinning the fingerprint it was given at join,
 * gets that seat back with the same sessionId because the dev certificate is kept on disk.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetClient } from "../src/client.js";
import { ChildServer } from "./support/child-server.js";
import { within } from "./support/wait.js";

describe("devMode restart in a child process (dev certificate kept on disk)", function () {
  this.timeout(60_000);
  let dir: string;
  let server: ChildServer | undefined;
  let room: SdkRoom | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "fastnet-devmode-"));
  });

  afterEach(async () => {
    room?.removeAllListeners();
    // A room still reconnecting never settles its leave(): bounded.
    if (room) await within(room.leave(true), 3000, "leave").catch(() => undefined);
    room = undefined;
    await server?.stop();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("the client gets its seat back with the same sessionId after the server process restarts", async () => {
    server = await ChildServer.start(dir, { DEVMODE: "1" });
    const { port } = server.info;
    assert.match(server.output, new RegExp(`dev certificate created in ${escape(join(dir, ".fastnet", "dev-cert.pem"))}`));
    const keyMode = (await stat(join(dir, ".fastnet", "dev-key.pem"))).mode & 0o777;
    assert.equal(keyMode, 0o600, "the dev key is readable by its owner only");

    const client = new FastnetClient(`http://127.0.0.1:${port}`);
    room = await within(client.joinOrCreate("echo"), 10_000, "join");
    room.reconnection.minUptime = 0;
    const sessionId = room.sessionId;
    const firstFingerprint = server.info.fingerprint;

    const reconnected = new Promise<void>((resolve) => room!.onReconnect(() => resolve()));
    const left = new Promise<number>((resolve) => room!.onLeave((code) => resolve(code)));
    await server.stop();
    server = await ChildServer.start(dir, { DEVMODE: "1", PORT: String(port) });
    assert.match(server.output, /dev certificate reused from/);
    assert.equal(server.info.fingerprint, firstFingerprint, "the restarted server presents the same certificate");

    const outcome = await within(
      Promise.race([reconnected.then(() => "reconnected"), left.then((code) => `left with ${code}`)]),
      40_000,
      "reconnection after the restart",
    );
    assert.equal(outcome, "reconnected", `server output:\n${server.output}`);
    assert.equal(room.sessionId, sessionId);
    const echoed = new Promise((resolve) => room!.onMessage("echo", resolve));
    room.send("echo", { n: 1 });
    assert.deepEqual(await within(echoed, 5000, "echo after the restart"), { n: 1 });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
