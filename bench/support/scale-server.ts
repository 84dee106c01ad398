/**
 * Child process of bench/scale.ts and bench/join.ts: ONE Colyseus server (@colyseus/core `Server`, greet
 * off) on one transport with the scale room (bench/support/scale-room.ts) defined as "scale", reporting
 * where it listens over IPC. Started with fork() by the benchmark; never run by hand.
 * Usage (argv): scale-server.ts <transport> <mode> [options]   transport: fastnet | ws-transport;
 *                   mode: reliable | unreliable (positions); options: JSON of FastnetTransport options
 * Protocol (IPC): the shared one of bench/support/child-server.ts, plus {type:"sample", reset} answered
 * with {type:"sample", ...ScaleServerSample}: the process's own CPU time (process.cpuUsage, µs), RSS, the
 * event-loop delay p99 since the last reset (perf_hooks monitorEventLoopDelay) and the rooms' counters;
 * with reset the delay histogram starts over after the reading. {type:"profile", start:true, intervalUs}
 * starts the V8 sampling profiler (node:inspector, in this process); {type:"profile", start:false, path}
 * stops it and writes the profile (.cpuprofile JSON) to `path`; both answered with {type:"profile"}. Only
 * the measuring window is profiled this way, not the joins before it (--cpu-prof profiles all of it).
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { FastnetTransport, type FastnetTransportOptions } from "../../src/index.js";
import type { HandshakeServer } from "../../src/node/handshake-server.js";
import { runServerChild, takeIpc, type ParentMessage } from "./child-server.js";
import { listenColyseus, transportOfKind } from "./colyseus-child.js";
import { scaleCounters, scaleRoom, type PositionMode } from "./scale-room.js";

/** One reading of the server process. */
export interface ScaleServerSample {
  cpuUser: number;
  cpuSystem: number;
  rssMb: number;
  /** Event-loop delay p99 since the last reset, ms (the sampling resolution subtracted). */
  loopP99Ms: number;
  inputs: number;
  echoes: number;
  rooms: number;
  players: number;
  /** Fastnet only: handshakes that had to wait in the queue, and 503s. */
  handshakesQueued: number;
  handshakesBusy: number;
  /** Fastnet only: packets (UDP datagrams) sent and received, summed over the open sessions. */
  packetsSent: number;
  packetsReceived: number;
  /** Fastnet only: clients on the transport's WebSocket path (a FastnetClient that fell back), now. */
  webSocketClients: number;
}

export type ScaleParentMessage =
  | ParentMessage
  | { type: "sample"; reset: boolean }
  | { type: "profile"; start: true; intervalUs: number }
  | { type: "profile"; start: false; path: string };
export type ScaleSampleMessage = { type: "sample" } & ScaleServerSample;
export type ScaleChildMessage = ScaleSampleMessage | { type: "profile"; error?: string };

const send = takeIpc<ScaleChildMessage>();
const LOOP_RESOLUTION_MS = 2;

runServerChild<ScaleParentMessage>("scale-server", "scale", send, async () => {
  const [kind, mode, options] = process.argv.slice(2);
  if (mode !== "reliable" && mode !== "unreliable") throw new Error(`unknown position mode ${String(mode)}`);
  const transport = transportOfKind(kind, options ? (JSON.parse(options) as FastnetTransportOptions) : {});

  const server = await listenColyseus(transport, "scale", scaleRoom(mode as PositionMode), send);
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  let inspector: Session | null = null;
  const profile = async (msg: Extract<ScaleParentMessage, { type: "profile" }>): Promise<void> => {
    if (msg.start) {
      inspector = new Session();
      inspector.connect();
      await inspector.post("Profiler.enable");
      await inspector.post("Profiler.setSamplingInterval", { interval: msg.intervalUs });
      await inspector.post("Profiler.start");
    } else {
      if (!inspector) throw new Error("profile stop without a start");
      const { profile: result } = await inspector.post("Profiler.stop");
      inspector.disconnect();
      inspector = null;
      writeFileSync(msg.path, JSON.stringify(result));
    }
  };

  return {
    stop: () => server.gracefullyShutdown(false),
    onMessage: (msg) => {
      if (msg.type === "profile") {
        profile(msg).then(
          () => send?.({ type: "profile" }),
          (err: Error) => send?.({ type: "profile", error: err.message }),
        );
        return;
      }
      if (msg.type !== "sample") return;
      const cpu = process.cpuUsage();
      // The engine keeps its HandshakeServer private; the bench reads its counters anyway (read-only).
      let packetsSent = 0;
      let packetsReceived = 0;
      if (transport instanceof FastnetTransport) {
        for (const c of transport.clients.values()) {
          if (!("session" in c)) continue;
          const st = c.session.getStats();
          packetsSent += st.packetsSent;
          packetsReceived += st.packetsReceived;
        }
      }
      const hs = transport instanceof FastnetTransport ? (transport.engine as unknown as { handshakes: HandshakeServer | null }).handshakes : null;
      send?.({
        type: "sample",
        cpuUser: cpu.user,
        cpuSystem: cpu.system,
        rssMb: process.memoryUsage.rss() / (1024 * 1024),
        loopP99Ms: Math.max(0, loop.percentile(99) / 1e6 - LOOP_RESOLUTION_MS),
        ...scaleCounters,
        handshakesQueued: hs?.queueStats.queued ?? 0,
        handshakesBusy: hs?.stats.busy ?? 0,
        packetsSent,
        packetsReceived,
        webSocketClients: transport instanceof FastnetTransport ? (transport.webSocket?.openCount ?? 0) : 0,
      });
      if (msg.reset) loop.reset();
    },
  };
});
