/**
 * Players per process (issue 10, part 3): ONE Colyseus server process under a game-shaped load, fastnet
 * and ws-transport in the same run, then the join measurements of bench/join.ts.
 *
 * Load: N clients in rooms of 16 ("scale" room, bench/support/scale-room.ts). Each client sends an input
 * 20 times a second; the room runs a 20 Hz simulation that moves every player, and patches at 20 Hz; one
 * input in ECHO_EVERY asks for an immediate "echo", timed by the client (input->echo latency). The
 * clients run in --client-procs child processes (bench/support/scale-clients.ts); the server in its own
 * child (bench/support/scale-server.ts), which reports its own CPU time (process.cpuUsage, user+sys),
 * RSS and event-loop delay p99 (perf_hooks monitorEventLoopDelay), so the server process is measured alone.
 *
 * Rows (like with like): "fastnet" and "ws-transport" with reliable positions (ws-transport never sends
 * `@unreliable` fields: Colyseus skips its clients for them), and "fastnet-unreliable" with `@unreliable`
 * positions (datagrams) beside them.
 *
 * Steps: N = --steps (default 250,500,1000,2000,3000,4000; --quick 100,250) per row, clients added to the
 * same server from one step to the next. At each step, after SETTLE_MS, a window of --window seconds:
 *   cpu µs/msg  server CPU (user+sys) in the window / messages delivered in it, both ways: inputs the
 *               rooms received + state patches and echoes the clients received
 *   cpu %       server CPU in % of one core; cli %: all client processes' CPU, % of one core
 *   sent %      inputs the clients sent / N*20*window (under 100: the clients' timers ran late)
 *   in %        inputs the rooms received / inputs sent; out %: patches received / N*20*window (a server
 *               that falls behind delivers less)
 *   rss, loop p99, latency p50/p99 (ms); udp drops: the kernel's UDP receive-buffer drops in the window,
 *               machine-wide (/proc/net/snmp RcvbufErrors; other processes count too); srv drops: those
 *               on the server's own UDP socket (/proc/net/udp "drops")
 * A row stops at the first saturated step (server CPU >= SATURATED_CPU_PCT, inputs received under
 * SATURATED_DELIVERY of those sent, patches under SATURATED_DELIVERY of those due, clients dropped,
 * latency p99 over SATURATED_P99_MS, or joins failing).
 * "Holds N" = the largest step with latency p99 < --max-p99 (50 ms) and not saturated.
 *
 * Usage: node --import tsx bench/scale.ts [--json] [--quick] [--steps a,b,..] [--window S]
 *          [--client-procs K] [--only fastnet,ws-transport,fastnet-unreliable] [--max-p99 MS]
 *          [--no-joins] [--join-samples N]
 *   --json  last stdout line: {"bench":"scale","results":[{transport,clients,cpu_us_per_msg,rss_mb,
 *           loop_p99_ms,lat_p50_ms,lat_p99_ms,...}],"max_clients":{...},"joins":{...}}
 *   --profile DIR  the server child profiles each measuring window alone (V8 sampling profiler through
 *           node:inspector, --profile-interval µs, default 250) into DIR/<row>-<N>[-r<k>].cpuprofile;
 *           summarize with bench/support/scale-profile.ts. The profiler's own cost is in that window's CPU.
 *   --perf DIR  the server child runs with --perf-basic-prof and `perf record -e cpu-clock -g` samples it
 *           during each measuring window into DIR/<row>-<N>[-r<k>].perf.data (+ .json sidecar): CPU-time
 *           samples (a descheduled process is not sampled, unlike the V8 profiler's wall-clock deltas),
 *           kernel included; summarize with bench/support/scale-perf.ts DIR
 *   --syscalls  after each window, a second window of the same length with `strace -c -f` attached to
 *           the server child: syscalls per delivered message by name (strace slows the server: the
 *           counts are what they are, that window's CPU is not reported)
 *   --fastnet-options JSON  session options for the fastnet rows, on the server (FastnetTransport) and
 *           the clients (FastnetClient) alike, e.g. '{"maxAckDelayMs":60}' (what-if measurements; the
 *           defaults without)
 *   --repeat K  runs the rows K times, interleaved (fastnet, ws-transport, fastnet, ...), each on a new
 *           server: on a shared machine, compare rows of the same repetition
 * Env FASTNET_SCALE_CPU_PROF=<dir>: each server child writes a V8 CPU profile (--cpu-prof) into <dir>,
 * over its whole life (joins included).
 * Exit code 0 when the run completed (whatever the verdicts), 1 on an error (a child that fails, a join
 * phase or an IPC answer that times out, the whole run over OVERALL_TIMEOUT_MS).
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join as joinPath } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { cpuModel } from "./support/affinity.js";
import { choiceList, commaList, parseBenchArgs, positiveInt, positiveIntOr, type BaseArgs } from "./support/args.js";
import { startScriptChild, type ServerChild } from "./support/children.js";
import { measureJoins, printJoins, type JoinResult, type JoinTransport } from "./support/join-run.js";
import { runBench } from "./support/run-bench.js";
import type { ScaleClientsChildMessage, ScaleClientReport } from "./support/scale-clients.js";
import { ask } from "./support/scale-ipc.js";
import { ECHO_EVERY, ROOM_SIZE, TICK_MS, type PositionMode } from "./support/scale-room.js";
import type { ScaleChildMessage, ScaleSampleMessage } from "./support/scale-server.js";
import { percentile } from "./support/stats.js";
import { pad } from "./support/table.js";

const SCALE_SERVER = fileURLToPath(new URL("./support/scale-server.ts", import.meta.url));
const SCALE_CLIENTS = fileURLToPath(new URL("./support/scale-clients.ts", import.meta.url));

type RowName = "fastnet" | "ws-transport" | "fastnet-unreliable";
const ROWS: readonly { name: RowName; transport: JoinTransport; mode: PositionMode }[] = [
  { name: "fastnet", transport: "fastnet", mode: "reliable" },
  { name: "ws-transport", transport: "ws-transport", mode: "reliable" },
  { name: "fastnet-unreliable", transport: "fastnet", mode: "unreliable" },
];
const ROW_NAMES = ROWS.map((r) => r.name);

const DEFAULT_STEPS = [250, 500, 1000, 2000, 3000, 4000];
const QUICK_STEPS = [100, 250];
const SATURATED_CPU_PCT = 95;
const SATURATED_DELIVERY = 0.8;
const SATURATED_P99_MS = 1000;
/** Joins that may fail in a step before the row counts as saturated. */
const JOIN_FAILURE_SHARE = 0.01;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const SAMPLE_TIMEOUT_MS = 15_000;
/** A join phase: this much plus JOIN_MS_PER_CLIENT per client to add. */
const JOIN_PHASE_BASE_MS = 60_000;
const JOIN_MS_PER_CLIENT = 50;
const JOIN_CONCURRENCY = 8;
const OVERALL_TIMEOUT_MS = 20 * 60_000;

interface Args extends BaseArgs {
  steps: number[];
  windowS: number;
  settleMs: number;
  clientProcs: number;
  only: RowName[] | null;
  maxP99: number;
  joins: boolean;
  joinSamples: number;
  profileDir: string | null;
  profileIntervalUs: number;
  perfDir: string | null;
  fastnetOptions: Record<string, unknown> | null;
  syscalls: boolean;
  repeat: number;
}

/** One step's result; the first seven fields are the JSON the issue asks for. */
interface StepResult {
  transport: RowName;
  clients: number;
  cpu_us_per_msg: number;
  rss_mb: number;
  loop_p99_ms: number;
  lat_p50_ms: number;
  lat_p99_ms: number;
  cpu_pct: number;
  /** The user and system (kernel: syscalls, the network stack) parts of cpu_us_per_msg. */
  cpu_user_us_per_msg: number;
  cpu_sys_us_per_msg: number;
  /** Fastnet: UDP datagrams the server sent and received per delivered message (null for ws-transport). */
  datagrams_out_per_msg: number | null;
  datagrams_in_per_msg: number | null;
  /** With --syscalls: syscalls of the server process per delivered message, by name (the largest ones). */
  syscalls_per_msg: Record<string, number> | null;
  /** With --repeat: which repetition (1..K). */
  rep: number;
  /** CPU of all client processes together, % of one core (over ~90 % per client process: the clients limit the step). */
  client_cpu_pct: number;
  msgs_per_s: number;
  /** Inputs the clients sent, % of N*20*window (under 100: the clients' timers ran late). */
  sent_pct: number;
  /** Inputs the rooms received, % of those the clients sent. */
  inputs_pct: number;
  patches_pct: number;
  rooms: number;
  /** UDP datagrams the kernel dropped for full receive buffers in the window, machine-wide (see udpReceiveBufferErrors). */
  udp_rcvbuf_drops: number | null;
  /** Of those, dropped on the server's own UDP socket (fastnet only; /proc/net/udp "drops"). */
  server_udp_drops: number | null;
  saturated: string | null;
}

const progress = (s: string): void => {
  process.stderr.write(`[scale] ${s}\n`);
};
const round = (v: number, d = 2): number => Math.round(v * 10 ** d) / 10 ** d;

function parse(argv: string[]): Args {
  const { values: v, base } = parseBenchArgs(
    argv,
    {
      quick: { type: "boolean" },
      steps: { type: "string" },
      window: { type: "string" },
      "client-procs": { type: "string" },
      only: { type: "string" },
      "max-p99": { type: "string" },
      "no-joins": { type: "boolean" },
      "join-samples": { type: "string" },
      profile: { type: "string" },
      perf: { type: "string" },
      "fastnet-options": { type: "string" },
      "profile-interval": { type: "string" },
      syscalls: { type: "boolean" },
      repeat: { type: "string" },
    },
    "none",
  );
  let steps = v.quick ? QUICK_STEPS : DEFAULT_STEPS;
  if (v.steps !== undefined) {
    steps = commaList(v.steps).map((s) => positiveInt("--steps", s));
    if (steps.length === 0) throw new Error("--steps needs a list of client counts");
    for (let i = 1; i < steps.length; i++) if (steps[i]! <= steps[i - 1]!) throw new Error("--steps must increase");
  }
  return {
    ...base,
    steps,
    windowS: positiveIntOr("--window", v.window, v.quick ? 2 : 8),
    settleMs: v.quick ? 1000 : 3000,
    clientProcs: positiveIntOr("--client-procs", v["client-procs"], 2),
    only: v.only !== undefined ? choiceList("--only", v.only, ROW_NAMES, "row") : null,
    maxP99: positiveIntOr("--max-p99", v["max-p99"], 50),
    joins: !v["no-joins"],
    joinSamples: positiveIntOr("--join-samples", v["join-samples"], v.quick ? 30 : 200),
    profileDir: v.profile ?? null,
    perfDir: v.perf ?? null,
    fastnetOptions: v["fastnet-options"] !== undefined ? (JSON.parse(v["fastnet-options"]) as Record<string, unknown>) : null,
    profileIntervalUs: positiveIntOr("--profile-interval", v["profile-interval"], 250),
    syscalls: v.syscalls === true,
    repeat: positiveIntOr("--repeat", v.repeat, 1),
  };
}

/** Adds `count` clients, split over the client children; returns how many failed and the first error. */
async function addClients(children: ServerChild[], row: (typeof ROWS)[number], port: number, count: number, args: Args): Promise<{ failed: number; firstError: string | null }> {
  const share = (i: number): number => Math.floor(count / children.length) + (i < count % children.length ? 1 : 0);
  const timeout = JOIN_PHASE_BASE_MS + JOIN_MS_PER_CLIENT * count;
  const answers = await Promise.all(
    children.map((c, i) =>
      ask<Extract<ScaleClientsChildMessage, { type: "joined" }>>(c, { type: "join", transport: row.transport, port, count: share(i), concurrency: JOIN_CONCURRENCY, fastnetOptions: row.transport === "fastnet" ? (args.fastnetOptions ?? undefined) : undefined }, "joined", timeout),
    ),
  );
  return { failed: answers.reduce((s, a) => s + a.failed, 0), firstError: answers.find((a) => a.firstError)?.firstError ?? null };
}

/**
 * The kernel's UDP "receive buffer errors" (datagrams dropped because a socket's receive buffer was
 * full), machine-wide, from /proc/net/snmp; null where there is no such file. Other processes on the
 * machine count too: a hint of where messages went, not a measurement of this server alone.
 */
function udpReceiveBufferErrors(): number | null {
  try {
    const lines = readFileSync("/proc/net/snmp", "utf8").split("\n").filter((l) => l.startsWith("Udp:"));
    const names = lines[0]!.split(/\s+/);
    const values = lines[1]!.split(/\s+/);
    const v = Number(values[names.indexOf("RcvbufErrors")]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Datagrams the kernel dropped on the server's own UDP socket(s) (local port `port`), from the "drops"
 * column of /proc/net/udp and /proc/net/udp6; null without those files or without a UDP port.
 */
function udpSocketDrops(port: number): number | null {
  if (!port) return null;
  let total: number | null = null;
  for (const file of ["/proc/net/udp", "/proc/net/udp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      if (!local || parseInt(local.slice(local.lastIndexOf(":") + 1), 16) !== port) continue;
      total = (total ?? 0) + Number(cols[cols.length - 1]);
    }
  }
  return total;
}

/**
 * `strace -c -f` attached to process `pid` until the returned stop() is called; stop() resolves with the
 * calls per syscall name (null when strace is missing or fails, e.g. ptrace not permitted).
 */
function straceCount(pid: number): { stop(): Promise<Map<string, number> | null> } {
  let out = "";
  let failed = false;
  const p = spawn("strace", ["-c", "-f", "-q", "-p", String(pid)], { stdio: ["ignore", "ignore", "pipe"] });
  p.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
  p.on("error", () => (failed = true));
  return {
    stop: () =>
      new Promise((resolve) => {
        if (failed || p.exitCode !== null) return resolve(null);
        p.once("exit", () => {
          // The summary table: "% time seconds usecs/call calls [errors] syscall", a dashed line, rows, a total.
          const calls = new Map<string, number>();
          for (const line of out.split("\n")) {
            const cols = line.trim().split(/\s+/);
            if (cols.length < 5 || !/^\d+(\.\d+)?$/.test(cols[0]!) || cols[cols.length - 1] === "total") continue;
            calls.set(cols[cols.length - 1]!, Number(cols[3]));
          }
          resolve(calls.size ? calls : null);
        });
        p.kill("SIGINT");
      }),
  };
}

/** `perf record -e cpu-clock -g` on process `pid` into `path` until stop() (SIGINT; resolves once perf wrote the file). */
function perfRecord(pid: number, path: string): { stop(): Promise<void> } {
  const p = spawn("perf", ["record", "-q", "-e", "cpu-clock", "-F", "1999", "-g", "-p", String(pid), "-o", path], { stdio: "ignore" });
  let failed = false;
  p.on("error", () => (failed = true));
  return {
    stop: () =>
      new Promise((resolve) => {
        if (failed || p.exitCode !== null) return resolve();
        p.once("exit", () => resolve());
        p.kill("SIGINT");
      }),
  };
}

/** Asks the server child to start or stop (and write) its profile of the window. */
async function profileCommand(server: ServerChild, msg: object): Promise<void> {
  const a = await ask<Extract<ScaleChildMessage, { type: "profile" }>>(server, msg, "profile", SAMPLE_TIMEOUT_MS);
  if (a.error) throw new Error(`${server.label}: profile: ${a.error}`);
}

/** One measuring window at the current number of clients; `profilePath`: the server profiles the window into it. */
async function measureStep(
  server: ServerChild,
  children: ServerChild[],
  row: RowName,
  clients: number,
  args: Args,
  profilePath: string | null = null,
  perfPath: string | null = null,
): Promise<StepResult> {
  if (profilePath) await profileCommand(server, { type: "profile", start: true, intervalUs: args.profileIntervalUs });
  const perf = perfPath && server.process.pid !== undefined ? perfRecord(server.process.pid, perfPath) : null;
  if (perf) await sleep(300); // perf attaches to every thread
  const s0 = await ask<ScaleSampleMessage>(server, { type: "sample", reset: true }, "sample", SAMPLE_TIMEOUT_MS);
  const drops0 = udpReceiveBufferErrors();
  const serverDrops0 = udpSocketDrops(server.info.udpPort);
  for (const c of children) c.process.send({ type: "window", start: true });
  const t0 = performance.now();
  await sleep(args.windowS * 1000);
  const reports = await Promise.all(children.map((c) => ask<{ type: "report" } & ScaleClientReport>(c, { type: "window", start: false }, "report", SAMPLE_TIMEOUT_MS)));
  const s1 = await ask<ScaleSampleMessage>(server, { type: "sample", reset: false }, "sample", SAMPLE_TIMEOUT_MS);
  if (profilePath) await profileCommand(server, { type: "profile", start: false, path: profilePath });
  await perf?.stop();
  const windowS = (performance.now() - t0) / 1000;
  const drops1 = udpReceiveBufferErrors();
  const serverDrops1 = udpSocketDrops(server.info.udpPort);

  const cpuUs = s1.cpuUser - s0.cpuUser + (s1.cpuSystem - s0.cpuSystem);
  const inputs = s1.inputs - s0.inputs;
  const sent = reports.reduce((s, r) => s + r.inputs, 0);
  const patches = reports.reduce((s, r) => s + r.patches, 0);
  const echoes = reports.reduce((s, r) => s + r.echoes, 0);
  const delivered = inputs + patches + echoes;
  const lat = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const due = clients * (1000 / TICK_MS) * windowS;
  const failures = reports.reduce((s, r) => s + r.failures, 0);
  const cpuPct = (cpuUs / 1e6 / windowS) * 100;
  const result: StepResult = {
    transport: row,
    clients,
    cpu_us_per_msg: round(cpuUs / Math.max(1, delivered)),
    rss_mb: round(s1.rssMb, 1),
    loop_p99_ms: round(s1.loopP99Ms),
    lat_p50_ms: round(percentile(lat, 0.5)),
    lat_p99_ms: round(percentile(lat, 0.99)),
    cpu_pct: round(cpuPct, 1),
    cpu_user_us_per_msg: round((s1.cpuUser - s0.cpuUser) / Math.max(1, delivered)),
    cpu_sys_us_per_msg: round((s1.cpuSystem - s0.cpuSystem) / Math.max(1, delivered)),
    datagrams_out_per_msg: server.info.udpPort ? round((s1.packetsSent - s0.packetsSent) / Math.max(1, delivered), 3) : null,
    datagrams_in_per_msg: server.info.udpPort ? round((s1.packetsReceived - s0.packetsReceived) / Math.max(1, delivered), 3) : null,
    syscalls_per_msg: null,
    rep: 1,
    client_cpu_pct: round((reports.reduce((s, r) => s + r.cpuUs, 0) / 1e6 / windowS) * 100, 1),
    msgs_per_s: Math.round(delivered / windowS),
    sent_pct: round((sent / due) * 100, 1),
    inputs_pct: round((inputs / Math.max(1, sent)) * 100, 1),
    patches_pct: round((patches / due) * 100, 1),
    rooms: s1.rooms,
    udp_rcvbuf_drops: drops0 === null || drops1 === null ? null : drops1 - drops0,
    server_udp_drops: serverDrops0 === null || serverDrops1 === null ? null : serverDrops1 - serverDrops0,
    saturated: null,
  };
  const why: string[] = [];
  if (cpuPct >= SATURATED_CPU_PCT) why.push(`server CPU ${result.cpu_pct} %`);
  if (inputs < SATURATED_DELIVERY * sent) why.push(`inputs received ${result.inputs_pct} % of sent`);
  if (patches < SATURATED_DELIVERY * due) why.push(`patches received ${result.patches_pct} %`);
  if (!(result.lat_p99_ms <= SATURATED_P99_MS)) why.push(`latency p99 ${result.lat_p99_ms} ms`);
  if (s1.webSocketClients > 0) why.push(`${s1.webSocketClients} fastnet clients on the WebSocket path`);
  if (failures > 0) why.push(`${failures} clients dropped (${reports.find((r) => r.firstFailure)?.firstFailure})`);
  if (why.length && cpuPct < SATURATED_CPU_PCT) why.push(`server under ${SATURATED_CPU_PCT} % CPU, clients at ${result.client_cpu_pct} % (of ${children.length} processes)`);
  result.saturated = why.length ? why.join(", ") : null;
  // Beside the profile, what bench/support/scale-profile.ts needs to turn its samples into µs per message.
  for (const path of [profilePath, perfPath]) {
    if (path) writeFileSync(`${path}.json`, JSON.stringify({ messages: delivered, cpuUserUs: s1.cpuUser - s0.cpuUser, cpuSystemUs: s1.cpuSystem - s0.cpuSystem, windowS, ...result }));
  }
  return result;
}

function printRowHeader(): void {
  console.log(
    `${"transport".padEnd(20)}${pad("clients", 8)}${pad("rooms", 6)}${pad("cpu µs/msg", 11)}${pad("cpu %", 7)}${pad("cli %", 7)}${pad("msg/s", 8)}${pad("sent %", 7)}${pad("in %", 7)}${pad("out %", 7)}${pad("rss MB", 8)}${pad("loop p99", 9)}${pad("lat p50", 9)}${pad("lat p99", 9)}${pad("udp drops", 10)}${pad("srv drops", 10)}`,
  );
}

function printRow(r: StepResult): void {
  console.log(
    `${r.transport.padEnd(20)}${pad(r.clients, 8)}${pad(r.rooms, 6)}${pad(r.cpu_us_per_msg.toFixed(2), 11)}${pad(r.cpu_pct.toFixed(1), 7)}${pad(r.client_cpu_pct.toFixed(0), 7)}${pad(r.msgs_per_s, 8)}${pad(r.sent_pct.toFixed(1), 7)}${pad(r.inputs_pct.toFixed(1), 7)}${pad(r.patches_pct.toFixed(1), 7)}${pad(r.rss_mb.toFixed(1), 8)}${pad(r.loop_p99_ms.toFixed(2), 9)}${pad(r.lat_p50_ms.toFixed(2), 9)}${pad(r.lat_p99_ms.toFixed(2), 9)}${pad(r.udp_rcvbuf_drops ?? "n/a", 10)}${pad(r.server_udp_drops ?? "n/a", 10)}${r.saturated ? `  saturated: ${r.saturated}` : ""}`,
  );
  const extra = [`user ${r.cpu_user_us_per_msg.toFixed(2)} + sys ${r.cpu_sys_us_per_msg.toFixed(2)} µs/msg`];
  if (r.datagrams_out_per_msg !== null) extra.push(`datagrams per msg: out ${r.datagrams_out_per_msg} in ${r.datagrams_in_per_msg}`);
  if (r.syscalls_per_msg) extra.push(`syscalls per msg: ${Object.entries(r.syscalls_per_msg).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log(`    ${r.rep > 1 ? `(rep ${r.rep}) ` : ""}${extra.join("; ")}`);
}

/** Syscalls (largest first, at most SYSCALLS_SHOWN) per delivered message in a window of `msgs` messages. */
const SYSCALLS_SHOWN = 8;
function perMessage(calls: Map<string, number>, msgs: number): Record<string, number> {
  const out: Record<string, number> = {};
  const sorted = [...calls].sort((a, b) => b[1] - a[1]).slice(0, SYSCALLS_SHOWN);
  for (const [name, n] of sorted) out[name] = round(n / Math.max(1, msgs), 3);
  out.total = round([...calls.values()].reduce((a, b) => a + b, 0) / Math.max(1, msgs), 3);
  return out;
}

async function runRow(row: (typeof ROWS)[number], args: Args, rep: number): Promise<StepResult[]> {
  // FASTNET_SCALE_CPU_PROF=<dir>: the server child writes a V8 CPU profile there when it exits (to find its costs).
  const profDir = process.env.FASTNET_SCALE_CPU_PROF;
  const profArgs = profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [];
  const perfArgs = args.perfDir ? ["--perf-basic-prof", "--interpreted-frames-native-stack"] : [];
  const server = await startScriptChild(SCALE_SERVER, `scale ${row.name}`, [row.transport, row.mode, ...(row.transport === "fastnet" && args.fastnetOptions ? [JSON.stringify(args.fastnetOptions)] : [])], START_TIMEOUT_MS, [...profArgs, ...perfArgs]);
  const children: ServerChild[] = [];
  const out: StepResult[] = [];
  try {
    for (let i = 0; i < args.clientProcs; i++) children.push(await startScriptChild(SCALE_CLIENTS, `scale clients ${i}`, [], START_TIMEOUT_MS));
    let joined = 0;
    for (const n of args.steps) {
      progress(`${row.name}: adding ${n - joined} clients (to ${n})`);
      const t0 = performance.now();
      const { failed, firstError } = await addClients(children, row, server.info.port, n - joined, args);
      progress(`${row.name}: ${n - joined - failed} joined in ${Math.round(performance.now() - t0)} ms${failed ? `, ${failed} failed (${firstError})` : ""}`);
      joined = n - failed;
      await sleep(args.settleMs);
      const profilePath = args.profileDir ? joinPath(args.profileDir, `${row.name}-${joined}${args.repeat > 1 ? `-r${rep}` : ""}.cpuprofile`) : null;
      const perfPath = args.perfDir ? joinPath(args.perfDir, `${row.name}-${joined}${args.repeat > 1 ? `-r${rep}` : ""}.perf.data`) : null;
      const r = await measureStep(server, children, row.name, joined, args, profilePath, perfPath);
      r.rep = rep;
      if (args.syscalls && server.process.pid !== undefined) {
        // A second window with strace attached: only its syscall counts and message count are kept.
        const trace = straceCount(server.process.pid);
        await sleep(500); // strace attaches every thread
        const traced = await measureStep(server, children, row.name, joined, args);
        const calls = await trace.stop();
        if (calls) r.syscalls_per_msg = perMessage(calls, traced.msgs_per_s * args.windowS);
        else progress(`${row.name}: strace gave no counts (missing, or ptrace not permitted)`);
      }
      if (failed > JOIN_FAILURE_SHARE * n) r.saturated = [r.saturated, `${failed} joins failed (${firstError})`].filter(Boolean).join(", ");
      printRow(r);
      out.push(r);
      if (r.saturated) break;
    }
  } finally {
    await Promise.all(children.map((c) => c.stop(STOP_TIMEOUT_MS)));
    await server.stop(STOP_TIMEOUT_MS);
  }
  return out;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const rows = ROWS.filter((r) => !args.only || args.only.includes(r.name));
  console.log(`Players per process: rooms of ${ROOM_SIZE}, inputs and simulation and patches at ${1000 / TICK_MS} Hz, echo every ${ECHO_EVERY}th input`);
  console.log(`server: one @colyseus/core Server process per row; clients: @colyseus/sdk in ${args.clientProcs} child processes; node ${process.version}, ${cpus().length} CPUs, ${cpuModel()}`);
  console.log(`steps ${args.steps.join(", ")}; window ${args.windowS} s after ${args.settleMs} ms settling; "holds" = latency p99 < ${args.maxP99} ms and not saturated`);
  printRowHeader();
  const results: StepResult[] = [];
  for (const dir of [args.profileDir, args.perfDir]) if (dir) mkdirSync(dir, { recursive: true });
  for (let rep = 1; rep <= args.repeat; rep++) for (const row of rows) results.push(...(await runRow(row, args, rep)));

  const maxClients: Partial<Record<RowName, number>> = {};
  for (const row of rows) {
    const held = results.filter((r) => r.transport === row.name && !r.saturated && r.lat_p99_ms < args.maxP99);
    maxClients[row.name] = held.length ? Math.max(...held.map((r) => r.clients)) : 0;
  }
  console.log(`largest N held (latency p99 < ${args.maxP99} ms, not saturated): ${rows.map((r) => `${r.name} ${maxClients[r.name]}`).join(", ")}`);
  console.log(`cpu µs per message, fastnet / ws-transport at the same N:`);
  for (const f of results.filter((r) => r.transport === "fastnet")) {
    const ws = results.find((r) => r.transport === "ws-transport" && r.clients === f.clients);
    const u = results.find((r) => r.transport === "fastnet-unreliable" && r.clients === f.clients);
    if (ws) console.log(`  ${pad(f.clients, 5)}: ${round(f.cpu_us_per_msg / ws.cpu_us_per_msg)}x${u ? ` (fastnet-unreliable ${round(u.cpu_us_per_msg / ws.cpu_us_per_msg)}x)` : ""}`);
  }
  const fMax = maxClients.fastnet ?? 0;
  console.log(`target: fastnet holds >= 2000 clients at p99 < ${args.maxP99} ms: ${fMax >= 2000 ? "PASS" : "FAIL"} (${fMax})`);
  const pairs = results.filter((r) => r.transport === "fastnet" && results.some((w) => w.transport === "ws-transport" && w.clients === r.clients));
  const cheaper = pairs.every((f) => f.cpu_us_per_msg <= results.find((w) => w.transport === "ws-transport" && w.clients === f.clients)!.cpu_us_per_msg);
  console.log(`target: fastnet's CPU per message at most ws-transport's: ${pairs.length && cheaper ? "PASS" : "FAIL"}`);

  const joins: Partial<Record<JoinTransport, JoinResult>> = {};
  if (args.joins) {
    for (const t of ["fastnet", "ws-transport"] as const) joins[t] = await measureJoins(t, args.joinSamples, progress);
    printJoins(joins);
  }
  if (args.json) console.log(JSON.stringify({ bench: "scale", results, max_clients: maxClients, joins }));
}

runBench("scale", main, OVERALL_TIMEOUT_MS);
