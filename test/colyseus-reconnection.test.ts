/**
 * Colyseus over fastnet: the UDP path dies for a while and comes back. The client reaches the server
 * through a test UDP relay (the transport advertises it with `publicPort`); cutting the relay drops every
 * datagram both ways, as a dead network path does. Small idle/keep-alive timeouts on both sides make the
 * loss visible in about a second.
 */
import assert from "node:assert/strict";
import { Room, matchMaker, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import type { FastnetServerClient, FastnetTransportOptions } from "../src/index.js";
import { transportOf } from "../src/client.js";
import { ColyseusHarness, recordEvents, waitFor, within } from "./support/colyseus-harness.js";
import { UdpRelay } from "./support/colyseus-udp-relay.js";

const ReconnectState = schema({ counter: t.number(), label: t.string() }, "ReconnectState");

interface RoomLog {
  events: Array<{ what: "join" | "drop" | "reconnect" | "leave"; sessionId: string; code?: number }>;
  pings: number[];
}
const roomLog: RoomLog = { events: [], pings: [] };

class ReconnectRoom extends Room {
  override state = new ReconnectState();
  override onCreate(): void {
    this.state.counter = 0;
    this.state.label = "start";
    this.onMessage("ping", (client, n: number) => {
      roomLog.pings.push(n);
      client.send("pong", n);
    });
    this.onMessage("bump", (_client, label: string) => {
      this.state.counter++;
      this.state.label = label;
    });
  }
  override onJoin(client: Client): void {
    roomLog.events.push({ what: "join", sessionId: client.sessionId });
  }
  override async onDrop(client: Client, code?: number): Promise<void> {
    roomLog.events.push({ what: "drop", sessionId: client.sessionId, code });
    await this.allowReconnection(client, 20);
  }
  override onReconnect(client: Client): void {
    roomLog.events.push({ what: "reconnect", sessionId: client.sessionId });
  }
  override onLeave(client: Client, code?: number): void {
    roomLog.events.push({ what: "leave", sessionId: client.sessionId, code });
  }
}

const FAST = { idleTimeoutMs: 1000, keepAliveMs: 200 };

describe("Colyseus over fastnet: reconnection after the UDP path was cut", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;
  let relay: UdpRelay;

  /** A fresh relay, and a harness behind it: `options` plus the relay's port advertised as publicPort. */
  async function startBehindRelay(options: FastnetTransportOptions): Promise<void> {
    relay = new UdpRelay();
    const relayPort = await relay.listen();
    h = await new ColyseusHarness().start({ reconnect: ReconnectRoom }, { ...options, publicPort: relayPort });
    relay.setTarget(h.transport.engine.udpPort);
  }

  beforeEach(async () => {
    roomLog.events.length = 0;
    roomLog.pings.length = 0;
    await startBehindRelay(FAST);
  });

  afterEach(async () => {
    relay.cut = false;
    await h.stop();
    await relay.close();
  });

  async function joinThroughRelay() {
    // path "udp": these tests are about the UDP path coming back (under "auto" the SDK would reconnect
    // over WebSocket while it is cut; test/fallback-netns.test.ts covers that).
    const room = await h.join(h.client({ ...FAST, bindTimeoutMs: 700, path: "udp" }), "reconnect");
    room.reconnection.minUptime = 0;
    room.reconnection.maxDelay = 300; // retry every few hundred ms rather than backing off to 5 s
    await waitFor(() => room.state?.label === "start", 5000, "the initial state");
    const pongs: number[] = [];
    room.onMessage("pong", (n: number) => void pongs.push(n));
    return { room, pongs, events: recordEvents(room) };
  }

  it("goes through the relay: the session's UDP peer is the relay, and traffic flows", async () => {
    const { room, pongs } = await joinThroughRelay();
    assert.equal(transportOf(room).session!.remotePort, relay.port);
    room.send("ping", 1);
    await waitFor(() => pongs.length === 1, 5000, "pong");
    assert.ok(relay.stats.toServer > 0 && relay.stats.toClient > 0);
  });

  it("a short cut (below the idle timeout) loses nothing: no drop, messages sent meanwhile arrive in order", async () => {
    const { room, pongs, events } = await joinThroughRelay();
    relay.cut = true;
    for (let i = 0; i < 20; i++) room.send("ping", i);
    // The cut's length is the scenario (short: well under the 1 s idle timeout), not a wait for an event.
    await new Promise((r) => setTimeout(r, 400));
    assert.ok(relay.stats.dropped > 0, "the relay really dropped packets");
    assert.deepEqual(roomLog.pings, [], "nothing crossed while cut");
    relay.cut = false;
    await waitFor(() => pongs.length === 20, 5000, "every pong after the cut", () => `${pongs.length}`);
    assert.deepEqual(roomLog.pings, Array.from({ length: 20 }, (_, i) => i));
    assert.deepEqual(pongs, Array.from({ length: 20 }, (_, i) => i));
    assert.deepEqual(events.drop, []);
    assert.deepEqual(events.leave, []);
    assert.deepEqual(
      roomLog.events.map((e) => e.what),
      ["join"],
    );
    assert.ok(transportOf(room).getStats()!.bytesRetransmitted > 0, "the stream recovered by retransmission");
  });

  it("the client's old path dies but the session survives: automatic rebind, no drop, nothing lost", async () => {
    // Default idle timeout (10 s); the client keeps alive every 200 ms and rebinds after 3 silent intervals.
    await h.stop();
    await relay.close();
    await startBehindRelay({});
    const room = await h.join(h.client({ keepAliveMs: 200 }), "reconnect");
    const events = recordEvents(room);
    const pongs: number[] = [];
    room.onMessage("pong", (n: number) => void pongs.push(n));
    await waitFor(() => room.state?.label === "start", 5000, "the initial state");
    const session = transportOf(room).session!;

    relay.killExistingFlows();
    for (let i = 0; i < 10; i++) room.send("ping", i);
    room.send("bump", "over the new path");
    await waitFor(() => pongs.length === 10, 8000, "every pong over the new path", () => `${pongs.length}`);
    assert.deepEqual(pongs, Array.from({ length: 10 }, (_, i) => i));
    assert.deepEqual(roomLog.pings, Array.from({ length: 10 }, (_, i) => i));
    await waitFor(() => room.state.label === "over the new path", 5000, "the patch over the new path");
    assert.equal(transportOf(room).session, session, "the same session carries on");
    assert.ok(session.rebinds >= 1, "the client rebound to a fresh local port");
    assert.equal(relay.stats.flows, 2, "a second flow (the new local port) carried the session");
    assert.deepEqual(events.drop, []);
    assert.deepEqual(events.reconnect, []);
    assert.deepEqual(roomLog.events.map((e) => e.what), ["join"]);
  });

  it("the client moves to a new path while the server still believes the old one alive: the old session is replaced at once", async () => {
    // Default timeouts here (10 s idle): the server must not learn of the loss by timing out.
    await h.stop();
    await relay.close();
    await startBehindRelay({});
    const room = await h.join(h.client(), "reconnect");
    room.reconnection.minUptime = 0;
    const events = recordEvents(room);
    const pongs: number[] = [];
    room.onMessage("pong", (n: number) => void pongs.push(n));
    await waitFor(() => room.state?.label === "start", 5000, "the initial state");
    const serverRoom = matchMaker.getLocalRoomById(room.roomId) as ReconnectRoom;
    const oldServerClient = serverRoom.clients.get(room.sessionId) as unknown as FastnetServerClient;
    // Its own session: after the reconnection the old Client object follows the new one (readyState 1).
    const oldServerSession = oldServerClient.session;

    // The old path dies, then the client gives its session up (its CLOSE packets die on that path):
    // the server still has an open session for this client.
    relay.killExistingFlows();
    const t0 = performance.now();
    transportOf(room).session!.abort(1006, "test: network changed");
    await waitFor(() => events.drop.length > 0, 2000, "the SDK's onDrop");
    assert.equal(oldServerClient.readyState, 1, "the server has not noticed anything yet");

    await waitFor(() => events.reconnect.length === 1, 5000, "the SDK's onReconnect");
    const took = performance.now() - t0;
    assert.ok(took < 4000, `reconnected after ${took.toFixed(0)} ms, well inside the server's 10 s idle timeout`);
    assert.deepEqual(
      roomLog.events.map((e) => [e.what, e.code]),
      [
        ["join", undefined],
        ["drop", 1006],
        ["reconnect", undefined],
      ],
    );
    assert.equal(oldServerSession.readyState, 3, "the stale session was closed");
    assert.equal(oldServerClient.readyState, 1, "the old Client object now reports the live session");
    assert.equal(h.transport.engine.sessionCount, 1);
    room.send("ping", 1);
    await waitFor(() => pongs.includes(1), 5000, "a pong on the new path");
    assert.equal(relay.stats.flows, 2);
  });

  it("a long cut: the room sees onDrop then onReconnect, the SDK onDrop then onReconnect, state intact, messages flow", async () => {
    const { room, pongs, events } = await joinThroughRelay();
    const sessionId = room.sessionId;
    room.send("bump", "before the cut");
    await waitFor(() => room.state.counter === 1, 5000, "the first bump");
    const serverRoom = matchMaker.getLocalRoomById(room.roomId) as ReconnectRoom;
    const oldServerClient = serverRoom.clients.get(sessionId) as unknown as FastnetServerClient;
    const oldClientSession = transportOf(room).session!;

    const cutAt = performance.now();
    relay.cut = true;
    // Both sides notice by idle timeout (1 s here).
    await waitFor(() => roomLog.events.some((e) => e.what === "drop"), 5000, "the room's onDrop");
    await waitFor(() => events.drop.length > 0, 5000, "the SDK's onDrop");
    assert.ok(performance.now() - cutAt >= 800, "the drop was detected by the idle timeout, not earlier");
    assert.equal(events.drop[0]!.code, 1006);
    assert.equal(roomLog.events.find((e) => e.what === "drop")!.code, 1006);
    assert.equal(oldServerClient.readyState, 3);
    assert.equal(oldClientSession.readyState, 3);
    // Sent while disconnected: the SDK queues it and sends it once reconnected.
    room.send("ping", 7);
    // The state changes meanwhile on the server; the reconnected client must see it.
    serverRoom.state.counter = 5;
    serverRoom.state.label = "changed while away";
    // Keep the path dead until at least one reconnection attempt has failed (bind timeout 0.7 s): the SDK
    // counts an attempt when it schedules it, so a second one means the first failed.
    await waitFor(() => room.reconnection.retryCount >= 2, 10_000, "a failed reconnection attempt", () => `retryCount ${room.reconnection.retryCount}`);
    assert.deepEqual(events.reconnect, [], "no reconnection while the path is dead");
    assert.equal(room.reconnection.isReconnecting, true);
    relay.cut = false;

    await waitFor(() => events.reconnect.length === 1, 10_000, "the SDK's onReconnect");
    await waitFor(() => roomLog.events.some((e) => e.what === "reconnect"), 5000, "the room's onReconnect");
    assert.deepEqual(
      roomLog.events.map((e) => [e.what, e.sessionId]),
      [
        ["join", sessionId],
        ["drop", sessionId],
        ["reconnect", sessionId],
      ],
    );
    assert.deepEqual(events.leave, []);
    assert.equal(room.sessionId, sessionId);
    assert.equal(transportOf(room).isOpen, true);
    assert.notEqual(transportOf(room).session, oldClientSession, "a new session carries the room");
    const newServerClient = serverRoom.clients.get(sessionId) as unknown as FastnetServerClient;
    assert.notEqual(newServerClient, oldServerClient);
    assert.equal(newServerClient.readyState, 1);

    // The message queued during the outage arrived, and new traffic flows both ways.
    await waitFor(() => pongs.includes(7), 5000, "the pong for the queued ping");
    room.send("ping", 8);
    await waitFor(() => pongs.includes(8), 5000, "a pong after reconnection");
    assert.deepEqual(roomLog.pings, [7, 8]);
    await waitFor(() => room.state.counter === 5, 5000, "the state changed while away", () => String(room.state.counter));
    assert.equal(room.state.label, "changed while away");
    room.send("bump", "after");
    await waitFor(() => room.state.counter === 6 && room.state.label === "after", 5000, "a patch after reconnection");
    assert.equal(serverRoom.clients.length, 1);
    // The room ends normally afterwards.
    assert.equal(await within(room.leave(), 5000, "leave"), 4000);
  });
});
