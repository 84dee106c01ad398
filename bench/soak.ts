/**
 * Soak, outside `npm test` (issue 7, item 7): a FastnetServer in a child process (bench/support/soak-server.ts,
 * echoing every reliable message and datagram) and, in this process, clients behind a lossy relay
 * (bench/support/soak-relay.ts: loss, duplication and reordering both ways; one NAT mapping per client
 * socket). For --minutes:
 *   - --clients steady clients each send a reliable message and a datagram every 1000/--rate ms;
 *   - every --migrate-every-s one of them moves to a new local socket on another loopback address
 *     (rebind: a migration the server validates), round robin;
 *   - every --churn-every-s a client joins, exchanges 20 to 100 messages, and leaves: three in four
 *     close the session, one in four vanishes (the relay cuts its path; the server times it out);
 *   - a hostile player (bench/support/soak-hostile.ts, on the test suite's HostileClient) cycles through
 *     the misbehaviours of issue 7 item 5 beside them, one fresh session per turn (--no-hostile: none).
 * Every reliable message must be echoed exactly once, in order, intact (checked by each client; the
 * server checks the order it receives). Every SAMPLE period the server is asked, after a forced full
 * garbage collection, for its RSS and heap; heap and RSS growth per hour are the least-squares slopes
 * over the samples after the warm-up. The hostile player pauses for each sample until the server has
 * closed its sessions (bounded by QUIET_TIMEOUT_MS): the megabyte or so an attacking session may hold
 * would otherwise come and go between samples and drown a slope of under 1 MiB per hour. The server's event-loop delay (monitorEventLoopDelay, 2 ms
 * resolution, paused around the forced collections) is read over the same span.
 *
 * Usage: npm run soak -- [--minutes N] [--clients N] [--rate HZ] [--loss P] [--migrate-every-s S]
 *                        [--churn-every-s S] [--warmup-minutes M] [--no-hostile] [--seed S] [--json]
 *   defaults: 30 minutes, 8 clients, 50 messages/s each, loss 0.02 (each way), a migration every 10 s,
 *   a join every 3 s, warm-up min(5, max(0.5, minutes / 6)) minutes
 *   --json  the last stdout line is {"bench":"soak","minutes","lost","order_errors","messages",
 *           "migrations","joins","hostile_turns","rss_mb":{start,end},"heap_mb":{start,end},
 *           "heap_growth_mb_per_hour","rss_growth_mb_per_hour","loop_p99_ms","pass"}
 * Target (issue 7): 30 minutes, 0 lost, heap growth under 1 MiB per hour after the warm-up. Lost and
 * order errors must be 0 in any run; the growth is judged only when at least MIN_FIT_MINUTES of samples
 * follow the warm-up (shorter runs print it, marked n/a). Exit code 0 on a pass, 1 otherwise.
 */
import { availableParallelism } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { numberIn, parseBenchArgs, positiveInt, type BaseArgs } from "./support/args.js";
import { cpuModel } from "./support/affinity.js";
import { startScriptChild, type ServerChild } from "./support/children.js";
import { Rng } from "./support/fuzz-rng.js";
import { runBench } from "./support/run-bench.js";
import { SoakClient } from "./support/soak-clients.js";
import { SoakHostile } from "./support/soak-hostile.js";
import { SoakRelay } from "./support/soak-relay.js";
import type { SoakChildMessage, SoakParentMessage, SoakSample } from "./support/soak-server.js";
import { withTimeout } from "./support/rtt-clients.js";

const SERVER_SCRIPT = fileURLToPath(new URL("./support/soak-server.ts", import.meta.url));
const HOST = "127.0.0.1";
/** Steady clients start here and migrate between these (loopback: all of 127.0.0.0/8 is local). */
const ADDRESSES = ["127.0.0.2", "127.0.0.3"] as const;
const CHURN_ADDRESS = "127.0.0.4";
const START_TIMEOUT_MS = 60_000;
const SAMPLE_TIMEOUT_MS = 15_000;
/** How long a sample waits for the server to close the hostile player's sessions (idle timeout is 10 s). */
const QUIET_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
/** After the traffic stops: how long outstanding echoes may take. */
const DRAIN_MS = 20_000;
/** Churn clients: messages each, how many at once, how long each may wait for its echoes. */
const CHURN_MESSAGES = [20, 100] as const;
const MAX_CHURN_AT_ONCE = 4;
const CHURN_DRAIN_MS = 20_000;
/** The growth verdict needs this many minutes of samples after the warm-up. */
const MIN_FIT_MINUTES = 10;
const HEAP_GROWTH_LIMIT_MB_PER_HOUR = 1;

interface Args extends BaseArgs {
  minutes: number;
  clients: number;
  rate: number;
  loss: number;
  migrateEveryS: number;
  churnEveryS: number;
  warmupMinutes: number | null;
  hostile: boolean;
  seed: string;
}

function parseArgs(argv: string[]): Args {
  const { values: v, base } = parseBenchArgs(
    argv,
    {
      minutes: { type: "string" },
      clients: { type: "string" },
      rate: { type: "string" },
      loss: { type: "string" },
      "migrate-every-s": { type: "string" },
      "churn-every-s": { type: "string" },
      "warmup-minutes": { type: "string" },
      "no-hostile": { type: "boolean" },
      seed: { type: "string" },
    },
    "none",
  );
  if (base.pinExplicit) throw new Error("--pin does not apply to the soak");
  if (v.seed === "") throw new Error("--seed needs a value");
  const num = (flag: string, dflt: number, min: number, max: number): number => {
    const s = v[flag.slice(2) as keyof typeof v] as string | undefined;
    return s === undefined ? dflt : numberIn(flag, s, min, max);
  };
  return {
    ...base,
    minutes: num("--minutes", 30, 0.1, 24 * 60),
    clients: v.clients !== undefined ? Math.min(positiveInt("--clients", v.clients), 64) : 8,
    rate: num("--rate", 50, 0.1, 500),
    loss: num("--loss", 0.02, 0, 0.5),
    migrateEveryS: num("--migrate-every-s", 10, 1, 3600),
    churnEveryS: num("--churn-every-s", 3, 0.2, 3600),
    warmupMinutes: v["warmup-minutes"] !== undefined ? numberIn("--warmup-minutes", v["warmup-minutes"], 0, 600) : null,
    hostile: !v["no-hostile"],
    seed: v.seed ?? `t${Date.now().toString(36)}`,
  };
}

const progress = (s: string): void => {
  process.stderr.write(`[soak] ${s}\n`);
};
const r2 = (v: number): number => Math.round(v * 100) / 100;

/** Asks the server child for a sample (bounded). */
function sample(server: ServerChild, gc: boolean): Promise<SoakSample> {
  return new Promise((resolve, reject) => {
    const child = server.process;
    const timer = setTimeout(() => done(new Error(`no sample from the server within ${SAMPLE_TIMEOUT_MS} ms`)), SAMPLE_TIMEOUT_MS);
    const onMessage = (m: SoakChildMessage): void => {
      if (m?.type === "sample") done(null, m);
    };
    const done = (err: Error | null, m?: SoakChildMessage): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      if (err) return reject(err);
      const { type: _t, ...s } = m!;
      resolve(s);
    };
    child.on("message", onMessage);
    try {
      child.send({ type: "sample", gc } satisfies SoakParentMessage);
    } catch (err) {
      done(err as Error);
    }
  });
}

/** Least-squares slope of y over x; NaN with fewer than 2 points. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += xs[i]!;
    my += ys[i]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  return sxx === 0 ? NaN : sxy / sxx;
}

async function main(args: Args): Promise<void> {
  const durationMs = args.minutes * 60_000;
  const warmupMs = (args.warmupMinutes ?? Math.min(5, Math.max(0.5, args.minutes / 6))) * 60_000;
  const sampleMs = Math.max(10_000, Math.min(30_000, durationMs / 40));
  progress(
    `seed ${args.seed}; ${args.minutes} min, ${args.clients} clients at ${args.rate}/s, loss ${args.loss}, a migration every ${args.migrateEveryS} s, ` +
      `a join every ${args.churnEveryS} s; warm-up ${(warmupMs / 60_000).toFixed(1)} min, a sample every ${sampleMs / 1000} s; node ${process.version}, ${availableParallelism()} CPUs (${cpuModel()})`,
  );
  const rng = new Rng(args.seed, "soak");
  const relay = new SoakRelay({ loss: args.loss, duplicate: args.loss / 4, reorder: args.loss / 2 }, new Rng(args.seed, "relay"));
  const relayPort = await relay.listen();
  const server = await startScriptChild(SERVER_SCRIPT, "soak", [String(relayPort), String(Math.ceil(args.minutes * 60_000 + 5 * 60_000))], START_TIMEOUT_MS, ["--expose-gc"]);
  relay.setServer(server.info.udpPort);
  const url = `http://${HOST}:${server.info.port}`;
  const fingerprint = server.info.fingerprint!;
  let failure: string | null = null;
  server.onUnexpectedExit = (why) => {
    failure ??= `server child ${why}\n${server.output()}`;
  };

  const steady: SoakClient[] = [];
  const finishedChurn: SoakClient[] = [];
  const activeChurn = new Set<Promise<void>>();
  const samples: SoakSample[] = [];
  const counters = { migrations: 0, migrationFailures: 0, joins: 0, leaves: 0, vanished: 0, joinFailures: 0 };
  const hostile = args.hostile ? new SoakHostile(url, Buffer.from(fingerprint, "hex"), new Rng(args.seed, "hostile")) : null;
  let hostileRun: Promise<void> | null = null;
  let nextId = 1;
  const timers: NodeJS.Timeout[] = [];
  try {
    for (let i = 0; i < args.clients; i++) {
      const c = new SoakClient(nextId++, new Rng(args.seed, "client", i));
      await c.connect(url, fingerprint, ADDRESSES[i % 2]!);
      steady.push(c);
    }
    progress(`server on ${url} (UDP ${server.info.udpPort}, AEAD ${server.info.aead}), relay on ${relayPort}; ${steady.length} clients connected`);
    const t0 = performance.now();
    const first = await sample(server, true);
    samples.push(first);
    hostileRun = hostile?.run().catch((err: Error) => {
      failure ??= `hostile player failed: ${err.stack ?? err.message}`;
    }) ?? null;

    // Steady traffic.
    timers.push(
      setInterval(() => {
        for (const c of steady) {
          c.sendMessage();
          c.sendDatagram();
        }
      }, 1000 / args.rate),
    );
    // Migrations, round robin, to the other loopback address.
    let migrating = false;
    let turn = 0;
    timers.push(
      setInterval(() => {
        if (migrating || failure) return;
        const c = steady[turn++ % steady.length]!;
        const to = c.localAddress === ADDRESSES[0] ? ADDRESSES[1] : ADDRESSES[0];
        migrating = true;
        c.rebind(to).then(
          () => {
            counters.migrations++;
            migrating = false;
          },
          (err: Error) => {
            counters.migrationFailures++;
            progress(`migration of client ${c.id} failed: ${err.message}`);
            migrating = false;
          },
        );
      }, args.migrateEveryS * 1000),
    );
    // Joins and leaves.
    timers.push(
      setInterval(() => {
        if (activeChurn.size >= MAX_CHURN_AT_ONCE || failure) return;
        const c = new SoakClient(nextId++, new Rng(args.seed, "churn", nextId));
        const run = churn(c).finally(() => {
          activeChurn.delete(run);
          finishedChurn.push(c);
        });
        activeChurn.add(run);
      }, args.churnEveryS * 1000),
    );
    const churn = async (c: SoakClient): Promise<void> => {
      try {
        await c.connect(url, fingerprint, CHURN_ADDRESS, { autoRebindAfterKeepAlives: 0 });
      } catch (err) {
        counters.joinFailures++;
        c.failure = `join failed: ${(err as Error).message}`;
        return;
      }
      counters.joins++;
      const n = rng.range(...CHURN_MESSAGES);
      for (let i = 0; i < n; i++) {
        c.sendMessage();
        await sleep(1000 / args.rate);
      }
      await c.drained(CHURN_DRAIN_MS);
      if (rng.chance(0.25)) {
        relay.cut(CHURN_ADDRESS, c.localPort);
        c.vanish();
        counters.vanished++;
      } else {
        await c.close();
        counters.leaves++;
      }
    };

    /** A heap sample taken with no hostile session open on the server (bounded wait); the player resumes after. */
    const quietSample = async (): Promise<SoakSample> => {
      if (!hostile) return sample(server, true);
      await hostile.pause();
      const until = performance.now() + QUIET_TIMEOUT_MS;
      while ((await sample(server, false)).hostileLive > 0 && performance.now() < until) await sleep(250);
      const s = await sample(server, true);
      hostile.resume();
      return s;
    };

    // Samples, the warm-up mark, progress, until the end (or a failure).
    let warm = false;
    /** Index of the first sample after the warm-up: the growth fit starts there. */
    let fitFrom = -1;
    let nextSample = t0 + sampleMs;
    let nextProgress = t0 + 60_000;
    while (performance.now() - t0 < durationMs) {
      await sleep(Math.min(1000, Math.max(0, t0 + durationMs - performance.now())));
      for (const c of steady) if (c.failure) failure ??= c.failure;
      if (failure) break;
      const now = performance.now();
      if (!warm && now - t0 >= warmupMs) {
        warm = true;
        server.process.send({ type: "loop-reset" } satisfies SoakParentMessage);
        fitFrom = samples.length;
        samples.push(await quietSample());
      } else if (now >= nextSample) {
        nextSample = now + sampleMs;
        samples.push(await quietSample());
      }
      if (now >= nextProgress) {
        nextProgress = now + 60_000;
        const s = samples[samples.length - 1]!;
        const sent = steady.reduce((a, c) => a + c.counts.sent, 0);
        progress(
          `${((now - t0) / 60_000).toFixed(1)} min: ${sent} messages sent by steady clients, ${counters.migrations} migrations, ${counters.joins} joins; ` +
            `server heap ${s.heapMb.toFixed(2)} MiB, RSS ${s.rssMb.toFixed(1)} MiB, ${s.sessions} sessions`,
        );
      }
    }
    for (const t of timers) clearInterval(t);
    timers.length = 0;
    hostile?.stop();
    if (hostileRun) await withTimeout(hostileRun, 30_000, "the hostile player stopping");
    if (failure) throw new Error(failure);

    // Drain: every steady message must come back; churn clients finish (bounded).
    await Promise.all(steady.map((c) => c.drained(DRAIN_MS)));
    await withTimeout(Promise.all([...activeChurn]), CHURN_DRAIN_MS + 30_000, "churn clients finishing").catch((err: Error) => {
      failure ??= err.message;
    });
    // The last sample once the server has closed the sessions of vanished churn clients and of the
    // hostile player (bounded): what is left is the steady clients' state.
    const quietUntil = performance.now() + QUIET_TIMEOUT_MS;
    for (let s = await sample(server, false); (s.sessions > steady.length || s.hostileLive > 0) && performance.now() < quietUntil; s = await sample(server, false)) await sleep(250);
    const last = await sample(server, true);
    samples.push(last);
    const durationMin = (performance.now() - t0) / 60_000;

    // Results.
    const all = [...steady, ...finishedChurn];
    const lost = all.reduce((a, c) => a + c.outstanding, 0);
    const clientOrder = all.reduce((a, c) => a + c.counts.orderErrors, 0);
    const orderErrors = clientOrder + last.orderErrors;
    const messages = all.reduce((a, c) => a + c.counts.sent, 0);
    const dgSent = all.reduce((a, c) => a + c.counts.datagramsSent, 0);
    const dgEchoed = all.reduce((a, c) => a + c.counts.datagramsEchoed, 0);
    const blocked = all.reduce((a, c) => a + c.counts.blocked, 0);
    const failures = all.map((c) => c.failure).filter((f): f is string => f !== null);
    const fit = fitFrom >= 0 ? samples.slice(fitFrom) : [];
    const hours = fit.map((s) => (s.t - fit[0]!.t) / 3_600_000);
    const heapGrowth = slope(hours, fit.map((s) => s.heapMb));
    const rssGrowth = slope(hours, fit.map((s) => s.rssMb));
    const fitMinutes = fit.length > 1 ? (fit[fit.length - 1]!.t - fit[0]!.t) / 60_000 : 0;
    const growthJudged = fitMinutes >= MIN_FIT_MINUTES;
    const growthOk = !growthJudged || heapGrowth < HEAP_GROWTH_LIMIT_MB_PER_HOUR;
    const pass = lost === 0 && orderErrors === 0 && failures.length === 0 && !failure && growthOk;

    console.log(`Soak: ${durationMin.toFixed(1)} min, seed ${args.seed}; node ${process.version}, ${availableParallelism()} CPUs (${cpuModel()}); server in a child process, clients here behind a lossy relay`);
    console.log(
      `relay: loss ${args.loss} each way, duplication ${args.loss / 4}, reordering ${args.loss / 2}; ${relay.stats.toServer} datagrams to the server, ${relay.stats.toClient} to clients, ` +
        `${relay.stats.dropped} dropped, ${relay.stats.duplicated} duplicated, ${relay.stats.reordered} reordered, ${relay.stats.flowsOpened} flows`,
    );
    console.log(
      `reliable: ${messages} messages sent (${steady.length} steady + ${finishedChurn.length} churn clients), lost ${lost}, out of order/duplicated/corrupt ${orderErrors} ` +
        `(client ${clientOrder}, server ${last.orderErrors}); send queue full ${blocked} times (not sent, not lost)`,
    );
    console.log(`unreliable: ${dgSent} datagrams sent, ${dgEchoed} echoes received (${dgSent > 0 ? ((100 * dgEchoed) / dgSent).toFixed(1) : "0"} %)`);
    console.log(
      `migrations: ${counters.migrations} done, ${counters.migrationFailures} failed; server saw ${last.migrations}; joins ${counters.joins} (failed ${counters.joinFailures}), ` +
        `leaves ${counters.leaves} closed + ${counters.vanished} vanished; server sessions opened ${last.sessionsOpened}, closed ${last.sessionsClosed}, open now ${last.sessions}`,
    );
    if (hostile) {
      const c = hostile.counts;
      const turns = Object.entries(c.turns).map(([b, n]) => `${b} ${n}`).join(", ");
      const endings = Object.entries(c.endings).map(([e, n]) => `${n}x ${e}`).join("; ");
      console.log(`hostile player: ${Object.values(c.turns).reduce((a, n) => a + n, 0)} turns (${turns}), ${c.packets} packets, ${c.openFailures} binds lost; server sessions ${last.hostileSessions}; endings: ${endings}`);
    } else console.log("hostile player: off (--no-hostile)");
    const peakHeld = Math.max(...samples.map((s) => s.heldBytesMax));
    console.log(
      `server memory (after forced GC): RSS ${first.rssMb.toFixed(1)} -> ${last.rssMb.toFixed(1)} MiB, heap ${first.heapMb.toFixed(2)} -> ${last.heapMb.toFixed(2)} MiB; ` +
        `engine heldBytes at the end ${(last.heldBytes / 1024).toFixed(0)} KiB in all; largest session at any sample ${(peakHeld / 1024).toFixed(0)} KiB`,
    );
    console.log(
      `growth after warm-up (least squares over ${fit.length} samples, ${fitMinutes.toFixed(1)} min): heap ${r2(heapGrowth)} MiB/h, RSS ${r2(rssGrowth)} MiB/h`,
    );
    console.log(`server event-loop delay after warm-up: p50 ${r2(last.loopP50Ms)} ms, p99 ${r2(last.loopP99Ms)} ms, max ${r2(last.loopMaxMs)} ms (${last.loopSamples} samples)`);
    for (const f of failures.slice(0, 10)) console.log(`failure: ${f}`);
    if (failure) console.log(`failure: ${failure}`);
    console.log(
      `target: lost 0 (${lost}), out of order 0 (${orderErrors}), heap growth < ${HEAP_GROWTH_LIMIT_MB_PER_HOUR} MiB/h after warm-up ` +
        `(${growthJudged ? `${r2(heapGrowth)}` : `n/a: ${fitMinutes.toFixed(1)} min of samples, needs ${MIN_FIT_MINUTES}`}) -> ${pass ? "PASS" : "FAIL"}`,
    );
    if (args.json) {
      console.log(
        JSON.stringify({
          bench: "soak",
          minutes: r2(durationMin),
          lost,
          order_errors: orderErrors,
          messages,
          migrations: counters.migrations,
          joins: counters.joins,
          hostile_turns: hostile ? Object.values(hostile.counts.turns).reduce((a, n) => a + n, 0) : 0,
          rss_mb: { start: r2(first.rssMb), end: r2(last.rssMb) },
          heap_mb: { start: r2(first.heapMb), end: r2(last.heapMb) },
          heap_growth_mb_per_hour: r2(heapGrowth),
          rss_growth_mb_per_hour: r2(rssGrowth),
          loop_p99_ms: r2(last.loopP99Ms),
          pass,
        }),
      );
    }
    if (!pass) throw new Error("target missed");
  } finally {
    for (const t of timers) clearInterval(t);
    hostile?.stop();
    await Promise.all(steady.map((c) => c.close().catch(() => {})));
    await server.stop(STOP_TIMEOUT_MS);
    relay.close();
  }
}

let parsed: Args;
try {
  parsed = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`soak: ${(err as Error).message}\n`);
  process.exit(1);
}
runBench("soak", () => main(parsed), (parsed.minutes + 5) * 60_000);
