/**
 * Joins at scale (issue 10, part 4), fastnet against ws-transport in one run: sequential join p50/p99 and
 * bursts of 100 and 500 concurrent joinOrCreate calls from one address, with the server's joins per
 * CPU-second. See bench/support/join-run.ts for what is timed. bench/scale.ts runs the same at its end.
 *
 * Usage: node --import tsx bench/join.ts [--json] [--quick] [--samples N] [--only fastnet,ws-transport]
 *   --samples N  sequential joins per transport (default 200; --quick: 50)
 *   --profile DIR  profiles the sequential joins, server and clients (see bench/support/join-run.ts);
 *                summarize with bench/support/scale-profile.ts DIR
 *   --json       last stdout line: {"bench":"join","joins":{"fastnet":{p50_ms,p99_ms,burst100_ms,burst500_ms,failed,...},"ws-transport":{..}}}
 * Targets (a FAIL is a result; exit code 1 only for errors): the burst of 500 all in; fastnet's join p50
 * at most 2x ws-transport's; at least 300 joins per server CPU-second.
 */
import { mkdirSync } from "node:fs";
import { choiceList, parseBenchArgs, positiveIntOr, type BaseArgs } from "./support/args.js";
import { measureJoins, printJoins, type JoinResult, type JoinTransport } from "./support/join-run.js";
import { runBench } from "./support/run-bench.js";

const TRANSPORTS: readonly JoinTransport[] = ["fastnet", "ws-transport"];
const OVERALL_TIMEOUT_MS = 10 * 60_000;

interface Args extends BaseArgs {
  samples: number;
  only: JoinTransport[] | null;
  profileDir: string | null;
}

const progress = (s: string): void => {
  process.stderr.write(`[join] ${s}\n`);
};

async function main(): Promise<void> {
  const { values: v, base } = parseBenchArgs(
    process.argv.slice(2),
    { quick: { type: "boolean" }, samples: { type: "string" }, only: { type: "string" }, profile: { type: "string" } },
    "none",
  );
  const args: Args = {
    ...base,
    samples: positiveIntOr("--samples", v.samples, v.quick ? 50 : 200),
    only: v.only !== undefined ? choiceList("--only", v.only, TRANSPORTS, "transport") : null,
    profileDir: v.profile ?? null,
  };
  if (args.profileDir) mkdirSync(args.profileDir, { recursive: true });
  const joins: Partial<Record<JoinTransport, JoinResult>> = {};
  for (const t of TRANSPORTS) {
    if (args.only && !args.only.includes(t)) continue;
    joins[t] = await measureJoins(t, args.samples, progress, args.profileDir);
  }
  printJoins(joins);
  if (args.json) console.log(JSON.stringify({ bench: "join", joins }));
}

runBench("join", main, OVERALL_TIMEOUT_MS);
