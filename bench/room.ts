/**
 * Room-level round trip over loopback, ONE message in flight: the client does `room.send("ping", payload)`,
 * the server room's `onMessage("ping")` handler answers `client.send("pong", payload)`, and the client's
 * `room.onMessage("pong")` callback ends the sample (then the next ping goes). Both ends are the real
 * Colyseus 0.18 stacks: @colyseus/core `Server` (greet off) with a "bench" room in a child process
 * (bench/support/room-server.ts, one fresh child per transport), @colyseus/sdk in this process. Transports,
 * measured in one run:
 *   fastnet        FastnetTransport (dev certificate, AEAD "auto") + FastnetClient (pins that certificate)
 *   ws-transport   @colyseus/ws-transport WebSocketTransport + the SDK's default `new Client(url)` (its
 *                  WebSocket transport uses globalThis.WebSocket when present: undici's on Node 22)
 * Payload: a Uint8Array of 32 or 512 bytes (msgpack bin, so the ROOM_DATA frame is 1 + 5 ("ping") +
 * 2 + 32 = 40 or 1 + 5 + 3 + 512 = 521 bytes). Its first 4 bytes carry a sequence number checked on the
 * pong. Each round trip is timed with process.hrtime.bigint() from just before room.send to the start of
 * the "pong" callback.
 *
 * Usage: node --import tsx bench/room.ts [--json] [--samples N] [--quick] [--warmup N] [--only a,b]
 *                                        [--pin same|split|none] [--server-cpu-prof DIR]
 *   --samples N   counted round trips per (transport, payload), default 5000
 *   --quick       1000 samples (smoke run; the warm-up stays at --warmup: fewer leaves code unoptimized)
 *   --warmup N    uncounted round trips per (transport, payload) before measuring, default 1000
 *   --only LIST   comma-separated transports to run (fastnet, ws-transport); the target needs both
 *   --pin P       CPU placement of client and server processes, as in bench/rtt.ts (default "same": both
 *                 on one CPU; see bench/support/affinity.ts for why); falls back to "none" with a note
 *                 when taskset is unavailable and --pin was not given
 *   --server-cpu-prof DIR   run every server child with --cpu-prof (50 µs sampling), profiles in DIR
 *   --json        the last stdout line is {"bench":"room","results":[{transport,payload,samples,p50_us,p99_us}]}
 * Target: for each payload, fastnet's p50 at most 1.05x ws-transport's and fastnet's p99 no worse (<=)
 * than ws-transport's. Exit code 0 when every case ran (whatever the verdict), 1 when something failed
 * (message on stderr): a child that does not start, a join that times out, a pong that does not come
 * back within SAMPLE_TIMEOUT_MS, a wrong pong, a drop, or the whole run exceeding OVERALL_TIMEOUT_MS.
 *
 * Output: the table (p50, p99, ratios to ws-transport), the target verdict, then a CPU table: CPU time of
 * the client (this process) and of the server child per counted round trip, user and kernel, from
 * process.cpuUsage() around each counted block (the child is asked over IPC between blocks, outside the
 * timing). With --pin same both processes share one CPU, so their CPU per round trip adds up to the mean
 * round trip: it shows which side the time goes to. The mean includes the millisecond outliers (GC
 * pauses of either process, other load on the machine) that also make p99 vary a lot between runs.
 *
 * Bias control, as in bench/rtt.ts: pinned placement, the same for both transports; a fresh child server
 * per transport; every (transport, payload) case is warmed up before any measurement; the counted samples
 * are taken in ROUNDS interleaved rounds, each round running one block of every case with the case order
 * rotated by one per round; every block starts with BLOCK_REWARM uncounted round trips.
 */
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { applyPlacement, cpuModel, pinProcess, type AppliedPlacement } from "./support/affinity.js";
import { choiceList, cpuProfExecArgv, parseRoundTripArgs, type RoundTripArgs } from "./support/args.js";
import { startScriptChild, type ServerChild } from "./support/children.js";
import { measureInterleaved } from "./support/rounds.js";
import { runRoundTrips, type RoundTripLink } from "./support/round-trip.js";
import { runBench } from "./support/run-bench.js";
import { openRoomClient, type RoomClient, type RoomTransportName } from "./support/room-clients.js";
import type { RoomChildMessage, RoomParentMessage } from "./support/room-server.js";
import { percentile, us } from "./support/stats.js";
import { pad } from "./support/table.js";

const ROOM_SERVER = fileURLToPath(new URL("./support/room-server.ts", import.meta.url));
const TRANSPORTS: readonly RoomTransportName[] = ["fastnet", "ws-transport"];
const PAYLOADS = [32, 512] as const;
const TARGET_P50_RATIO = 1.05;
const ROUNDS = 10;
const BLOCK_REWARM = 50;
/** Startup of a child (tsx compile, dev certificate), joins, leaves and stops. */
const START_TIMEOUT_MS = 30_000;
const JOIN_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 3_000;
const CPU_QUERY_TIMEOUT_MS = 5_000;
/** A pong that has not come back after this long fails the run (checked by a watchdog every WATCHDOG_MS). */
const SAMPLE_TIMEOUT_MS = 2_000;
const WATCHDOG_MS = 250;
/** The whole run must finish within this. */
const OVERALL_TIMEOUT_MS = 10 * 60_000;

type Args = RoundTripArgs<RoomTransportName>;

const parseArgs = (argv: string[]): Args => parseRoundTripArgs(argv, 5_000, (list, flag) => choiceList(flag, list, TRANSPORTS, "transport"));

interface Transport {
  name: RoomTransportName;
  server: ServerChild;
  client: RoomClient;
  link: RoundTripLink<unknown>;
}

interface Case {
  transport: Transport;
  payload: number;
  buf: Uint8Array;
  seq: number;
  samples: Float64Array; // ns per round trip
  filled: number;
  /** CPU time (µs) used during the counted blocks, by this process and by the server child, and their wall time. */
  cpu: { clientUser: number; clientSystem: number; serverUser: number; serverSystem: number; wallNs: number };
}

interface Result {
  transport: RoomTransportName;
  payload: number;
  samples: number;
  p50_us: number;
  p99_us: number;
}

const progress = (s: string): void => {
  process.stderr.write(`[room] ${s}\n`);
};

/** The sequence number in the first 4 bytes of a payload (little-endian). */
function seqOf(d: Uint8Array): number {
  return (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) >>> 0;
}

/** The pong's check: a Uint8Array of the same length carrying the sequence number of the ping in flight. */
function checkPong(p: unknown, s: number, len: number): string | null {
  if (!(p instanceof Uint8Array) || p.length !== len || seqOf(p) !== s >>> 0) {
    const what = p instanceof Uint8Array ? `${p.length} bytes, sequence ${seqOf(p)}` : typeof p;
    return `wrong pong (${what}; expected ${len} bytes with sequence ${s >>> 0})`;
  }
  return null;
}

/**
 * Runs `count` round trips on a case, one in flight. Stores each in `c.samples` when `record`. Rejects if
 * the room fails, the pong is wrong, or a pong has not come back within SAMPLE_TIMEOUT_MS.
 */
function runBlock(c: Case, count: number, record: boolean): Promise<void> {
  return runRoundTrips(c.transport.link, c, count, record);
}

/** CPU time the server child used so far (process.cpuUsage() there, µs), asked over IPC between blocks. */
function childCpu(server: ServerChild): Promise<{ user: number; system: number }> {
  return new Promise((resolve, reject) => {
    const child = server.process;
    const timer = setTimeout(() => done(new Error(`${server.label}: no CPU usage answer within ${CPU_QUERY_TIMEOUT_MS} ms`)), CPU_QUERY_TIMEOUT_MS);
    const onMessage = (msg: RoomChildMessage): void => {
      if (msg?.type === "cpu") done(null, msg);
    };
    const done = (err: Error | null, msg?: RoomChildMessage): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      if (err) reject(err);
      else resolve({ user: msg!.user, system: msg!.system });
    };
    child.on("message", onMessage);
    try {
      child.send({ type: "cpu" } satisfies RoomParentMessage);
    } catch (err) {
      done(new Error(`${server.label}: cannot ask for CPU usage: ${(err as Error).message}`));
    }
  });
}

/** A counted block, with the CPU time of both processes charged to the case (IPC happens outside the timing). */
async function runCountedBlock(c: Case, count: number): Promise<void> {
  const s0 = await childCpu(c.transport.server);
  const c0 = process.cpuUsage();
  const w0 = process.hrtime.bigint();
  await runBlock(c, count, true);
  const w1 = process.hrtime.bigint();
  const c1 = process.cpuUsage(c0);
  const s1 = await childCpu(c.transport.server);
  c.cpu.clientUser += c1.user;
  c.cpu.clientSystem += c1.system;
  c.cpu.serverUser += s1.user - s0.user;
  c.cpu.serverSystem += s1.system - s0.system;
  c.cpu.wallNs += Number(w1 - w0);
}

/** Where the processes run, decided once in main(). */
let placement: AppliedPlacement = { serverCpu: null, note: "" };

async function openTransport(name: RoomTransportName, args: Args): Promise<Transport> {
  const prof = cpuProfExecArgv(args.serverCpuProf, `room-server-${name}.cpuprofile`);
  const server = await startScriptChild(ROOM_SERVER, `room ${name}`, [name], START_TIMEOUT_MS, prof);
  if (placement.serverCpu !== null) pinProcess(server.process.pid!, placement.serverCpu);
  const client = await openRoomClient(name, server.info.port, JOIN_TIMEOUT_MS);
  progress(`${name}: server on port ${server.info.port}${server.info.aead ? ` (AEAD ${server.info.aead})` : ""}, client: ${client.detail}`);
  const link: RoundTripLink<unknown> = {
    name,
    client,
    server,
    onReply: (fn) => {
      client.onPong = fn;
    },
    check: checkPong,
    stalled: `no pong within ${SAMPLE_TIMEOUT_MS} ms`,
    watchdogMs: WATCHDOG_MS,
    stallMs: SAMPLE_TIMEOUT_MS,
  };
  return { name, server, client, link };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const names = args.only ? TRANSPORTS.filter((n) => args.only!.includes(n)) : [...TRANSPORTS];
  placement = applyPlacement(args);
  progress(`node ${process.version}, ${cpus().length} CPUs (${cpuModel()}); placement ${placement.note}`);

  const transports: Transport[] = [];
  for (const name of names) {
    progress(`starting ${name} server child and joining the room`);
    transports.push(await openTransport(name, args));
  }

  const cases: Case[] = [];
  for (const payload of PAYLOADS) {
    for (const t of transports) {
      cases.push({ transport: t, payload, buf: new Uint8Array(payload).fill(0xa5), seq: 0, samples: new Float64Array(args.samples), filled: 0,
        cpu: { clientUser: 0, clientSystem: 0, serverUser: 0, serverSystem: 0, wallNs: 0 } });
    }
  }

  // Warm-up, then ROUNDS rounds with the case order rotated by one each round (see the header comment).
  await measureInterleaved(
    cases,
    { samples: args.samples, warmup: args.warmup, rounds: ROUNDS, rewarm: BLOCK_REWARM },
    (c, n) => runBlock(c, n, false),
    runCountedBlock,
    progress,
  );

  for (const t of transports) await t.client.close();
  for (const t of transports) await t.server.stop(STOP_TIMEOUT_MS);

  const results: Result[] = cases.map((c) => {
    const sorted = c.samples.slice(0, c.filled).sort();
    return { transport: c.transport.name, payload: c.payload, samples: c.filled, p50_us: us(percentile(sorted, 0.5)), p99_us: us(percentile(sorted, 0.99)) };
  });

  printTable(results, args, transports);
  printCpu(cases);
  if (args.json) console.log(JSON.stringify({ bench: "room", results }));
}

function printTable(results: Result[], args: Args, transports: Transport[]): void {
  console.log(`Room round trip over loopback (room.send "ping" -> onMessage -> client.send "pong" -> room.onMessage), one message in flight`);
  console.log(`server (@colyseus/core Server) in a child process per transport, client (@colyseus/sdk) here; node ${process.version}, ${cpus().length} CPUs, ${cpuModel()}`);
  console.log(`payload: Uint8Array of the given size (msgpack bin); ${args.samples} samples per case after ${args.warmup} warm-up round trips; ${Math.min(ROUNDS, args.samples)} interleaved rounds`);
  for (const t of transports) console.log(`${t.name}: ${t.client.detail}${t.server.info.aead ? `; server AEAD ${t.server.info.aead}` : ""}`);
  console.log(`placement ${placement.note}`);
  console.log(`${"transport".padEnd(14)}${pad("payload", 8)}${pad("samples", 9)}${pad("p50 µs", 9)}${pad("p99 µs", 9)}${pad("p50/ws", 9)}${pad("p99/ws", 9)}`);
  for (const payload of PAYLOADS) {
    const ws = results.find((r) => r.transport === "ws-transport" && r.payload === payload);
    for (const r of results.filter((x) => x.payload === payload)) {
      const p50r = ws && r.transport !== "ws-transport" ? (r.p50_us / ws.p50_us).toFixed(2) + "x" : "";
      const p99r = ws && r.transport !== "ws-transport" ? (r.p99_us / ws.p99_us).toFixed(2) + "x" : "";
      console.log(`${r.transport.padEnd(14)}${pad(r.payload, 8)}${pad(r.samples, 9)}${pad(r.p50_us.toFixed(1), 9)}${pad(r.p99_us.toFixed(1), 9)}${pad(p50r, 9)}${pad(p99r, 9)}`);
    }
  }
  console.log(`target: p50 at most ${TARGET_P50_RATIO}x ws-transport's and p99 no worse (a FAIL is a result, not an error: exit code stays 0)`);
  let all = true;
  for (const payload of PAYLOADS) {
    const ws = results.find((r) => r.transport === "ws-transport" && r.payload === payload);
    const fn = results.find((r) => r.transport === "fastnet" && r.payload === payload);
    if (!ws || !fn) {
      all = false;
      console.log(`  ${payload} B: n/a (needs fastnet and ws-transport in the run)`);
      continue;
    }
    const limit = ws.p50_us * TARGET_P50_RATIO;
    const ok50 = fn.p50_us <= limit;
    const ok99 = fn.p99_us <= ws.p99_us;
    all &&= ok50 && ok99;
    console.log(
      `  ${payload} B: p50 ${fn.p50_us.toFixed(1)} µs vs limit ${limit.toFixed(1)} µs (${ok50 ? "ok" : "over"}), ` +
        `p99 ${fn.p99_us.toFixed(1)} µs vs ws-transport ${ws.p99_us.toFixed(1)} µs (${ok99 ? "ok" : "worse"}) -> ${ok50 && ok99 ? "PASS" : "FAIL"}`,
    );
  }
  console.log(`target overall: ${all ? "PASS" : "FAIL"}`);
}

/** Where the time of a round trip goes: CPU of each process (user, kernel) per round trip, and the rest. */
function printCpu(cases: Case[]): void {
  const f = (v: number): string => v.toFixed(1);
  console.log(`CPU per round trip, µs (process.cpuUsage over the counted blocks; "other" = mean wall time - both processes' CPU:`);
  console.log(`waiting for wake-ups, and CPU used by anything else)`);
  console.log(`${"transport".padEnd(14)}${pad("payload", 8)}${pad("mean", 8)}${pad("cli usr", 9)}${pad("cli sys", 9)}${pad("srv usr", 9)}${pad("srv sys", 9)}${pad("other", 8)}`);
  for (const c of cases) {
    const n = c.filled;
    if (n === 0) continue;
    const mean = c.cpu.wallNs / 1000 / n;
    const cu = c.cpu.clientUser / n;
    const cs = c.cpu.clientSystem / n;
    const su = c.cpu.serverUser / n;
    const ss = c.cpu.serverSystem / n;
    console.log(
      `${c.transport.name.padEnd(14)}${pad(c.payload, 8)}${pad(f(mean), 8)}${pad(f(cu), 9)}${pad(f(cs), 9)}${pad(f(su), 9)}${pad(f(ss), 9)}${pad(f(mean - cu - cs - su - ss), 8)}`,
    );
  }
}

// Children never outlive us: killed on normal exit, on error and on signals.
runBench("room", main, OVERALL_TIMEOUT_MS);

