/**
 * Colyseus over fastnet: messages both ways (send/onMessage, sendBytes, requests, messages sent inside
 * onJoin), a message nobody handles, and the unreliable paths (@unreliable state fields,
 * room.sendUnreliable, room.input({ mode: "unreliable" })) travelling as real datagrams.
 */
import assert from "node:assert/strict";
import { CloseCode, Protocol, Room, matchMaker, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import type { Room as SdkRoom } from "@colyseus/sdk";
import type { FastnetServerClient } from "../src/index.js";
import { transportOf } from "../src/client.js";
import {
  ColyseusHarness,
  FrameRecordingClient,
  recordEvents,
  rejectionOf,
  waitFor,
  within,
} from "./support/colyseus-harness.js";

interface Received {
  counts: number[];
  bytes: Uint8Array[];
  left: Array<{ code: number | undefined; via: string }>;
  clients: Map<string, Client>;
}
const got: Received = { counts: [], bytes: [], left: [], clients: new Map() };

class MessageRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client, payload: unknown) => client.send("echo", payload));
    this.onMessage("count", (_client, n: number) => void got.counts.push(n));
    this.onMessage("add", (_client, { a, b }: { a: number; b: number }) => a + b);
    this.onMessage("refuse", (_client, _payload: unknown, ctx) => ctx.reject({ why: "refused on purpose" }));
    this.onMessage("throws", () => {
      throw new Error("handler blew up");
    });
    this.onMessageBytes("bytes", (client, bytes: Uint8Array) => {
      got.bytes.push(Uint8Array.from(bytes));
      client.sendBytes("bytes-back", Uint8Array.from(bytes).reverse());
    });
  }
  override onJoin(client: Client, options: { welcome?: boolean }): void {
    got.clients.set(client.sessionId, client);
    if (!options?.welcome) return;
    // Sent before the client has JOIN_ROOM: core buffers these until the client acknowledged it.
    client.send("welcome", { sessionId: client.sessionId });
    client.send("welcome", { second: true });
    client.sendBytes("welcome-bytes", Uint8Array.of(1, 2, 3, 250));
  }
  override onLeave(_client: Client, code?: number): void {
    got.left.push({ code, via: "onLeave" });
  }
}

const UnreliableState = schema({ counter: t.number(), pos: t.number().unreliable() }, "UnreliableState");
const MoveInput = schema({ seq: t.number(), vx: t.number() }, "MoveInput");

class UnreliableRoom extends Room {
  override state = new UnreliableState();
  override inputs = this.defineInput(MoveInput, { seqField: "seq" });
  readonly unreliableGot: number[] = [];
  override onCreate(): void {
    this.state.counter = 0;
    this.state.pos = 0;
    this.patchRate = 20;
    this.onMessage("u", (_client, { i }: { i: number }) => void this.unreliableGot.push(i));
    this.onMessage("set-pos", (_client, pos: number) => {
      this.state.pos = pos;
    });
    this.onMessage("bump", () => {
      this.state.counter++;
    });
  }
}

describe("Colyseus over fastnet: messages", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;

  beforeEach(async () => {
    got.counts.length = 0;
    got.bytes.length = 0;
    got.left.length = 0;
    got.clients.clear();
    h = await new ColyseusHarness().start({ messages: MessageRoom, unreliable: UnreliableRoom });
  });

  afterEach(async () => {
    await h.stop();
  });

  it("messages sent inside onJoin arrive after JOIN_ROOM, in order, both send and sendBytes", async () => {
    const client = new FrameRecordingClient(h.endpoint);
    const welcomes: unknown[] = [];
    const welcomeBytes: Uint8Array[] = [];
    const room = await h.join(client, "messages", { welcome: true });
    // The SDK resolved the join on JOIN_ROOM; the buffered messages come after the JOIN_ROOM ack.
    room.onMessage("welcome", (m: unknown) => void welcomes.push(m));
    room.onMessage("welcome-bytes", (b: Uint8Array) => void welcomeBytes.push(Uint8Array.from(b)));
    await waitFor(() => welcomes.length === 2 && welcomeBytes.length === 1, 5000, "the onJoin messages");
    assert.deepEqual(welcomes, [{ sessionId: room.sessionId }, { second: true }]);
    assert.deepEqual(welcomeBytes, [Uint8Array.of(1, 2, 3, 250)]);
    const frames = client.framesOf(room);
    assert.equal(frames[0], Protocol.JOIN_ROOM, `the first frame is JOIN_ROOM (frames: ${frames.join(",")})`);
    assert.deepEqual(
      frames.filter((f) => f === Protocol.ROOM_DATA || f === Protocol.ROOM_DATA_BYTES),
      [Protocol.ROOM_DATA, Protocol.ROOM_DATA, Protocol.ROOM_DATA_BYTES],
    );
    assert.equal(frames.filter((f) => f === Protocol.JOIN_ROOM).length, 1);
  });

  it("room.send -> onMessage and client.send -> room.onMessage, many messages in order each way", async () => {
    const room = await h.join(h.client(), "messages");
    const echoes: unknown[] = [];
    room.onMessage("echo", (m: unknown) => void echoes.push(m));
    const N = 500;
    for (let i = 0; i < N; i++) room.send("count", i);
    await waitFor(() => got.counts.length === N, 10_000, `${N} messages at the server`, () => `${got.counts.length}`);
    assert.deepEqual(got.counts, Array.from({ length: N }, (_, i) => i));
    const payloads = [
      { text: "hello", n: 1 },
      [1, 2, 3],
      "a string",
      { nested: { deep: [true, false, null] }, big: "x".repeat(20_000) },
    ];
    for (const p of payloads) room.send("echo", p);
    await waitFor(() => echoes.length === payloads.length, 5000, "the echoes");
    assert.deepEqual(echoes, payloads);
  });

  it("sendBytes both ways: room.sendBytes reaches onMessageBytes intact; client.sendBytes reaches room.onMessage", async () => {
    const room = await h.join(h.client(), "messages");
    const back: Uint8Array[] = [];
    room.onMessage("bytes-back", (b: Uint8Array) => void back.push(Uint8Array.from(b)));
    const small = Uint8Array.of(0, 1, 2, 255);
    const large = new Uint8Array(200_000);
    for (let i = 0; i < large.length; i++) large[i] = (i * 7 + 3) & 0xff;
    room.sendBytes("bytes", small);
    room.sendBytes("bytes", large);
    await waitFor(() => back.length === 2, 10_000, "the reversed bytes");
    assert.deepEqual(got.bytes, [small, large]);
    assert.deepEqual(back, [Uint8Array.from(small).reverse(), Uint8Array.from(large).reverse()]);
    // Both went over the reliable stream: JOIN_ROOM and the two replies out, the JOIN ack and two in.
    const stats = (got.clients.get(room.sessionId) as unknown as FastnetServerClient).session.getStats();
    assert.equal(stats.messagesSent, 3);
    assert.equal(stats.messagesReceived, 3);
    assert.equal(stats.datagramsSent + stats.datagramsReceived, 0);
  });

  it("room.request() and send(type, payload, callback): replies, rejections, handler errors, no handler", async () => {
    const room = await h.join(h.client(), "messages");
    assert.equal(await within(room.request("add", { a: 2, b: 40 }), 5000, "request add"), 42);
    const viaCallback = await within(
      new Promise<[unknown, Error | undefined]>((resolve) => room.send("add", { a: 1, b: 2 }, (res: unknown, err?: Error) => resolve([res, err]))),
      5000,
      "send with callback",
    );
    assert.deepEqual(viaCallback, [3, undefined]);
    const refused = await rejectionOf(room.request("refuse", {}), 5000, "request refuse");
    assert.ok(refused instanceof Error);
    const thrown = await rejectionOf(room.request("throws", {}), 5000, "request throws");
    assert.match(thrown.message, /handler blew up/);
    const noHandler = await rejectionOf(room.request("nobody-home", {}), 5000, "request without handler");
    assert.match(noHandler.message, /no onMessage\("nobody-home"\) handler/);
    // A request without a handler is answered, not kicked: the room is still usable.
    assert.equal(await within(room.request("add", { a: 5, b: 5 }), 5000, "request after errors"), 10);
    assert.equal(transportOf(room).isOpen, true);
  });

  it("a message with no handler (outside devMode) kicks the client with 4002 and the reason", async () => {
    const room = await h.join(h.client(), "messages");
    const ev = recordEvents(room);
    room.send("nobody-listens", { x: 1 });
    await waitFor(() => ev.leave.length > 0, 5000, "SDK onLeave");
    assert.equal(ev.leave[0]!.code, CloseCode.WITH_ERROR);
    assert.equal(ev.leave[0]!.reason, 'room onMessage for "nobody-listens" not registered.');
    assert.deepEqual(ev.drop, [], "4002 does not make the SDK reconnect");
    await waitFor(() => got.left.length === 1, 5000, "server onLeave");
    assert.deepEqual(got.left, [{ code: CloseCode.WITH_ERROR, via: "onLeave" }]);
  });
});

describe("Colyseus over fastnet: unreliable paths are datagrams", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;

  beforeEach(async () => {
    h = await new ColyseusHarness().start({ unreliable: UnreliableRoom });
  });

  afterEach(async () => {
    await h.stop();
  });

  async function joinUnreliable(): Promise<{ room: SdkRoom<any, any>; server: UnreliableRoom; serverClient: FastnetServerClient }> {
    const room = await h.join(h.client(), "unreliable");
    await waitFor(() => room.state?.counter === 0, 5000, "the initial state");
    const server = matchMaker.getLocalRoomById(room.roomId) as UnreliableRoom;
    const serverClient = server.clients.get(room.sessionId) as unknown as FastnetServerClient;
    assert.equal(typeof serverClient.rawUnreliable, "function", "the server client offers the unreliable channel");
    return { room, server, serverClient };
  }

  it("@unreliable state fields arrive as datagrams (client datagramsReceived, server datagramsSent) with their values", async () => {
    const { room, serverClient } = await joinUnreliable();
    // The first patch after the room's creation still carries the root's ADD, which is reliable and
    // takes any @unreliable change made before it along: make one change and let it land first.
    room.send("set-pos", 1);
    await waitFor(() => room.state.pos === 1, 5000, "the first pos change");
    const clientBefore = transportOf(room).getStats()!;
    const serverBefore = serverClient.session.getStats();
    const seen: number[] = [];
    room.onStateChange((s: any) => void seen.push(s.pos));
    for (let v = 1; v <= 5; v++) {
      room.send("set-pos", v * 10);
      await waitFor(() => room.state.pos === v * 10, 5000, `pos ${v * 10}`, () => String(room.state.pos));
    }
    const clientAfter = transportOf(room).getStats()!;
    const serverAfter = serverClient.session.getStats();
    const sent = serverAfter.datagramsSent - serverBefore.datagramsSent;
    const received = clientAfter.datagramsReceived - clientBefore.datagramsReceived;
    assert.ok(sent >= 5, `server sent ${sent} datagrams for 5 unreliable patches`);
    assert.ok(received >= 5, `client received ${received} datagrams`);
    assert.ok(received <= sent);
    assert.ok(seen.includes(50));
    // A reliable field still travels on the reliable stream (no datagram needed for it).
    const msgsBefore = transportOf(room).getStats()!.messagesReceived;
    const dgBefore = transportOf(room).getStats()!.datagramsReceived;
    room.send("bump");
    await waitFor(() => room.state.counter === 1, 5000, "counter 1");
    assert.ok(transportOf(room).getStats()!.messagesReceived > msgsBefore);
    assert.equal(transportOf(room).getStats()!.datagramsReceived, dgBefore, "no datagram for a reliable-only patch");
  });

  it("room.sendUnreliable() travels as datagrams and reaches onMessage", async () => {
    const { room, server, serverClient } = await joinUnreliable();
    const clientBefore = transportOf(room).getStats()!;
    const serverBefore = serverClient.session.getStats();
    const N = 20;
    for (let i = 0; i < N; i++) {
      room.sendUnreliable("u", { i });
      await new Promise((r) => setTimeout(r, 2));
    }
    const clientStats = transportOf(room).getStats()!;
    const sent = clientStats.datagramsSent - clientBefore.datagramsSent;
    const dropped =
      clientStats.datagramsDropped.congestion + clientStats.datagramsDropped.queueFull + clientStats.datagramsDropped.tooLarge -
      (clientBefore.datagramsDropped.congestion + clientBefore.datagramsDropped.queueFull + clientBefore.datagramsDropped.tooLarge);
    assert.equal(sent + dropped, N, "every sendUnreliable became a datagram or a counted drop");
    assert.equal(dropped, 0, "nothing dropped on an idle loopback path");
    await waitFor(() => server.unreliableGot.length === N, 5000, "the unreliable messages", () => `${server.unreliableGot.length}`);
    // Loopback does not reorder these; they are unreliable but each is exactly one 'message'.
    assert.deepEqual([...server.unreliableGot].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i));
    const serverAfter = serverClient.session.getStats();
    assert.equal(serverAfter.datagramsReceived - serverBefore.datagramsReceived, N);
    assert.equal(serverAfter.messagesReceived, serverBefore.messagesReceived, "none came over the reliable stream");
  });

  it("room.input({ mode: 'unreliable' }) sends inputs as datagrams that the room's defineInput decodes", async () => {
    const { room, server, serverClient } = await joinUnreliable();
    const input = room.input<{ seq: number; vx: number }>({ mode: "unreliable" });
    assert.equal(input.mode, "unreliable");
    const serverBefore = serverClient.session.getStats();
    const clientBefore = transportOf(room).getStats()!;
    for (let seq = 1; seq <= 10; seq++) {
      input.data.seq = seq;
      input.data.vx = seq * 3;
      input.send();
      await new Promise((r) => setTimeout(r, 2));
    }
    const accessor = server.inputs.get(room.sessionId);
    await waitFor(() => accessor.latest?.seq === 10, 5000, "the last input at the server", () => String(accessor.latest?.seq));
    assert.equal(accessor.latest!.vx, 30);
    const drained = accessor.drain().map((i: any) => i.seq);
    assert.ok(drained.length >= 1 && drained[drained.length - 1] === 10, `drained ${drained.join(",")}`);
    assert.deepEqual(drained, [...drained].sort((a, b) => a - b), "inputs are deduplicated and in order by seq");
    const sent = transportOf(room).getStats()!.datagramsSent - clientBefore.datagramsSent;
    const received = serverClient.session.getStats().datagramsReceived - serverBefore.datagramsReceived;
    assert.equal(sent, 10);
    assert.equal(received, 10);
    assert.equal(serverClient.session.getStats().messagesReceived, serverBefore.messagesReceived);
  });
});
