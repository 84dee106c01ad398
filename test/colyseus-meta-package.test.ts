/**
 * The `colyseus` meta-package, as most Colyseus projects import it (`import { Server } from "colyseus"`),
 * with FastnetTransport in place of its WebSocket transport: a FastnetClient joins, exchanges a message
 * each way and leaves, and the server shuts down with every socket closed.
 */
import assert from "node:assert/strict";
import { CloseCode, Room, Server, matchMaker, type Client } from "colyseus";
import { FastnetServerClient, FastnetTransport } from "../src/index.js";
import { FastnetClient, transportOf } from "../src/client.js";
import { waitFor, within } from "./support/colyseus-harness.js";

/** Answers each "ping" with a "pong" carrying the text back and the sender's sessionId. */
class EchoRoom extends Room {
  readonly joined: Client[] = [];
  readonly left: Array<{ sessionId: string; code: number | undefined }> = [];

  override onCreate(): void {
    this.onMessage("ping", (client, text: string) => client.send("pong", { text, from: client.sessionId }));
  }

  override onJoin(client: Client): void {
    this.joined.push(client);
  }

  override onLeave(client: Client, code?: number): void {
    this.left.push({ sessionId: client.sessionId, code });
  }
}

describe("Colyseus over fastnet: the colyseus meta-package's Server", function () {
  this.timeout(30_000);

  let server: Server | undefined;
  let transport: FastnetTransport;

  afterEach(async () => {
    if (!server) return;
    const s = server;
    server = undefined;
    // Idempotent when the test already shut down; frees the sockets when an assertion failed earlier.
    await within(s.gracefullyShutdown(false), 10_000, "gracefullyShutdown");
    await waitFor(() => !transport.server.listening, 5000, "the transport's HTTP server to close");
  });

  it("a FastnetClient joins, exchanges a message, leaves; the server closes its TCP and UDP sockets", async () => {
    transport = new FastnetTransport();
    // gracefullyShutdown: false keeps Colyseus from installing process signal handlers in the test run.
    server = new Server({ transport, greet: false, gracefullyShutdown: false });
    server.define("echo", EchoRoom);
    await within(server.listen(0, "127.0.0.1"), 10_000, "server.listen");
    const port = transport.engine.port;
    assert.notEqual(port, 0);
    assert.equal(transport.engine.udpPort, port, "UDP beside TCP on the same port number");

    const client = new FastnetClient(`http://127.0.0.1:${port}`);
    const room = await within(client.joinOrCreate("echo"), 10_000, "joinOrCreate(echo)");
    assert.equal(transportOf(room).isOpen, true, "the SDK room runs over a fastnet session");

    const serverRoom = matchMaker.getLocalRoomById(room.roomId) as EchoRoom;
    assert.ok(serverRoom instanceof EchoRoom);
    assert.deepEqual(serverRoom.joined.map((c) => c.sessionId), [room.sessionId]);
    assert.ok(serverRoom.joined[0] instanceof FastnetServerClient, "the room's client is a fastnet client");

    const pong = new Promise<{ text: string; from: string }>((resolve) => room.onMessage("pong", resolve));
    room.send("ping", "hello over udp");
    assert.deepEqual(await within(pong, 5000, "pong"), { text: "hello over udp", from: room.sessionId });

    const leaveCode = new Promise<number>((resolve) => room.onLeave((code) => resolve(code)));
    await within(room.leave(), 5000, "room.leave()");
    assert.equal(await within(leaveCode, 5000, "onLeave on the client"), CloseCode.CONSENTED);
    await waitFor(() => serverRoom.left.length === 1, 5000, "onLeave in the room");
    assert.deepEqual(serverRoom.left, [{ sessionId: room.sessionId, code: CloseCode.CONSENTED }]);
    await waitFor(() => !transportOf(room).isOpen, 5000, "the client session to close");
    await waitFor(() => transport.engine.sessionCount === 0, 5000, "the server session to close");

    const s = server;
    server = undefined;
    await within(s.gracefullyShutdown(false), 10_000, "gracefullyShutdown");
    await waitFor(() => !transport.server.listening, 5000, "the transport's HTTP server to close");
    await waitFor(() => !(transport.engine as unknown as { socket?: unknown }).socket, 5000, "the UDP socket to close");
  });
});
