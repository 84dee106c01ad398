/**
 * Loopback round-trip benchmark: ONE message in flight (send, wait for the echo, send the next), client in
 * this process, echo server in a separate child process (bench/support/rtt-server.ts, forked with this
 * node binary and --import tsx). Transports, all measured in one run:
 *   udp-raw          raw unencrypted node:dgram echo, connected client socket: the floor
 *   fastnet-<aead>   the engine's reliable channel (session.send, echoed by the server's session), server
 *                    and client both forced to that AEAD backend; one case per available backend
 *   ws               `ws` WebSocket echo, plain ws:// (no TLS, no compression), binary messages
 *   wss              the same over TLS 1.3 (wss://, self-signed certificate trusted as its own anchor):
 *                    encrypted like fastnet, so the fair comparison for its AEAD cost
 * Payloads are 32 and 512 bytes. Each round trip is timed with process.hrtime.bigint() from just before
 * the send to the echo's arrival callback. The first 4 bytes carry a sequence number checked on the echo.
 *
 * Usage: node --import tsx bench/rtt.ts [--json] [--samples N] [--quick] [--warmup N] [--only a,b]
 *                                       [--pin same|split|none] [--server-cpu-prof DIR]
 *   --samples N   counted round trips per (transport, payload), default 10000
 *   --quick       1000 samples (smoke run)
 *   --warmup N    uncounted round trips per (transport, payload) before measuring, default 1000
 *   --only LIST   comma-separated transports to run (e.g. udp-raw,fastnet-sodium)
 *   --pin P       CPU placement of client and server processes (Linux, via taskset), default "same":
 *                   same   both on one CPU: every wake-up is a local context switch, so the round trip is
 *                          the CPU cost of the whole path (client + kernel + server): the strictest view
 *                   split  client on one CPU, server on another: every wake-up crosses CPUs (on a VM an
 *                          IPI through the hypervisor, tens of µs), closer to two machines
 *                   none   leave it to the scheduler: results are bimodal and differ between transports
 *                          by placement luck (see bench/support/affinity.ts), only for comparison
 *                 When taskset is unavailable the default falls back to "none" and says so.
 *   --server-cpu-prof DIR   run every server child with --cpu-prof (50 µs sampling), profiles written to DIR
 *   --json        the last stdout line is {"bench":"rtt","results":[{transport,payload,samples,p50_us,p90_us,p99_us}]}
 * Exit code 0 when every case ran (whatever the target verdict), 1 when a case failed (message on stderr).
 *
 * Bias control: the CPU placement is pinned (--pin, above), the same for every transport. Every
 * transport gets its own fresh child server, started before measuring. After each
 * (transport, payload) case got its warm-up, the counted samples are taken in ROUNDS rounds; each round
 * runs one block of every case, and the case order is rotated by one position per round, so every case
 * sits at every position (first, ..., last) once when there are as many rounds as cases. Slow drifts of
 * the machine (frequency, noisy neighbours, GC pressure building up) therefore spread over all cases
 * instead of hitting whichever ran last. Each block starts with a few uncounted round trips so the
 * cache/branch-predictor disturbance of switching transports is not charged to the first samples.
 */
import { cpus } from "node:os";
import { availableAeadBackends } from "../src/index.js";
import type { AeadBackendName } from "../src/index.js";
import { applyPlacement, cpuModel, pinProcess, type AppliedPlacement } from "./support/affinity.js";
import { commaList, cpuProfExecArgv, parseRoundTripArgs, type RoundTripArgs } from "./support/args.js";
import { startServerChild, type ServerChild } from "./support/children.js";
import { measureInterleaved } from "./support/rounds.js";
import { runRoundTrips, type RoundTripLink } from "./support/round-trip.js";
import { runBench } from "./support/run-bench.js";
import { openFastnet, openUdpRaw, openWs, type EchoClient } from "./support/rtt-clients.js";
import { percentile, us } from "./support/stats.js";
import { pad } from "./support/table.js";

const PAYLOADS = [32, 512] as const;
const TARGET_RATIO = 1.2;
const ROUNDS = 10;
const BLOCK_REWARM = 50;
/** Startup of a child (tsx compile, dev certificate) and connects. */
const START_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 3_000;
/** A round trip that has not come back after this long fails the case (checked by a coarse watchdog). */
const STALL_MS = 2_000;
/** The whole run must finish within this. */
const OVERALL_TIMEOUT_MS = 10 * 60_000;

type Args = RoundTripArgs<string>;

const parseArgs = (argv: string[]): Args => parseRoundTripArgs(argv, 10_000, commaList);

interface Transport {
  name: string;
  server: ServerChild;
  client: EchoClient;
  link: RoundTripLink<Uint8Array>;
}

interface Case {
  transport: Transport;
  payload: number;
  buf: Uint8Array;
  seq: number;
  samples: Float64Array; // ns per round trip
  filled: number;
}

interface Result {
  transport: string;
  payload: number;
  samples: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
}

const progress = (s: string): void => {
  process.stderr.write(`[rtt] ${s}\n`);
};

/** The echo's check: the same length, and the sequence number of the message in flight. */
function checkEcho(d: Uint8Array, s: number, len: number): string | null {
  if (d.length !== len || d[0] !== (s & 0xff) || d[1] !== ((s >>> 8) & 0xff) || d[2] !== ((s >>> 16) & 0xff) || d[3] !== ((s >>> 24) & 0xff)) {
    return `wrong echo (${d.length} bytes, expected ${len} with sequence ${s})`;
  }
  return null;
}

function transport(name: string, server: ServerChild, client: EchoClient): Transport {
  const link: RoundTripLink<Uint8Array> = {
    name,
    client,
    server,
    onReply: (fn) => {
      client.onEcho = fn;
    },
    check: checkEcho,
    stalled: `no echo for ${STALL_MS} ms`,
    watchdogMs: 500,
    stallMs: STALL_MS,
  };
  return { name, server, client, link };
}

/**
 * Runs `count` round trips on a case, one in flight. Stores each in `c.samples` when `record`.
 * Rejects if the transport fails, the echo is wrong, or no echo arrives for STALL_MS.
 */
function runBlock(c: Case, count: number, record: boolean): Promise<void> {
  return runRoundTrips(c.transport.link, c, count, record);
}

/** Where the processes run, decided once in main(). */
let placement: AppliedPlacement = { serverCpu: null, note: "" };

async function startChild(name: string, childArgs: string[], prof: string[]): Promise<ServerChild> {
  const server = await startServerChild(name, childArgs, START_TIMEOUT_MS, prof);
  if (placement.serverCpu !== null) pinProcess(server.process.pid!, placement.serverCpu);
  return server;
}

async function openTransport(name: string, args: Args): Promise<Transport> {
  const prof = cpuProfExecArgv(args.serverCpuProf, `server-${name}.cpuprofile`);
  if (name === "udp-raw") {
    const server = await startChild(name, ["udp-raw"], prof);
    return transport(name, server, await openUdpRaw(server.info.udpPort, CONNECT_TIMEOUT_MS));
  }
  if (name === "ws" || name === "wss") {
    const server = await startChild(name, [name], prof);
    if (name === "wss" && !server.info.cert) throw new Error("wss: server child sent no certificate");
    return transport(name, server, await openWs(server.info.port, CONNECT_TIMEOUT_MS, server.info.cert));
  }
  const backend = name.slice("fastnet-".length) as AeadBackendName;
  const server = await startChild(name, ["fastnet", backend], prof);
  if (server.info.aead !== backend) throw new Error(`${name}: server child runs backend ${String(server.info.aead)}, not ${backend}`);
  if (!server.info.fingerprint) throw new Error(`${name}: server child sent no fingerprint`);
  return transport(name, server, await openFastnet(server.info.port, server.info.fingerprint, backend, CONNECT_TIMEOUT_MS));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const backends = availableAeadBackends().map((b) => b.name);
  let names = ["udp-raw", ...backends.map((b) => `fastnet-${b}`), "ws", "wss"];
  if (args.only) {
    const unknown = args.only.filter((n) => !names.includes(n));
    if (unknown.length > 0) throw new Error(`--only: unknown or unavailable transport(s) ${unknown.join(", ")} (available: ${names.join(", ")})`);
    names = names.filter((n) => args.only!.includes(n));
  }
  placement = applyPlacement(args);
  progress(`node ${process.version}, ${cpus().length} CPUs (${cpuModel()}), AEAD backends: ${backends.join(", ")}; placement ${placement.note}`);

  const transports: Transport[] = [];
  for (const name of names) {
    progress(`starting ${name} server child and connecting`);
    transports.push(await openTransport(name, args));
  }

  const cases: Case[] = [];
  for (const payload of PAYLOADS) {
    for (const t of transports) {
      cases.push({ transport: t, payload, buf: new Uint8Array(payload).fill(0xa5), seq: 0, samples: new Float64Array(args.samples), filled: 0 });
    }
  }

  // Warm-up, then ROUNDS rounds with the case order rotated by one each round (see the header comment).
  await measureInterleaved(
    cases,
    { samples: args.samples, warmup: args.warmup, rounds: ROUNDS, rewarm: BLOCK_REWARM },
    (c, n) => runBlock(c, n, false),
    (c, n) => runBlock(c, n, true),
    progress,
  );

  for (const t of transports) await t.client.close();
  for (const t of transports) await t.server.stop(STOP_TIMEOUT_MS);

  const results: Result[] = cases.map((c) => {
    const sorted = c.samples.slice(0, c.filled).sort();
    return {
      transport: c.transport.name,
      payload: c.payload,
      samples: c.filled,
      p50_us: us(percentile(sorted, 0.5)),
      p90_us: us(percentile(sorted, 0.9)),
      p99_us: us(percentile(sorted, 0.99)),
    };
  });

  printTable(results, args);
  if (args.json) console.log(JSON.stringify({ bench: "rtt", results }));
}

function printTable(results: Result[], args: Args): void {
  console.log(`RTT over loopback, one message in flight; server in a child process; node ${process.version}, ${cpus().length} CPUs, ${cpuModel()}`);
  console.log(`${args.samples} samples per case after ${args.warmup} warm-up round trips; ${Math.min(ROUNDS, args.samples)} interleaved rounds; ws is plain ws:// (unencrypted)`);
  console.log(`placement ${placement.note}`);
  console.log(`${"transport".padEnd(16)}${pad("payload", 8)}${pad("samples", 9)}${pad("p50 µs", 9)}${pad("p90 µs", 9)}${pad("p99 µs", 9)}${pad("p50/raw", 9)}${pad("p50-raw µs", 12)}`);
  for (const payload of PAYLOADS) {
    const raw = results.find((r) => r.transport === "udp-raw" && r.payload === payload);
    for (const r of results.filter((x) => x.payload === payload)) {
      const ratio = raw ? (r.p50_us / raw.p50_us).toFixed(2) + "x" : "n/a";
      const extra = raw ? (r.p50_us - raw.p50_us >= 0 ? "+" : "") + (r.p50_us - raw.p50_us).toFixed(1) : "n/a";
      console.log(`${r.transport.padEnd(16)}${pad(r.payload, 8)}${pad(r.samples, 9)}${pad(r.p50_us.toFixed(1), 9)}${pad(r.p90_us.toFixed(1), 9)}${pad(r.p99_us.toFixed(1), 9)}${pad(ratio, 9)}${pad(extra, 12)}`);
    }
  }
  console.log(`target: fastest fastnet backend p50 <= ${TARGET_RATIO}x udp-raw p50 and < ws p50 (a FAIL is a result, not an error: exit code stays 0)`);
  for (const payload of PAYLOADS) {
    const raw = results.find((r) => r.transport === "udp-raw" && r.payload === payload);
    const ws = results.find((r) => r.transport === "ws" && r.payload === payload);
    const fast = results
      .filter((r) => r.transport.startsWith("fastnet-") && r.payload === payload)
      .sort((a, b) => a.p50_us - b.p50_us)[0];
    if (!raw || !ws || !fast) {
      console.log(`  ${payload} B: n/a (needs udp-raw, ws and at least one fastnet backend in the run)`);
      continue;
    }
    const limit = raw.p50_us * TARGET_RATIO;
    const okRaw = fast.p50_us <= limit;
    const okWs = fast.p50_us < ws.p50_us;
    console.log(
      `  ${payload} B: ${fast.transport} p50 ${fast.p50_us.toFixed(1)} µs = ${(fast.p50_us / raw.p50_us).toFixed(2)}x udp-raw ` +
        `(limit ${limit.toFixed(1)} µs: ${okRaw ? "ok" : "over"}), ws p50 ${ws.p50_us.toFixed(1)} µs (${okWs ? "below" : "not below"}) -> ${okRaw && okWs ? "PASS" : "FAIL"}`,
    );
  }
}

// Children never outlive us: killed on normal exit, on error and on signals.
runBench("rtt", main, OVERALL_TIMEOUT_MS);

