/**
 * The join measurements of bench/join.ts (also run by bench/scale.ts): against ONE server child
 * (bench/support/scale-server.ts, the scale room, reliable positions) per transport, with the
 * @colyseus/sdk clients in this process, all from one address (127.0.0.1):
 *   - sequential: `samples` joinOrCreate calls one after the other, each timed from the call to the
 *     joined room (matchmaking HTTP request + the transport's connection and JOIN), then left;
 *   - bursts: 100 and 500 joinOrCreate calls at once, timed until the last one settled; failures counted;
 *     the server's CPU time over the burst gives its joins per CPU-second (per core).
 * Everything is bounded: every join by JOIN_TIMEOUT_MS, every leave by LEAVE_TIMEOUT_MS.
 * With `profileDir`, the sequential joins (and their leaves) are profiled on both sides: the server child
 * (node:inspector, through its IPC) and this process, the clients (node:inspector here), into
 * join-<transport>-server.cpuprofile and -client.cpuprofile, each with a .json sidecar ("messages" = joins)
 * for bench/support/scale-profile.ts. The sequential phase also gives the server's CPU µs per join.
 */
import { Client, type Room } from "@colyseus/sdk";
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join as joinPath } from "node:path";
import { fileURLToPath } from "node:url";
import { FastnetClient } from "../../src/client.js";
import { startScriptChild } from "./children.js";
import { withTimeout } from "./rtt-clients.js";
import { ask } from "./scale-ipc.js";
import type { ScaleSampleMessage } from "./scale-server.js";
import { percentile } from "./stats.js";

const SCALE_SERVER = fileURLToPath(new URL("./scale-server.ts", import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const SAMPLE_TIMEOUT_MS = 10_000;
const JOIN_TIMEOUT_MS = 30_000;
const LEAVE_TIMEOUT_MS = 10_000;
const WARMUP_JOINS = 20;
export const BURSTS = [100, 500] as const;

export type JoinTransport = "fastnet" | "ws-transport";

export interface JoinResult {
  samples: number;
  p50_ms: number;
  p99_ms: number;
  burst100_ms: number;
  burst500_ms: number;
  /** Joins that failed, sequential and bursts together. */
  failed: number;
  firstError: string | null;
  /** Joins per CPU-second of the server process during the 500 burst (= per core). */
  burst500_joins_per_cpu_s: number;
  /** Server CPU during the 500 burst, % of one core. */
  burst500_server_cpu_pct: number;
  /** fastnet: handshakes that waited in the server's queue, and 503 answers (0 for ws-transport). */
  handshakes_queued: number;
  handshakes_busy: number;
  /** Server CPU (user+sys) per sequential join (join and leave), µs. */
  seq_server_cpu_us_per_join: number;
}

const round = (v: number, d = 2): number => Math.round(v * 10 ** d) / 10 ** d;

async function leaveAll(rooms: Room[]): Promise<void> {
  await Promise.all(rooms.map((r) => withTimeout(r.leave(true), LEAVE_TIMEOUT_MS, "leave").catch(() => undefined)));
}

/** Runs the join measurements on one transport (a fresh server child), `samples` sequential joins. */
export async function measureJoins(transport: JoinTransport, samples: number, progress: (s: string) => void, profileDir: string | null = null): Promise<JoinResult> {
  const server = await startScriptChild(SCALE_SERVER, `join ${transport}`, [transport, "reliable"], START_TIMEOUT_MS);
  try {
    const endpoint = `http://127.0.0.1:${server.info.port}`;
    // path "udp": never the WebSocket fallback of the default "auto" (a join measured must be a fastnet join).
    const sdk = transport === "fastnet" ? new FastnetClient(endpoint, { path: "udp" }) : new Client(endpoint);
    const join = (): Promise<Room> => withTimeout(sdk.joinOrCreate("scale"), JOIN_TIMEOUT_MS, `${transport}: joinOrCreate`);
    let failed = 0;
    let firstError: string | null = null;
    const failure = (err: unknown): void => {
      failed++;
      firstError ??= (err as Error).message;
    };

    for (let i = 0; i < WARMUP_JOINS; i++) await leaveAll([await join()]);
    const times: number[] = [];
    const PROFILE_US = 100;
    let clientProfiler: Session | null = null;
    if (profileDir) {
      await ask(server, { type: "profile", start: true, intervalUs: PROFILE_US }, "profile", SAMPLE_TIMEOUT_MS);
      clientProfiler = new Session();
      clientProfiler.connect();
      await clientProfiler.post("Profiler.enable");
      await clientProfiler.post("Profiler.setSamplingInterval", { interval: PROFILE_US });
      await clientProfiler.post("Profiler.start");
    }
    const c0 = process.cpuUsage();
    const seq0 = await ask<ScaleSampleMessage>(server, { type: "sample", reset: false }, "sample", SAMPLE_TIMEOUT_MS);
    const tSeq = performance.now();
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now();
      try {
        const room = await join();
        times.push(performance.now() - t0);
        await leaveAll([room]);
      } catch (err) {
        failure(err);
      }
    }
    const seq1 = await ask<ScaleSampleMessage>(server, { type: "sample", reset: false }, "sample", SAMPLE_TIMEOUT_MS);
    const seqS = (performance.now() - tSeq) / 1000;
    const c1 = process.cpuUsage(c0);
    const seqServerUs = seq1.cpuUser - seq0.cpuUser + (seq1.cpuSystem - seq0.cpuSystem);
    if (profileDir && clientProfiler) {
      const base = joinPath(profileDir, `join-${transport}`);
      const { profile } = await clientProfiler.post("Profiler.stop");
      clientProfiler.disconnect();
      writeFileSync(`${base}-client.cpuprofile`, JSON.stringify(profile));
      writeFileSync(`${base}-client.cpuprofile.json`, JSON.stringify({ messages: times.length, cpuUserUs: c1.user, cpuSystemUs: c1.system, windowS: seqS }));
      await ask(server, { type: "profile", start: false, path: `${base}-server.cpuprofile` }, "profile", SAMPLE_TIMEOUT_MS);
      writeFileSync(
        `${base}-server.cpuprofile.json`,
        JSON.stringify({ messages: times.length, cpuUserUs: seq1.cpuUser - seq0.cpuUser, cpuSystemUs: seq1.cpuSystem - seq0.cpuSystem, windowS: seqS }),
      );
    }
    times.sort((a, b) => a - b);
    progress(`${transport}: ${times.length} sequential joins, p50 ${round(percentile(times, 0.5))} ms, p99 ${round(percentile(times, 0.99))} ms`);

    const burst: Record<number, { ms: number; joinsPerCpuS: number; cpuPct: number }> = {};
    for (const n of BURSTS) {
      const s0 = await ask<ScaleSampleMessage>(server, { type: "sample", reset: false }, "sample", SAMPLE_TIMEOUT_MS);
      const t0 = performance.now();
      const settled = await Promise.allSettled(Array.from({ length: n }, join));
      const ms = performance.now() - t0;
      const s1 = await ask<ScaleSampleMessage>(server, { type: "sample", reset: false }, "sample", SAMPLE_TIMEOUT_MS);
      const rooms: Room[] = [];
      for (const r of settled) {
        if (r.status === "fulfilled") rooms.push(r.value);
        else failure(r.reason);
      }
      const cpuUs = s1.cpuUser - s0.cpuUser + (s1.cpuSystem - s0.cpuSystem);
      burst[n] = { ms, joinsPerCpuS: rooms.length / (cpuUs / 1e6), cpuPct: (cpuUs / 1000 / ms) * 100 };
      progress(`${transport}: burst of ${n}: ${rooms.length} in, ${n - rooms.length} failed, ${round(ms, 1)} ms, ${round(burst[n]!.joinsPerCpuS, 0)} joins per server CPU-second`);
      await leaveAll(rooms);
    }
    const last = await ask<ScaleSampleMessage>(server, { type: "sample", reset: false }, "sample", SAMPLE_TIMEOUT_MS);
    return {
      samples: times.length,
      p50_ms: round(percentile(times, 0.5)),
      p99_ms: round(percentile(times, 0.99)),
      burst100_ms: round(burst[100]!.ms, 1),
      burst500_ms: round(burst[500]!.ms, 1),
      failed,
      firstError,
      burst500_joins_per_cpu_s: round(burst[500]!.joinsPerCpuS, 0),
      burst500_server_cpu_pct: round(burst[500]!.cpuPct, 1),
      handshakes_queued: last.handshakesQueued,
      handshakes_busy: last.handshakesBusy,
      seq_server_cpu_us_per_join: round(seqServerUs / Math.max(1, times.length), 0),
    };
  } finally {
    await server.stop(STOP_TIMEOUT_MS);
  }
}

/** The joins table, with fastnet's ratios to ws-transport, and the targets' verdicts. */
export function printJoins(results: Partial<Record<JoinTransport, JoinResult>>): void {
  const ws = results["ws-transport"];
  const f = results.fastnet;
  console.log(`Joins from one address (127.0.0.1), joinOrCreate on a room of 16 (matchmaking + transport connection + JOIN)`);
  console.log(
    `${"transport".padEnd(14)}${"seq p50".padStart(9)}${"seq p99".padStart(9)}${"b100 ms".padStart(9)}${"b500 ms".padStart(9)}${"failed".padStart(8)}${"joins/cpu-s".padStart(13)}${"queued".padStart(8)}${"503s".padStart(6)}${"seq cpu µs/join".padStart(17)}`,
  );
  for (const [name, r] of Object.entries(results)) {
    if (!r) continue;
    console.log(
      `${name.padEnd(14)}${String(r.p50_ms).padStart(9)}${String(r.p99_ms).padStart(9)}${String(r.burst100_ms).padStart(9)}${String(r.burst500_ms).padStart(9)}${String(r.failed).padStart(8)}${String(r.burst500_joins_per_cpu_s).padStart(13)}${String(r.handshakes_queued).padStart(8)}${String(r.handshakes_busy).padStart(6)}${String(r.seq_server_cpu_us_per_join).padStart(17)}`,
    );
    if (r.firstError) console.log(`  first failure: ${r.firstError}`);
  }
  if (!f || !ws) return;
  console.log(`fastnet / ws-transport: p50 ${round(f.p50_ms / ws.p50_ms)}x, p99 ${round(f.p99_ms / ws.p99_ms)}x, burst100 ${round(f.burst100_ms / ws.burst100_ms)}x, burst500 ${round(f.burst500_ms / ws.burst500_ms)}x`);
  const verdict = (ok: boolean): string => (ok ? "PASS" : "FAIL");
  console.log(`target: burst of 500 from one address all in: ${verdict(f.failed === 0)} (${f.failed} failed)`);
  console.log(`target: join p50 at most 2x ws-transport's: ${verdict(f.p50_ms <= 2 * ws.p50_ms)} (${f.p50_ms} vs ${ws.p50_ms} ms)`);
  console.log(`target: >= 300 joins per server CPU-second (per core): ${verdict(f.burst500_joins_per_cpu_s >= 300)} (${f.burst500_joins_per_cpu_s}; ws-transport ${ws.burst500_joins_per_cpu_s})`);
}
