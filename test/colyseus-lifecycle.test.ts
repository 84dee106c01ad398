/**
 * Colyseus over fastnet, end to end: join and leave with the right close codes on both sides, drops,
 * server shutdown, and expired seat reservations. Real @colyseus/core Server, real @colyseus/sdk rooms.
 */
import assert from "node:assert/strict";
import { ClientState, CloseCode, ErrorCode, Protocol, Room, matchMaker, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import { FastnetServerClient } from "../src/index.js";
import { transportOf } from "../src/client.js";
import { ColyseusHarness, FrameRecordingClient, recordEvents, rejectionOf, waitFor, within } from "./support/colyseus-harness.js";
import { UdpRelay } from "./support/colyseus-udp-relay.js";

const LifecycleState = schema({ joins: t.number(), leaves: t.number() }, "LifecycleState");

/** What the server-side room saw, shared with the test (one room per test). */
interface ServerLog {
  joined: string[];
  left: Array<{ sessionId: string; code: number | undefined; via: "onLeave" | "onDrop" }>;
  clients: Map<string, Client>;
}
const log: ServerLog = { joined: [], left: [], clients: new Map() };

class LifecycleRoom extends Room {
  override state = new LifecycleState();
  override onCreate(): void {
    this.state.joins = 0;
    this.state.leaves = 0;
    this.onMessage("kick-me", (client, { code, reason }: { code: number; reason: string }) => client.leave(code, reason));
  }
  override onJoin(client: Client): void {
    this.state.joins++;
    log.joined.push(client.sessionId);
    log.clients.set(client.sessionId, client);
  }
  override onDrop(client: Client, code?: number): void {
    log.left.push({ sessionId: client.sessionId, code, via: "onDrop" });
  }
  override onLeave(client: Client, code?: number): void {
    this.state.leaves++;
    log.left.push({ sessionId: client.sessionId, code, via: "onLeave" });
  }
}

/**
 * No onJoin and no onAuth: core sends JOIN_ROOM synchronously while the server is still handling the
 * client's UDP bind, so it rides in the very packet that answers the bind.
 */
class BareRoom extends Room {}

/** Seat reservations last one second in this room. */
class ShortSeatRoom extends Room {
  override onCreate(): void {
    this.seatReservationTimeout = 1;
    this.autoDispose = false;
  }
}

describe("Colyseus over fastnet: join, leave, drop, shutdown, expired seats", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;

  beforeEach(async () => {
    log.joined.length = 0;
    log.left.length = 0;
    log.clients.clear();
    h = await new ColyseusHarness().start({ lifecycle: LifecycleRoom, short_seat: ShortSeatRoom, bare: BareRoom });
  });

  afterEach(async () => {
    await h.stop();
  });

  it("joins over a fastnet session: the server-side Client is a FastnetServerClient with an open session", async () => {
    const room = await h.join(h.client(), "lifecycle");
    assert.equal(typeof room.sessionId, "string");
    assert.deepEqual(log.joined, [room.sessionId]);
    const serverClient = log.clients.get(room.sessionId);
    assert.ok(serverClient instanceof FastnetServerClient, "the room's client is the fastnet server client");
    assert.equal(serverClient.readyState, 1);
    const transport = transportOf(room);
    assert.equal(transport.isOpen, true);
    assert.match(transport.url, /^fastnet:\/\/127\.0\.0\.1:\d+\/[^/]+\/[^/?]+\?sessionId=/);
    assert.equal(transport.session?.tlsProtocol, "TLSv1.3");
    assert.equal(transport.session?.remotePort, h.transport.engine.udpPort);
    assert.equal(h.transport.engine.sessionCount, 1);
  });

  it("joins a room without onJoin/onAuth (JOIN_ROOM in the packet answering the bind is not lost)", async () => {
    const client = new FrameRecordingClient(h.endpoint);
    const room = await h.join(client, "bare", {}, 5000);
    assert.deepEqual(client.framesOf(room).slice(0, 1), [Protocol.JOIN_ROOM]);
    const second = await h.join(h.client(), "bare", {}, 5000);
    assert.equal(second.roomId, room.roomId);
    assert.equal(await within(room.leave(), 5000, "leave"), CloseCode.CONSENTED);
  });

  it("room.leave(): the server runs onLeave with 4000 (CONSENTED) and the SDK gets onLeave 4000", async () => {
    const room = await h.join(h.client(), "lifecycle");
    const ev = recordEvents(room);
    const code = await within(room.leave(), 5000, "room.leave()");
    assert.equal(code, CloseCode.CONSENTED);
    await waitFor(() => log.left.length === 1, 5000, "server onLeave");
    assert.deepEqual(log.left, [{ sessionId: room.sessionId, code: CloseCode.CONSENTED, via: "onLeave" }]);
    assert.deepEqual(ev.leave.map((e) => e.code), [CloseCode.CONSENTED]);
    assert.deepEqual(ev.drop, []);
    await waitFor(() => h.transport.engine.sessionCount === 0, 5000, "the server session to close");
    assert.equal(transportOf(room).isOpen, false);
  });

  it("server-side client.leave(4123, 'bye'): the SDK gets onLeave(4123, 'bye'); the room sees a non-consented close", async () => {
    const room = await h.join(h.client(), "lifecycle");
    const ev = recordEvents(room);
    log.clients.get(room.sessionId)!.leave(4123, "bye");
    await waitFor(() => ev.leave.length > 0, 5000, "SDK onLeave");
    assert.deepEqual(
      ev.leave.map((e) => [e.code, e.reason]),
      [[4123, "bye"]],
    );
    assert.deepEqual(ev.drop, [], "4123 is not a code the SDK reconnects on");
    await waitFor(() => log.left.length === 2, 5000, "server onDrop then onLeave");
    // Core runs onDrop for every code but 4000 when the room defines onDrop; without allowReconnection
    // onLeave follows with the same code.
    assert.deepEqual(log.left, [
      { sessionId: room.sessionId, code: 4123, via: "onDrop" },
      { sessionId: room.sessionId, code: 4123, via: "onLeave" },
    ]);
  });

  it("a kick requested through a message arrives with its code and reason (close after the reliable stream)", async () => {
    const room = await h.join(h.client(), "lifecycle");
    const ev = recordEvents(room);
    room.send("kick-me", { code: 4321, reason: "requested kick" });
    await waitFor(() => ev.leave.length > 0, 5000, "SDK onLeave");
    assert.deepEqual([ev.leave[0]!.code, ev.leave[0]!.reason], [4321, "requested kick"]);
  });

  it("the client's session dies (abort): the server runs onDrop with 1006, not 4000", async () => {
    const room = await h.join(h.client(), "lifecycle");
    const ev = recordEvents(room);
    transportOf(room).session!.abort(1006, "test: connection died");
    await waitFor(() => log.left.length === 2, 5000, "server onDrop then onLeave");
    assert.deepEqual(log.left, [
      { sessionId: room.sessionId, code: 1006, via: "onDrop" },
      { sessionId: room.sessionId, code: 1006, via: "onLeave" },
    ]);
    // Joined less than minUptime (5 s) ago, the SDK does not retry: it reports the drop as a leave.
    await waitFor(() => ev.leave.length > 0, 5000, "SDK onLeave");
    assert.equal(ev.drop[0]?.code, 1006, "the SDK saw the abnormal close first");
    assert.equal(ev.leave[0]!.code, 1006);
  });

  it("the client's path goes silent: the server detects it by idle timeout and runs onDrop", async () => {
    // The client reaches the server through a relay that then drops everything, both ways and for new
    // local ports too (the client's automatic rebind cannot heal this path).
    await h.stop();
    const relay = new UdpRelay();
    try {
      const relayPort = await relay.listen();
      h = await new ColyseusHarness().start({ lifecycle: LifecycleRoom }, { idleTimeoutMs: 800, keepAliveMs: 200, publicPort: relayPort });
      relay.setTarget(h.transport.engine.udpPort);
      const room = await h.join(h.client({ idleTimeoutMs: 800, keepAliveMs: 200 }), "lifecycle");
      room.reconnection.enabled = false;
      const ev = recordEvents(room);
      const t0 = performance.now();
      relay.cut = true;
      await waitFor(() => log.left.length === 2, 5000, "server onDrop and onLeave after the idle timeout");
      const took = performance.now() - t0;
      assert.deepEqual(log.left, [
        { sessionId: room.sessionId, code: 1006, via: "onDrop" },
        { sessionId: room.sessionId, code: 1006, via: "onLeave" },
      ]);
      assert.ok(took >= 600, `the drop came after the idle timeout, not before (${took.toFixed(0)} ms)`);
      await waitFor(() => ev.leave.length > 0, 5000, "SDK onLeave after its own idle timeout");
      assert.equal(ev.leave[0]!.code, 1006);
      assert.ok(relay.stats.dropped > 0);
    } finally {
      relay.cut = false;
      await h.stop();
      await relay.close();
    }
  });

  /** Shuts the server down without the harness aborting anything, and checks what every SDK room saw. */
  async function shutdownAndExpect4001(events: ReturnType<typeof recordEvents>[]): Promise<void> {
    const t0 = performance.now();
    await within(h.server.gracefullyShutdown(false), 5000, "gracefullyShutdown");
    await waitFor(
      () => events.every((e) => e.leave.length > 0),
      2000,
      "onLeave on every SDK room",
      () => JSON.stringify(events.map((e) => e.leave)),
    );
    for (const e of events) {
      assert.deepEqual(e.leave.map((l) => l.code), [CloseCode.SERVER_SHUTDOWN]);
      assert.ok(e.leave[0]!.at - t0 < 2000, `onLeave after ${(e.leave[0]!.at - t0).toFixed(0)} ms`);
      assert.deepEqual(e.drop, []);
    }
    // The server side ran onDrop and then onLeave for every client, with 4001.
    assert.equal(log.left.length, 2 * events.length);
    for (const l of log.left) assert.equal(l.code, CloseCode.SERVER_SHUTDOWN);
  }

  it("server shutdown of idle rooms: every SDK room gets onLeave 4001 within 2 s (not by timeout)", async () => {
    const client = h.client();
    const rooms = [];
    for (let i = 0; i < 3; i++) rooms.push(await h.join(client, "lifecycle"));
    const events = rooms.map((r) => recordEvents(r));
    // Let every reliable byte be acknowledged (delayed ACKs included) before shutting down.
    const sessions = rooms.flatMap((r) => [transportOf(r).session!, (log.clients.get(r.sessionId) as FastnetServerClient).session]);
    await waitFor(() => sessions.every((s) => s.connection.queuedBytes === 0), 5000, "every reliable byte acknowledged, both ways");
    await shutdownAndExpect4001(events);
  });

  it("server shutdown right after sending: every SDK room gets the messages, then onLeave 4001 within 2 s", async () => {
    const client = h.client();
    const rooms = [];
    for (let i = 0; i < 3; i++) rooms.push(await h.join(client, "lifecycle"));
    const events = rooms.map((r) => recordEvents(r));
    const got = rooms.map(() => [] as number[]);
    rooms.forEach((r, i) => r.onMessage("last-words", (n: number) => void got[i]!.push(n)));
    const serverRoom = matchMaker.getLocalRoomById(rooms[0]!.roomId)!;
    // Core buffers messages for a client until it acknowledged JOIN_ROOM: wait for that first.
    await waitFor(() => serverRoom.clients.every((c) => c.state === ClientState.JOINED), 5000, "every client JOINED");
    // Reliable data is still unacknowledged when the room closes its clients: each close must wait for
    // it, and the CLOSE must still leave before the transport closes its UDP socket.
    for (let n = 0; n < 5; n++) serverRoom.broadcast("last-words", n);
    await shutdownAndExpect4001(events);
    for (const g of got) assert.deepEqual(g, [0, 1, 2, 3, 4]);
  });

  it("consuming a seat reservation after it expired: join rejects naming the expired seat, quickly", async () => {
    const client = h.client();
    // A real matchmaking request (what joinOrCreate does first), then wait for the seat to expire.
    const response = await client.http.post("/matchmake/joinOrCreate/short_seat", { body: {} } as any);
    const reservation = response.data as any;
    assert.equal(typeof reservation.sessionId, "string");
    assert.deepEqual(reservation.fingerprint, h.transport.fingerprint, "the dev certificate pin is published");
    const room = matchMaker.getLocalRoomById(reservation.roomId)!;
    assert.ok(room.hasReservedSeat(reservation.sessionId), "the seat is reserved at first");
    await waitFor(() => !room.hasReservedSeat(reservation.sessionId), 4000, "the seat reservation to expire");
    const t0 = performance.now();
    const err = await rejectionOf(client.consumeSeatReservation(reservation), 5000, "consumeSeatReservation");
    const took = performance.now() - t0;
    assert.match(err.message, /seat reservation expired/);
    assert.equal(err.code, ErrorCode.MATCHMAKE_EXPIRED);
    assert.ok(took < 3000, `rejected after ${took.toFixed(0)} ms`);
    await waitFor(() => h.transport.engine.sessionCount === 0, 5000, "the refused session to close");
  });
});
