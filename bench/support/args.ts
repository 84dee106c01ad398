/**
 * Command-line parsing shared by the benchmarks: every one takes --json and --pin same|split|none; each
 * adds its own flags (a handler per flag, which reads its value with `next()`). Unknown arguments throw.
 */
import type { Placement } from "./affinity.js";

/** What every benchmark's arguments hold. */
export interface BaseArgs {
  json: boolean;
  pin: Placement;
  /** --pin was given (no silent fallback to "none" then). */
  pinExplicit: boolean;
}

/** Handles one flag: `next()` consumes and returns the following argument (undefined at the end). */
export type FlagHandler<A> = (args: A, next: () => string | undefined, flag: string) => void;

const COMMON: Record<string, FlagHandler<BaseArgs>> = {
  "--json": (args) => {
    args.json = true;
  },
  "--pin": (args, next) => {
    const v = next();
    if (v !== "same" && v !== "split" && v !== "none") throw new Error(`--pin needs same, split or none, got ${String(v)}`);
    args.pin = v;
    args.pinExplicit = true;
  },
};

/** Parses `argv` into a copy of `defaults`, with the common flags plus `flags` (which may override them). */
export function parseArgs<A extends BaseArgs>(argv: string[], defaults: A, flags: Record<string, FlagHandler<A>>): A {
  const args: A = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const handler = flags[a] ?? (COMMON[a] as FlagHandler<A> | undefined);
    if (!handler) throw new Error(`unknown argument ${a}`);
    handler(args, () => argv[++i], a);
  }
  return args;
}

/** `v` as a positive integer, or an error naming the flag. */
export function positiveInt(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, got ${String(v)}`);
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

/** --server-cpu-prof DIR: stores the directory (required). */
const serverCpuProfFlag: FlagHandler<{ serverCpuProf: string | null }> = (args, next) => {
  args.serverCpuProf = next() ?? null;
  if (!args.serverCpuProf) throw new Error("--server-cpu-prof needs a directory");
};

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
 * `samples` counted round trips by default (1000 with --quick), 1000 warm-up; `only` reads --only's list.
 */
export function parseRoundTripArgs<T extends string>(
  argv: string[],
  samples: number,
  only: (list: string | undefined, flag: string) => T[],
): RoundTripArgs<T> {
  return parseArgs<RoundTripArgs<T>>(
    argv,
    { json: false, samples, warmup: 1_000, only: null, serverCpuProf: null, pin: "same", pinExplicit: false },
    {
      "--quick": (args) => {
        args.samples = 1_000;
      },
      "--samples": (args, next, flag) => {
        args.samples = positiveInt(flag, next());
      },
      "--warmup": (args, next, flag) => {
        args.warmup = positiveInt(flag, next());
      },
      "--only": (args, next, flag) => {
        args.only = only(next(), flag);
      },
      "--server-cpu-prof": serverCpuProfFlag,
    },
  );
}
