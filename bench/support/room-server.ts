/**
 * Child process of bench/room.ts: runs ONE Colyseus server (@colyseus/core `Server`, greet off) with a
 * "bench" room that answers every "ping" message with a "pong" carrying the same payload, on ONE transport,
 * and reports where it listens over IPC. Started with fork() by the benchmark; never run by hand.
 * Usage (argv): room-server.ts <transport>   transport: "fastnet" (FastnetTransport, dev certificate,
 *                                                        AEAD "auto") or "ws-transport" (WebSocketTransport)
 * Protocol (IPC): the same as bench/support/rtt-server.ts ({type:"ready", port, udpPort, aead?} once
 * listening, or {type:"error", message}; the parent sends {type:"stop"}), plus {type:"cpu"}, answered with
 * {type:"cpu", user, system} (process.cpuUsage(), µs) so the parent can charge CPU time to a block. The
 * child also exits when the IPC channel goes away (parent died) or after a lifetime limit.
 */
import type { AddressInfo } from "node:net";
import { Room, Server, type Client } from "@colyseus/core";
import { WebSocketTransport } from "@colyseus/ws-transport";
import { FastnetTransport } from "../../src/index.js";
import type { ChildMessage, ParentMessage } from "./rtt-server.js";

/** Messages of bench/room.ts beyond the shared protocol: CPU time used so far, asked between blocks. */
export type RoomParentMessage = ParentMessage | { type: "cpu" };
export type RoomChildMessage = { type: "cpu"; user: number; system: number };

/** Hard cap on how long a child lives, whatever the parent does (the whole benchmark takes far less). */
const MAX_LIFETIME_MS = 15 * 60_000;
const HOST = "127.0.0.1";

/**
 * Our end of the IPC channel. process.send itself is hidden (below, before the server starts): @colyseus/core
 * loads @pm2/io when its matchmaker starts, which takes any IPC channel for PM2's and sends "axm:*"
 * metrics and actions on it. Without process.send it stays quiet, as in a server not run by PM2.
 * Receiving ('message', 'disconnect') is not affected.
 */
const ipcSend: ((msg: ChildMessage | RoomChildMessage) => void) | null = process.send ? process.send.bind(process) : null;
process.send = undefined;

function send(msg: ChildMessage | RoomChildMessage): void {
  ipcSend?.(msg);
}

/** The measured room: "ping" → "pong" with the same payload, straight from the handler (no state, no patches). */
class BenchRoom extends Room {
  override onCreate(): void {
    this.onMessage("ping", (client: Client, payload: unknown) => {
      client.send("pong", payload);
    });
  }
}

async function main(): Promise<void> {
  if (!ipcSend) throw new Error("room-server.ts must be started by bench/room.ts with an IPC channel");
  const lifetime = setTimeout(() => {
    process.stderr.write("room-server child: lifetime limit reached, exiting\n");
    process.exit(3);
  }, MAX_LIFETIME_MS);
  lifetime.unref();
  // The parent is gone (or closed the channel): nobody will ever stop us, so go now.
  process.on("disconnect", () => process.exit(0));

  const kind = process.argv[2];
  let transport: FastnetTransport | WebSocketTransport;
  if (kind === "fastnet") transport = new FastnetTransport();
  else if (kind === "ws-transport") transport = new WebSocketTransport();
  else throw new Error(`unknown transport ${String(kind)}`);

  const server = new Server({ transport, greet: false });
  server.define("bench", BenchRoom);
  await server.listen(0, HOST);

  if (transport instanceof FastnetTransport) {
    send({ type: "ready", port: transport.engine.port, udpPort: transport.engine.udpPort, aead: transport.engine.aeadBackend });
  } else {
    const port = (transport.server!.address() as AddressInfo).port;
    send({ type: "ready", port, udpPort: 0 });
  }

  process.on("message", (msg: RoomParentMessage) => {
    if (msg?.type === "cpu") {
      const { user, system } = process.cpuUsage();
      send({ type: "cpu", user, system });
      return;
    }
    if (msg?.type !== "stop") return;
    const force = setTimeout(() => process.exit(0), 2000);
    force.unref();
    server.gracefullyShutdown(false).then(
      () => process.exit(0),
      () => process.exit(0),
    );
  });
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  send({ type: "error", message });
  process.stderr.write(`room-server child failed: ${err instanceof Error ? err.stack : message}\n`);
  // Let the IPC message leave before exiting.
  setTimeout(() => process.exit(2), 100);
});
