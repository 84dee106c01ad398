/**
 * Runs fuzz targets' episodes and records what went wrong, for bench/support/fuzz-worker.ts (the
 * measured runs) and bench/fuzz.ts --replay (reproducing one episode). Episode `e` of target `t` under
 * seed `s` is the same inputs every time, so a crash or hang is reproduced from (s, t, e) alone.
 */
import { performance } from "node:perf_hooks";
import { clientTarget, serverTarget } from "./fuzz-connection.js";
import { framesTarget, headerTarget } from "./fuzz-codecs.js";
import { handshakeTarget } from "./fuzz-handshake.js";
import { Rng } from "./fuzz-rng.js";
import type { FuzzEpisode, FuzzTarget } from "./fuzz-target.js";

/** Every target, in report order. */
export const TARGETS: readonly FuzzTarget[] = [serverTarget, clientTarget, framesTarget, handshakeTarget, headerTarget];
export type TargetName = "server" | "client" | "frames" | "handshake" | "header";
export const TARGET_NAMES = TARGETS.map((t) => t.name) as TargetName[];

/** Share of the inputs each target gets: the receive paths most, they hold the most state. */
export const TARGET_WEIGHTS: Record<TargetName, number> = { server: 0.3, client: 0.25, frames: 0.2, handshake: 0.1, header: 0.15 };

/** Longest hex kept of an input in a record. */
const MAX_RECORD_INPUT = 8192;

/** A crash (exception or broken invariant), a confirmed hang, or a slow input that did not reproduce. */
export interface FuzzRecord {
  kind: "crash" | "hang" | "slow";
  target: string;
  seed: string;
  episode: number;
  /** Index of the input within its episode; -1 for the episode's setup. */
  index: number;
  /** Hex of the input (cut at MAX_RECORD_INPUT bytes; `inputLength` is the full length). */
  input: string;
  inputLength: number;
  /** Error name and message, or the time taken for hangs and slow inputs. */
  what: string;
  /** First lines of the stack, for crashes. */
  stack: string;
  ms: number;
}

export function recordOf(kind: FuzzRecord["kind"], target: string, seed: string, episode: number, index: number, input: Uint8Array | null, what: string, stack = "", ms = 0): FuzzRecord {
  const bytes = input ?? new Uint8Array(0);
  return {
    kind,
    target,
    seed,
    episode,
    index,
    input: Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, MAX_RECORD_INPUT)).toString("hex"),
    inputLength: bytes.length,
    what,
    stack,
    ms,
  };
}

export function describeError(err: unknown): { what: string; stack: string } {
  if (err instanceof Error) {
    const lines = (err.stack ?? "").split("\n").slice(1, 7).map((l) => l.trim());
    return { what: `${err.name}: ${err.message}`.slice(0, 1000), stack: lines.join(" | ") };
  }
  return { what: `thrown non-error: ${String(err)}`.slice(0, 1000), stack: "" };
}

export function targetByName(name: string): FuzzTarget {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`unknown fuzz target ${name} (available: ${TARGET_NAMES.join(", ")})`);
  return t;
}

/** Starts episode `episode` of `target` under `seed`. */
export function startEpisode(target: FuzzTarget, seed: string, episode: number): FuzzEpisode {
  return target.start(new Rng(seed, target.name, episode));
}

/**
 * Replays episode `episode` up to and including input `upTo` (all of it when undefined): the time the
 * input `upTo` took, the first crash on the way, and that input's bytes. `onInput` runs before each input.
 */
export function replayEpisode(
  target: FuzzTarget,
  seed: string,
  episode: number,
  upTo?: number,
  onInput?: () => void,
): { ms: number; crash: FuzzRecord | null; input: Uint8Array | null; inputs: number } {
  let ep: FuzzEpisode;
  try {
    ep = startEpisode(target, seed, episode);
  } catch (err) {
    const e = describeError(err);
    return { ms: 0, crash: recordOf("crash", target.name, seed, episode, -1, null, e.what, e.stack), input: null, inputs: 0 };
  }
  let ms = 0;
  let last: Uint8Array | null = null;
  for (let i = 0; upTo === undefined || i <= upTo; i++) {
    const input = ep.generate();
    if (input === null) return { ms, crash: null, input: last, inputs: i };
    last = input;
    onInput?.();
    const t0 = performance.now();
    try {
      ep.execute(input);
    } catch (err) {
      const e = describeError(err);
      return { ms: performance.now() - t0, crash: recordOf("crash", target.name, seed, episode, i, input, e.what, e.stack), input, inputs: i + 1 };
    }
    ms = performance.now() - t0;
  }
  return { ms, crash: null, input: last, inputs: (upTo ?? 0) + 1 };
}
