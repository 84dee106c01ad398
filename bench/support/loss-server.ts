/**
 * Child process of bench/loss.ts (started inside its network namespace): ONE Colyseus server
 * (@colyseus/core `Server`, greet off) on one transport with the loss room (bench/support/loss-room.ts)
 * defined as "loss". Started with fork() by the benchmark; never run by hand.
 * Usage (argv): loss-server.ts <transport> <mode>   transport: fastnet | ws-transport;
 *                                                    mode: reliable | unreliable (positions)
 * Protocol (IPC): the shared one of bench/support/child-server.ts.
 */
import { WebSocketTransport } from "@colyseus/ws-transport";
import { FastnetTransport } from "../../src/index.js";
import { runServerChild, takeIpc, type ParentMessage } from "./child-server.js";
import { listenColyseus } from "./colyseus-child.js";
import { LOSS_ROOM, lossRoom } from "./loss-room.js";

const send = takeIpc();

runServerChild<ParentMessage>("loss-server", "loss", send, async () => {
  const [kind, mode] = process.argv.slice(2);
  if (mode !== "reliable" && mode !== "unreliable") throw new Error(`unknown position mode ${String(mode)}`);
  let transport: FastnetTransport | WebSocketTransport;
  if (kind === "fastnet") transport = new FastnetTransport();
  else if (kind === "ws-transport") transport = new WebSocketTransport();
  else throw new Error(`unknown transport ${String(kind)}`);
  const server = await listenColyseus(transport, LOSS_ROOM, lossRoom(mode), send);
  return { stop: () => server.gracefullyShutdown(false) };
});
