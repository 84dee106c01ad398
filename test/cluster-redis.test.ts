/**
 * Three game processes (examples/cluster/server.ts) on one real redis-server (RedisPresence +
 * RedisDriver), each on its own TCP/UDP port with its own serverId, no balancer: clients match
 * through any process and land in rooms on another, play over UDP, migrate, reconnect; a process
 * killed and restarted with the same statelessResetKey and serverId tells its old clients at once.
 */
import assert from "node:assert/strict";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetClient, transportOf } from "../src/client.js";
import { allStats, ask, useCluster, clientPath, migrationsOf, where } from "./support/cluster.js";
import { pollUntil, within } from "./support/wait.js";

describe("cluster: three processes on one Redis", function () {
  this.timeout(90_000);
  const suite = useCluster({ nginx: false });
  const rooms = suite.rooms;

  /** A client whose matchmaking goes to the process with `serverId`. */
  function clientOf(serverId: number): FastnetClient {
    return new FastnetClient(`http://127.0.0.1:${suite.cluster.game(serverId).info.port}`);
  }

  async function keep(room: Promise<SdkRoom>, what: string): Promise<SdkRoom> {
    const r = await within(room, 15_000, what);
    rooms.push(r);
    return r;
  }

  it("clients matched through any process land in the room on the process that holds it, and play over UDP", async () => {
    // Created through process 1 on process 3 (a probe room may name its process).
    const first = await keep(clientOf(1).create("probe", { onProcess: suite.cluster.game(3).info.processId }), "create through process 1");
    const holder = await where(first);
    assert.equal(holder.serverId, 3);
    for (const via of [1, 2, 3]) {
      const room = await keep(clientOf(via).joinById(first.roomId), `join through process ${via}`);
      assert.deepEqual(await where(room), holder, `matched through process ${via}`);
      // The session is on the holder's UDP port, and every CID carries the holder's server id.
      const session = transportOf(room).session!;
      assert.equal(session.remotePort, suite.cluster.game(holder.serverId).info.udpPort);
      assert.equal(clientPath(room).cid[1], holder.serverId);
      assert.deepEqual(await ask(room, "echo", { via }), { via });
    }
    const stats = await allStats(suite.cluster);
    assert.equal(stats.get(holder.serverId)!.sessions, 4);
    for (const [id, s] of stats) {
      if (id !== holder.serverId) assert.equal(s.sessions, 0, `process ${id} holds no session`);
      assert.equal(s.stats.unknownCid, 0, `process ${id}: no datagram for another process's CID`);
    }
  });

  it("a client migrates to a new local port and keeps its seat; the holder validates the move", async () => {
    const holder = suite.cluster.game(2);
    const room = await keep(clientOf(1).create("probe", { onProcess: holder.info.processId }), "create through 1 on 2");
    assert.equal((await where(room)).serverId, 2);
    const before = clientPath(room);
    await within(transportOf(room).rebind(), 5000, "rebind");
    const after = clientPath(room);
    assert.notEqual(after.local, before.local, "a new local port");
    assert.notDeepEqual(after.cid, before.cid, "a fresh CID on the new path");
    assert.equal(after.cid[1], holder.info.serverId, "with the holder's server id");
    assert.deepEqual(await ask(room, "echo", "after the move"), "after the move");
    await pollUntil(() => migrationsOf(holder, room.sessionId).length === 1, 5000, "the holder's MIGRATION line", undefined, 20);
    assert.equal(migrationsOf(holder, room.sessionId)[0]!.to.port, Number(after.local.split(":")[1]));
  });

  it("a client whose session dropped reconnects to the process that holds its room", async () => {
    const room = await keep(clientOf(3).create("probe", { onProcess: suite.cluster.game(1).info.processId }), "create through 3 on 1");
    const holder = await where(room);
    assert.equal(holder.serverId, 1);
    const sessionId = room.sessionId;
    room.reconnection.minUptime = 0; // the SDK retries only rooms joined 5 s ago by default
    const reconnected = new Promise<void>((resolve) => room.onReconnect(() => resolve()));
    transportOf(room).session!.abort(1006, "test: connection lost");
    await within(reconnected, 15_000, "the SDK's onReconnect");
    assert.equal(room.sessionId, sessionId);
    assert.deepEqual(await where(room), holder);
    assert.deepEqual(await ask(room, "echo", 42), 42);
  });

  it("a process killed and restarted with the same statelessResetKey and serverId resets its old clients at once", async () => {
    const room = await keep(clientOf(1).create("probe", { onProcess: suite.cluster.game(2).info.processId }), "create on 2");
    const holder = await where(room);
    assert.equal(holder.serverId, 2);
    // A client of another process, which must not notice anything.
    const bystander = await keep(clientOf(1).create("probe", { onProcess: suite.cluster.game(3).info.processId }), "create on 3");
    assert.equal((await where(bystander)).serverId, 3);
    room.reconnection.minUptime = 0; // so that the SDK does try to reconnect, and fails
    let dropped: { code: number; reason: string; at: number } | null = null;
    room.onDrop((code, reason) => (dropped ??= { code, reason: String(reason ?? ""), at: performance.now() }));
    const left = new Promise<number>((resolve) => room.onLeave((code) => resolve(code)));
    // A game sends input all the time: 20 Hz.
    const input = setInterval(() => room.sendUnreliable("echo", 1), 50);
    try {
      const restarted = await suite.cluster.restart(holder.serverId);
      const readyAt = performance.now();
      // At once: far below the 10 s idle timeout the client would otherwise wait.
      await pollUntil(() => dropped !== null, 1000, "the client's close by stateless reset", undefined, 10);
      const afterReadyMs = dropped!.at - readyAt;
      console.log(`      stateless reset: the client's session closed ${afterReadyMs.toFixed(0)} ms after the restarted process was ready`);
      assert.equal(dropped!.code, 1006);
      assert.match(dropped!.reason, /stateless reset/);
      // The SDK tries to reconnect; the room is gone with the old process, so it ends in onLeave.
      const leaveCode = await within(left, 20_000, "onLeave after the failed reconnection");
      assert.notEqual(leaveCode, 1000);
      const stats = await allStats(suite.cluster);
      assert.ok(stats.get(holder.serverId)!.stats.statelessResetsSent >= 1, "the restarted process sent the reset");
      assert.notEqual(restarted.info.processId, holder.processId, "a new Colyseus process");
    } finally {
      clearInterval(input);
    }
    assert.deepEqual(await ask(bystander, "echo", "still here"), "still here");
  });
});
