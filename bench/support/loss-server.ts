/**
 * Child process of bench/loss.ts (started inside its network namespace): ONE Colyseus server
 * (@colyseus/core `Server`, greet off) on one transport with the loss room (bench/support/loss-room.ts)
 * defined as "loss". Started with fork() by the benchmark; never run by hand.
 * Usage (argv): loss-server.ts <transport> <mode>   transport: fastnet | ws-transport;
 *                                                    mode: reliable | unreliable (positions)
 * Protocol (IPC): the shared one of bench/support/child-server.ts, plus {type:"stats"} answered with
 * {type:"stats", loopP99Ms, loopMaxMs, ...LossEngineStats}: this process's event-loop delay since the
 * last "stats" (perf_hooks, the sampling resolution subtracted), and fastnet's counters summed over the
 * sessions still open (zeros for ws-transport): each phase's clients leave before the next one joins.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { FastnetTransport, ReadyState, type FastnetSession } from "../../src/index.js";
import { runServerChild, takeIpc, type ParentMessage } from "./child-server.js";
import { listenColyseus, transportOfKind } from "./colyseus-child.js";
import { emptyEngineStats, addEngineStats, type LossEngineStats } from "./loss-engine-stats.js";
import { LOSS_ROOM, lossRoom } from "./loss-room.js";

export type LossServerParentMessage = ParentMessage | { type: "stats" };
export type LossServerChildMessage = { type: "stats"; loopP99Ms: number; loopMaxMs: number } & LossEngineStats;

const LOOP_RESOLUTION_MS = 2;

const send = takeIpc<LossServerChildMessage>();

runServerChild<LossServerParentMessage>("loss-server", "loss", send, async () => {
  const [kind, mode] = process.argv.slice(2);
  if (mode !== "reliable" && mode !== "unreliable") throw new Error(`unknown position mode ${String(mode)}`);
  const transport = transportOfKind(kind);
  const server = await listenColyseus(transport, LOSS_ROOM, lossRoom(mode), send);
  let sessions: FastnetSession[] = [];
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  if (transport instanceof FastnetTransport) transport.engine.on("session", (s: FastnetSession) => sessions.push(s));
  return {
    stop: () => server.gracefullyShutdown(false),
    onMessage: (msg) => {
      if (msg.type !== "stats") return;
      // The sessions still open are this phase's (the previous phase's clients left before it started).
      sessions = sessions.filter((s) => s.readyState !== ReadyState.CLOSED);
      const total = emptyEngineStats();
      for (const s of sessions) addEngineStats(total, s.getStats());
      const loopP99Ms = Math.max(0, loop.percentile(99) / 1e6 - LOOP_RESOLUTION_MS);
      const loopMaxMs = Math.max(0, loop.max / 1e6 - LOOP_RESOLUTION_MS);
      loop.reset();
      send?.({ type: "stats", loopP99Ms, loopMaxMs, ...total });
    },
  };
});
