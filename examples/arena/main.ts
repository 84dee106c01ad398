/**
 * `npm start`: the arena server and BOTS bots (default 5) in one process, with a live status line.
 *
 *   BOTS=8 npm start                   more players
 *   DURATION_MS=5000 npm start         stop by itself after 5 s (or: npm start -- --duration 5000)
 *   PORT=3000 npm start                another port (TCP for matchmaking/handshake, UDP for the game)
 *
 * The bots run in this process: each has its own FastnetClient and so its own UDP socket and
 * encrypted session, exactly as separate processes would, and one process keeps the shutdown (bots
 * leave, then the server stops) simple to follow. To run them apart, start server.ts and bot.ts.
 *
 * Ctrl-C (SIGINT) or SIGTERM: the bots leave (consented), `server.gracefullyShutdown(false)` closes the
 * rooms and the transport, and the process exits 0 once every socket and timer is closed. A second
 * Ctrl-C exits at once (130).
 */
import type { EventEmitter } from "node:events";
import { parseArgs } from "node:util";
import { ArenaBot, type BotSample } from "./bot.js";
import { FastnetClient } from "../../src/client.js";
import { arenaCounters } from "./room.js";
import { startArenaServer, type ArenaServer } from "./server.js";

const BOTS = Math.max(0, Math.floor(Number(process.env.BOTS ?? 5)) || 0);
const DURATION_MS = durationArg() ?? (process.env.DURATION_MS ? Number(process.env.DURATION_MS) : 0);
const tty = process.stdout.isTTY === true;

let stopping: Promise<void> | null = null;
let statusShown = false;
const bots: ArenaBot[] = [];
let statusTimer: NodeJS.Timeout | undefined;
let durationTimer: NodeJS.Timeout | undefined;
const startedAt = performance.now();

/** Prints a line above the status line (the status line is redrawn after it). */
function log(line: string): void {
  if (tty && statusShown) process.stdout.write(`\r\x1b[K${line}\n`);
  else console.log(line);
  statusShown = false;
}

// --- migrations: the engine's counter if it has one, else the 'migration' events we saw ---------------
let migrationEvents = 0;
function watchMigrations(a: ArenaServer): () => number {
  const engine = a.transport.engine as unknown as EventEmitter & { stats: Record<string, unknown> };
  engine.on?.("migration", () => migrationEvents++);
  return () => (typeof engine.stats.migrations === "number" ? engine.stats.migrations : migrationEvents);
}

function statusLine(migrations: number): string {
  const samples: BotSample[] = bots.map((b) => b.sample());
  const rtts = samples.map((s) => s.rttMs).filter((r): r is number => r !== null && r > 0);
  const mins = bots.map((b) => b.minRttMs()).filter((r): r is number => r !== null && r > 0);
  const sum = (f: (s: BotSample) => number): number => samples.reduce((a, s) => a + f(s), 0);
  const avgRtt = rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : 0;
  const maxRtt = rtts.length ? Math.max(...rtts) : 0;
  const minRtt = mins.length ? Math.min(...mins) : 0;
  const held = arenaCounters.dropped > 0 ? ` (${arenaCounters.dropped} reconnecting)` : "";
  const secs = Math.round((performance.now() - startedAt) / 1000);
  return (
    `players ${arenaCounters.players}${held} | ` +
    `rtt avg ${ms(avgRtt)} max ${ms(maxRtt)} min ${ms(minRtt)} ms | ` +
    `up ${sum((s) => s.sentPerSec).toFixed(0)} down ${sum((s) => s.receivedPerSec).toFixed(0)} msg/s | ` +
    `patches ${sum((s) => s.patchesPerSec).toFixed(0)}/s | migrations ${migrations} | ` +
    `coins ${arenaCounters.coinsCollected} | chat ${arenaCounters.chatsReceived} | ${secs}s`
  );
}

/** Milliseconds with two decimals below 10 ms (loopback RTTs are fractions of one), one above. */
function ms(v: number): string {
  return v < 10 ? v.toFixed(2) : v.toFixed(1);
}

function showStatus(migrations: number): void {
  const line = statusLine(migrations);
  if (tty) {
    const width = process.stdout.columns ?? 0;
    process.stdout.write(`\r\x1b[K${width > 1 ? line.slice(0, width - 1) : line}`);
    statusShown = true;
  } else {
    console.log(line);
  }
}

async function shutdown(reason: string): Promise<void> {
  clearInterval(statusTimer);
  clearTimeout(durationTimer);
  log(`${reason}: bots leave, server shuts down`);
  await Promise.all(bots.map((b) => b.stop()));
  // A signal may come while the server is still starting: wait for it, then shut it down.
  const arena = await serverStarting.catch(() => null);
  if (arena) await arena.server.gracefullyShutdown(false);
  // The transport closes its UDP and TCP sockets asynchronously after shutdown(); the process exits by
  // itself once they are closed. Should anything still hold it open, say what and fail.
  setTimeout(() => {
    console.error("still running 3 s after shutdown; active resources:", process.getActiveResourcesInfo());
    process.exit(1);
  }, 3000).unref();
  console.log(`stopped: ${arenaCounters.coinsCollected} coins collected, ${arenaCounters.chatsReceived} chat messages`);
}

function stop(reason: string): void {
  if (stopping) return;
  stopping = shutdown(reason).catch((err: unknown) => {
    console.error("shutdown failed:", err);
    process.exit(1);
  });
}

function onSignal(signal: NodeJS.Signals): void {
  if (stopping) {
    console.error(`\n${signal} again: exiting now`);
    process.exit(130);
  }
  stop(signal);
}
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

function durationArg(): number | undefined {
  const { values } = parseArgs({ options: { duration: { type: "string" } }, strict: false });
  const v = Number(values.duration);
  return typeof values.duration === "string" && Number.isFinite(v) && v > 0 ? v : undefined;
}

const serverStarting: Promise<ArenaServer> = startArenaServer();
try {
  const arena = await serverStarting;
  const endpoint = `http://${arena.host}:${arena.port}`;
  const migrations = watchMigrations(arena);
  log(
    `arena on ${endpoint} (matchmaking + TLS 1.3 handshake on TCP ${arena.port}, game on UDP ${arena.transport.engine.udpPort}, ` +
      `${arena.transport.engine.aeadBackend}); ${BOTS} bots; ${DURATION_MS > 0 ? `stopping after ${DURATION_MS} ms` : "Ctrl-C to stop"}`,
  );
  log(`play in a browser: ${endpoint}/ (over WebSocket on TCP ${arena.port}, in the rooms the bots play in)`);
  for (let i = 0; i < BOTS && !stopping; i++) {
    const bot = new ArenaBot(new FastnetClient(endpoint), `bot-${i + 1}`, { log });
    bots.push(bot);
    await bot.start();
  }
  if (!stopping) {
    for (const b of bots) b.sample(); // rates count from now
    statusTimer = setInterval(() => showStatus(migrations()), 1000);
    if (DURATION_MS > 0) durationTimer = setTimeout(() => stop(`${DURATION_MS} ms elapsed`), DURATION_MS);
  }
} catch (err) {
  // A join refused because a signal already began the shutdown is no failure.
  if (!stopping) {
    console.error("arena failed to start:", err);
    process.exitCode = 1;
    stop("startup failed");
  }
}
