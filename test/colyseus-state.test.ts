/**
 * Colyseus over fastnet: schema state sync (a full state far above 100 KB arriving intact on join, then
 * patches), and 50 clients in one room exchanging traffic with nothing lost.
 */
import assert from "node:assert/strict";
import { Room, matchMaker, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { transportOf } from "../src/client.js";
import { ColyseusHarness, waitFor, within } from "./support/colyseus-harness.js";

const Item = schema({ name: t.string(), value: t.number() }, "BigItem");
const BigState = schema({ items: t.map(Item), lines: t.array("string"), tick: t.number() }, "BigState");

const ITEMS = 2500;
const LINES = 40;
const itemName = (i: number): string => `item-${i}-${"abcdefghijklmnopqrstuvwxyz".repeat(2)}-${(i * 2654435761) % 1000003}`;
const line = (i: number): string => `${i}:`.padEnd(1000, String.fromCharCode(97 + (i % 26)));

class BigStateRoom extends Room {
  override state = new BigState();
  override onCreate(): void {
    this.state.tick = 0;
    for (let i = 0; i < ITEMS; i++) this.state.items.set(`k${i}`, new Item({ name: itemName(i), value: i * 3 }));
    for (let i = 0; i < LINES; i++) this.state.lines.push(line(i));
    this.onMessage("mutate", () => {
      this.state.tick++;
      for (let i = 0; i < 10; i++) this.state.items.get(`k${i}`)!.value = -(i + 1);
      this.state.items.delete(`k${ITEMS - 1}`);
      this.state.items.set("fresh", new Item({ name: "fresh item", value: 42 }));
      this.state.lines[0] = "replaced";
      this.state.lines.push("appended");
    });
  }
}

/** Every client sends numbered "up" messages; the room checks their order and answers each one. */
interface TrafficLog {
  up: Map<string, number[]>;
  errors: string[];
}
const traffic: TrafficLog = { up: new Map(), errors: [] };

class CrowdRoom extends Room {
  override maxClients = 100;
  broadcasts = 0;
  override onCreate(): void {
    this.onMessage("up", (client, seq: number) => {
      const seen = traffic.up.get(client.sessionId)!;
      if (seq !== seen.length) traffic.errors.push(`${client.sessionId}: got ${seq} after ${seen.length} messages`);
      seen.push(seq);
      client.send("ack", seq);
    });
    this.onMessage("broadcast", (_client, count: number) => {
      for (let i = 0; i < count; i++) this.broadcast("tick", this.broadcasts++);
    });
  }
  override onJoin(client: Client): void {
    traffic.up.set(client.sessionId, []);
  }
}

describe("Colyseus over fastnet: state sync and a crowded room", function () {
  this.timeout(60_000);
  let h: ColyseusHarness;

  beforeEach(async () => {
    traffic.up.clear();
    traffic.errors.length = 0;
    h = await new ColyseusHarness().start({ big: BigStateRoom, crowd: CrowdRoom });
  });

  afterEach(async () => {
    await h.stop();
  });

  it("a full state larger than 100 KB arrives intact on join, and later patches apply", async () => {
    const room = await h.join(h.client(), "big");
    await waitFor(() => room.state?.items?.size === ITEMS && room.state.lines.length === LINES, 10_000, "the full state");
    const serverRoom = matchMaker.getLocalRoomById(room.roomId)!;
    const fullState = (serverRoom as any)._serializer.getFullState() as Uint8Array;
    assert.ok(fullState.byteLength > 100_000, `full state is ${fullState.byteLength} bytes`);
    assert.ok(transportOf(room).getStats()!.bytesReceived > fullState.byteLength);
    for (let i = 0; i < ITEMS; i++) {
      const item = room.state.items.get(`k${i}`);
      if (!item || item.name !== itemName(i) || item.value !== i * 3) assert.fail(`item k${i} arrived as ${JSON.stringify(item?.toJSON())}`);
    }
    for (let i = 0; i < LINES; i++) if (room.state.lines[i] !== line(i)) assert.fail(`line ${i} differs`);
    // A second client joining later gets the same full state.
    const second = await h.join(h.client(), "big");
    await waitFor(() => second.state?.items?.size === ITEMS, 10_000, "the second client's full state");
    assert.deepEqual(second.state.toJSON(), room.state.toJSON());

    room.send("mutate");
    await waitFor(() => room.state.tick === 1 && second.state.tick === 1, 5000, "the patch");
    for (const s of [room.state, second.state]) {
      assert.equal(s.items.size, ITEMS);
      assert.equal(s.items.get(`k${ITEMS - 1}`), undefined);
      assert.equal(s.items.get("fresh")?.value, 42);
      for (let i = 0; i < 10; i++) assert.equal(s.items.get(`k${i}`)!.value, -(i + 1));
      assert.equal(s.items.get("k10")!.value, 30);
      assert.equal(s.lines[0], "replaced");
      assert.equal(s.lines[LINES], "appended");
      assert.equal(s.lines.length, LINES + 1);
    }
    assert.deepEqual(room.state.toJSON(), (serverRoom.state as any).toJSON());
  });

  it("50 clients in one room exchange traffic for seconds, every message counted exactly each way", async () => {
    const CLIENTS = 50;
    const UP = 40; // messages per client, one every 50 ms: two seconds of traffic
    const BROADCAST_REQUESTS = 20;
    const PER_REQUEST = 5;
    const rooms: SdkRoom[] = [];
    const client = h.client();
    // Join in waves of ten (each join is a TLS handshake); the first creates the room.
    rooms.push(await h.join(client, "crowd"));
    while (rooms.length < CLIENTS) {
      const wave = Array.from({ length: Math.min(10, CLIENTS - rooms.length) }, () => h.join(client, "crowd", {}, 20_000));
      rooms.push(...(await Promise.all(wave)));
    }
    assert.equal(new Set(rooms.map((r) => r.roomId)).size, 1, "all in one room");
    const serverRoom = matchMaker.getLocalRoomById(rooms[0]!.roomId) as CrowdRoom;
    assert.equal(serverRoom.clients.length, CLIENTS);

    const acks = rooms.map(() => [] as number[]);
    const ticks = rooms.map(() => [] as number[]);
    rooms.forEach((r, i) => {
      r.onMessage("ack", (seq: number) => void acks[i]!.push(seq));
      r.onMessage("tick", (n: number) => void ticks[i]!.push(n));
    });

    let sent = 0;
    await within(
      new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          for (const r of rooms) r.send("up", sent);
          // Some clients also ask for broadcasts, so every client receives traffic it did not ask for.
          if (sent < BROADCAST_REQUESTS) rooms[sent % CLIENTS]!.send("broadcast", PER_REQUEST);
          if (++sent === UP) {
            clearInterval(timer);
            resolve();
          }
        }, 50);
      }),
      20_000,
      "the sending phase",
    );
    const expectedTicks = BROADCAST_REQUESTS * PER_REQUEST;
    await waitFor(
      () => acks.every((a) => a.length === UP) && ticks.every((tk) => tk.length === expectedTicks),
      15_000,
      "every ack and broadcast",
      () => `acks ${acks.map((a) => a.length).join(",")} ticks ${ticks.map((tk) => tk.length).join(",")}`,
    );
    assert.deepEqual(traffic.errors, []);
    const inOrder = Array.from({ length: UP }, (_, i) => i);
    for (const r of rooms) assert.deepEqual(traffic.up.get(r.sessionId), inOrder, `client ${r.sessionId} upstream`);
    for (const a of acks) assert.deepEqual(a, inOrder);
    const allTicks = Array.from({ length: expectedTicks }, (_, i) => i);
    for (const tk of ticks) assert.deepEqual(tk, allTicks);
    // Nothing was counted twice either: the room saw exactly CLIENTS * UP "up" messages.
    assert.equal([...traffic.up.values()].reduce((n, s) => n + s.length, 0), CLIENTS * UP);
    assert.equal(h.transport.engine.sessionCount, CLIENTS);
  });
});
