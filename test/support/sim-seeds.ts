/**
 * Seeds for the simulator scenarios, and a runner that names the failing seed.
 *
 * By default every scenario runs its own fixed list (`seedsFrom(base, n)`), as CI always has. Two
 * environment variables change that, for every scenario at once:
 *   SIM_SEEDS=N  runs each scenario over N seeds: its first N of `seedsFrom(base, ·)`, a superset of the fixed list;
 *   SIM_SEED=S   runs each scenario over seed S alone (replays a failure printed by a sweep).
 * `npm run test:sim` runs the files that hold simulator scenarios.
 */
import path from "node:path";

/** `n` seeds spaced by a prime, from `base`. */
export const seedsFrom = (base: number, n: number): number[] => Array.from({ length: n }, (_, i) => base + i * 7919);

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

/** SIM_SEEDS, if set: the number of seeds a sweep runs per scenario. */
export const SWEEP_SEEDS = envInt("SIM_SEEDS");
/** SIM_SEED, if set: the one seed every scenario runs. */
export const ONE_SEED = envInt("SIM_SEED");
if (SWEEP_SEEDS === 0) throw new Error("SIM_SEEDS must be at least 1");

/** True when SIM_SEEDS or SIM_SEED overrides the fixed seed lists (scenario timeouts should then scale). */
export const sweeping = SWEEP_SEEDS !== undefined || ONE_SEED !== undefined;

/**
 * The seeds a scenario runs: its fixed list (`seedsFrom(base, n)`, or an explicit list `fixed`), or under
 * SIM_SEEDS=N the first N of that list continued by `seedsFrom`, or SIM_SEED alone.
 */
export function simSeeds(base: number, n: number): number[];
export function simSeeds(fixed: readonly number[]): number[];
export function simSeeds(a: number | readonly number[], n = 0): number[] {
  if (ONE_SEED !== undefined) return [ONE_SEED];
  if (typeof a === "number") return seedsFrom(a, SWEEP_SEEDS ?? n);
  if (SWEEP_SEEDS === undefined) return [...a];
  const more = Math.max(0, SWEEP_SEEDS - a.length);
  return [...a.slice(0, SWEEP_SEEDS), ...seedsFrom(Math.max(...a) + 7919, more)];
}

/**
 * A mocha timeout for a scenario that normally runs `n` seeds in `ms`: scaled to the number of seeds it runs
 * now (a sweep of 1,000 seeds needs 1,000/n times as long), never below `ms`.
 */
export function seedTimeout(ms: number, n: number): number {
  const count = ONE_SEED !== undefined ? 1 : (SWEEP_SEEDS ?? n);
  return Math.max(ms, Math.ceil((ms * count) / n));
}

/**
 * Runs the current mocha test's scenario over `simSeeds(base, n)` with `forEachSeed`, its timeout scaled by
 * `seedTimeout`; the scenario name and file come from the test itself. Use inside `it(..., function () {...})`.
 */
export function sweep(ctx: Mocha.Context, base: number, n: number, fn: (seed: number) => void): void;
/** The same over an explicit fixed list of seeds. */
export function sweep(ctx: Mocha.Context, fixed: readonly number[], fn: (seed: number) => void): void;
export function sweep(
  ctx: Mocha.Context,
  a: number | readonly number[],
  b: number | ((seed: number) => void),
  c?: (seed: number) => void,
): void {
  const [seeds, n, fn] = typeof a === "number"
    ? [simSeeds(a, b as number), b as number, c!]
    : [simSeeds(a), a.length, b as (seed: number) => void];
  ctx.timeout(seedTimeout(ctx.timeout(), n));
  const test = ctx.test;
  const file = test?.file ? path.relative(process.cwd(), test.file) : "test";
  forEachSeed(seeds, test?.fullTitle() ?? "", file, fn);
}

/** The command that replays one seed of a scenario. */
export function replayHint(seed: number, scenario: string, file: string): string {
  const grep = scenario.replace(/[\\"$`]/g, "\\$&");
  return `SIM_SEED=${seed} npx mocha ${file} -g "${grep}"`;
}

/**
 * Runs `fn` for every seed, even after one fails, then fails with every failing seed, the scenario, and
 * the command that replays it. With the fixed lists a failure is reported as before, prefixed with its seed.
 */
export function forEachSeed(seeds: readonly number[], scenario: string, file: string, fn: (seed: number) => void): void {
  const failures: { seed: number; error: unknown }[] = [];
  for (const seed of seeds) {
    try {
      fn(seed);
    } catch (error) {
      failures.push({ seed, error });
    }
  }
  if (failures.length === 0) return;
  const lines = failures.map(({ seed, error }) => {
    const msg = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return `  seed ${seed}: ${msg.split("\n")[0]}\n    replay: ${replayHint(seed, scenario, file)}`;
  });
  const first = failures[0]!.error;
  const err = new Error(`${failures.length} of ${seeds.length} seeds failed in "${scenario}" (${file}):\n${lines.join("\n")}`);
  // Keep the first failure's stack: it points at the assertion.
  if (first instanceof Error && first.stack) err.stack = `${err.message}\nfirst failure:\n${first.stack}`;
  throw err;
}
