/**
 * FastnetClient's `path` option on an open loopback network: "websocket" joins over the server's
 * WebSocket path without trying fastnet, "udp" and "auto" use UDP; what `transportOf(room)` and
 * `pathOf(room)` say; a room on the WebSocket path plays, reconnects on it, and leaves; bad options are
 * named errors. (The fallback under real packet loss is test/fallback-netns.test.ts.)
 */
import assert from "node:assert/strict";
import { Room, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetClient, FastnetError, fastnetCodeOf, pathOf, transportOf } from "../src/client.js";
import { ColyseusHarness, recordEvents, rejectionOf, waitFor, within } from "./support/colyseus-harness.js";

const PathState = schema({ counter: t.number() }, "FallbackPathState");

const roomLog: string[] = [];

class PathRoom extends Room {
  override state = new PathState();
  override onCreate(): void {
    this.state.counter = 0;
    this.onMessage("ping", (client, n: number) => {
      this.state.counter = n;
      client.send("pong", n);
    });
    this.onMessage("uping", (client, n: number) => {
      roomLog.push(`uping ${n}`);
      client.send("upong", n);
    });
  }
  override onJoin(client: Client): void {
    roomLog.push(`join ${client.sessionId}`);
  }
  override async onDrop(client: Client): Promise<void> {
    roomLog.push(`drop ${client.sessionId}`);
    await this.allowReconnection(client, 20);
  }
  override onReconnect(client: Client): void {
    roomLog.push(`reconnect ${client.sessionId}`);
  }
  override onLeave(client: Client): void {
    roomLog.push(`leave ${client.sessionId}`);
  }
}

/** Sends `type` n (reliably or not), waits for the reply `reply` n. */
async function roundTrip(room: SdkRoom, type: string, reply: string, n: number, unreliable = false): Promise<number> {
  const got = new Promise<number>((resolve) => {
    const off = room.onMessage(reply, (v: number) => {
      if (v !== n) return;
      off();
      resolve(v);
    });
  });
  if (unreliable) room.sendUnreliable(type, n);
  else room.send(type, n);
  return within(got, 5000, `${reply} ${n}`);
}

describe("FastnetClient path option: forced WebSocket, forced UDP, auto on an open network", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;

  beforeEach(async () => {
    roomLog.length = 0;
    h = await new ColyseusHarness().start({ path: PathRoom });
  });

  afterEach(async () => {
    await h.stop();
  });

  it('path: "websocket" joins over the WebSocket path without trying fastnet, and plays', async () => {
    // Without the dev certificate pinned, a fastnet handshake would fail (CERTIFICATE_REJECTED): the
    // join succeeding shows that none was made.
    const options = { pinDevCertificate: false, tls: { rejectUnauthorized: true } };
    const room = await h.join(h.client({ ...options, path: "websocket" }), "path");
    assert.equal(transportOf(room).path, "websocket");
    assert.equal(pathOf(room), "websocket");
    assert.equal(transportOf(room).session, null);
    assert.equal(transportOf(room).getStats(), null);
    assert.equal(h.transport.stats.sessionsOpened, 0);
    assert.equal(h.transport.webSocket!.stats.joins, 1);

    assert.equal(await roundTrip(room, "ping", "pong", 5), 5);
    await waitFor(() => (room.state as { counter?: number }).counter === 5, 5000, "state.counter 5");
    // sendUnreliable goes over the socket and reaches the room.
    assert.equal(await roundTrip(room, "uping", "upong", 6, true), 6);

    const err: unknown = await rejectionOf(transportOf(room).rebind(), 2000, "rebind over WebSocket");
    assert.ok(err instanceof FastnetError);
    assert.equal(fastnetCodeOf(err), "NOT_OPEN");
    assert.match(err.message, /WebSocket/);

    // The same options with "auto": the fastnet handshake runs, and a certificate that does not
    // verify ends the join instead of falling back.
    const refused = await rejectionOf(h.client(options).joinOrCreate("path"), 10_000, "auto join with an unverifiable certificate");
    assert.equal(fastnetCodeOf(refused), "CERTIFICATE_REJECTED");
    assert.equal(h.transport.webSocket!.stats.connections, 1);
  });

  it('a room on the WebSocket path reconnects on it after a drop (same sessionId), then leaves', async () => {
    const room = await h.join(h.client({ path: "websocket" }), "path");
    room.reconnection.minUptime = 0;
    const events = recordEvents(room);
    const sessionId = room.sessionId;
    // An unconsented leave: a WebSocket closed without a status, which the room sees as a drop.
    void room.leave(false);
    await waitFor(() => events.reconnect.length === 1, 10_000, "reconnection");
    assert.equal(room.sessionId, sessionId);
    assert.equal(pathOf(room), "websocket");
    assert.equal(await roundTrip(room, "ping", "pong", 9), 9);
    const code = await within(room.leave(), 5000, "consented leave");
    assert.equal(code, 4000);
    await waitFor(() => roomLog.at(-1) === `leave ${sessionId}`, 5000, "the room to see the leave");
    assert.deepEqual(
      roomLog.map((e) => e.replace(sessionId, "<sid>")),
      ["join <sid>", "drop <sid>", "reconnect <sid>", "leave <sid>"],
    );
    assert.equal(events.drop.length, 1);
  });

  it('path: "udp" and "auto" join over UDP on an open network', async () => {
    const udp = await h.join(h.client({ path: "udp" }), "path");
    const auto = await h.join(h.client(), "path");
    for (const room of [udp, auto]) {
      assert.equal(pathOf(room), "udp");
      assert.equal(transportOf(room).udpFailure, null);
      assert.ok(transportOf(room).getStats());
      assert.equal(await roundTrip(room, "uping", "upong", 3, true), 3);
    }
    assert.equal(h.transport.stats.sessionsOpened, 2);
    assert.equal(h.transport.webSocket!.stats.connections, 0);
  });

  it('getLatency measures on the path rooms would use: the WebSocket probe with path: "websocket"', async () => {
    const ms = await within(h.client({ path: "websocket" }).getLatency(), 5000, "WebSocket latency");
    assert.ok(Number.isFinite(ms) && ms >= 0 && ms < 1000, `latency ${ms}`);
    assert.equal(h.transport.webSocket!.stats.probes, 1);
    assert.equal(h.transport.stats.sessionsOpened, 0);
  });

  it("bad path and udpFallbackMs options are named errors", () => {
    assert.throws(() => new FastnetClient(h.endpoint, { path: "tcp" as never }), (e: unknown) => fastnetCodeOf(e) === "INVALID_OPTION" && /"auto", "udp" or "websocket"/.test((e as Error).message));
    for (const udpFallbackMs of [0, -1, Number.NaN]) {
      assert.throws(() => new FastnetClient(h.endpoint, { udpFallbackMs }), (e: unknown) => fastnetCodeOf(e) === "INVALID_OPTION" && /udpFallbackMs/.test((e as Error).message));
    }
  });

  it("pathOf and transportOf name what is wrong with a room they cannot read", () => {
    const fresh = new FastnetClient(h.endpoint);
    const room = (fresh as unknown as { createRoom(name: string): SdkRoom }).createRoom("path");
    assert.throws(() => pathOf(room), /not connected through FastnetClient/);
  });
});
