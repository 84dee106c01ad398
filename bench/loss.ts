/**
 * Loss (issue 11, item 3): how reliable messages and state behave under random packet loss, fastnet
 * (UDP) against @colyseus/ws-transport (TCP), in one run.
 *
 * Where: a network namespace this script creates (`ip netns add fastnet-loss-<pid>`, loopback up) and
 * deletes afterwards (also on an error, Ctrl-C, SIGTERM); the benchmark runs again inside it (`ip netns
 * exec`), and so do its server children. nftables drops UDP and TCP alike at random on the namespace's
 * input hook (bench/support/loss-netns.ts): each direction of a round trip loses the given % of packets.
 * Needs root, `ip` (iproute2) and `nft` (nftables).
 *
 * Load, game-like (bench/support/loss-room.ts, loss-clients.ts): 8 clients in one room; each sends a
 * reliable "ping" every 50 ms that the room echoes; the room moves every player and stamps its position
 * with the server's CLOCK_MONOTONIC time every patch (patchRate 50 ms). Server: @colyseus/core in a
 * child process per transport (bench/support/loss-server.ts); clients: @colyseus/sdk in this process.
 *   fastnet        FastnetTransport + FastnetClient, `path: "udp"`; positions `@unreliable` (datagrams)
 *   ws-transport   WebSocketTransport + the SDK's plain Client; positions RELIABLE (Colyseus never sends
 *                  `@unreliable` fields to WebSocket clients), so its state columns are reliable state
 * Measured per (transport, loss level), in a window of --seconds after a warm-up at that level:
 *   rel p50/p99/max   reliable ping->pong round trip, ms; lost: pings of the window never answered (after a
 *                     drain of up to DRAIN_MAX_MS at the same loss)
 *   age p50/p99       state age: arrival time - the server's stamp, for every player whose stamp advanced
 *                     in a state change (includes the wait from the stamp, just before the patch, to the send)
 *   stale max         the longest time any client went without a fresher position of any player
 *   loop p99/max      event-loop delay in the window of this process (the clients) and of the server
 *                     child: a stalled process (the machine busy with other work) delays what it handles
 *   drop %            what the nftables counters dropped of the UDP/TCP packets, warm-up to drain (a check)
 * Blackout: after the loss levels, per transport: 100 % drop for BLACKOUT_MS, then 0 %; time from the end
 * of the blackout to each client's first pong (any ping) and first state stamped after the end.
 *
 * Bias control: the transports alternate within each loss level (fastnet first on even levels, ws-transport
 * first on odd ones); every phase joins 8 fresh clients to a fresh room at 0 % loss, and leaves at 0 %.
 *
 * Usage: node --import tsx bench/loss.ts [--json] [--quick] [--seconds S] [--levels 0,1,2,5,10] [--no-blackout]
 *   --seconds S   measuring window per (transport, level), default 10 (--quick: 2)
 *   --quick       smoke run: 2 s windows, shorter warm-ups
 *   --levels L    loss levels in %, comma-separated (0..99.9), default 0,1,2,5,10
 *   --no-blackout skip the blackout phase
 *   --json        the last stdout line is {"bench":"loss","results":[{transport,loss_pct,rel_p50_ms,
 *                 rel_p99_ms,rel_max_ms,rel_lost,state_age_p50_ms,state_age_p99_ms,stale_max_ms,...}],
 *                 "blackout":[{transport,blackout_ms,first_reply_p50_ms,first_reply_max_ms,
 *                 first_state_p50_ms,first_state_max_ms,...}]}
 * Exit code 0 when the run completed (lost pings are a result, reported), 1 on an error.
 */
import { cpus } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { cpuModel } from "./support/affinity.js";
import { startScriptChild, type ServerChild } from "./support/children.js";
import { LossPlayers, type LossTransport } from "./support/loss-clients.js";
import type { LossEngineStats } from "./support/loss-engine-stats.js";
import { assertInNamespace, LossRule, NETNS_ENV, runInNamespace } from "./support/loss-netns.js";
import { printBlackout, printEngine, printResults, type BlackoutResult, type LevelResult } from "./support/loss-report.js";
import { monoMs, PLAYERS, TICK_MS } from "./support/loss-room.js";
import { runBench } from "./support/run-bench.js";
import { ask } from "./support/scale-ipc.js";
import type { LossServerChildMessage } from "./support/loss-server.js";
import { percentile } from "./support/stats.js";

const SELF = fileURLToPath(import.meta.url);
const LOSS_SERVER = fileURLToPath(new URL("./support/loss-server.ts", import.meta.url));
const TRANSPORTS: readonly LossTransport[] = ["fastnet", "ws-transport"];
const DEFAULT_LEVELS = [0, 1, 2, 5, 10];
const BLACKOUT_MS = 3_000;
/** After the blackout: how long to wait for every client's first pong and fresh state. */
const RECOVERY_MAX_MS = 20_000;
/** After the window: how long pings still in flight may take (at the same loss). */
const DRAIN_MAX_MS = 10_000;
const START_TIMEOUT_MS = 30_000;
const JOIN_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const STATS_TIMEOUT_MS = 5_000;
/** Event-loop delay sampling of this (the clients') process in a window. */
const LOOP_RESOLUTION_MS = 2;

interface Args {
  json: boolean;
  quick: boolean;
  seconds: number;
  levels: number[];
  blackout: boolean;
  /** At 0 % after the join, then at the level before the window (ms). */
  settleMs: number;
  warmMs: number;
}

const progress = (s: string): void => {
  process.stderr.write(`[loss] ${s}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const r2 = (v: number): number => (Number.isFinite(v) ? Math.round(v * 100) / 100 : NaN);

function parse(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      json: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      seconds: { type: "string" },
      levels: { type: "string" },
      "no-blackout": { type: "boolean", default: false },
    },
  });
  const quick = values.quick === true;
  const seconds = values.seconds === undefined ? (quick ? 2 : 10) : Number(values.seconds);
  if (!(seconds > 0 && seconds <= 600)) throw new Error(`--seconds needs a number of seconds in (0, 600], got ${values.seconds}`);
  const levels = values.levels === undefined ? DEFAULT_LEVELS : values.levels.split(",").filter(Boolean).map(Number);
  if (levels.length === 0 || levels.some((l) => !(l >= 0 && l < 100))) throw new Error(`--levels needs loss percentages in [0, 100), got ${values.levels}`);
  return { json: values.json === true, quick, seconds, levels, blackout: !values["no-blackout"], settleMs: quick ? 300 : 500, warmMs: quick ? 500 : 1_000 };
}

/** Upper bound of a run's duration, for the overall time limit. */
function overallMs(a: Args): number {
  const phase = 2 * JOIN_TIMEOUT_MS + a.settleMs + a.warmMs + a.seconds * 1000 + DRAIN_MAX_MS;
  const blackout = a.blackout ? 2 * (2 * JOIN_TIMEOUT_MS + 3 * a.settleMs + BLACKOUT_MS + RECOVERY_MAX_MS + 1_000 + DRAIN_MAX_MS) : 0;
  return 2 * START_TIMEOUT_MS + a.levels.length * TRANSPORTS.length * phase + blackout + 60_000;
}

const positionsOf = (t: LossTransport): "unreliable" | "reliable" => (t === "fastnet" ? "unreliable" : "reliable");

/**
 * The server child's event-loop delay since its last answer, and (fastnet) both sides' engine counters of
 * this phase's sessions: the clients' from the SDK rooms, the server's over IPC (null for ws-transport).
 */
async function serverStats(server: ServerChild, players: LossPlayers): Promise<{ loopP99Ms: number; loopMaxMs: number; engine: { client: LossEngineStats; server: LossEngineStats } | null }> {
  const client = players.engineStats();
  const { type: _, loopP99Ms, loopMaxMs, ...srv } = await ask<LossServerChildMessage>(server, { type: "stats" }, "stats", STATS_TIMEOUT_MS);
  return { loopP99Ms, loopMaxMs, engine: client ? { client, server: srv } : null };
}

/** One (transport, loss level): join at 0 %, set the loss, warm up, measure a window, drain, back to 0 %, leave. */
async function runLevel(server: ServerChild, transport: LossTransport, pct: number, rule: LossRule, a: Args): Promise<LevelResult> {
  await rule.set(0);
  const players = await LossPlayers.join(transport, server.info.port, JOIN_TIMEOUT_MS);
  try {
    players.startPings();
    await sleep(a.settleMs);
    await rule.set(pct);
    await sleep(a.warmMs);
    await serverStats(server, players); // starts the server child's loop-delay window afresh
    const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    loop.enable();
    players.beginWindow();
    await sleep(a.seconds * 1000);
    players.endWindow();
    loop.disable();
    const srvLoop = await serverStats(server, players);
    players.stopPings();
    await players.drain(DRAIN_MAX_MS);
    const counters = await rule.counters();
    await rule.set(0);
    const s = players.stats();
    const { engine } = await serverStats(server, players);
    return {
      transport,
      loss_pct: pct,
      rel_p50_ms: r2(percentile(s.rtts, 0.5)),
      rel_p99_ms: r2(percentile(s.rtts, 0.99)),
      rel_max_ms: r2(s.rtts[s.rtts.length - 1] ?? NaN),
      rel_lost: s.lost,
      state_age_p50_ms: r2(percentile(s.ages, 0.5)),
      state_age_p99_ms: r2(percentile(s.ages, 0.99)),
      stale_max_ms: r2(s.staleMax),
      positions: positionsOf(transport),
      pings: s.sent,
      state_samples: s.ages.length,
      client_loop_p99_ms: r2(Math.max(0, loop.percentile(99) / 1e6 - LOOP_RESOLUTION_MS)),
      client_loop_max_ms: r2(Math.max(0, loop.max / 1e6 - LOOP_RESOLUTION_MS)),
      server_loop_p99_ms: r2(srvLoop.loopP99Ms),
      server_loop_max_ms: r2(srvLoop.loopMaxMs),
      drop_pct: counters.packets > 0 ? r2((counters.dropped / counters.packets) * 100) : NaN,
      failures: [...players.failures],
      engine,
    };
  } finally {
    await rule.set(0);
    await players.leave();
  }
}

/** The blackout: 0 % for a while, 100 % for BLACKOUT_MS, then 0 %; how long until every client hears again. */
async function runBlackout(server: ServerChild, transport: LossTransport, rule: LossRule, a: Args): Promise<BlackoutResult> {
  await rule.set(0);
  const players = await LossPlayers.join(transport, server.info.port, JOIN_TIMEOUT_MS);
  try {
    players.startPings();
    await sleep(a.settleMs + a.warmMs);
    players.beginWindow();
    await sleep(a.settleMs);
    await rule.set(100);
    await sleep(BLACKOUT_MS);
    await rule.set(0);
    const end = monoMs();
    players.markFrom(end);
    while (!players.recovered && monoMs() - end < RECOVERY_MAX_MS) await sleep(10);
    await sleep(a.settleMs);
    players.endWindow();
    players.stopPings();
    await players.drain(DRAIN_MAX_MS);
    const s = players.stats();
    const { engine } = await serverStats(server, players);
    const rec = players.recovery();
    const sorted = (v: number[]): number[] => v.map((x) => (Number.isNaN(x) ? Infinity : x)).sort((x, y) => x - y);
    const pong = sorted(rec.pong);
    const state = sorted(rec.state);
    const val = (v: number): number | null => (Number.isFinite(v) ? r2(v) : null);
    return {
      transport,
      blackout_ms: BLACKOUT_MS,
      first_reply_p50_ms: val(percentile(pong, 0.5)),
      first_reply_max_ms: val(pong[pong.length - 1]!),
      first_state_p50_ms: val(percentile(state, 0.5)),
      first_state_max_ms: val(state[state.length - 1]!),
      positions: positionsOf(transport),
      rel_max_ms: r2(s.rtts[s.rtts.length - 1] ?? NaN),
      rel_lost: s.lost,
      stale_max_ms: r2(s.staleMax),
      failures: [...players.failures],
      engine,
    };
  } finally {
    await rule.set(0);
    await players.leave();
  }
}

/** The benchmark proper, inside the namespace. */
async function inside(a: Args, ns: string): Promise<void> {
  const rule = await LossRule.create();
  const servers = new Map<LossTransport, ServerChild>();
  try {
    for (const t of TRANSPORTS) {
      const server = await startScriptChild(LOSS_SERVER, `loss ${t}`, [t, positionsOf(t)], START_TIMEOUT_MS);
      servers.set(t, server);
      progress(`${t}: server child on port ${server.info.port}${server.info.aead ? ` (UDP ${server.info.udpPort}, AEAD ${server.info.aead})` : ""}`);
    }
    const results: LevelResult[] = [];
    for (const [i, pct] of a.levels.entries()) {
      const order = i % 2 === 0 ? TRANSPORTS : [...TRANSPORTS].reverse();
      for (const t of order) {
        progress(`${t} at ${pct} % loss: ${a.seconds} s window`);
        const r = await runLevel(servers.get(t)!, t, pct, rule, a);
        progress(
          `  rel p50 ${r.rel_p50_ms} p99 ${r.rel_p99_ms} max ${r.rel_max_ms} ms, lost ${r.rel_lost}/${r.pings}; ` +
            `state age p50 ${r.state_age_p50_ms} p99 ${r.state_age_p99_ms}, stale max ${r.stale_max_ms} ms; dropped ${r.drop_pct} %` +
            (r.failures.length ? `; ${r.failures.join("; ")}` : ""),
        );
        results.push(r);
      }
    }
    const blackout: BlackoutResult[] = [];
    if (a.blackout) {
      for (const t of TRANSPORTS) {
        progress(`${t}: ${BLACKOUT_MS} ms blackout`);
        const b = await runBlackout(servers.get(t)!, t, rule, a);
        progress(`  first pong p50 ${b.first_reply_p50_ms} max ${b.first_reply_max_ms} ms, first fresh state p50 ${b.first_state_p50_ms} max ${b.first_state_max_ms} ms` + (b.failures.length ? `; ${b.failures.join("; ")}` : ""));
        blackout.push(b);
      }
    }
    for (const s of servers.values()) await s.stop(STOP_TIMEOUT_MS);
    servers.clear();

    console.log(`Loss: ${PLAYERS} clients in one room, a reliable ping each every ${TICK_MS} ms (echoed), positions stamped every patch (${TICK_MS} ms)`);
    console.log(`network namespace ${ns}, nftables random drop of UDP and TCP on the input hook of lo (both directions); ${a.seconds} s window per row`);
    console.log(`node ${process.version}, ${cpus().length} CPUs, ${cpuModel()}`);
    printResults(results);
    printEngine(results, blackout);
    if (a.blackout) printBlackout(blackout);
    if (a.json) console.log(JSON.stringify({ bench: "loss", results, blackout }));
  } finally {
    for (const s of servers.values()) await s.stop(STOP_TIMEOUT_MS);
    await rule.delete();
  }
}

const args = parse(process.argv.slice(2));
const ns = process.env[NETNS_ENV];
if (ns === undefined) {
  // Outside: make the namespace and run this script again in it.
  runInNamespace(SELF, process.argv.slice(2), overallMs(args) + 30_000, progress).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`loss: FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
} else {
  runBench(
    "loss",
    async () => {
      assertInNamespace(ns);
      await inside(args, ns);
    },
    overallMs(args),
  );
}
