/**
 * What bench/fuzz.ts and its worker threads (bench/support/fuzz-worker.ts) share: the worker's
 * configuration, its messages, and the layout of the shared memory the watchdog reads.
 */
import type { FuzzRecord } from "./fuzz-runner.js";

/** Shared memory: Int32 slots, then the current input's bytes. */
export const SLOT = { Counter: 0, Target: 1, Episode: 2, Index: 3, Length: 4 } as const;
export const SHARED_HEADER_BYTES = 32;
export const SHARED_INPUT_BYTES = 64 * 1024;

export interface WorkerConfig {
  seed: string;
  worker: number;
  workers: number;
  /** Inputs per target for this worker; -1: no limit (run until the deadline). */
  quotas: Record<string, number>;
  /** Date.now() at which to stop, or null. */
  deadline: number | null;
  hangMs: number;
  shared: SharedArrayBuffer;
}

export interface TargetCounts {
  inputs: number;
  crashes: number;
  hangs: number;
  slow: number;
  episodes: number;
  /** Milliseconds spent in this target (setup, generation and execution). */
  ms: number;
  /** The target's own tally (see FuzzTarget.tally). */
  tally: Record<string, number>;
}

export type WorkerMessage =
  | { type: "ready" }
  | { type: "progress"; counts: Record<string, TargetCounts> }
  | { type: "record"; record: FuzzRecord }
  | { type: "done"; counts: Record<string, TargetCounts> };
