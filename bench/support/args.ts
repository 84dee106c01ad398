/**
 * Command-line parsing shared by the benchmarks, on node:util's parseArgs: every one takes --json and
 * --pin same|split|none and declares its own flags; parsing is strict (an unknown flag, a missing value or
 * a stray positional argument throws) and both `--flag value` and `--flag=value` work. The helpers below
 * turn the string values into checked numbers and lists.
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import type { Placement } from "./affinity.js";

/** What every benchmark's arguments hold. */
export interface BaseArgs {
  json: boolean;
  pin: Placement;
  /** --pin was given (no silent fallback to "none" then). */
  pinExplicit: boolean;
}

const COMMON = {
  json: { type: "boolean" },
  pin: { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

/**
 * Parses `argv` with the common flags plus `options` (names without the leading `--`). Returns the raw
 * `values` (absent flags are undefined) and the common arguments, `pin` defaulting to `pinDefault`.
 */
export function parseBenchArgs<const O extends ParseArgsOptionsConfig>(argv: string[], options: O, pinDefault: Placement) {
  const { values } = parseArgs({ args: argv, options: { ...COMMON, ...options }, strict: true, allowPositionals: false });
  const common = values as { json?: boolean; pin?: string };
  const pin = common.pin;
  if (pin !== undefined && pin !== "same" && pin !== "split" && pin !== "none") throw new Error(`--pin needs same, split or none, got ${pin}`);
  const base: BaseArgs = { json: common.json === true, pin: pin ?? pinDefault, pinExplicit: pin !== undefined };
  return { values, base };
}

/** `v` as a positive integer, or an error naming the flag. */
export function positiveInt(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, got ${String(v)}`);
  return n;
}

/** `v` (a flag's value, undefined when absent) as a positive integer, or `dflt` when absent. */
export function positiveIntOr(flag: string, v: string | undefined, dflt: number): number {
  return v === undefined ? dflt : positiveInt(flag, v);
}

/** `v` as a finite number in [min, max], or an error naming the flag. */
export function numberIn(flag: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (v === undefined || v === "" || !Number.isFinite(n) || n < min || n > max) throw new Error(`${flag} needs a number in [${min}, ${max}], got ${String(v)}`);
  return n;
}

/** A comma-separated list (empty entries dropped), unchecked. */
export function commaList(v: string | undefined): string[] {
  return (v ?? "").split(",").filter(Boolean);
}

/** A comma-separated list whose every entry must be one of `available` (`noun` names them in the error). */
export function choiceList<T extends string>(flag: string, v: string | undefined, available: readonly T[], noun: string): T[] {
  const list = commaList(v);
  const unknown = list.filter((n) => !(available as readonly string[]).includes(n));
  if (list.length === 0 || unknown.length > 0) throw new Error(`${flag}: unknown ${noun}(s) ${unknown.join(", ") || "(none given)"} (available: ${available.join(", ")})`);
  return list as T[];
}

/** Node flags that make a server child write a CPU profile (50 µs sampling) named `name` into `dir`; none without a dir. */
export function cpuProfExecArgv(dir: string | null, name: string): string[] {
  return dir ? ["--cpu-prof", "--cpu-prof-interval=50", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}`] : [];
}

/** The arguments of the round-trip benchmarks (bench/rtt.ts, bench/room.ts). */
export interface RoundTripArgs<T extends string> extends BaseArgs {
  samples: number;
  warmup: number;
  only: T[] | null;
  serverCpuProf: string | null;
}

/**
 * Parses [--json] [--samples N] [--quick] [--warmup N] [--only a,b] [--pin P] [--server-cpu-prof DIR]:
 * `samples` counted round trips by default (1000 with --quick; --samples wins over it), 1000 warm-up;
 * `only` reads --only's list.
 */
export function parseRoundTripArgs<T extends string>(
  argv: string[],
  samples: number,
  only: (list: string | undefined, flag: string) => T[],
): RoundTripArgs<T> {
  const { values: v, base } = parseBenchArgs(
    argv,
    { quick: { type: "boolean" }, samples: { type: "string" }, warmup: { type: "string" }, only: { type: "string" }, "server-cpu-prof": { type: "string" } },
    "same",
  );
  if (v["server-cpu-prof"] === "") throw new Error("--server-cpu-prof needs a directory");
  return {
    ...base,
    samples: positiveIntOr("--samples", v.samples, v.quick ? 1_000 : samples),
    warmup: positiveIntOr("--warmup", v.warmup, 1_000),
    only: v.only !== undefined ? only(v.only, "--only") : null,
    serverCpuProf: v["server-cpu-prof"] ?? null,
  };
}
