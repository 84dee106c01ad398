import assert from "node:assert/strict";
import { Room, Server, type Client } from "@colyseus/core";
import { FastnetTransport } from "../src/index.js";
import { FastnetClient, transportOf } from "../src/client.js";
import { nextCall, pollUntil, within } from "./support/wait.js";

/** The rest of the SDK entry points over fastnet: create, joinById, reconnect, and simulateLatency. */

const events: string[] = [];

class EchoRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client: Client, m: unknown) => client.send("echo", m));
  }
  override onJoin(client: Client): void {
    events.push(`join ${client.sessionId}`);
  }
  override async onDrop(client: Client): Promise<void> {
    events.push(`drop ${client.sessionId}`);
    await this.allowReconnection(client, 10).catch(() => {});
  }
  override onReconnect(client: Client): void {
    events.push(`reconnect ${client.sessionId}`);
  }
}

const until = (pred: () => boolean, ms: number, what: string): Promise<void> => pollUntil(pred, ms, what, undefined, 5);

describe("Colyseus SDK entry points over fastnet", function () {
  this.timeout(30_000);
  let server: Server;
  let transport: FastnetTransport;
  let url: string;

  beforeEach(async () => {
    events.length = 0;
    transport = new FastnetTransport();
    server = new Server({ transport, greet: false, gracefullyShutdown: false });
    server.define("echo", EchoRoom);
    await server.listen(0, "127.0.0.1");
    url = `http://127.0.0.1:${transport.engine.port}`;
  });

  afterEach(async () => {
    server.simulateLatency(0);
    await server.gracefullyShutdown(false);
  });

  it("create() makes a room that a second client enters with joinById()", async () => {
    const a = await new FastnetClient(url).create("echo");
    const b = await new FastnetClient(url).joinById(a.roomId);
    assert.equal(b.roomId, a.roomId);
    assert.notEqual(b.sessionId, a.sessionId);
    await until(() => events.length === 2, 5000, "both joins");
    assert.deepEqual(events.sort(), [`join ${a.sessionId}`, `join ${b.sessionId}`].sort());
    await Promise.all([a.leave(), b.leave()]);
  });

  it("reconnect(token) from a new client takes the dropped seat back, with the same sessionId", async () => {
    const room = await new FastnetClient(url).joinOrCreate("echo");
    room.reconnection.enabled = false; // this test drives reconnect() itself
    const token = room.reconnectionToken;
    transportOf(room).session!.abort(1006, "network gone"); // the server sees a drop, not a leave
    await until(() => events.includes(`drop ${room.sessionId}`), 5000, "onDrop");
    const again = await new FastnetClient(url).reconnect(token);
    assert.equal(again.sessionId, room.sessionId);
    await until(() => events.includes(`reconnect ${room.sessionId}`), 5000, "onReconnect");
    const echoed = new Promise((r) => again.onMessage("echo", r));
    again.send("echo", { back: true });
    assert.deepEqual(await echoed, { back: true });
    await again.leave();
  });

  it("simulateLatency() delays what the transport sends, and 0 turns it off", async () => {
    const room = await new FastnetClient(url).joinOrCreate("echo");
    const roundTrip = async (): Promise<number> => {
      const t0 = performance.now();
      const echoed = new Promise((r) => room.onMessage("echo", r));
      room.send("echo", 1);
      await within(echoed, 5000, "echo");
      return performance.now() - t0;
    };
    // The fastest of 3: a loaded machine can delay one round trip past 60 ms, not the delay's absence from all.
    const fastest = async (): Promise<number> => Math.min(await roundTrip(), await roundTrip(), await roundTrip());
    // Colyseus applies the latency once its transport promise settles: wait for the call that reaches the transport.
    const setLatency = async (ms: number): Promise<void> => {
      const applied = nextCall(transport, "simulateLatency");
      server.simulateLatency(ms);
      await within(applied, 2000, `simulateLatency(${ms}) to reach the transport`);
    };
    const before = await fastest();
    await setLatency(120);
    const slow = await fastest();
    await setLatency(0);
    const after = await fastest();
    // Colyseus gives the transport half of the round trip (60 ms, on what the server sends) and delays
    // room.onMessage by the other half only for clients that join afterwards (it binds the handler at
    // join). This client joined before, so the transport's half is what shows (in every round trip).
    assert.ok(slow >= 58, `with 120 ms simulated: fastest ${slow.toFixed(1)} ms`);
    assert.ok(before < 60 && after < 60, `without: fastest ${before.toFixed(1)} and ${after.toFixed(1)} ms`);
    await room.leave();
  });
});
