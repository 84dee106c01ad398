/**
 * Fuzzing at scale, outside `npm test` (issue 7, item 6). Seeded structure-aware mutation: Jazzer.js,
 * the maintained coverage-guided fuzzer for Node, does not run here (its only release with prebuilt
 * binaries needs glibc 2.38, older ones download theirs from GitHub at install), see docs/security.md.
 *
 * Targets (bench/support/fuzz-*.ts):
 *   server     receive path of an open server Connection: packets sealed with the session's real keys,
 *              frames generated per type and mutated (frame-level and byte-level), so they reach the
 *              frame parser and the state machine; plus raw mutations and replays of sealed datagrams
 *   client     the same for the client Connection (also stateless resets)
 *   frames     walkFrames against a reference decoder written from docs/protocol.md; the frame writers
 *              and varints round-tripped
 *   handshake  MessageReader framing and every handshake message parser
 *   header     parseHeader against a reference; writeHeader and packet number recovery (RFC 9000 A.3)
 * For the receive paths the report also says what became of the datagrams (accepted, or dropped and why)
 * and how the sessions ended, to show how far the inputs get.
 * A crash is any exception escaping a target or a broken invariant (checked after every input). A hang
 * is an input slower than --hang-ms (default 100) both when run and when replayed from its episode's
 * start, or a worker making no progress for WATCHDOG_MS (the main thread's wall-clock watchdog).
 * Inputs are split over --workers worker threads (default: one per CPU, at most 2).
 *
 * Usage: npm run fuzz -- [--inputs N | --minutes M] [--seed S] [--workers W] [--only a,b] [--hang-ms MS] [--json]
 *        npm run fuzz -- --seed S --replay TARGET:EPISODE   (re-runs one episode; prints its crash if any)
 *   --inputs N   total inputs over all targets (default 200000), shared by weight: server 30 %,
 *                client 25 %, frames 20 %, header 15 %, handshake 10 %
 *   --minutes M  run for M minutes instead
 *   --seed S     any string (default: derived from the time, printed); episode E of target T under seed
 *                S is always the same inputs
 *   --json       the last stdout line is {"bench":"fuzz","seed","workers","inputs","seconds",
 *                "execs_per_sec","projected_10m_minutes","targets":[{target,inputs,crashes,hangs,
 *                execs_per_sec}],"pass"}
 * Target (issue 7): 10 million inputs with 0 crashes and 0 hangs in under 30 minutes on this 2-core
 * machine. A shorter run passes when it found 0 crashes and 0 hangs and its throughput projects
 * 10 million inputs in under 30 minutes. Exit code 0 on a pass, 1 otherwise (details on stderr).
 */
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { choiceList, parseBenchArgs, positiveInt, positiveIntOr, type BaseArgs } from "./support/args.js";
import { cpuModel } from "./support/affinity.js";
import { TARGETS, TARGET_NAMES, TARGET_WEIGHTS, replayEpisode, targetByName, type FuzzRecord, type TargetName } from "./support/fuzz-runner.js";
import { SHARED_HEADER_BYTES, SHARED_INPUT_BYTES, SLOT, type TargetCounts, type WorkerConfig, type WorkerMessage } from "./support/fuzz-protocol.js";
import { runBench } from "./support/run-bench.js";
import { pad } from "./support/table.js";

const WORKER_SCRIPT = new URL("./support/fuzz-worker.ts", import.meta.url);
/** A worker whose input counter has not moved for this long is hung (its current input is named). */
const WATCHDOG_MS = 10_000;
const WORKER_START_TIMEOUT_MS = 60_000;
const WORKER_STACK_MB = 1;
const PROGRESS_EVERY_MS = 10_000;
/** Records printed in full (all are counted). */
const MAX_RECORDS_SHOWN = 20;
const GOAL_INPUTS = 10_000_000;
const GOAL_MINUTES = 30;
/** Longest run allowed, whatever --minutes says (runBench's overall limit is this plus a margin). */
const MAX_MINUTES = 24 * 60;

interface Args extends BaseArgs {
  inputs: number | null;
  minutes: number | null;
  seed: string;
  workers: number;
  only: TargetName[] | null;
  hangMs: number;
  replay: string | null;
}

function parseArgs(argv: string[]): Args {
  const { values: v, base } = parseBenchArgs(
    argv,
    {
      inputs: { type: "string" },
      minutes: { type: "string" },
      seed: { type: "string" },
      workers: { type: "string" },
      only: { type: "string" },
      "hang-ms": { type: "string" },
      replay: { type: "string" },
    },
    "none",
  );
  if (base.pinExplicit) throw new Error("--pin does not apply to the fuzzer (its workers use every CPU)");
  if (v.inputs !== undefined && v.minutes !== undefined) throw new Error("give --inputs or --minutes, not both");
  let minutes: number | null = null;
  if (v.minutes !== undefined) {
    minutes = Number(v.minutes);
    if (v.minutes === "" || !Number.isFinite(minutes) || minutes <= 0 || minutes > MAX_MINUTES) throw new Error(`--minutes needs a number of minutes in (0, ${MAX_MINUTES}]`);
  }
  if (v.seed === "") throw new Error("--seed needs a value");
  if (v.replay !== undefined && !/^[a-z]+:\d+$/.test(v.replay)) throw new Error("--replay needs TARGET:EPISODE, e.g. server:17");
  return {
    ...base,
    inputs: v.inputs !== undefined ? positiveInt("--inputs", v.inputs) : minutes === null ? 200_000 : null,
    minutes,
    seed: v.seed ?? `t${Date.now().toString(36)}`,
    workers: v.workers !== undefined ? Math.min(positiveInt("--workers", v.workers), 16) : Math.min(2, availableParallelism()),
    only: v.only !== undefined ? choiceList("--only", v.only, TARGET_NAMES, "target") : null,
    hangMs: positiveIntOr("--hang-ms", v["hang-ms"], 100),
    replay: v.replay ?? null,
  };
}

const progress = (s: string): void => {
  process.stderr.write(`[fuzz] ${s}\n`);
};

/** Re-runs one episode and prints what it does. */
function replay(args: Args): void {
  const [name, ep] = args.replay!.split(":") as [string, string];
  const target = targetByName(name);
  const r = replayEpisode(target, args.seed, Number(ep));
  if (r.crash) {
    console.log(`replay ${name}:${ep} seed ${args.seed}: CRASH at input ${r.crash.index}: ${r.crash.what}`);
    console.log(`  stack: ${r.crash.stack}`);
    console.log(`  input (${r.crash.inputLength} bytes): ${r.crash.input}`);
    throw new Error("the episode crashes");
  }
  console.log(`replay ${name}:${ep} seed ${args.seed}: ${r.inputs} inputs, no crash; last input took ${r.ms.toFixed(2)} ms`);
}

interface WorkerHandle {
  worker: Worker;
  slots: Int32Array;
  input: Uint8Array;
  counts: Record<string, TargetCounts>;
  done: boolean;
  lastCounter: number;
  lastMoveAt: number;
}

const emptyCounts = (): TargetCounts => ({ inputs: 0, crashes: 0, hangs: 0, slow: 0, episodes: 0, ms: 0, tally: {} });

async function fuzz(args: Args): Promise<void> {
  const names = args.only ?? TARGET_NAMES;
  const weightSum = names.reduce((s, n) => s + TARGET_WEIGHTS[n], 0);
  const deadline = args.minutes !== null ? Date.now() + args.minutes * 60_000 : null;
  const W = args.workers;
  progress(
    `seed ${args.seed}; ${W} worker thread(s) on ${availableParallelism()} CPU(s) (${cpuModel()}), node ${process.version}; ` +
      `${args.inputs !== null ? `${args.inputs} inputs` : `${args.minutes} minutes`}; targets ${names.join(", ")}; hang limit ${args.hangMs} ms`,
  );
  const records: FuzzRecord[] = [];
  const seen = new Set<string>();
  let shownDropped = 0;
  const onRecord = (r: FuzzRecord): void => {
    const sig = `${r.kind} ${r.target} ${r.what.replace(/\d+(\.\d+)?/g, "#")}`;
    // Each new kind of finding once on stderr as it happens; all of them are counted.
    if (r.kind !== "slow" && !seen.has(sig)) progress(`${r.kind.toUpperCase()} in ${r.target} (episode ${r.episode}, input ${r.index}): ${r.what.slice(0, 300)}`);
    if (seen.has(sig) || records.length >= MAX_RECORDS_SHOWN) {
      shownDropped++;
      return;
    }
    seen.add(sig);
    records.push(r);
  };
  const watchdogHangs: FuzzRecord[] = [];

  const t0 = performance.now();
  const handles: WorkerHandle[] = [];
  const finished: Promise<void>[] = [];
  for (let w = 0; w < W; w++) {
    const quotas: Record<string, number> = {};
    for (const n of TARGET_NAMES) {
      if (!names.includes(n)) quotas[n] = 0;
      else if (args.inputs === null) quotas[n] = -1;
      else {
        const total = Math.round((args.inputs * TARGET_WEIGHTS[n]) / weightSum);
        quotas[n] = Math.floor(total / W) + (w < total % W ? 1 : 0);
      }
    }
    const shared = new SharedArrayBuffer(SHARED_HEADER_BYTES + SHARED_INPUT_BYTES);
    const cfg: WorkerConfig = { seed: args.seed, worker: w, workers: W, quotas, deadline, hangMs: args.hangMs, shared };
    // The stack of a Node main thread (about 1 MB; workers get 4 by default): a stack overflow that would
    // throw in the server throws here too instead of passing slowly.
    const worker = new Worker(WORKER_SCRIPT, { workerData: cfg, resourceLimits: { stackSizeMb: WORKER_STACK_MB } });
    const h: WorkerHandle = {
      worker,
      slots: new Int32Array(shared, 0, SHARED_HEADER_BYTES / 4),
      input: new Uint8Array(shared, SHARED_HEADER_BYTES, SHARED_INPUT_BYTES),
      counts: {},
      done: false,
      lastCounter: -1,
      lastMoveAt: performance.now(),
    };
    handles.push(h);
    finished.push(
      new Promise<void>((resolve, reject) => {
        const startTimer = setTimeout(() => reject(new Error(`worker ${w} did not start within ${WORKER_START_TIMEOUT_MS} ms`)), WORKER_START_TIMEOUT_MS);
        worker.on("message", (m: WorkerMessage) => {
          if (m.type === "ready") {
            clearTimeout(startTimer);
            h.lastMoveAt = performance.now();
          } else if (m.type === "progress") h.counts = m.counts;
          else if (m.type === "record") onRecord(m.record);
          else if (m.type === "done") {
            h.counts = m.counts;
            h.done = true;
          }
        });
        worker.on("error", (err) => {
          clearTimeout(startTimer);
          reject(new Error(`worker ${w} failed: ${err.stack ?? err.message}`));
        });
        worker.on("exit", (code) => {
          clearTimeout(startTimer);
          if (h.done || code === 1 /* terminated by the watchdog */) resolve();
          else reject(new Error(`worker ${w} exited with code ${code} before finishing`));
        });
      }),
    );
  }

  // Wall-clock watchdog and progress lines.
  let lastLine = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    for (const [w, h] of handles.entries()) {
      if (h.done) continue;
      const c = Atomics.load(h.slots, SLOT.Counter);
      if (c !== h.lastCounter) {
        h.lastCounter = c;
        h.lastMoveAt = now;
        continue;
      }
      if (now - h.lastMoveAt < WATCHDOG_MS) continue;
      const target = TARGETS[Atomics.load(h.slots, SLOT.Target)]?.name ?? "?";
      const len = Atomics.load(h.slots, SLOT.Length);
      const input = h.input.slice(0, Math.min(len, SHARED_INPUT_BYTES));
      const r: FuzzRecord = {
        kind: "hang",
        target,
        seed: args.seed,
        episode: Atomics.load(h.slots, SLOT.Episode),
        index: Atomics.load(h.slots, SLOT.Index),
        input: Buffer.from(input).toString("hex").slice(0, 16384),
        inputLength: len,
        what: `watchdog: worker ${w} made no progress for ${WATCHDOG_MS} ms`,
        stack: "",
        ms: now - h.lastMoveAt,
      };
      watchdogHangs.push(r);
      onRecord(r);
      h.done = true;
      void h.worker.terminate();
    }
    if (now - lastLine >= PROGRESS_EVERY_MS) {
      lastLine = now;
      const total = handles.reduce((s, h) => s + Object.values(h.counts).reduce((a, c) => a + c.inputs, 0), 0);
      const secs = (now - t0) / 1000;
      progress(`${total} inputs in ${secs.toFixed(0)} s (${Math.round(total / secs)}/s), ${records.length + shownDropped} findings`);
    }
  }, 1000);
  try {
    await Promise.all(finished);
  } finally {
    clearInterval(tick);
    for (const h of handles) void h.worker.terminate();
  }
  const seconds = (performance.now() - t0) / 1000;

  // Sum the workers' counts; a watchdog hang is charged to its target.
  const sum: Record<string, TargetCounts> = Object.fromEntries(names.map((n) => [n, emptyCounts()]));
  for (const h of handles) {
    for (const [n, c] of Object.entries(h.counts)) {
      const s = sum[n];
      if (!s) continue;
      s.inputs += c.inputs;
      s.crashes += c.crashes;
      s.hangs += c.hangs;
      s.slow += c.slow;
      s.episodes += c.episodes;
      s.ms += c.ms;
      for (const [k, v] of Object.entries(c.tally ?? {})) s.tally[k] = (s.tally[k] ?? 0) + v;
    }
  }
  for (const r of watchdogHangs) if (sum[r.target]) sum[r.target]!.hangs++;
  report(args, names, sum, seconds, records, shownDropped);
}

function report(args: Args, names: readonly TargetName[], sum: Record<string, TargetCounts>, seconds: number, records: FuzzRecord[], dropped: number): void {
  const total = names.reduce((s, n) => s + sum[n]!.inputs, 0);
  const crashes = names.reduce((s, n) => s + sum[n]!.crashes, 0);
  const hangs = names.reduce((s, n) => s + sum[n]!.hangs, 0);
  const rate = total / seconds;
  const projected = GOAL_INPUTS / rate / 60;
  console.log(`Fuzzing: seed ${args.seed}, ${args.workers} worker thread(s), ${availableParallelism()} CPU(s) (${cpuModel()}), node ${process.version}`);
  console.log(`execs/s per core = inputs / time that target ran on one worker; slow = over ${args.hangMs} ms once but not when replayed`);
  console.log(`${"target".padEnd(10)}${pad("inputs", 11)}${pad("execs/s", 10)}${pad("episodes", 10)}${pad("crashes", 9)}${pad("hangs", 7)}${pad("slow", 6)}  what`);
  const rows = names.map((n) => {
    const c = sum[n]!;
    const eps = c.ms > 0 ? Math.round(c.inputs / (c.ms / 1000)) : 0;
    console.log(`${n.padEnd(10)}${pad(c.inputs, 11)}${pad(eps, 10)}${pad(c.episodes, 10)}${pad(c.crashes, 9)}${pad(c.hangs, 7)}${pad(c.slow, 6)}  ${targetByName(n).what}`);
    return { target: n, inputs: c.inputs, crashes: c.crashes, hangs: c.hangs, execs_per_sec: eps };
  });
  for (const n of names) {
    const t = sum[n]!.tally;
    if (Object.keys(t).length === 0) continue;
    const inputs = Object.entries(t).filter(([k]) => !k.startsWith("ended ")).reduce((a, [, v]) => a + v, 0);
    const pct = (v: number): string => `${((100 * v) / Math.max(1, inputs)).toFixed(1)} %`;
    const verdicts = Object.entries(t).filter(([k]) => !k.startsWith("ended ")).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${pct(v)}`);
    const endings = Object.entries(t).filter(([k]) => k.startsWith("ended ")).sort((a, b) => b[1] - a[1]);
    console.log(`${n}: datagrams ${verdicts.join(", ")}`);
    console.log(`${n}: sessions ended by ${endings.slice(0, 8).map(([k, v]) => `${k.slice(6)} (${v})`).join(", ")}${endings.length > 8 ? `, ${endings.length - 8} other reasons` : ""}`);
  }
  console.log(`total: ${total} inputs in ${seconds.toFixed(1)} s = ${Math.round(rate)} inputs/s over ${args.workers} worker(s); ${GOAL_INPUTS / 1e6} million inputs would take ${projected.toFixed(1)} min`);
  for (const r of records) {
    console.log(`${r.kind} in ${r.target}: ${r.what}`);
    if (r.stack) console.log(`  at ${r.stack}`);
    console.log(`  reproduce: npm run fuzz -- --seed ${r.seed} --replay ${r.target}:${r.episode}   (input ${r.index}, ${r.inputLength} bytes)`);
    console.log(`  input: ${r.input.slice(0, 2048)}${r.input.length > 2048 ? "…" : ""}`);
  }
  if (dropped > 0) console.log(`(${dropped} more findings with the same signature or beyond the first ${MAX_RECORDS_SHOWN} not shown)`);
  const bigRun = total >= GOAL_INPUTS;
  const inTime = bigRun ? seconds <= GOAL_MINUTES * 60 : projected <= GOAL_MINUTES;
  const pass = crashes === 0 && hangs === 0 && inTime;
  console.log(
    `target: crashes ${crashes} (want 0), hangs ${hangs} (want 0), ${GOAL_INPUTS / 1e6} million inputs in under ${GOAL_MINUTES} min ` +
      `(${bigRun ? `ran ${(seconds / 60).toFixed(1)} min` : `projected ${projected.toFixed(1)} min from this run`}) -> ${pass ? "PASS" : "FAIL"}`,
  );
  if (args.json) {
    console.log(
      JSON.stringify({
        bench: "fuzz",
        seed: args.seed,
        workers: args.workers,
        inputs: total,
        seconds: Math.round(seconds * 10) / 10,
        execs_per_sec: Math.round(rate),
        projected_10m_minutes: Math.round(projected * 10) / 10,
        targets: rows,
        pass,
      }),
    );
  }
  if (!pass) throw new Error(`target missed: ${crashes} crashes, ${hangs} hangs${inTime ? "" : ", too slow for 10 million inputs in 30 min"}`);
}

async function main(args: Args): Promise<void> {
  if (args.replay) return replay(args);
  await fuzz(args);
}

/** Overall limit: the asked minutes plus a margin; for --inputs, a generous 3 hours. */
function overallLimitMs(args: Args): number {
  return args.minutes !== null ? (args.minutes + 5) * 60_000 : 3 * 60 * 60_000;
}

let parsed: Args;
try {
  parsed = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`fuzz: ${(err as Error).message}\n`);
  process.exit(1);
}
runBench("fuzz", () => main(parsed), overallLimitMs(parsed));
