/**
 * Child process of bench/loss.ts (started inside its network namespace): ONE Colyseus server
 * (@colyseus/core `Server`, greet off) on one transport with the loss room (bench/support/loss-room.ts)
 * defined as "loss". Started with fork() by the benchmark; never run by hand.
 * Usage (argv): loss-server.ts <transport> <mode>   transport: fastnet | ws-transport;
 *                                                    mode: reliable | unreliable (positions)
 * Protocol (IPC): the shared one of bench/support/child-server.ts, plus {type:"stats"} answered with
 * {type:"stats", ...LossEngineStats}: fastnet's counters summed over the sessions opened since the last
 * "stats" (zeros for ws-transport), so each phase of the benchmark reads its own sessions' counters.
 */
import { WebSocketTransport } from "@colyseus/ws-transport";
import { FastnetTransport, type FastnetSession } from "../../src/index.js";
import { runServerChild, takeIpc, type ParentMessage } from "./child-server.js";
import { listenColyseus } from "./colyseus-child.js";
import { emptyEngineStats, addEngineStats, type LossEngineStats } from "./loss-engine-stats.js";
import { LOSS_ROOM, lossRoom } from "./loss-room.js";

export type LossServerParentMessage = ParentMessage | { type: "stats" };
export type LossServerChildMessage = { type: "stats" } & LossEngineStats;

const send = takeIpc<LossServerChildMessage>();

runServerChild<LossServerParentMessage>("loss-server", "loss", send, async () => {
  const [kind, mode] = process.argv.slice(2);
  if (mode !== "reliable" && mode !== "unreliable") throw new Error(`unknown position mode ${String(mode)}`);
  let transport: FastnetTransport | WebSocketTransport;
  if (kind === "fastnet") transport = new FastnetTransport();
  else if (kind === "ws-transport") transport = new WebSocketTransport();
  else throw new Error(`unknown transport ${String(kind)}`);
  const server = await listenColyseus(transport, LOSS_ROOM, lossRoom(mode), send);
  let sessions: FastnetSession[] = [];
  if (transport instanceof FastnetTransport) transport.engine.on("session", (s: FastnetSession) => sessions.push(s));
  return {
    stop: () => server.gracefullyShutdown(false),
    onMessage: (msg) => {
      if (msg.type !== "stats") return;
      const total = emptyEngineStats();
      for (const s of sessions) addEngineStats(total, s.getStats());
      sessions = [];
      send?.({ type: "stats", ...total });
    },
  };
});
