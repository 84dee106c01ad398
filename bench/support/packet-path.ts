/**
 * Per-packet path breakdown (issue 11): for each transport of bench:rtt (the same echo server children
 * and clients), N round trips with one message in flight, counted rather than timed:
 *   - datagrams (or TCP writes) each way, timers armed / cleared / refreshed, microtasks and
 *     setImmediate calls, in the client and in the server child (bench/support/count-hooks.ts);
 *   - JS heap bytes allocated per round trip in each process (a new space large enough that no GC runs
 *     in the window; the GC count is printed to show it);
 *   - with --strace: syscalls per round trip of each process (strace -c -f attached for the window only),
 *     epoll_wait being one event-loop turn;
 *   - with --perf: context switches per round trip (perf stat -e context-switches,cpu-clock).
 * Client and server are pinned to one CPU (as bench:rtt --pin same) unless --pin none.
 *
 * Transports: udp-raw, fastnet-<aead>, ws (bench:rtt's echo servers), room-fastnet, room-ws-transport
 * (bench:room's Colyseus ping/pong room).
 *
 * Usage: node --import tsx bench/support/packet-path.ts [--only a,b] [--payload 32] [--n 2000]
 *                                                       [--strace] [--perf] [--pin same|none] [--json]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Counts } from "./count-hooks.js";
import { killAllChildren, startScriptChild, startServerChild, type ServerChild } from "./children.js";
import { openRoomClient, type RoomTransportName } from "./room-clients.js";
import { openFastnet, openUdpRaw, openWs, type EchoClient } from "./rtt-clients.js";

const HOOKS = fileURLToPath(new URL("./count-hooks.ts", import.meta.url));
const ROOM_SERVER = fileURLToPath(new URL("./room-server.ts", import.meta.url));

/** bench:room's client as an EchoClient: "ping" out, the "pong" is the echo. */
async function openRoom(name: RoomTransportName, port: number): Promise<EchoClient> {
  const room = await openRoomClient(name, port, 10_000);
  const client: EchoClient = {
    onEcho: null,
    onFail: null,
    failed: null,
    send: (data) => room.send(data),
    close: () => room.close(),
  };
  room.onPong = (p) => client.onEcho?.(p as Uint8Array);
  room.onFail = (err) => client.onFail?.(err);
  return client;
}
const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : dflt;
};
const only = opt("--only", "udp-raw,fastnet-sodium,ws").split(",");
const payload = Number(opt("--payload", "32"));
const N = Number(opt("--n", "2000"));
const WARM = 1000;
const useStrace = argv.includes("--strace");
const usePerf = argv.includes("--perf");
/** --perf-record DIR: perf record (cpu-clock, JS symbols via --perf-basic-prof) of both processes for the window, kept in DIR. */
const perfRecord = opt("--perf-record", "");
const pin = opt("--pin", "same");
const json = argv.includes("--json");
/** --bare: no counting hooks in either process (CPU from /proc only, as bench:rtt runs them). */
const bare = argv.includes("--bare");
const zero: Counts = { timerFired: 0, sentByTimer: 0, setTimeout: 0, clearTimeout: 0, refresh: 0, queueMicrotask: 0, setImmediate: 0, udpSend: 0, udpRecv: 0, tcpWrite: 0, gc: 0, heapUsed: 0, cpuUs: 0 };
const snapshot: () => Counts = bare ? () => zero : (await import("./count-hooks.js")).snapshot;

/** CPU time of a whole process (all threads) in µs, from /proc (10 ms ticks). */
function procCpuUs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000; // utime, stime in clock ticks (100 Hz)
}
const dir = mkdtempSync(join(tmpdir(), "packet-path-"));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function taskset(pid: number, cpu: number): Promise<void> {
  return new Promise((resolve) => {
    const p = spawn("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" });
    p.on("exit", () => resolve());
    p.on("error", () => resolve());
  });
}

/** Round-trip times (µs) of the last counted window. */
let lat: number[] = [];

async function roundTrips(client: EchoClient, n: number): Promise<void> {
  const buf = new Uint8Array(payload);
  let left = n;
  lat = [];
  let t = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stalled with ${left} round trips left`)), 60_000 + n * 50);
    client.onFail = (err) => {
      clearTimeout(timer);
      reject(err);
    };
    client.onEcho = () => {
      const now = process.hrtime.bigint();
      lat.push(Number(now - t) / 1000);
      t = now;
      if (--left === 0) {
        clearTimeout(timer);
        client.onEcho = null;
        resolve();
        return;
      }
      client.send(buf);
    };
    client.send(buf);
  });
}

/** The child's counters: an IPC message makes it append one line to its file; waits (bounded) for that line. */
async function childSnapshot(child: ServerChild, file: string): Promise<Counts> {
  if (bare) return zero;
  const before = existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).length : 0;
  child.process.send({ type: "count-hooks" });
  for (let i = 0; i < 500; i++) {
    await sleep(10);
    if (!existsSync(file)) continue;
    const lines = readFileSync(file, "utf8").trim().split("\n").filter(Boolean);
    if (lines.length > before) return JSON.parse(lines[lines.length - 1]!) as Counts;
  }
  throw new Error("server child did not answer the count-hooks message");
}

/** Starts a tracer on `pids` and waits until it is attached. */
async function startTracer(tool: "strace" | "perf", pid: number, out: string): Promise<ChildProcess> {
  const args = tool === "strace"
    ? ["-c", "-f", "-o", out, "-p", String(pid)]
    : out.endsWith(".data") ? ["record", "-F", "4999", "-g", "-o", out, "-p", String(pid)]
    : ["stat", "-e", "context-switches,cpu-clock,task-clock", "-x", ",", "-o", out, "-p", String(pid)];
  const p = spawn(tool, args, { stdio: "ignore" });
  await sleep(1500);
  return p;
}

async function stopTracer(p: ChildProcess): Promise<void> {
  const exited = new Promise<void>((r) => p.once("exit", () => r()));
  p.kill("SIGINT");
  await Promise.race([exited, sleep(5000)]);
}

function parseStrace(file: string): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
    if (m && m[2] !== "total") calls[m[2]!] = Number(m[1]);
  }
  return calls;
}

function parsePerf(file: string): Record<string, number> {
  const r: Record<string, number> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const f = line.split(",");
    if (f.length > 3 && f[2]) r[f[2]] = Number(f[0]);
  }
  return r;
}

const per = (a: number, b: number): number => +((b - a) / N).toFixed(2);

function deltas(a: Counts, b: Counts): Record<string, number> {
  const r: Record<string, number> = {};
  for (const k of Object.keys(a) as (keyof Counts)[]) if (typeof a[k] === "number") r[k] = k === "heapUsed" ? Math.round((b[k] - a[k]) / N) : per(a[k], b[k]);
  return r;
}

const results: Record<string, unknown>[] = [];
const heapFlags = ["--max-semi-space-size=256", "--min-semi-space-size=256"];
try {
  for (const name of only) {
    const [kind, backend] = name.startsWith("fastnet-") ? ["fastnet", name.slice(8)] : [name, undefined];
    const file = join(dir, `${name}.counts`);
    process.env.COUNT_HOOKS_OUT = file;
    const execArgv = [...(bare ? [] : ["--import", HOOKS, ...heapFlags]), ...(perfRecord ? ["--perf-basic-prof"] : [])];
    const room = name.startsWith("room-") ? (name.slice(5) as RoomTransportName) : null;
    const child = room
      ? await startScriptChild(ROOM_SERVER, name, [room], 30_000, execArgv)
      : await startServerChild(name, backend ? [kind!, backend] : [kind!], 30_000, execArgv);
    if (pin === "same") {
      await taskset(child.process.pid!, 0);
      await taskset(process.pid, 0);
    }
    const info = child.info;
    const client = room ? await openRoom(room, info.port)
      : kind === "udp-raw" ? await openUdpRaw(info.udpPort, 10_000)
      : kind === "ws" ? await openWs(info.port, 10_000)
      : await openFastnet(info.port, info.fingerprint!, backend as "sodium", 10_000);
    await roundTrips(client, WARM);
    const tracers: { name: string; p: ChildProcess; out: string }[] = [];
    if (useStrace) {
      for (const [who, pid] of [["server", child.process.pid!], ["client", process.pid]] as const) {
        const out = join(dir, `${name}.${who}.strace`);
        tracers.push({ name: `strace_${who}`, p: await startTracer("strace", pid, out), out });
      }
    } else if (perfRecord) {
      for (const [who, pid] of [["server", child.process.pid!], ["client", process.pid]] as const) {
        tracers.push({ name: `record_${who}`, p: await startTracer("perf", pid, join(perfRecord, `${name}.${who}.data`)), out: "" });
      }
    } else if (usePerf) {
      for (const [who, pid] of [["server", child.process.pid!], ["client", process.pid]] as const) {
        const out = join(dir, `${name}.${who}.perf`);
        tracers.push({ name: `perf_${who}`, p: await startTracer("perf", pid, out), out });
      }
    }
    const s0 = await childSnapshot(child, file);
    const c0 = snapshot();
    const p0 = [procCpuUs(process.pid), procCpuUs(child.process.pid!)];
    const t0 = performance.now();
    await roundTrips(client, N);
    const wallUs = +(((performance.now() - t0) * 1000) / N).toFixed(1);
    const p1 = [procCpuUs(process.pid), procCpuUs(child.process.pid!)];
    const c1 = snapshot();
    const s1 = await childSnapshot(child, file);
    for (const t of tracers) await stopTracer(t.p);
    const sorted = [...lat].sort((a, b) => a - b);
    const q = (x: number): number => +sorted[Math.min(sorted.length - 1, Math.floor(x * sorted.length))]!.toFixed(1);
    const slow = lat.filter((v) => v > 1000);
    const latency = { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1), over_1ms: slow.length, us_in_over_1ms_per_rt: +(slow.reduce((a, b) => a + b, 0) / N).toFixed(1) };
    const row: Record<string, unknown> = { latency, transport: name, payload, n: N, wall_us_per_rt: wallUs,
      proc_cpu_us_per_rt: { client: per(p0[0]!, p1[0]!), server: per(p0[1]!, p1[1]!) }, client: deltas(c0, c1), server: deltas(s0, s1) };
    for (const t of tracers) {
      if (t.name.startsWith("record")) continue;
      const parsed = t.name.startsWith("strace") ? parseStrace(t.out) : parsePerf(t.out);
      const perRt: Record<string, number> = {};
      for (const [k, v] of Object.entries(parsed)) perRt[k] = +(v / N).toFixed(2);
      row[t.name] = perRt;
    }
    results.push(row);
    if (!json) console.log(JSON.stringify(row));
    await client.close();
    await child.stop(3000);
  }
  if (json) console.log(JSON.stringify({ bench: "packet-path", results }));
} finally {
  killAllChildren();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
