/**
 * A server-side `Client` reference kept from `onJoin` stays usable after `allowReconnection`: Colyseus
 * keeps the old `Client` object and moves the new connection onto it (`previousClient.ref =
 * newClient.ref`), and leaves its state at RECONNECTED, where core's `enqueueClientRaw` drops every
 * message. Our clients follow `ref` to the connection's current Client, on both paths and across them:
 * `send`, `sendBytes`, `raw` (through `error`), `readyState` and `leave` act on the live connection.
 */
import assert from "node:assert/strict";
import { CloseCode, Room, matchMaker, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { transportOf } from "../src/client.js";
import type { FastnetServerClient } from "../src/index.js";
import { ColyseusHarness, recordEvents, waitFor, within } from "./support/colyseus-harness.js";
import { PlainClient, joinPlain } from "./support/websocket-sdk.js";

const RefState = schema({ counter: t.number() }, "ClientRefState");

/** The Client objects each room handed to onJoin, by sessionId: what an application keeps. */
const kept = new Map<string, Client>();
const log: string[] = [];
/** What both our Client classes (and ws-transport's) expose, and Colyseus checks after onReconnect. */
const readyStateOf = (c: Client) => (c as Client & { readyState: number }).readyState;

class RefRoom extends Room {
  override state = new RefState();
  override onCreate(): void {
    this.state.counter = 0;
    // Replies through the reference kept from onJoin, never through the `client` argument.
    this.onMessage("ask", (client, n: number) => kept.get(client.sessionId)!.send("answer", n));
    this.onMessage("ask-bytes", (client, n: number) => kept.get(client.sessionId)!.sendBytes("bytes", Uint8Array.of(n)));
  }
  override onJoin(client: Client): void {
    kept.set(client.sessionId, client);
    log.push("join");
  }
  override async onDrop(client: Client, code?: number): Promise<void> {
    log.push(`drop ${code}`);
    await this.allowReconnection(client, 20);
  }
  override onReconnect(): void {
    log.push("reconnect");
  }
  override onLeave(_client: Client, code?: number): void {
    log.push(`leave ${code}`);
  }
}

describe("Colyseus: a Client reference kept from onJoin keeps working after allowReconnection", function () {
  this.timeout(60_000);
  let h: ColyseusHarness;

  beforeEach(async () => {
    kept.clear();
    log.length = 0;
    h = await new ColyseusHarness().start({ ref: RefRoom });
  });

  afterEach(async () => {
    await h.stop();
  });

  /** Replies the room sends through the kept reference, as the SDK room receives them. */
  function listen(room: SdkRoom) {
    const answers: number[] = [];
    const bytes: number[] = [];
    room.onMessage("answer", (n: number) => void answers.push(n));
    room.onMessage("bytes", (b: Uint8Array) => void bytes.push(b[0]!));
    return { answers, bytes };
  }

  /** Sends from the server through the kept reference `c` directly (not in reply to anything). */
  function serverPush(c: Client, n: number): void {
    c.send("answer", n);
  }

  async function joinFastnet() {
    const room = await h.join(h.client(), "ref");
    room.reconnection.minUptime = 0;
    room.reconnection.maxDelay = 300;
    await waitFor(() => room.state?.counter === 0, 5000, "the initial state");
    return room;
  }

  async function joinWeb() {
    const room = await joinPlain(h, new PlainClient(h.endpoint), "ref");
    room.reconnection.minUptime = 0;
    room.reconnection.maxDelay = 300;
    await waitFor(() => room.state?.counter === 0, 5000, "the initial state");
    return room;
  }

  /** The fastnet client's session vanishes silently (no CLOSE): the SDK reconnects, the server replaces the stale session. */
  function dropFastnet(room: SdkRoom): void {
    transportOf(room).session!.abort(1006, "test: connection lost");
  }

  /** The server cuts the WebSocket player's socket: both sides see 1006, and the SDK reconnects. */
  function dropWeb(room: SdkRoom): void {
    h.transport.webSocket!.clients.get(room.sessionId)!.ref.terminate();
  }

  async function expectReconnected(room: SdkRoom, sdk: ReturnType<typeof recordEvents>, times = 1): Promise<void> {
    await waitFor(() => sdk.reconnect.length === times, 10_000, "the SDK's onReconnect", () => log.join(", "));
    await waitFor(() => log.filter((e) => e === "reconnect").length === times, 5000, "the room's onReconnect", () => log.join(", "));
    const serverRoom = matchMaker.getLocalRoomById(room.roomId)!;
    const current = serverRoom.clients.getById(room.sessionId)!;
    assert.notEqual(current, kept.get(room.sessionId), "Colyseus replaced the Client object: the kept one is the old");
  }

  it("fastnet: send, sendBytes and readyState through the old reference reach the new session", async () => {
    const room = await joinFastnet();
    const sdk = recordEvents(room);
    const { answers, bytes } = listen(room);
    const c = kept.get(room.sessionId)!;
    serverPush(c, 1);
    await waitFor(() => answers.includes(1), 5000, "a push before the drop");

    dropFastnet(room);
    await expectReconnected(room, sdk);
    assert.equal(readyStateOf(c), 1, "the old reference reports the live connection");
    const current = matchMaker.getLocalRoomById(room.roomId)!.clients.getById(room.sessionId) as unknown as FastnetServerClient;
    assert.equal((c as unknown as FastnetServerClient).session, current.session, "its `session` is the new one");

    serverPush(c, 2);
    await waitFor(() => answers.includes(2), 5000, "a push through the old reference after reconnection");
    room.send("ask", 3);
    room.send("ask-bytes", 4);
    await waitFor(() => answers.includes(3) && bytes.includes(4), 5000, "replies through the old reference");
    assert.deepEqual(answers, [1, 2, 3]);
    assert.deepEqual(bytes, [4]);
    assert.deepEqual(log, ["join", "drop 1006", "reconnect"]);
  });

  it("fastnet: two reconnections in a row, the reference from the first join still reaches the player", async () => {
    const room = await joinFastnet();
    const sdk = recordEvents(room);
    const { answers } = listen(room);
    const c = kept.get(room.sessionId)!;
    dropFastnet(room);
    await expectReconnected(room, sdk, 1);
    dropFastnet(room);
    await expectReconnected(room, sdk, 2);
    serverPush(c, 9);
    await waitFor(() => answers.includes(9), 5000, "a push through the first reference");
  });

  it("fastnet: leave() through the old reference closes the live session with its code", async () => {
    const room = await joinFastnet();
    const sdk = recordEvents(room);
    const c = kept.get(room.sessionId)!;
    dropFastnet(room);
    await expectReconnected(room, sdk);
    c.leave(CloseCode.WITH_ERROR, "kicked through an old reference");
    await waitFor(() => sdk.leave.length === 1, 5000, "the SDK's onLeave");
    assert.equal(sdk.leave[0]!.code, CloseCode.WITH_ERROR);
    assert.equal(sdk.leave[0]!.reason, "kicked through an old reference");
  });

  it("WebSocket: send and sendBytes through the old reference reach the new socket", async () => {
    const room = await joinWeb();
    const sdk = recordEvents(room);
    const { answers, bytes } = listen(room);
    const c = kept.get(room.sessionId)!;
    serverPush(c, 1);
    await waitFor(() => answers.includes(1), 5000, "a push before the drop");

    dropWeb(room);
    await expectReconnected(room, sdk);
    assert.equal(readyStateOf(c), 1);
    serverPush(c, 2);
    await waitFor(() => answers.includes(2), 5000, "a push through the old reference after reconnection");
    room.send("ask", 3);
    room.send("ask-bytes", 4);
    await waitFor(() => answers.includes(3) && bytes.includes(4), 5000, "replies through the old reference");
    assert.deepEqual(answers, [1, 2, 3]);
    assert.deepEqual(log, ["join", "drop 1006", "reconnect"]);
  });

  it("across paths: a fastnet player's seat moves to WebSocket, the reference from its fastnet join follows", async () => {
    const fast = await joinFastnet();
    fast.reconnection.enabled = false; // the application reconnects by itself, over WebSocket
    const c = kept.get(fast.sessionId)!;
    const web = h.track(await within(new PlainClient(h.endpoint).reconnect(fast.reconnectionToken), 10_000, "reconnect(token) over WebSocket"));
    await waitFor(() => log.includes("reconnect"), 5000, "the room's onReconnect");
    const { answers } = listen(web);
    assert.equal(readyStateOf(c), 1);
    serverPush(c, 5);
    await waitFor(() => answers.includes(5), 5000, "a push through the fastnet-era reference, over WebSocket");
    web.send("ask", 6);
    await waitFor(() => answers.includes(6), 5000, "a reply through the fastnet-era reference");
  });

  it("across paths: a WebSocket player's seat moves to fastnet, the reference from its WebSocket join follows", async () => {
    const web = await joinWeb();
    web.reconnection.enabled = false;
    const c = kept.get(web.sessionId)!;
    const fast = h.track(await within(h.client().reconnect(web.reconnectionToken), 10_000, "reconnect(token) over fastnet"));
    await waitFor(() => log.includes("reconnect"), 5000, "the room's onReconnect");
    const { answers } = listen(fast);
    assert.equal(readyStateOf(c), 1);
    serverPush(c, 5);
    await waitFor(() => answers.includes(5), 5000, "a push through the WebSocket-era reference, over fastnet");
    fast.send("ask", 6);
    await waitFor(() => answers.includes(6), 5000, "a reply through the WebSocket-era reference");
    c.leave(CloseCode.CONSENTED);
    const sdk = recordEvents(fast);
    await waitFor(() => sdk.leave.length === 1, 5000, "the fastnet room's onLeave, closed through the WebSocket-era reference");
  });
});
