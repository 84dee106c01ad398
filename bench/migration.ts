/**
 * Connection migration under continuous traffic, against the WebSocket baseline's reconnection, in one run.
 *
 * Setup per case: a real @colyseus/core `Server` (greet off) with a "migration" room in a child process
 * (bench/support/migration-server.ts, one fresh child per case), a @colyseus/sdk client in this process.
 * The client sends a reliable `room.send("m", seq)` every SEND_INTERVAL_MS, with seq = 0, 1, 2, ...; the
 * room answers each with `client.send("e", seq)`. Every seq must come back exactly once.
 *
 * Cases:
 *   fastnet       FastnetTransport (every option at its default) + FastnetClient joined from 127.0.0.2. A
 *                 "migration" is `room.connection.transport.rebind({ localAddress })`, alternating
 *                 127.0.0.3 / 127.0.0.2 (a new IP each time, as a network switch; loopback only), or, with
 *                 `--rebind port`, `rebind({})`: same address, a fresh port (a NAT rebinding). The old
 *                 socket is closed by rebind at once, so anything the server still sends there is lost
 *                 and must be retransmitted on the new path.
 *   ws-transport  @colyseus/ws-transport WebSocketTransport + the SDK's default `new Client(url)` (undici's
 *                 WebSocket on Node 22). A "migration" is the TCP connection dying: the client's socket
 *                 under the WebSocket is destroyed (what a network switch does to TCP; the server here
 *                 learns at once from the FIN, the best case: over a real network it would wait for its
 *                 ping timeout). The SDK then calls onDrop and reconnects with its token. Reconnection
 *                 settings: `minUptime = 0` (default 5000: no reconnection at all this soon after joining),
 *                 `delay = 10` and `minDelay = 10` (defaults 100/100), so the first retry starts 20 ms
 *                 after the drop instead of 200 ms: the baseline's best case. Messages sent while it is
 *                 disconnected are buffered by the SDK (at most maxEnqueuedMessages = 10, its default).
 *
 * Measured per migration: the time from the address change (just before the rebind call / the socket
 * destruction) to the first echo of a message sent after it, received on the new path (fastnet: on the
 * new socket; ws: necessarily on the new connection). Also for fastnet the time until rebind() resolved
 * (the client saw its probe acknowledged). Migrations start every --period-ms (default 500 ms,
 * 20 per 10 s, under the server's default rate limit of 30 per 10 s), after WARMUP_MS of traffic; after
 * the last one the sender stops and the run waits (bounded) for the echoes still due.
 * Counted: lost (seqs never echoed), duplicated (echoed more than once), the room's onDrop / onReconnect /
 * onLeave (counted in the child), and for fastnet the transport's 'migration' events and the server's
 * migration counters.
 *
 * Usage: node --import tsx bench/migration.ts [--json] [--migrations N] [--quick] [--only a,b]
 *                                             [--rebind address|port] [--pin same|split|none]
 *   --migrations N  migrations (fastnet) and connection cuts (ws-transport) per case, default 100
 *   --quick         20 migrations per case (smoke run)
 *   --only LIST     comma-separated cases to run (fastnet, ws-transport)
 *   --period-ms N   time between migration starts, default 500 (the server's default rate limit is 30
 *                   migrations per session per 10 s: below 334 ms some moves are refused; see docs/migration.md)
 *   --rebind R      fastnet: "address" (alternate 127.0.0.3/127.0.0.2, default) or "port" (fresh port)
 *   --pin P         CPU placement as in bench/rtt.ts (default "same"; falls back to "none" with a note
 *                   when taskset is unavailable and --pin was not given)
 *   --json          the last stdout line is {"bench":"migration","results":[{case, migrations,
 *                   resume_p50_ms, resume_p99_ms, lost, room_saw_drop}]}
 * Target: fastnet resume p50 within one round trip (the client's smoothed RTT before the migrations) plus
 * one keep-alive interval (the session's keepAliveMs, 1000 ms by default), 0 lost, 0 duplicated and no
 * onDrop in the room. Exit code 0 when every case ran (whatever the verdict), 1 when something failed
 * (message on stderr): a child that does not start, a join, a resume or a rebind that times out, the
 * room dropping or leaving where it must not, or the whole run exceeding OVERALL_TIMEOUT_MS.
 *
 * The SDK logs every reconnection step with console.info; those lines are dropped here so stdout holds
 * only the results (the counts come from the room instead).
 */
import { cpus } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type dgram from "node:dgram";
import { Client, type Room } from "@colyseus/sdk";
import { FastnetClient, FastnetClientTransport } from "../src/client.js";
import { applyPlacement, cpuModel, pinProcess, type AppliedPlacement } from "./support/affinity.js";
import { choiceList, parseBenchArgs, positiveIntOr, type BaseArgs } from "./support/args.js";
import { startScriptChild, type ServerChild } from "./support/children.js";
import { runBench } from "./support/run-bench.js";
import type { MigrationChildMessage, MigrationParentMessage, MigrationServerStats } from "./support/migration-server.js";
import { withTimeout } from "./support/rtt-clients.js";
import { ms2, percentile } from "./support/stats.js";
import { pad } from "./support/table.js";

const SERVER_SCRIPT = fileURLToPath(new URL("./support/migration-server.ts", import.meta.url));
type CaseName = "fastnet" | "ws-transport";
const CASES: readonly CaseName[] = ["fastnet", "ws-transport"];
const HOST = "127.0.0.1";
/** fastnet: the client joins from the first and alternates between both (loopback: 127.0.0.0/8 is all local). */
const LOCAL_ADDRESSES = ["127.0.0.2", "127.0.0.3"] as const;
const SEND_INTERVAL_MS = 5;
const WARMUP_MS = 1_000;
/** Default time between migration starts (20 per 10 s: under the server's default limit of 30 per 10 s). */
const MIGRATION_PERIOD_MS = 500;
/** ws-transport reconnection settings (see the header). */
const WS_RECONNECT = { minUptime: 0, delay: 10, minDelay: 10 } as const;
const START_TIMEOUT_MS = 30_000;
const JOIN_TIMEOUT_MS = 10_000;
/** A migration whose first echo on the new path has not come within this fails the run. */
const RESUME_TIMEOUT_MS = 15_000;
/** rebind() (fastnet) or onReconnect (ws) must have happened within this after the change. */
const SETTLE_TIMEOUT_MS = 15_000;
/** After the sender stops: wait for outstanding echoes at most this long. */
const DRAIN_TIMEOUT_MS = 3_000;
const STATS_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 3_000;
const OVERALL_TIMEOUT_MS = 10 * 60_000;

interface Args extends BaseArgs {
  migrations: number;
  only: CaseName[] | null;
  rebind: "address" | "port";
  periodMs: number;
}

function parseArgs(argv: string[]): Args {
  const { values: v, base } = parseBenchArgs(
    argv,
    { quick: { type: "boolean" }, migrations: { type: "string" }, only: { type: "string" }, "period-ms": { type: "string" }, rebind: { type: "string" } },
    "same",
  );
  if (v.rebind !== undefined && v.rebind !== "address" && v.rebind !== "port") throw new Error(`--rebind needs address or port, got ${v.rebind}`);
  return {
    ...base,
    migrations: positiveIntOr("--migrations", v.migrations, v.quick ? 20 : 100),
    only: v.only !== undefined ? choiceList("--only", v.only, CASES, "case") : null,
    rebind: v.rebind ?? "address",
    periodMs: positiveIntOr("--period-ms", v["period-ms"], MIGRATION_PERIOD_MS),
  };
}

const progress = (s: string): void => {
  process.stderr.write(`[migration] ${s}\n`);
};

/** One JSON result, exactly the documented keys. */
interface Result {
  case: CaseName;
  migrations: number;
  resume_p50_ms: number;
  resume_p99_ms: number;
  lost: number;
  room_saw_drop: number;
}

/** Everything else a case measured, for the table and the verdict. */
interface CaseReport {
  result: Result;
  what: string;
  resumeMaxMs: number;
  /** Round trip of the message that ended each resume (sent after the change, echoed on the new path). */
  ownP50Ms: number;
  ownP99Ms: number;
  /** fastnet: rebind() resolved; ws: onReconnect ran (ms after the change). */
  settleP50Ms: number;
  settleP99Ms: number;
  sent: number;
  duplicated: number;
  /** Echoes that arrived with a smaller seq than one before them (must be 0: reliable-ordered). */
  reordered: number;
  /** fastnet: smoothed RTT (ms) from the client's stats just before the migrations. */
  rttMs: number | null;
  keepAliveMs: number | null;
  server: MigrationServerStats;
}

/** The client side of a case: a joined room plus how to move it. */
interface MovingClient {
  readonly room: Room;
  /** What a later echo must satisfy to count as "on the new path" for the change made by `move`. */
  token(): unknown;
  onNewPath(token: unknown): boolean;
  /** Makes the change; resolves when the client side considers it done (rebind resolved / onReconnect). */
  move(i: number): Promise<void>;
  rttMs(): number | null;
  keepAliveMs(): number | null;
  what: string;
}

function fastnetTransport(room: Room): FastnetClientTransport {
  const t = (room.connection as { transport?: unknown } | undefined)?.transport;
  if (!(t instanceof FastnetClientTransport)) throw new Error("fastnet: the room's connection does not use FastnetClientTransport");
  return t;
}

async function openFastnet(port: number, mode: Args["rebind"]): Promise<MovingClient> {
  const sdk = new FastnetClient(`http://${HOST}:${port}`, { localAddress: LOCAL_ADDRESSES[0] });
  const room = await withTimeout(sdk.joinOrCreate("migration"), JOIN_TIMEOUT_MS, "fastnet: joinOrCreate");
  const transport = fastnetTransport(room);
  const socketNow = (): dgram.Socket | null => transport.session?.socket ?? null;
  return {
    room,
    what:
      mode === "address"
        ? `FastnetClient from ${LOCAL_ADDRESSES[0]}; rebind({ localAddress }) alternating ${LOCAL_ADDRESSES[1]} / ${LOCAL_ADDRESSES[0]} (new IP, fresh port)`
        : `FastnetClient from ${LOCAL_ADDRESSES[0]}; rebind({}) (same IP, fresh port)`,
    token: () => socketNow(),
    onNewPath: (old) => {
      const s = socketNow();
      return s !== null && s !== old;
    },
    move: (i) => transport.rebind(mode === "address" ? { localAddress: LOCAL_ADDRESSES[(i + 1) % 2] } : {}),
    rttMs: () => transport.getStats()?.rtt.smoothedMs ?? null,
    keepAliveMs: () => transport.session?.connection.options.keepAliveMs ?? null,
  };
}

/** The TCP socket under the SDK's WebSocket: `ws` keeps it as `_socket`, undici behind its 'response' symbol. */
function tcpSocketOf(ws: unknown): { destroy(): void } | null {
  if (!ws || typeof ws !== "object") return null;
  const own = (ws as { _socket?: { destroy(): void } })._socket;
  if (own && typeof own.destroy === "function") return own;
  for (const sym of Object.getOwnPropertySymbols(ws)) {
    if (sym.description !== "response") continue;
    const socket = (ws as Record<symbol, { socket?: { destroy(): void } } | undefined>)[sym]?.socket;
    if (socket && typeof socket.destroy === "function") return socket;
  }
  return null;
}

async function openWs(port: number): Promise<MovingClient> {
  const sdk = new Client(`http://${HOST}:${port}`);
  const room = await withTimeout(sdk.joinOrCreate("migration"), JOIN_TIMEOUT_MS, "ws-transport: joinOrCreate");
  room.reconnection.minUptime = WS_RECONNECT.minUptime;
  room.reconnection.delay = WS_RECONNECT.delay;
  room.reconnection.minDelay = WS_RECONNECT.minDelay;
  let reconnected: (() => void) | null = null;
  room.onReconnect(() => {
    const r = reconnected;
    reconnected = null;
    r?.();
  });
  const impl = (): string => {
    const ws = (room.connection.transport as unknown as { ws?: object }).ws;
    const G = (globalThis as { WebSocket?: Function }).WebSocket;
    return ws && G && ws instanceof G ? "globalThis.WebSocket (undici)" : "ws package";
  };
  return {
    room,
    what: `SDK Client (${impl()}); TCP socket destroyed under the WebSocket, SDK reconnects (minUptime ${WS_RECONNECT.minUptime}, delay ${WS_RECONNECT.delay}, minDelay ${WS_RECONNECT.minDelay})`,
    // Once the connection is destroyed nothing can arrive on it: every later echo is on the new one.
    token: () => null,
    onNewPath: () => true,
    move: () =>
      new Promise<void>((resolve, reject) => {
        const ws = (room.connection.transport as unknown as { ws?: unknown }).ws;
        const socket = tcpSocketOf(ws);
        if (!socket) return reject(new Error("ws-transport: cannot find the TCP socket under the SDK's WebSocket"));
        reconnected = resolve;
        socket.destroy();
      }),
    rttMs: () => null,
    keepAliveMs: () => null,
  };
}

/** Asks the child for its counters (bounded). */
function childStats(server: ServerChild): Promise<MigrationServerStats> {
  return new Promise((resolve, reject) => {
    const child = server.process;
    const timer = setTimeout(() => done(new Error(`${server.label}: no stats answer within ${STATS_TIMEOUT_MS} ms`)), STATS_TIMEOUT_MS);
    const onMessage = (msg: MigrationChildMessage): void => {
      if (msg?.type === "stats") done(null, msg);
    };
    const done = (err: Error | null, msg?: MigrationChildMessage): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      if (err) return reject(err);
      const { type: _type, ...s } = msg!;
      resolve(s);
    };
    child.on("message", onMessage);
    try {
      child.send({ type: "stats" } satisfies MigrationParentMessage);
    } catch (err) {
      done(new Error(`${server.label}: cannot ask for stats: ${(err as Error).message}`));
    }
  });
}


async function runCase(name: CaseName, args: Args): Promise<CaseReport> {
  progress(`${name}: starting the server child and joining`);
  const server = await startScriptChild(SERVER_SCRIPT, `migration ${name}`, [name], START_TIMEOUT_MS);
  if (placement.serverCpu !== null) pinProcess(server.process.pid!, placement.serverCpu);
  const client = name === "fastnet" ? await openFastnet(server.info.port, args.rebind) : await openWs(server.info.port);
  const room = client.room;
  progress(`${name}: server on port ${server.info.port}${server.info.aead ? ` (AEAD ${server.info.aead})` : ""}; ${client.what}`);

  // Failures that must end the case, from callbacks.
  let failure: Error | null = null;
  let failWaiter: ((err: Error) => void) | null = null;
  const fail = (err: Error): void => {
    failure ??= err;
    failWaiter?.(err);
  };
  let leaving = false;
  room.onLeave((code, reason) => {
    if (!leaving) fail(new Error(`${name}: left the room (code ${code}${reason ? `, ${reason}` : ""})`));
  });
  room.onError((code, message) => fail(new Error(`${name}: room error ${code}${message ? `: ${message}` : ""}`)));
  if (name === "fastnet") {
    room.onDrop((code, reason) => fail(new Error(`fastnet: the SDK saw a drop (code ${code}${reason ? `, ${reason}` : ""}): the session did not survive a migration`)));
  }
  server.onUnexpectedExit = (why) => fail(new Error(`${name}: server child ${why}\n${server.output()}`));

  // Echo bookkeeping: counts per seq, in a growable array (the run sends ~ duration / SEND_INTERVAL_MS).
  let counts = new Uint8Array(1 << 14);
  let nextSeq = 0;
  let received = 0;
  let duplicated = 0;
  let reordered = 0;
  let maxSeen = -1;
  /** The change being measured: `sentAt` is when its first message (seq `threshold`) left. */
  let pending: { threshold: number; t0: number; token: unknown; sentAt: number; resolve: (ms: number, ownMs: number) => void } | null = null;
  let drainWaiter: (() => void) | null = null;
  room.onMessage("e", (seq: unknown) => {
    const now = performance.now();
    if (typeof seq !== "number" || !Number.isInteger(seq) || seq < 0 || seq >= nextSeq) {
      fail(new Error(`${name}: echo with an unexpected sequence number ${String(seq)} (sent 0..${nextSeq - 1})`));
      return;
    }
    if (counts[seq]! > 0) duplicated++;
    else received++;
    if (counts[seq]! < 255) counts[seq]!++;
    if (seq < maxSeen) reordered++;
    else maxSeen = seq;
    const p = pending;
    if (p && seq >= p.threshold && client.onNewPath(p.token)) {
      pending = null;
      p.resolve(now - p.t0, now - p.sentAt);
    }
    if (drainWaiter && received === nextSeq) drainWaiter();
  });
  const sender = setInterval(() => {
    if (failure) return;
    const seq = nextSeq++;
    if (seq >= counts.length) {
      const bigger = new Uint8Array(counts.length * 2);
      bigger.set(counts);
      counts = bigger;
    }
    if (pending && seq === pending.threshold) pending.sentAt = performance.now();
    try {
      room.send("m", seq);
    } catch (err) {
      fail(new Error(`${name}: send of seq ${seq} threw: ${(err as Error).message}`));
    }
  }, SEND_INTERVAL_MS);

  const resume: number[] = [];
  /** Of each resume, the round trip of the message that ended it (the rest is waiting for the next send). */
  const own: number[] = [];
  const settle: number[] = [];
  const rtts: number[] = [];
  let keepAliveMs: number | null = null;
  try {
    await sleep(WARMUP_MS);
    if (failure) throw failure;
    let nextStart = performance.now();
    for (let i = 0; i < args.migrations; i++) {
      const wait = nextStart - performance.now();
      if (wait > 0) await sleep(wait);
      if (failure) throw failure;
      const rtt = client.rttMs();
      if (rtt !== null) rtts.push(rtt);
      keepAliveMs ??= client.keepAliveMs();
      const token = client.token();
      const threshold = nextSeq;
      const t0 = performance.now();
      nextStart = t0 + args.periodMs;
      let ownMs = NaN;
      const resumed = new Promise<number>((resolve) => {
        pending = {
          threshold,
          t0,
          token,
          sentAt: NaN,
          resolve: (ms, o) => {
            ownMs = o;
            resolve(ms);
          },
        };
      });
      // Started before waiting for the resume; its rejection is observed below (no unhandled rejection).
      const moved = client.move(i).then(
        () => ({ ok: true as const, ms: performance.now() - t0 }),
        (err: Error) => ({ ok: false as const, err }),
      );
      const failed = new Promise<never>((_, reject) => {
        failWaiter = reject;
        if (failure) reject(failure);
      });
      failed.catch(() => {}); // observed through the races below; never unhandled
      const resumeMs = await Promise.race([
        withTimeout(resumed, RESUME_TIMEOUT_MS, `${name}: migration ${i + 1}: first echo on the new path`),
        failed,
        moved.then((m) => (m.ok ? new Promise<never>(() => {}) : Promise.reject(new Error(`${name}: migration ${i + 1}: ${m.err.message}`)))),
      ]);
      const m = await Promise.race([withTimeout(moved, SETTLE_TIMEOUT_MS, `${name}: migration ${i + 1}: ${name === "fastnet" ? "rebind()" : "onReconnect"}`), failed]);
      failWaiter = null;
      if (!m.ok) throw new Error(`${name}: migration ${i + 1}: ${m.err.message}`);
      resume.push(resumeMs);
      own.push(ownMs);
      settle.push(m.ms);
      if ((i + 1) % 20 === 0 || i + 1 === args.migrations) {
        progress(`${name}: ${i + 1}/${args.migrations} migrations, last resume ${resumeMs.toFixed(2)} ms`);
      }
    }
  } finally {
    clearInterval(sender);
    pending = null;
  }

  // Drain: every seq sent must come back (lost ones never will: bounded wait).
  if (received < nextSeq) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, DRAIN_TIMEOUT_MS);
      function done(): void {
        clearTimeout(timer);
        drainWaiter = null;
        resolve();
      }
      drainWaiter = done;
    });
  }
  if (failure) throw failure;
  const stats = await childStats(server);
  const lost = nextSeq - received;
  leaving = true;
  await withTimeout(room.leave(true), JOIN_TIMEOUT_MS, `${name}: leave`).catch(() => undefined);
  await server.stop(STOP_TIMEOUT_MS);

  const rs = [...resume].sort((a, b) => a - b);
  const ss = [...settle].sort((a, b) => a - b);
  const os = [...own].sort((a, b) => a - b);
  const rt = [...rtts].sort((a, b) => a - b);
  return {
    result: {
      case: name,
      migrations: resume.length,
      resume_p50_ms: ms2(percentile(rs, 0.5)),
      resume_p99_ms: ms2(percentile(rs, 0.99)),
      lost,
      room_saw_drop: stats.drops,
    },
    what: client.what,
    resumeMaxMs: ms2(rs[rs.length - 1] ?? NaN),
    ownP50Ms: ms2(percentile(os, 0.5)),
    ownP99Ms: ms2(percentile(os, 0.99)),
    settleP50Ms: ms2(percentile(ss, 0.5)),
    settleP99Ms: ms2(percentile(ss, 0.99)),
    sent: nextSeq,
    duplicated,
    reordered,
    rttMs: rt.length > 0 ? percentile(rt, 0.5) : null,
    keepAliveMs,
    server: stats,
  };
}

/** Where the processes run, decided once in main(). */
let placement: AppliedPlacement = { serverCpu: null, note: "" };

function printReport(reports: CaseReport[], args: Args): boolean | null {
  const f = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : "n/a");
  console.log(`Connection migration under continuous traffic: room.send("m", seq) every ${SEND_INTERVAL_MS} ms, each echoed by the room; a migration every ${args.periodMs} ms after ${WARMUP_MS} ms of traffic`);
  console.log(`server (@colyseus/core Server) in a child process per case, client (@colyseus/sdk) here; node ${process.version}, ${cpus().length} CPUs, ${cpuModel()}; placement ${placement.note}`);
  for (const r of reports) console.log(`${r.result.case}: ${r.what}`);
  console.log(`resume = change (rebind call / TCP socket destroyed) -> first echo, on the new path, of a message sent after it (includes up to ${SEND_INTERVAL_MS} ms waiting for the next send);`);
  console.log(`msg rtt = that message's own round trip (its send -> its echo); settle = rebind() resolved (fastnet) / onReconnect ran (ws); all in ms`);
  console.log(
    `${"case".padEnd(14)}${pad("migr.", 6)}${pad("resume p50", 11)}${pad("p99", 8)}${pad("max", 8)}${pad("msg rtt p50", 12)}${pad("p99", 8)}${pad("settle p50", 11)}${pad("p99", 8)}` +
      `${pad("sent", 7)}${pad("lost", 6)}${pad("dup", 5)}${pad("onDrop", 7)}${pad("onRecon", 8)}${pad("onLeave", 8)}${pad("srv migr.", 10)}`,
  );
  for (const r of reports) {
    const x = r.result;
    const srvMigr = r.server.engine ? `${r.server.migrationEvents}` : "-";
    console.log(
      `${x.case.padEnd(14)}${pad(x.migrations, 6)}${pad(f(x.resume_p50_ms), 11)}${pad(f(x.resume_p99_ms), 8)}${pad(f(r.resumeMaxMs), 8)}${pad(f(r.ownP50Ms), 12)}${pad(f(r.ownP99Ms), 8)}${pad(f(r.settleP50Ms), 11)}${pad(f(r.settleP99Ms), 8)}` +
        `${pad(r.sent, 7)}${pad(x.lost, 6)}${pad(r.duplicated, 5)}${pad(x.room_saw_drop, 7)}${pad(r.server.reconnects, 8)}${pad(r.server.leaves, 8)}${pad(srvMigr, 10)}`,
    );
  }
  for (const r of reports) {
    if (r.server.engine) {
      const e = r.server.engine;
      console.log(
        `${r.result.case} server counters: migrations ${e.migrations}, refused by the rate limit ${e.migrationsRefused}, path validations failed ${e.pathValidationsFailed}, ` +
          `stateless resets ${e.statelessResetsSent}; echoes out of order ${r.reordered}`,
      );
    }
  }
  const fn = reports.find((r) => r.result.case === "fastnet");
  if (!fn) {
    console.log(`target: n/a (needs the fastnet case)`);
    return null;
  }
  const rtt = fn.rttMs ?? NaN;
  const keepAlive = fn.keepAliveMs ?? NaN;
  const limit = rtt + keepAlive;
  const x = fn.result;
  const ok50 = x.resume_p50_ms <= limit;
  const okLost = x.lost === 0 && fn.duplicated === 0;
  const okDrop = x.room_saw_drop === 0 && fn.server.leaves === 0;
  const pass = ok50 && okLost && okDrop && x.migrations === args.migrations;
  console.log(
    `target: fastnet resume p50 ${f(x.resume_p50_ms)} ms <= RTT ${f(rtt)} ms (client's smoothed RTT before the migrations, median) + keep-alive ${keepAlive} ms = ${f(limit)} ms (${ok50 ? "ok" : "over"}); ` +
      `lost ${x.lost}, duplicated ${fn.duplicated} (${okLost ? "ok" : "not 0"}); room onDrop ${x.room_saw_drop} (${okDrop ? "ok" : "not 0"}) -> ${pass ? "PASS" : "FAIL"}`,
  );
  return pass;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const names = args.only ? CASES.filter((n) => args.only!.includes(n)) : [...CASES];
  placement = applyPlacement(args, "none: placement left to the scheduler");
  progress(`node ${process.version}, ${cpus().length} CPUs (${cpuModel()}); placement ${placement.note}; ${args.migrations} migrations per case`);
  // The SDK narrates every reconnection step on console.info (stdout): keep stdout for the results.
  console.info = () => {};
  const reports: CaseReport[] = [];
  for (const name of names) reports.push(await runCase(name, args));
  printReport(reports, args);
  if (args.json) console.log(JSON.stringify({ bench: "migration", results: reports.map((r) => r.result) }));
}

// Children never outlive us: killed on normal exit, on error and on signals.
runBench("migration", main, OVERALL_TIMEOUT_MS);

