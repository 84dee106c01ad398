/**
 * Connection migration under the real Colyseus stack: a @colyseus/core Server on FastnetTransport, an
 * @colyseus/sdk room through FastnetClient bound to 127.0.0.2. Mid-game the client changes port, then
 * moves to 127.0.0.3; the room must see nothing (no onDrop, no onLeave, the same Client object) while
 * numbered messages flow both ways without loss or duplication and the state keeps patching.
 */
import assert from "node:assert/strict";
import { Room, matchMaker, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import { FastnetServerClient } from "../src/index.js";
import { joinRoom, recordSignals, startColyseus, transportOf } from "./support/migration-colyseus.js";
import { assertUnlinkable, recordCidsByPath } from "./support/cid-paths.js";
import { Cleanup, lo, localOf, waitFor, within } from "./support/migration-net.js";

const MigrationTestState = schema({ counter: t.number(), label: t.string() }, "MigrationTestState");

const serverLog = {
  joined: [] as Client[],
  dropped: [] as Array<number | undefined>,
  left: [] as Array<number | undefined>,
  reconnected: 0,
  seqs: [] as number[],
  senders: new Set<Client>(),
};

class MigrationRoom extends Room {
  override state = new MigrationTestState();
  override onCreate(): void {
    this.state.counter = -1;
    this.state.label = "start";
    this.onMessage("seq", (client, n: number) => {
      serverLog.seqs.push(n);
      serverLog.senders.add(client);
      this.state.counter = n;
    });
  }
  override onJoin(client: Client): void {
    serverLog.joined.push(client);
  }
  override onDrop(_client: Client, code?: number): void {
    serverLog.dropped.push(code);
  }
  override onReconnect(): void {
    serverLog.reconnected++;
  }
  override onLeave(_client: Client, code?: number): void {
    serverLog.left.push(code);
  }
}

describe("migration under Colyseus: the room sees nothing when the client's address changes", function () {
  this.timeout(30_000);
  const c = new Cleanup();
  beforeEach(() => {
    serverLog.joined.length = 0;
    serverLog.dropped.length = 0;
    serverLog.left.length = 0;
    serverLog.reconnected = 0;
    serverLog.seqs.length = 0;
    serverLog.senders.clear();
  });
  afterEach(() => c.run());

  it("port change then 127.0.0.2 -> 127.0.0.3 mid-game: same Client and sessionId, no drop/leave, every message once, state flows", async () => {
    const stack = await startColyseus(c, { migration: MigrationRoom });
    const room = await joinRoom(c, stack.endpoint, "migration", { localAddress: lo(2) });
    const signals = recordSignals(room);
    const received: number[] = [];
    room.onMessage("srv", (n: number) => void received.push(n));
    await waitFor(() => serverLog.joined.length === 1 && room.state?.label === "start", 5000, "join and initial state");
    const serverClient = serverLog.joined[0]! as unknown as FastnetServerClient;
    assert.ok(serverClient instanceof FastnetServerClient);
    assert.equal(serverClient.sessionId, room.sessionId);
    const clientTransport = transportOf(room);
    const session = clientTransport.session!;
    const serverRoom = matchMaker.getLocalRoomById(room.roomId)!;
    const paths = recordCidsByPath(session, stack.transport.engine);
    const events: Array<{ sessionId: string; from: { address: string; port: number }; to: { address: string; port: number } }> = [];
    stack.transport.on("migration", (sessionId, from, to) => void events.push({ sessionId, from, to }));

    // Continuous traffic both ways: numbered reliable messages every few ms.
    let sentUp = 0;
    let sentDown = 0;
    const pump = setInterval(() => {
      room.send("seq", sentUp++);
      serverClient.send("srv", sentDown++);
    }, 3);
    c.add(() => clearInterval(pump));
    const flowing = async (what: string): Promise<void> => {
      const up = sentUp;
      const down = sentDown;
      await waitFor(() => serverLog.seqs.length > up + 25 && received.length > down + 25, 5000, what, () => `${serverLog.seqs.length}/${sentUp} up, ${received.length}/${sentDown} down`);
    };
    await flowing("traffic before the moves");

    const a0 = localOf(session);
    assert.equal(a0.address, lo(2));
    assert.deepEqual(stack.transport.engine.sessionsAt(a0.address, a0.port), [serverClient.session]);
    const t1 = performance.now();
    await within(clientTransport.rebind({}), 3000, "port-only rebind");
    await waitFor(() => events.length === 1, 3000, "the first 'migration' event");
    const d1 = performance.now() - t1;
    const a1 = localOf(session);
    assert.equal(a1.address, lo(2));
    assert.notEqual(a1.port, a0.port);
    await flowing("traffic after the port change");

    const t2 = performance.now();
    await within(clientTransport.rebind({ localAddress: lo(3) }), 3000, "rebind to 127.0.0.3");
    await waitFor(() => events.length === 2, 3000, "the second 'migration' event");
    const d2 = performance.now() - t2;
    const a2 = localOf(session);
    assert.equal(a2.address, lo(3));
    await flowing("traffic after the move to 127.0.0.3");

    clearInterval(pump);
    await waitFor(
      () => serverLog.seqs.length === sentUp && received.length === sentDown,
      5000,
      "every message sent",
      () => `${serverLog.seqs.length}/${sentUp} up, ${received.length}/${sentDown} down`,
    );
    // Exactly once and in order, both ways.
    assert.deepEqual(serverLog.seqs, Array.from({ length: sentUp }, (_, i) => i));
    assert.deepEqual(received, Array.from({ length: sentDown }, (_, i) => i));
    // State patches followed the moves.
    await waitFor(() => room.state.counter === sentUp - 1, 3000, "the last state patch", () => String(room.state.counter));

    // The room saw nothing: the same Client object carried every message, no drop, no leave.
    assert.deepEqual(serverLog.dropped, []);
    assert.deepEqual(serverLog.left, []);
    assert.equal(serverLog.reconnected, 0);
    assert.equal(serverLog.joined.length, 1);
    assert.deepEqual([...serverLog.senders], [serverClient]);
    assert.equal(serverRoom.clients.length, 1);
    assert.equal(serverRoom.clients[0], serverClient);
    assert.equal(serverClient.readyState, 1);
    assert.deepEqual(signals.drop, []);
    assert.deepEqual(signals.leave, []);
    assert.deepEqual(signals.reconnect, []);
    assert.equal(room.sessionId, serverClient.sessionId);
    assert.equal(clientTransport.session, session, "the same client session throughout");
    assert.equal(session.rebinds, 2);
    // Each path carried its own connection ID both ways (unlinkable), under the same seat and session.
    assertUnlinkable(paths, 3);
    assert.equal(session.connection.cidSequence, 2);

    // The transport reported both moves with the old and new addresses, and counted them.
    assert.deepEqual(events, [
      { sessionId: room.sessionId, from: a0, to: a1 },
      { sessionId: room.sessionId, from: a1, to: a2 },
    ]);
    assert.equal(stack.transport.stats.migrations, 2);
    assert.equal(stack.transport.stats.migrationsRefused, 0);
    assert.equal(stack.transport.stats.pathValidationsFailed, 0);
    const engine = stack.transport.engine;
    assert.deepEqual(engine.sessionsAt(a0.address, a0.port), []);
    assert.deepEqual(engine.sessionsAt(a1.address, a1.port), []);
    assert.deepEqual(engine.sessionsAt(a2.address, a2.port), [serverClient.session]);
    if (process.env.FASTNET_TEST_VERBOSE) {
      console.log(`      colyseus: port change migrated in ${d1.toFixed(1)} ms, address change in ${d2.toFixed(1)} ms; ${sentUp} up / ${sentDown} down`);
    }
    // And the room still ends normally.
    assert.equal(await within(room.leave(), 5000, "leave"), 4000);
    await waitFor(() => serverLog.left.length === 1, 3000, "the server-side onLeave");
  });
});
