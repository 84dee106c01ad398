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
import { Room, type Client } from "@colyseus/core";
import { runServerChild, takeIpc, type ParentMessage } from "./child-server.js";
import { listenColyseus, transportOfKind } from "./colyseus-child.js";

/** Messages of bench/room.ts beyond the shared protocol: CPU time used so far, asked between blocks. */
export type RoomParentMessage = ParentMessage | { type: "cpu" };
export type RoomChildMessage = { type: "cpu"; user: number; system: number };

/** Our end of the IPC channel; process.send is hidden from @colyseus/core's @pm2/io (see takeIpc). */
const send = takeIpc<RoomChildMessage>();

/** The measured room: "ping" → "pong" with the same payload, straight from the handler (no state, no patches). */
class BenchRoom extends Room {
  override onCreate(): void {
    this.onMessage("ping", (client: Client, payload: unknown) => {
      client.send("pong", payload);
    });
  }
}

runServerChild<RoomParentMessage>("room-server", "room", send, async () => {
  const kind = process.argv[2];
  const transport = transportOfKind(kind);

  const server = await listenColyseus(transport, "bench", BenchRoom, send);

  return {
    stop: () => server.gracefullyShutdown(false),
    onMessage: (msg) => {
      if (msg.type === "cpu") {
        const { user, system } = process.cpuUsage();
        send?.({ type: "cpu", user, system });
      }
    },
  };
});
