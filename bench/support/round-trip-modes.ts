/**
 * Where fastnet's round trip costs more than raw UDP's (issue 11): the same echo, 32 B, one message in
 * flight, in one process pinned to one CPU, so that CPU time per round trip is the whole cost. Kinds:
 * "raw" (dgram), "fastnet" (FastnetServer and connect(), sodium), "core" (the sans-IO Connection driven
 * straight from dgram sockets: fastnet without its Node driver, no session, endpoint, events or timers).
 * Modes:
 *   - mode "thread": client and echo server in the main thread (no switch between them);
 *   - mode "worker": the echo server in a worker thread (a thread switch per half round trip, one
 *     address space), to compare with bench:rtt's two processes (a process switch);
 *   - `--sweep-kb K`: before each send and each echo, read-modify-write K KiB of an array, evicting what
 *     the round trip used from the data caches;
 *   - `--code-fns F`: before each send and each echo, call F distinct small functions (each its own
 *     code and branches), evicting the instruction caches and branch predictors, as the other side's
 *     code does when each side has its own event loop (worker, or bench:rtt's two processes).
 * Each case runs in a fresh child; `--runs` repeats them (interleaved) and the summary takes the minimum.
 *
 *   node --import tsx bench/support/round-trip-modes.ts [--kind raw,fastnet] [--mode thread,worker]
 *        [--sweep-kb 0,128,512] [--code-fns 0,1000] [--n 20000] [--runs 3] [--json]
 */
import { execFileSync } from "node:child_process";
import dgram from "node:dgram";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { randomFillSync } from "node:crypto";
import { selectAeadBackend } from "../../src/node/aead-select.js";
import { Connection } from "../../src/protocol/connection.js";
import { CID_LENGTH } from "../../src/protocol/version.js";

interface Case {
  kind: "raw" | "fastnet" | "core";
  mode: "thread" | "worker";
  sweepKb: number;
  codeFns: number;
  n: number;
}
interface Result extends Case {
  cpu_us_per_rt: number;
  p50_us: number;
}

const SELF = fileURLToPath(import.meta.url);
const WARM = 2000;

function sweeper(kb: number, codeFns: number): () => void {
  const mem = new Float64Array(kb * 128);
  let sink = 0;
  const fns = Array.from(
    { length: codeFns },
    (_, i) => new Function("x", `let y = x ^ ${i}; if (y & 1) y += ${i * 3}; else y -= ${i}; for (let k = 0; k < 3; k++) { if ((y >> k) & 1) y ^= ${i * 7 + 1}; else y += k; } return y;`) as (x: number) => number,
  );
  return () => {
    for (let i = 0; i < mem.length; i += 8) sink += mem[i]++; // one touch per 64-byte line
    for (let i = 0; i < fns.length; i++) sink += fns[i]!(i);
    if (sink === 0.5) console.log(sink); // keeps the loops from being optimised away
  };
}

/** Shared secrets of a "core" pair (no handshake: both ends get the same keying material and CID). */
interface CoreKeys {
  km: Uint8Array;
  cid: Uint8Array;
}

function coreConnection(role: "client" | "server", k: CoreKeys): Connection {
  const aead = selectAeadBackend("sodium");
  return new Connection({ role, cid: k.cid, keyingMaterial: k.km, aead, now: performance.now(), random: randomFillSync, alloc: Buffer.allocUnsafe, initialRttMs: 1 });
}

/** Starts the echo server in this thread; resolves to what a client needs. */
async function startEcho(kind: Case["kind"], sweep: () => void, keys: CoreKeys): Promise<{ port: number; fp: string }> {
  if (kind === "core") {
    const conn = coreConnection("server", keys);
    const s = dgram.createSocket("udp4");
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
    s.on("message", (m, ri) => {
      conn.handleDatagram(m, performance.now());
      for (let ev = conn.pollEvent(); ev; ev = conn.pollEvent()) {
        if (ev.type !== "message") continue;
        sweep();
        conn.send(ev.data);
      }
      for (let d = conn.pollTransmit(performance.now()); d; d = conn.pollTransmit(performance.now())) s.send(d, ri.port, ri.address);
    });
    return { port: s.address().port, fp: "" };
  }
  if (kind === "raw") {
    const s = dgram.createSocket("udp4");
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
    s.on("message", (m, ri) => {
      sweep();
      s.send(m, ri.port, ri.address);
    });
    return { port: s.address().port, fp: "" };
  }
  const { FastnetServer } = await import("../../src/index.js");
  const server = new FastnetServer({ aead: "sodium", devCertificateDir: false });
  await server.listen(0, "127.0.0.1");
  server.on("session", (s) =>
    s.on("message", (m: Uint8Array) => {
      sweep();
      s.send(m);
    }),
  );
  return { port: server.port, fp: Buffer.from(server.fingerprint!).toString("hex") };
}

async function runChild(c: Case): Promise<Result> {
  const sweep = sweeper(c.sweepKb, c.codeFns);
  const keys: CoreKeys = { km: randomFillSync(new Uint8Array(64)), cid: randomFillSync(new Uint8Array(CID_LENGTH)) };
  let echo: { port: number; fp: string };
  let worker: Worker | null = null;
  if (c.mode === "worker") {
    worker = new Worker(new URL(import.meta.url), { workerData: { c, keys }, execArgv: ["--import", "tsx"] });
    echo = await new Promise((resolve, reject) => {
      worker!.once("message", resolve);
      worker!.once("error", reject);
    });
  } else {
    echo = await startEcho(c.kind, sweep, keys);
  }
  let send: () => void;
  let onEcho: (cb: () => void) => void;
  if (c.kind === "core") {
    const conn = coreConnection("client", keys);
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.connect(echo.port, "127.0.0.1", () => r()));
    const flush = (): void => {
      for (let d = conn.pollTransmit(performance.now()); d; d = conn.pollTransmit(performance.now())) sock.send(d);
    };
    let echoed: (() => void) | null = null;
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    sock.on("message", (m) => {
      conn.handleDatagram(m, performance.now());
      for (let ev = conn.pollEvent(); ev; ev = conn.pollEvent()) {
        if (ev.type === "open") opened();
        else if (ev.type === "message") echoed?.();
      }
      flush();
    });
    flush(); // the bind
    await open;
    const p = new Uint8Array(32);
    // From the echo handler the send leaves with the flush that follows it; the first one needs its own.
    send = () => {
      conn.send(p);
      flush();
    };
    onEcho = (cb) => (echoed = cb);
  } else if (c.kind === "raw") {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.connect(echo.port, "127.0.0.1", () => r()));
    const p = Buffer.alloc(32);
    send = () => sock.send(p);
    onEcho = (cb) => sock.on("message", cb);
  } else {
    const { connect } = await import("../../src/index.js");
    const client = await connect(`http://127.0.0.1:${echo.port}`, { fingerprint: echo.fp, aead: "sodium" });
    const p = new Uint8Array(32);
    send = () => client.send(p);
    onEcho = (cb) => client.on("message", cb);
  }
  const lat = new Float64Array(c.n);
  let got = 0;
  let t = 0;
  let c0: NodeJS.CpuUsage | undefined;
  await new Promise<void>((resolve) => {
    onEcho(() => {
      if (got >= WARM) lat[got - WARM] = performance.now() - t;
      got++;
      if (got === WARM) c0 = process.cpuUsage();
      if (got === WARM + c.n) return resolve();
      sweep();
      t = performance.now();
      send();
    });
    t = performance.now();
    send();
  });
  const cpu = process.cpuUsage(c0);
  lat.sort();
  await worker?.terminate();
  return { ...c, cpu_us_per_rt: +((cpu.user + cpu.system) / c.n).toFixed(1), p50_us: +(lat[lat.length >> 1]! * 1000).toFixed(1) };
}

if (!isMainThread) {
  const { c, keys } = workerData as { c: Case; keys: CoreKeys };
  parentPort!.postMessage(await startEcho(c.kind, sweeper(c.sweepKb, c.codeFns), keys));
} else if (process.argv[2] === "--child") {
  const r = await runChild(JSON.parse(process.argv[3]!) as Case);
  console.log(JSON.stringify(r));
  process.exit(0);
} else {
  const { values } = parseArgs({
    options: {
      kind: { type: "string", default: "raw,core,fastnet" },
      mode: { type: "string", default: "thread,worker" },
      "sweep-kb": { type: "string", default: "0" },
      "code-fns": { type: "string", default: "0" },
      n: { type: "string", default: "20000" },
      runs: { type: "string", default: "3" },
      json: { type: "boolean", default: false },
    },
  });
  const cases: Case[] = [];
  for (const codeFns of values["code-fns"].split(",").map(Number))
    for (const sweepKb of values["sweep-kb"].split(",").map(Number))
      for (const mode of values.mode.split(",") as Case["mode"][])
        for (const kind of values.kind.split(",") as Case["kind"][]) cases.push({ kind, mode, sweepKb, codeFns, n: Number(values.n) });
  const results: Result[][] = cases.map(() => []);
  for (let r = 0; r < Number(values.runs); r++) {
    cases.forEach((c, i) => {
      // One CPU for every thread of the child: CPU time per round trip is then the round trip's cost.
      const out = execFileSync("taskset", ["-c", "0", process.execPath, "--import", "tsx", SELF, "--child", JSON.stringify(c)], { encoding: "utf8", timeout: 120_000 });
      results[i]!.push(JSON.parse(out.trim().split("\n").pop()!) as Result);
    });
  }
  const summary = cases.map((c, i) => ({
    ...c,
    cpu_us_per_rt: Math.min(...results[i]!.map((x) => x.cpu_us_per_rt)),
    p50_us: Math.min(...results[i]!.map((x) => x.p50_us)),
  }));
  console.log(`one CPU, 32 B, ${values.n} round trips per run, minimum of ${values.runs} runs (CPU = both ends)`);
  console.log(`${"mode".padEnd(8)}${"sweep KiB".padStart(10)}${"code fns".padStart(9)}${"kind".padStart(9)}${"CPU µs/rt".padStart(11)}${"p50 µs".padStart(9)}${"vs raw".padStart(9)}`);
  for (const s of summary) {
    const raw = summary.find((x) => x.kind === "raw" && x.mode === s.mode && x.sweepKb === s.sweepKb && x.codeFns === s.codeFns);
    const extra = raw && s.kind !== "raw" ? `+${(s.cpu_us_per_rt - raw.cpu_us_per_rt).toFixed(1)}` : "";
    console.log(`${s.mode.padEnd(8)}${String(s.sweepKb).padStart(10)}${String(s.codeFns).padStart(9)}${s.kind.padStart(9)}${s.cpu_us_per_rt.toFixed(1).padStart(11)}${s.p50_us.toFixed(1).padStart(9)}${extra.padStart(9)}`);
  }
  if (values.json) console.log(JSON.stringify({ bench: "round-trip-modes", results: summary }));
}
