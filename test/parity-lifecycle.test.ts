/**
 * Parity: joining, leaving and reconnecting, on ws-transport (the reference), on fastnet over UDP
 * and on fastnet's WebSocket path (stock SDK Client); see support/parity-harness.ts.
 * Close codes seen by both ends, the room hooks that run (onLeave / onDrop / onReconnect), automatic
 * reconnection and reconnection by token, and seat reservations made on the server.
 */
import assert from "node:assert/strict";
import { ErrorCode, Room, ServerError, matchMaker, type Client } from "@colyseus/core";
import type { Room as SdkRoom } from "@colyseus/sdk";
import {
  ServerLog,
  describeParity,
  nextLeave,
  nextMessage,
  nextReconnect,
  recordClient,
  rejectionOf,
  waitFor,
  within,
  type ParityCase,
} from "./support/parity-harness.js";

/** Close codes, as Colyseus and the WebSocket spec name them. */
const CONSENTED = 4000;
const NO_STATUS_RECEIVED = 1005;
const MAY_TRY_RECONNECT = 4010;
/** An application's own close code (4000-4999 range, none that Colyseus gives a meaning). */
const APP_CODE = 4321;

const log = new ServerLog();
/** When (performance.now()) the room saw each client drop, and when it told each client to leave. */
const droppedAt = new Map<string, number>();
const kickedAt = new Map<string, number>();

/** Logs every hook; `kick` makes the server call `client.leave(code)`; `echo` answers. */
class PlainRoom extends Room {
  /** Seconds a dropped client may come back in (0: no reconnection). */
  protected reconnectSeconds = 0;

  override onCreate(): void {
    this.onMessage("echo", (client, msg) => client.send("echo", msg));
    this.onMessage("kick", (client, code: number) => client.leave(code));
    this.onMessage("noop", () => undefined);
    // Data in flight, then the close at once: the close must not wait behind it.
    this.onMessage("send-then-kick", (client, code: number) => {
      client.send("bye", "see you");
      kickedAt.set(client.sessionId, performance.now());
      client.leave(code);
    });
  }
  override onJoin(client: Client): void {
    log.push(`join:${client.sessionId}`);
  }
  override onDrop(client: Client, code?: number): void {
    droppedAt.set(client.sessionId, performance.now());
    log.push(`drop:${client.sessionId}:${code}`);
    // Refused while the room is being disposed (teardown's shutdown): no seat to hold then.
    if (this.reconnectSeconds > 0) this.allowReconnection(client, this.reconnectSeconds).catch(() => undefined);
  }
  override onReconnect(client: Client): void {
    log.push(`reconnect:${client.sessionId}`);
  }
  override onLeave(client: Client, code?: number): void {
    log.push(`leave:${client.sessionId}:${code}`);
  }
}

/** Holds a dropped client's seat for 20 s. */
class ReconnectableRoom extends PlainRoom {
  protected override reconnectSeconds = 20;
}

/** Refuses every join from onJoin with its own code and message. */
class RefusingRoom extends Room {
  override onJoin(): void {
    throw new ServerError(4567, "the table is full");
  }
}

const ROOMS = { plain: PlainRoom, reconnectable: ReconnectableRoom, refusing: RefusingRoom };

/** The echo round trip works on `room` (the connection is really usable). */
async function assertEcho(room: SdkRoom, n: number): Promise<void> {
  const answer = nextMessage(room, "echo", 5000);
  room.send("echo", { n });
  assert.deepEqual(await answer, { n });
}

/** Closes right after a send reach the other end within this (median of CLOSE_TRIALS; ws: 1-3 ms). */
const CLOSE_LATENCY_MS = 15;
const CLOSE_TRIALS = 5;

/** The median of `trials` runs of `trial` (each resolves with a latency in ms), and all of them. */
async function medianOf(trials: number, trial: () => Promise<number>): Promise<{ median: number; all: string }> {
  const xs: number[] = [];
  for (let i = 0; i < trials; i++) xs.push(await trial());
  const sorted = [...xs].sort((a, b) => a - b);
  return { median: sorted[Math.floor(trials / 2)]!, all: xs.map((x) => x.toFixed(1)).join(", ") };
}

const cases: ParityCase[] = [
  {
    name: "consented leave (room.leave()): 4000 on both ends, the room runs onLeave and not onDrop",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await ctx.join(ctx.client(server), "plain");
      const seen = recordClient(room);
      const sid = room.sessionId;
      await log.waitFor(`join:${sid}`, 5000);
      const code = await within(room.leave(), 5000, "room.leave()");
      assert.equal(code, CONSENTED);
      await log.waitFor(`leave:${sid}:${CONSENTED}`, 5000);
      assert.deepEqual(log.matching("drop:"), [], "a consented leave is no drop");
      assert.deepEqual(seen, [`leave:${CONSENTED}`]);
    },
  },
  {
    name: "unconsented leave (room.leave(false)), no reconnection: 1005 on both ends, onDrop then onLeave",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await ctx.join(ctx.client(server), "plain");
      room.reconnection.enabled = false;
      const seen = recordClient(room);
      const sid = room.sessionId;
      const code = await within(room.leave(false), 5000, "room.leave(false)");
      assert.equal(code, NO_STATUS_RECEIVED, "the client closed without a code");
      await log.waitFor(`leave:${sid}:${NO_STATUS_RECEIVED}`, 5000);
      assert.deepEqual(log.matching(`drop:${sid}`), [`drop:${sid}:${NO_STATUS_RECEIVED}`], "the room sees a drop, not a consented leave");
      assert.deepEqual(seen, [`drop:${NO_STATUS_RECEIVED}`, `leave:${NO_STATUS_RECEIVED}`]);
    },
  },
  {
    name: "unconsented leave in a room that allows reconnection: the SDK reconnects automatically, same sessionId",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await ctx.join(ctx.client(server), "reconnectable");
      room.reconnection.minUptime = 0;
      const seen = recordClient(room);
      const sid = room.sessionId;
      const reconnected = nextReconnect(room, 10_000, "automatic reconnection");
      void room.leave(false);
      await reconnected;
      assert.equal(room.sessionId, sid);
      await log.waitFor(`reconnect:${sid}`, 5000);
      assert.deepEqual(log.matching(`drop:${sid}`), [`drop:${sid}:${NO_STATUS_RECEIVED}`]);
      assert.deepEqual(log.matching(`leave:${sid}`), [], "the seat was kept");
      assert.deepEqual(seen, [`drop:${NO_STATUS_RECEIVED}`, "reconnect"]);
      await assertEcho(room, 1);
    },
  },
  {
    name: "server-side client.leave(4000): consented, the client gets onLeave 4000 and the room onLeave",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await ctx.join(ctx.client(server), "plain");
      const seen = recordClient(room);
      const sid = room.sessionId;
      const left = nextLeave(room, 5000, "client onLeave");
      room.send("kick", CONSENTED);
      assert.equal(await left, CONSENTED);
      await log.waitFor(`leave:${sid}:${CONSENTED}`, 5000);
      assert.deepEqual(log.matching("drop:"), []);
      assert.deepEqual(seen, [`leave:${CONSENTED}`]);
    },
  },
  {
    name: "server-side client.leave(app code): the client gets onLeave with that code, the room onDrop then onLeave",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await ctx.join(ctx.client(server), "plain");
      room.reconnection.minUptime = 0;
      const seen = recordClient(room);
      const sid = room.sessionId;
      const left = nextLeave(room, 5000, "client onLeave");
      room.send("kick", APP_CODE);
      assert.equal(await left, APP_CODE);
      await log.waitFor(`leave:${sid}:${APP_CODE}`, 5000);
      assert.deepEqual(log.matching(`drop:${sid}`), [`drop:${sid}:${APP_CODE}`]);
      assert.deepEqual(seen, [`leave:${APP_CODE}`], "no drop and no reconnection for an application's code");
    },
  },
  {
    name: "server-side client.leave(4010) in a room that allows reconnection: the client drops and reconnects",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await ctx.join(ctx.client(server), "reconnectable");
      room.reconnection.minUptime = 0;
      const seen = recordClient(room);
      const sid = room.sessionId;
      const reconnected = nextReconnect(room, 10_000, "automatic reconnection");
      room.send("kick", MAY_TRY_RECONNECT);
      await reconnected;
      assert.equal(room.sessionId, sid);
      await log.waitFor(`reconnect:${sid}`, 5000);
      assert.deepEqual(log.matching(`drop:${sid}`), [`drop:${sid}:${MAY_TRY_RECONNECT}`]);
      assert.deepEqual(seen, [`drop:${MAY_TRY_RECONNECT}`, "reconnect"]);
      await assertEcho(room, 2);
    },
  },
  {
    name: "reconnection by token: another Client's reconnect(room.reconnectionToken) gets the seat back",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await ctx.join(ctx.client(server), "reconnectable");
      room.reconnection.enabled = false; // the page is gone: no automatic reconnection
      const sid = room.sessionId;
      const token = room.reconnectionToken;
      assert.match(token, /^[^:]+:[^:]+$/, "roomId:token");
      await within(room.leave(false), 5000, "room.leave(false)");
      await log.waitFor(`drop:${sid}:${NO_STATUS_RECEIVED}`, 5000);

      const again = ctx.track(await within(ctx.client(server).reconnect(token), 10_000, "client.reconnect(token)"));
      assert.equal(again.sessionId, sid);
      assert.equal(again.roomId, room.roomId);
      await log.waitFor(`reconnect:${sid}`, 5000);
      assert.deepEqual(log.matching(`leave:${sid}`), []);
      await assertEcho(again, 3);
    },
  },
  {
    name: "seat reservation made on the server (matchMaker.reserveSeatFor) consumed by a fresh client",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const listing = await matchMaker.createRoom("plain", {});
      // The reservation travels to the client through the application's own channel, as JSON.
      const reservation = JSON.parse(JSON.stringify(await matchMaker.reserveSeatFor(listing, {})));
      const room = ctx.track(await within(ctx.client(server).consumeSeatReservation(reservation), 10_000, "consumeSeatReservation"));
      assert.equal(room.sessionId, reservation.sessionId);
      assert.equal(room.roomId, listing.roomId);
      await log.waitFor(`join:${reservation.sessionId}`, 5000);
      await assertEcho(room, 4);
    },
  },
  {
    name: "two seat reservations made on the server, consumed by two clients, share one room",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const listing = await matchMaker.createRoom("plain", {});
      const first = JSON.parse(JSON.stringify(await matchMaker.reserveSeatFor(listing, {})));
      const second = JSON.parse(JSON.stringify(await matchMaker.reserveSeatFor(listing, {})));
      const [a, b] = await within(
        Promise.all([ctx.client(server).consumeSeatReservation(first), ctx.client(server).consumeSeatReservation(second)]),
        10_000,
        "both reservations",
      );
      ctx.track(a!);
      ctx.track(b!);
      assert.deepEqual([a!.sessionId, b!.sessionId], [first.sessionId, second.sessionId]);
      await waitFor(() => matchMaker.getLocalRoomById(listing.roomId)?.clients.length === 2, 5000, "two clients in the room");
      await assertEcho(a!, 5);
      await assertEcho(b!, 6);
    },
  },
  {
    name: "a seat reservation the server never made is refused with the same error",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const listing = await matchMaker.createRoom("plain", {});
      const forged = { name: "plain", roomId: listing.roomId, processId: listing.processId, sessionId: "not-reserved" };
      const err = await rejectionOf(ctx.client(server).consumeSeatReservation(forged as any), 10_000, "forged reservation");
      assert.equal(err.code, ErrorCode.MATCHMAKE_EXPIRED, `code ${err.code}: ${err.message}`);
      assert.match(err.message, /seat reservation expired/);
      assert.deepEqual(log.matching("join:"), []);
    },
  },
  {
    name: `an unconsented close right after a send reaches the room within ${CLOSE_LATENCY_MS} ms (median of ${CLOSE_TRIALS})`,
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const { median, all } = await medianOf(CLOSE_TRIALS, async () => {
        const room = await ctx.join(ctx.client(server), "plain");
        room.reconnection.enabled = false;
        const sid = room.sessionId;
        // A settled connection (the join's traffic acknowledged): one round trip first.
        await assertEcho(room, 0);
        const started = performance.now();
        room.send("noop", "in flight");
        void room.leave(false);
        await waitFor(() => droppedAt.has(sid), 5000, "the room to see the drop");
        return droppedAt.get(sid)! - started;
      });
      assert.ok(median < CLOSE_LATENCY_MS, `the room saw the drops after ${all} ms`);
    },
  },
  {
    name: `a server-side client.leave() right after a send reaches the client within ${CLOSE_LATENCY_MS} ms (median of ${CLOSE_TRIALS})`,
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const { median, all } = await medianOf(CLOSE_TRIALS, async () => {
        const room = await ctx.join(ctx.client(server), "plain");
        await assertEcho(room, 0);
        const bye = nextMessage(room, "bye", 5000);
        const left = within(new Promise<number>((res) => room.onLeave(() => res(performance.now()))), 5000, "client onLeave");
        room.send("send-then-kick", APP_CODE);
        const at = await left;
        assert.equal(await bye, "see you", "the data sent before the close arrived");
        return at - kickedAt.get(room.sessionId)!;
      });
      assert.ok(median < CLOSE_LATENCY_MS, `the client saw the closes after ${all} ms`);
    },
  },
  {
    name: "a join refused in onJoin rejects with the room's code and message",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const err = await rejectionOf(ctx.client(server).joinOrCreate("refusing"), 10_000, "refused join");
      assert.equal(err.code, 4567, `code ${err.code}: ${err.message}`);
      assert.equal(err.message, "the table is full");
    },
  },
];

describe("parity (lifecycle)", () => {
  beforeEach(() => {
    log.clear();
    droppedAt.clear();
    kickedAt.clear();
  });
  describeParity("join, leave and reconnection", cases);
});
