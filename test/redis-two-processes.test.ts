/**
 * Two server processes on one real Redis (RedisPresence + RedisDriver), no `tls`, started in one
 * working directory: they share the stored dev certificate, so a client matched through process A
 * joins a room held by process B. And a seat reserved on the server (matchMaker.reserveSeatFor),
 * consumed with client.consumeSeatReservation(), carries no fingerprint: the client pins the dev
 * certificate the room's process announces in its handshake response.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetClient } from "../src/client.js";
import { ChildServer } from "./support/child-server.js";
import { RedisServer, freePort } from "./support/redis-server.js";
import { within } from "./support/wait.js";

describe("two server processes on one Redis, dev certificate", function () {
  this.timeout(60_000);
  let redis: RedisServer;
  let dir: string;
  let a: ChildServer;
  let b: ChildServer;
  const rooms: SdkRoom[] = [];

  before(async () => {
    redis = await RedisServer.start();
    dir = await mkdtemp(join(tmpdir(), "fastnet-redis-app-"));
    const [pa, pb] = [await freePort(), await freePort()];
    // Started together, as a process manager does: they agree on one certificate through its lock.
    [a, b] = await Promise.all([
      ChildServer.start(dir, { REDIS_URL: redis.url, PORT: String(pa), PUBLIC_ADDRESS: `127.0.0.1:${pa}` }),
      ChildServer.start(dir, { REDIS_URL: redis.url, PORT: String(pb), PUBLIC_ADDRESS: `127.0.0.1:${pb}` }),
    ]);
  });

  afterEach(async () => {
    for (const room of rooms.splice(0)) await within(room.leave(true), 3000, "leave").catch(() => undefined);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function echo(room: SdkRoom): Promise<unknown> {
    const got = new Promise((resolve) => room.onMessage("echo", resolve));
    room.send("echo", { n: 7 });
    return within(got, 5000, "echo");
  }

  async function where(room: SdkRoom): Promise<{ processId: string; roomId: string }> {
    const got = new Promise<{ processId: string; roomId: string }>((resolve) => room.onMessage("where", resolve));
    room.send("where");
    return within(got, 5000, "where");
  }

  it("a client matched through one process joins a room held by the other", async () => {
    assert.notEqual(a.info.processId, b.info.processId);
    // Colyseus picks the process that creates a room (the one with fewest rooms): find out which.
    const first = await within(new FastnetClient(`http://127.0.0.1:${a.info.port}`).create("echo"), 10_000, "create");
    rooms.push(first);
    const holder = (await where(first)).processId;
    assert.ok(holder === a.info.processId || holder === b.info.processId);
    const other = holder === a.info.processId ? b : a;
    const throughOther = await within(
      new FastnetClient(`http://127.0.0.1:${other.info.port}`).joinById(first.roomId),
      10_000,
      "join through the other process's matchmaking",
    );
    rooms.push(throughOther);
    assert.deepEqual(await where(throughOther), { processId: holder, roomId: first.roomId });
    assert.deepEqual(await echo(throughOther), { n: 7 });
  });

  it("a seat reserved on the server is consumed with consumeSeatReservation()", async () => {
    const client = new FastnetClient(`http://127.0.0.1:${a.info.port}`);
    const lobby = await within(client.create("echo"), 10_000, "create the lobby");
    rooms.push(lobby);
    const got = new Promise<any>((resolve) => lobby.onMessage("reservation", resolve));
    lobby.send("reserve");
    const reservation = await within(got, 10_000, "reservation");
    assert.equal(reservation.fingerprint, undefined, "a server-made reservation carries no fingerprint");
    const room = await within(client.consumeSeatReservation(reservation), 10_000, "consume the reservation");
    rooms.push(room);
    assert.equal(room.sessionId, reservation.sessionId);
    assert.equal((await where(room)).roomId, reservation.roomId);
    assert.deepEqual(await echo(room), { n: 7 });
  });
});
