/**
 * Child process of bench/scale.ts: a share of the players. It joins @colyseus/sdk rooms ("scale", rooms
 * of 16) on one transport, and every joined client sends an input 20 times a second from then on; every
 * ECHO_EVERY-th input asks for an echo, timed from just before room.send to the echo's callback. Run in
 * several children so the clients' own CPU is spread and they are less of a bottleneck than the server.
 * Usage (argv): scale-clients.ts (started with fork() by the benchmark; never run by hand).
 * Protocol (IPC), on top of bench/support/child-server.ts ("ready" with port 0 at once; "stop" leaves
 * every room, bounded, and exits):
 *   {type:"join", transport, port, count, concurrency, fastnetOptions?} -> {type:"joined", total, failed, firstError}
 *     (fastnetOptions: session options for FastnetClient, e.g. {"maxAckDelayMs":60}; the first join's count)
 *   {type:"window", start:true}   starts a measuring window (zeroes the counters)
 *   {type:"window", start:false}  -> {type:"report", ...ScaleClientReport} for the window since the start
 */
import { Client, type Room } from "@colyseus/sdk";
import { FastnetClient } from "../../src/client.js";
import { runServerChild, takeIpc, type ParentMessage } from "./child-server.js";
import { withTimeout } from "./rtt-clients.js";
import { ECHO_EVERY, TICK_MS } from "./scale-room.js";

const JOIN_TIMEOUT_MS = 30_000;
const LEAVE_TIMEOUT_MS = 5_000;
/** Echoes in flight per client that can be matched (older ones count as lost). */
const ECHO_SLOTS = 64;

export interface ScaleClientReport {
  /** Inputs handed to room.send in the window. */
  inputs: number;
  /** State changes (patches: reliable or datagram) received in the window. */
  patches: number;
  echoes: number;
  /** Input->echo latencies in the window, ms. */
  latencies: number[];
  /** This process's CPU time (user+sys, µs) in the window: are the clients the bottleneck? */
  cpuUs: number;
  /** Clients that dropped or left on their own since the start. */
  failures: number;
  firstFailure: string | null;
}

export type ScaleClientsParentMessage =
  | ParentMessage
  | { type: "join"; transport: "fastnet" | "ws-transport"; port: number; count: number; concurrency: number; fastnetOptions?: Record<string, unknown> }
  | { type: "window"; start: boolean };
export type ScaleClientsChildMessage =
  | { type: "joined"; total: number; failed: number; firstError: string | null }
  | ({ type: "report" } & ScaleClientReport);

const send = takeIpc<ScaleClientsChildMessage>();

interface Player {
  room: Room;
  timer: NodeJS.Timeout | undefined;
  seq: number;
  phase: number;
  sentAt: Float64Array;
  sentSeq: Int32Array;
}

runServerChild<ScaleClientsParentMessage>("scale-clients", "scale", send, async () => {
  const players: Player[] = [];
  let sdk: Client | null = null;
  let leaving = false;
  const w = { inputs: 0, patches: 0, echoes: 0, latencies: [] as number[], cpu: process.cpuUsage() };
  const failures = { count: 0, first: null as string | null };
  const fail = (why: string): void => {
    if (leaving) return;
    failures.count++;
    failures.first ??= why;
  };

  const tick = (p: Player): void => {
    const seq = ++p.seq;
    const a = seq / 20 + p.phase;
    const echo = seq % ECHO_EVERY === 0 ? 1 : 0;
    if (echo) {
      const slot = (seq / ECHO_EVERY) % ECHO_SLOTS;
      p.sentSeq[slot] = seq;
      p.sentAt[slot] = performance.now();
    }
    p.room.send("input", [seq, Math.round(4000 + 3000 * Math.sin(a)) / 10, Math.round(3000 + 2500 * Math.cos(a)) / 10, echo]);
    w.inputs++;
  };

  const joinOne = async (transport: string, port: number, fastnetOptions: Record<string, unknown> = {}): Promise<void> => {
    const endpoint = `http://127.0.0.1:${port}`;
    // path "udp": the default "auto" falls back to the server's WebSocket path when a UDP bind goes
    // unanswered for 1 s (a loaded server), and the "fastnet" row would then measure WebSocket clients too.
    sdk ??= transport === "fastnet" ? new FastnetClient(endpoint, { ...fastnetOptions, path: "udp" }) : new Client(endpoint);
    const room = await withTimeout(sdk.joinOrCreate("scale"), JOIN_TIMEOUT_MS, `${transport}: joinOrCreate("scale")`);
    const p: Player = { room, timer: undefined, seq: 0, phase: Math.random() * 2 * Math.PI, sentAt: new Float64Array(ECHO_SLOTS), sentSeq: new Int32Array(ECHO_SLOTS).fill(-1) };
    room.onStateChange(() => w.patches++);
    room.onMessage("echo", (seq: unknown) => {
      if (typeof seq !== "number") return;
      const slot = (seq / ECHO_EVERY) % ECHO_SLOTS;
      if (p.sentSeq[slot] !== seq) return;
      p.sentSeq[slot] = -1;
      w.echoes++;
      w.latencies.push(performance.now() - p.sentAt[slot]!);
    });
    room.onDrop((code, reason) => fail(`${transport}: connection dropped (${code} ${reason ?? ""})`));
    room.onLeave((code, reason) => fail(`${transport}: left the room (${code} ${reason ?? ""})`));
    room.onError((code, message) => fail(`${transport}: room error ${code} ${message ?? ""}`));
    // Spread the clients' inputs over the tick instead of sending them all at once.
    const start = setTimeout(() => {
      p.timer = setInterval(() => tick(p), TICK_MS);
    }, Math.random() * TICK_MS);
    p.timer = start;
    players.push(p);
  };

  const join = async (transport: string, port: number, count: number, concurrency: number, fastnetOptions?: Record<string, unknown>): Promise<void> => {
    let failed = 0;
    let firstError: string | null = null;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        next++;
        try {
          await joinOne(transport, port, fastnetOptions);
        } catch (err) {
          failed++;
          firstError ??= (err as Error).message;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
    send?.({ type: "joined", total: players.length, failed, firstError });
  };

  send?.({ type: "ready", port: 0, udpPort: 0 });
  return {
    stop: async () => {
      leaving = true;
      for (const p of players) clearInterval(p.timer);
      await Promise.all(players.map((p) => withTimeout(p.room.leave(true), LEAVE_TIMEOUT_MS, "leave").catch(() => undefined)));
    },
    onMessage: (msg) => {
      if (msg.type === "join") {
        join(msg.transport, msg.port, msg.count, msg.concurrency, msg.fastnetOptions).catch((err: Error) => send?.({ type: "joined", total: players.length, failed: msg.count, firstError: err.message }));
      } else if (msg.type === "window") {
        if (msg.start) {
          w.inputs = w.patches = w.echoes = 0;
          w.latencies = [];
          w.cpu = process.cpuUsage();
        } else {
          const cpu = process.cpuUsage(w.cpu);
          send?.({ type: "report", inputs: w.inputs, patches: w.patches, echoes: w.echoes, latencies: w.latencies, cpuUs: cpu.user + cpu.system, failures: failures.count, firstFailure: failures.first });
        }
      }
    },
  };
});
