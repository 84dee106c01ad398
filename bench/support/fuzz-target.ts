/**
 * What bench/fuzz.ts runs: a target starts episodes; an episode is a deterministic stream of inputs
 * (seeded by the run's seed, the target name and the episode number) executed against fresh state.
 * Any exception escaping `execute` is a crash; a broken invariant throws InvariantError (also a crash).
 */
import type { Rng } from "./fuzz-rng.js";

/** A broken invariant found after an input: reported as a crash. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvariantError";
  }
}

/** Throws InvariantError with `what` unless `ok`. */
export function check(ok: boolean, what: string | (() => string)): asserts ok {
  if (!ok) throw new InvariantError(typeof what === "string" ? what : what());
}

export interface FuzzEpisode {
  /** The next input, or null when the episode is over (its state ended or its budget is spent). */
  generate(): Uint8Array | null;
  /** Runs one input made by `generate`. Throws on a crash. */
  execute(input: Uint8Array): void;
}

export interface FuzzTarget {
  readonly name: string;
  /** What the target drives, one line for the report. */
  readonly what: string;
  /** Inputs per episode at most (an episode may end earlier). */
  readonly episodeInputs: number;
  /** Starts an episode with fresh state; all its randomness comes from `rng`. */
  start(rng: Rng): FuzzEpisode;
  /** What the target's inputs came to (e.g. accepted, dropped by cause), counted per worker thread. */
  readonly tally?: Record<string, number>;
}

/** Adds one to `key` of `tally`. */
export function count(tally: Record<string, number>, key: string): void {
  tally[key] = (tally[key] ?? 0) + 1;
}

/** Every integer-looking counter of `o` (recursively) is finite and >= 0; names the first that is not. */
export function nonNegativeCounters(o: object, path = ""): string | null {
  for (const [k, v] of Object.entries(o)) {
    if (typeof v === "number") {
      if (!Number.isFinite(v) || v < 0) return `${path}${k} = ${v}`;
    } else if (v && typeof v === "object") {
      const bad = nonNegativeCounters(v as object, `${path}${k}.`);
      if (bad) return bad;
    }
  }
  return null;
}
