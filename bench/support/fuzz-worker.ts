/**
 * A fuzzing worker thread of bench/fuzz.ts: runs its share of every target's inputs (or runs until a
 * deadline), times each input, and reports progress, crashes and hangs to the main thread.
 * Before each input it publishes the input and its coordinates in shared memory, so the main thread's
 * wall-clock watchdog can name the input if this thread ever stops making progress.
 * An input slower than `hangMs` is replayed from the start of its episode; only if it is slow again is
 * it a hang (a garbage collection or a busy machine does not repeat at the same input).
 */
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import {
  TARGETS,
  TARGET_WEIGHTS,
  describeError,
  recordOf,
  replayEpisode,
  startEpisode,
  type FuzzRecord,
  type TargetName,
} from "./fuzz-runner.js";
import { SHARED_HEADER_BYTES, SHARED_INPUT_BYTES, SLOT, type TargetCounts, type WorkerConfig, type WorkerMessage } from "./fuzz-protocol.js";
import type { FuzzEpisode, FuzzTarget } from "./fuzz-target.js";

/** Inputs per target per round, times its weight; small enough that --minutes runs stay balanced. */
const ROUND_INPUTS = 2000;
const PROGRESS_EVERY_MS = 1000;
/** Replays of a slow input before it counts as a hang. */
const REPLAYS = 3;

class TargetRunner {
  readonly counts: TargetCounts = { inputs: 0, crashes: 0, hangs: 0, slow: 0, episodes: 0, ms: 0, tally: {} };
  private episode: FuzzEpisode | null = null;
  private episodeId = -1;
  private index = 0;
  private started = 0;

  constructor(
    readonly target: FuzzTarget,
    readonly targetIndex: number,
    private readonly cfg: WorkerConfig,
    private readonly slots: Int32Array,
    private readonly inputBytes: Uint8Array,
    private readonly report: (r: FuzzRecord) => void,
  ) {}

  /** Runs up to `n` inputs; returns how many ran. */
  run(n: number): number {
    const t0 = performance.now();
    let ran = 0;
    while (ran < n) {
      if (!this.episode && !this.startNext()) continue;
      const ep = this.episode!;
      const input = ep.generate(); // a throw here is a bug of the fuzzer itself: it ends the run
      if (input === null) {
        this.episode = null;
        continue;
      }
      this.publish(input);
      const s = performance.now();
      let failed = false;
      try {
        ep.execute(input);
      } catch (err) {
        const e = describeError(err);
        this.counts.crashes++;
        this.report(recordOf("crash", this.target.name, this.cfg.seed, this.episodeId, this.index, input, e.what, e.stack));
        failed = true;
      }
      const ms = performance.now() - s;
      this.counts.inputs++;
      ran++;
      if (!failed && ms > this.cfg.hangMs) failed = this.confirmSlow(input, ms);
      this.index++;
      if (failed) this.episode = null; // its state may be broken: start afresh
    }
    this.counts.ms += performance.now() - t0;
    return ran;
  }

  private startNext(): boolean {
    this.episodeId = this.cfg.worker + this.cfg.workers * this.started++;
    this.index = 0;
    this.counts.episodes++;
    Atomics.store(this.slots, SLOT.Target, this.targetIndex);
    Atomics.store(this.slots, SLOT.Episode, this.episodeId);
    Atomics.store(this.slots, SLOT.Index, -1);
    Atomics.store(this.slots, SLOT.Length, 0);
    try {
      this.episode = startEpisode(this.target, this.cfg.seed, this.episodeId);
      return true;
    } catch (err) {
      const e = describeError(err);
      this.counts.crashes++;
      this.report(recordOf("crash", this.target.name, this.cfg.seed, this.episodeId, -1, null, e.what, e.stack));
      return false;
    }
  }

  private publish(input: Uint8Array): void {
    const n = Math.min(input.length, SHARED_INPUT_BYTES);
    this.inputBytes.set(n === input.length ? input : input.subarray(0, n));
    // Targets take turns on a worker: say which one runs, every time.
    Atomics.store(this.slots, SLOT.Target, this.targetIndex);
    Atomics.store(this.slots, SLOT.Episode, this.episodeId);
    Atomics.store(this.slots, SLOT.Index, this.index);
    Atomics.store(this.slots, SLOT.Length, input.length);
    Atomics.add(this.slots, SLOT.Counter, 1);
  }

  /**
   * A slow input: replayed from its episode's start up to REPLAYS times; a hang when every run is slow
   * (a busy machine or a garbage collection rarely hits the same input each time), else counted as slow.
   */
  private confirmSlow(input: Uint8Array, ms: number): boolean {
    const times = [ms];
    for (let i = 0; i < REPLAYS && Math.min(...times) > this.cfg.hangMs; i++) {
      times.push(replayEpisode(this.target, this.cfg.seed, this.episodeId, this.index, () => Atomics.add(this.slots, SLOT.Counter, 1)).ms);
    }
    const best = Math.min(...times);
    const confirmed = best > this.cfg.hangMs;
    if (confirmed) this.counts.hangs++;
    else this.counts.slow++;
    const what = `${times.map((t) => t.toFixed(1)).join(" / ")} ms (first run / replays; limit ${this.cfg.hangMs} ms)`;
    this.report(recordOf(confirmed ? "hang" : "slow", this.target.name, this.cfg.seed, this.episodeId, this.index, input, what, "", best));
    this.publish(input); // the watchdog's view again points at the input that was running
    return confirmed;
  }
}

function main(): void {
  const port = parentPort;
  if (!port) throw new Error("fuzz-worker.ts runs as a worker thread of bench/fuzz.ts");
  const cfg = workerData as WorkerConfig;
  const slots = new Int32Array(cfg.shared, 0, SHARED_HEADER_BYTES / 4);
  const inputBytes = new Uint8Array(cfg.shared, SHARED_HEADER_BYTES, SHARED_INPUT_BYTES);
  const send = (m: WorkerMessage): void => port.postMessage(m);
  const runners = TARGETS.map((t, i) => new TargetRunner(t, i, cfg, slots, inputBytes, (record) => send({ type: "record", record })));
  const countsOf = (): Record<string, TargetCounts> => Object.fromEntries(runners.map((r) => [r.target.name, { ...r.counts, tally: { ...r.target.tally } }]));
  const left = new Map(runners.map((r) => [r, cfg.quotas[r.target.name] ?? 0]));
  send({ type: "ready" });
  let lastProgress = performance.now();
  for (;;) {
    let any = false;
    for (const r of runners) {
      const quota = left.get(r)!;
      if (quota === 0) continue;
      if (cfg.deadline !== null && Date.now() >= cfg.deadline) break;
      any = true;
      const slice = Math.max(1, Math.round(ROUND_INPUTS * TARGET_WEIGHTS[r.target.name as TargetName]));
      const ran = r.run(quota < 0 ? slice : Math.min(slice, quota));
      if (quota > 0) left.set(r, quota - ran);
      if (performance.now() - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = performance.now();
        send({ type: "progress", counts: countsOf() });
      }
    }
    if (!any || (cfg.deadline !== null && Date.now() >= cfg.deadline)) break;
  }
  send({ type: "done", counts: countsOf() });
}

main();
