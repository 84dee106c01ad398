/**
 * @colyseus/testing booting a server with this transport: `boot()` builds the server through
 * @colyseus/tools, whose `initializeTransport({ server })` hook hands us its http.Server. We bind that
 * server on loopback (OS-chosen port) before returning the FastnetTransport, which then only adds UDP on
 * 127.0.0.1 with the same port number. The test server's `sdk` becomes a FastnetClient. (The plain
 * `initializeTransport: () => new FastnetTransport()` form runs in lifecycle-testing-boot.test.ts.)
 */
import assert from "node:assert/strict";
import type http from "node:http";
import { Room, defineRoom, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import { boot, type ColyseusTestServer } from "@colyseus/testing";
import config from "@colyseus/tools";
import { FastnetServerClient, FastnetTransport } from "../src/index.js";
import { FastnetClient, transportOf } from "../src/client.js";
import { waitFor, within } from "./support/colyseus-harness.js";

const CounterState = schema({ count: t.number(), last: t.string() }, "TestingCounterState");

class CounterRoom extends Room {
  override state = new CounterState();
  joined: Client[] = [];
  override onCreate(): void {
    this.state.count = 0;
    this.state.last = "";
    this.onMessage("inc", (client, by: number) => {
      this.state.count += by;
      this.state.last = client.sessionId;
      client.send("counted", this.state.count);
    });
  }
  override onJoin(client: Client): void {
    this.joined.push(client);
  }
}

describe("Colyseus over fastnet: @colyseus/testing", function () {
  this.timeout(30_000);
  let colyseus: ColyseusTestServer;
  let transport: FastnetTransport;

  before(async () => {
    colyseus = await boot(
      config({
        rooms: { counter: defineRoom(CounterRoom) },
        // @colyseus/tools awaits this hook, so it may bind the server it hands over first.
        initializeTransport: (async ({ server }: { server: http.Server }) => {
          await new Promise<void>((resolve, reject) => {
            server.once("error", reject);
            server.listen(0, "127.0.0.1", () => resolve());
          });
          return new FastnetTransport({ server, udpHost: "127.0.0.1" });
        }) as unknown as (options: any) => FastnetTransport,
      }),
      0,
    );
    transport = colyseus.server.transport as FastnetTransport;
    assert.ok(transport instanceof FastnetTransport);
    colyseus.sdk = new FastnetClient(`http://127.0.0.1:${transport.engine.port}`);
  });

  after(async () => {
    await within(colyseus.shutdown(), 10_000, "test server shutdown");
    // shutdown() closes at once, the http.Server @colyseus/tools handed over included (as ws-transport
    // does): the port is free for the next boot.
    assert.equal(transport.server.listening, false, "the given http.Server stopped listening");
    assert.equal((transport.engine as any).socket, null, "the UDP socket is closed");
  });

  afterEach(async () => {
    await within(colyseus.cleanup(), 10_000, "test server cleanup");
    await waitFor(() => transport.engine.sessionCount === 0, 5000, "sessions to close after cleanup");
  });

  it("boots on loopback with UDP beside TCP on the same port number", () => {
    const address = transport.server.address();
    assert.ok(address && typeof address === "object");
    assert.equal(address.address, "127.0.0.1");
    assert.notEqual(address.port, 0);
    assert.equal(transport.engine.udpPort, address.port);
    assert.equal(transport.fingerprint?.length, 32);
  });

  it("createRoom + connectTo join through fastnet; the room's helpers see the traffic", async () => {
    const room = await colyseus.createRoom<CounterRoom>("counter", {});
    const client = await within(colyseus.connectTo(room), 10_000, "connectTo");
    assert.equal(client.sessionId, room.clients[0]!.sessionId);
    assert.ok(room.clients[0] instanceof FastnetServerClient, "the room's client is a fastnet client");
    assert.equal(transportOf(client).isOpen, true);
    assert.equal(client.state.count, 0);

    const message = room.waitForMessage("inc");
    client.send("inc", 5);
    const [sender, by] = await within(message, 5000, "waitForMessage");
    assert.equal(sender.sessionId, client.sessionId);
    assert.equal(by, 5);
    const counted = await within(client.waitForMessage("counted"), 5000, "client waitForMessage");
    assert.equal(counted, 5);
    await within(client.waitForNextPatch(), 5000, "client waitForNextPatch");
    assert.equal(client.state.count, 5);
    assert.equal(client.state.last, client.sessionId);
  });

  it("the sdk field is used directly: joinOrCreate and a second client in the same room", async () => {
    const a = await within(colyseus.sdk.joinOrCreate("counter"), 10_000, "joinOrCreate a");
    const b = await within(colyseus.sdk.joinOrCreate("counter"), 10_000, "joinOrCreate b");
    assert.equal(a.roomId, b.roomId);
    const room = colyseus.getRoomById<CounterRoom>(a.roomId);
    assert.equal(room.clients.length, 2);
    a.send("inc", 2);
    b.send("inc", 3);
    await waitFor(() => (a.state as any).count === 5 && (b.state as any).count === 5, 5000, "both clients at 5");
  });
});
