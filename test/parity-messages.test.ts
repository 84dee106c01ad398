/**
 * Parity: what a room and its clients exchange, on ws-transport (the reference), on fastnet over UDP
 * and on fastnet's WebSocket path (stock SDK Client); see support/parity-harness.ts. State
 * sync, messages both ways (typed, bytes, requests), their order, broadcast with `except`, the client's
 * onLeave when the room disconnects it, and messages the SDK queues while it reconnects.
 */
import assert from "node:assert/strict";
import { Room, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import type { Room as SdkRoom } from "@colyseus/sdk";
import {
  ServerLog,
  describeParity,
  nextLeave,
  nextMessage,
  nextReconnect,
  waitFor,
  within,
  type ParityCase,
  type ParityContext,
  type ParityServer,
} from "./support/parity-harness.js";

const CONSENTED = 4000;
const MAY_TRY_RECONNECT = 4010;
const NO_STATUS_RECEIVED = 1005;

const log = new ServerLog();

const ChatState = schema({ label: t.string(), count: t.number(), names: t.array("string") }, "ParityChatState");

/** Counts how many numbered "seq" messages each client sent, in order; everything else is below. */
class ChatRoom extends Room {
  override maxClients = 10;
  override state = new ChatState();
  private readonly expected = new Map<string, number>();

  override onCreate(): void {
    this.state.label = "hello";
    this.state.count = 0;
    this.onMessage("inc", () => void this.state.count++);
    this.onMessage("name", (_client, name: string) => void this.state.names.push(name));
    this.onMessage("echo", (client, msg) => client.send("echo", msg));
    this.onMessage("seq", (client, n: number) => {
      const want = this.expected.get(client.sessionId) ?? 0;
      if (n !== want) log.push(`out-of-order:${client.sessionId}:${n}:wanted ${want}`);
      this.expected.set(client.sessionId, n + 1);
      client.send("seq", n);
    });
    this.onMessage("shout", (client, text: string) => this.broadcast("shout", { from: client.sessionId, text }, { except: client }));
    this.onMessageBytes("bytes", (client, bytes: Uint8Array) => client.sendBytes("bytes", Uint8Array.from(bytes, (b) => b ^ 0xff)));
    this.onMessage("sum", (_client, [a, b]: [number, number]) => a + b);
    this.onMessage("note", (client, n: number) => log.push(`note:${client.sessionId}:${n}`));
    this.onMessage("drop-me", (client) => client.leave(MAY_TRY_RECONNECT));
    this.onMessage("disconnect-all", (_client, code: number) => void this.disconnect(code));
  }
  override onJoin(client: Client): void {
    log.push(`join:${client.sessionId}`);
    // Sent before the join completes: Colyseus holds it until the client acknowledged JOIN_ROOM.
    client.send("welcome", { sessionId: client.sessionId });
  }
  override onDrop(client: Client, code?: number): void {
    log.push(`drop:${client.sessionId}:${code}`);
    // Refused while the room is being disposed (room.disconnect(), shutdown): no seat to hold then.
    this.allowReconnection(client, 20).catch(() => undefined);
  }
  override onReconnect(client: Client): void {
    log.push(`reconnect:${client.sessionId}`);
  }
  override onLeave(client: Client, code?: number): void {
    log.push(`leave:${client.sessionId}:${code}`);
  }
}

const ROOMS = { chat: ChatRoom };

/** Joins "chat"; the welcome every join gets is taken (cases that check it use their own handler). */
async function joinChat(ctx: ParityContext, server: ParityServer): Promise<SdkRoom> {
  const room = await ctx.join(ctx.client(server), "chat");
  room.onMessage("welcome", () => undefined);
  return room;
}

type ChatView = { label?: string; count?: number; names?: ArrayLike<string> };

/**
 * Messages queued by the SDK while it reconnects: one note before the drop, five sent in onDrop (the
 * connection is closed, so the SDK queues them), one after onReconnect. The room must see them in
 * order, the queued ones after the reconnection.
 */
async function queuedAroundReconnection(room: SdkRoom, drop: () => void): Promise<void> {
  room.reconnection.minUptime = 0;
  const sid = room.sessionId;
  room.send("note", 0);
  await log.waitFor(`note:${sid}:0`, 5000);
  room.onDrop(() => {
    for (let n = 1; n <= 5; n++) room.send("note", n);
  });
  const reconnected = nextReconnect(room, 10_000, "reconnection");
  drop();
  await reconnected;
  room.send("note", 6);
  await log.waitFor(`note:${sid}:6`, 5000);
  const seen = log.events.filter((e) => e.startsWith(`note:${sid}:`) || e === `reconnect:${sid}`);
  assert.deepEqual(seen, [`note:${sid}:0`, `reconnect:${sid}`, ...[1, 2, 3, 4, 5, 6].map((n) => `note:${sid}:${n}`)]);
}

const cases: ParityCase[] = [
  {
    name: "state sync: the full state on join, then patches, in the schema the room declares",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await joinChat(ctx, server);
      const state = () => room.state as ChatView;
      await waitFor(() => state().label === "hello", 5000, "the full state");
      assert.equal(state().count, 0);
      for (let i = 0; i < 3; i++) room.send("inc");
      room.send("name", "ada");
      await waitFor(() => state().count === 3 && state().names?.length === 1, 5000, "patches", () => JSON.stringify(room.state));
      assert.equal(state().names![0], "ada");
    },
  },
  {
    name: "a message sent in onJoin arrives after the join, then messages go both ways",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const client = ctx.client(server);
      const joining = client.joinOrCreate("chat");
      const room = ctx.track(await within(joining, 10_000, "join"));
      const welcome = await nextMessage<{ sessionId: string }>(room, "welcome", 5000);
      assert.equal(welcome.sessionId, room.sessionId);
      const echoed = nextMessage(room, "echo", 5000);
      room.send("echo", { nested: [1, "two", { three: 3 }], text: "ünïcødé" });
      assert.deepEqual(await echoed, { nested: [1, "two", { three: 3 }], text: "ünïcødé" });
    },
  },
  {
    name: "bytes both ways (sendBytes) and a request answered by the handler's return value",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await joinChat(ctx, server);
      const answer = nextMessage<Uint8Array>(room, "bytes", 5000);
      room.sendBytes("bytes", Uint8Array.of(0, 1, 2, 250));
      assert.deepEqual(Array.from(await answer), [255, 254, 253, 5]);
      assert.equal(await within(room.request("sum", [20, 22]), 5000, "request"), 42);
    },
  },
  {
    name: "order: 300 messages each way arrive in the order they were sent",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await joinChat(ctx, server);
      const got: number[] = [];
      room.onMessage("seq", (n: number) => void got.push(n));
      for (let n = 0; n < 300; n++) room.send("seq", n);
      await waitFor(() => got.length === 300, 10_000, "300 replies", () => `${got.length} replies`);
      assert.deepEqual(got, Array.from({ length: 300 }, (_, n) => n));
      assert.deepEqual(log.matching("out-of-order:"), []);
    },
  },
  {
    name: "broadcast with except: every other client gets it, the sender does not",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const [a, b, c] = [
        await joinChat(ctx, server),
        await joinChat(ctx, server),
        await joinChat(ctx, server),
      ];
      assert.equal(new Set([a!.roomId, b!.roomId, c!.roomId]).size, 1, "one room");
      const shoutsAtA: unknown[] = [];
      a!.onMessage("shout", (m) => void shoutsAtA.push(m));
      const atB = nextMessage(b!, "shout", 5000);
      const atC = nextMessage(c!, "shout", 5000);
      a!.send("shout", "hi all");
      assert.deepEqual(await atB, { from: a!.sessionId, text: "hi all" });
      assert.deepEqual(await atC, { from: a!.sessionId, text: "hi all" });
      // A's echo is answered after the broadcast was sent: had A been sent the shout, it came first.
      const echoed = nextMessage(a!, "echo", 5000);
      a!.send("echo", "after");
      await echoed;
      assert.deepEqual(shoutsAtA, []);
    },
  },
  {
    name: "room.disconnect(): every client's onLeave gets the room's code (default 4000, or its own)",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const first = [await joinChat(ctx, server), await joinChat(ctx, server)];
      const codes = Promise.all(first.map((r, i) => nextLeave(r, 5000, `client ${i} onLeave`)));
      first[0]!.send("disconnect-all", CONSENTED);
      assert.deepEqual(await codes, [CONSENTED, CONSENTED]);

      const second = await joinChat(ctx, server);
      assert.notEqual(second.roomId, first[0]!.roomId, "the disconnected room is gone");
      const code = nextLeave(second, 5000, "onLeave with the room's own code");
      second.send("disconnect-all", 4123);
      assert.equal(await code, 4123);
    },
  },
  {
    name: "messages queued while the SDK reconnects after a server drop (4010) arrive after it, in order",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await joinChat(ctx, server);
      await queuedAroundReconnection(room, () => room.send("drop-me"));
      assert.deepEqual(log.matching(`drop:${room.sessionId}`), [`drop:${room.sessionId}:${MAY_TRY_RECONNECT}`]);
    },
  },
  {
    name: "messages queued while the SDK reconnects after room.leave(false) arrive after it, in order",
    async run(ctx) {
      const server = await ctx.startServer(ROOMS);
      const room = await joinChat(ctx, server);
      await queuedAroundReconnection(room, () => void room.leave(false));
      assert.deepEqual(log.matching(`drop:${room.sessionId}`), [`drop:${room.sessionId}:${NO_STATUS_RECEIVED}`]);
    },
  },
];

describe("parity (messages)", () => {
  beforeEach(() => log.clear());
  describeParity("state and messages", cases);
});
