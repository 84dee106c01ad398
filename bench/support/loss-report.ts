/** Result rows of bench/loss.ts and its tables. */
import type { LossEngineStats } from "./loss-engine-stats.js";
import { pad } from "./table.js";

/** fastnet's counters of a phase's sessions, each side summed over its 8 sessions (null for ws-transport). */
export type PhaseEngineStats = { client: LossEngineStats; server: LossEngineStats } | null;

/** One (transport, loss level); the first nine fields are the JSON the issue asks for. */
export interface LevelResult {
  transport: string;
  loss_pct: number;
  rel_p50_ms: number;
  rel_p99_ms: number;
  rel_max_ms: number;
  rel_lost: number;
  state_age_p50_ms: number;
  state_age_p99_ms: number;
  stale_max_ms: number;
  /** Which kind of position field the state columns measure: "unreliable" (fastnet) or "reliable" (ws-transport). */
  positions: "unreliable" | "reliable";
  /** Pings sent in the window. */
  pings: number;
  state_samples: number;
  /** Event-loop delay of the clients' process in the window (the resolution subtracted), ms. */
  client_loop_p99_ms: number;
  client_loop_max_ms: number;
  /** The same of the server child, over the window. */
  server_loop_p99_ms: number;
  server_loop_max_ms: number;
  /** The nftables counters: % of the UDP/TCP packets dropped from warm-up to drain. */
  drop_pct: number;
  /** Drops, reconnections, leaves or errors of a room during the phase. */
  failures: string[];
  /** fastnet's engine counters, join to drain. */
  engine: PhaseEngineStats;
}

/** The blackout of one transport; times from its end, over the clients (null: a client never got one). */
export interface BlackoutResult {
  transport: string;
  blackout_ms: number;
  first_reply_p50_ms: number | null;
  first_reply_max_ms: number | null;
  first_state_p50_ms: number | null;
  first_state_max_ms: number | null;
  positions: "unreliable" | "reliable";
  rel_max_ms: number;
  rel_lost: number;
  stale_max_ms: number;
  failures: string[];
  engine: PhaseEngineStats;
}

const f = (v: number | null): string => (v === null || !Number.isFinite(v) ? "n/a" : v.toFixed(v >= 100 ? 0 : 1));
const ratio = (ws: number | null, fn: number | null): string => (ws !== null && fn !== null && fn > 0 && Number.isFinite(ws / fn) ? `${(ws / fn).toFixed(1)}x` : "");

export function printResults(results: LevelResult[]): void {
  console.log(`state columns: fastnet = @unreliable positions (datagrams); ws-transport = RELIABLE positions (Colyseus never sends @unreliable to WebSocket clients)`);
  console.log(`times in ms; lost = pings of the window never answered; c loop / s loop = event-loop delay p99/max of the clients' process / the server child; drop % = packets the nftables rule dropped (counters)`);
  console.log(
    `${"loss".padEnd(6)}${"transport".padEnd(14)}${pad("pings", 7)}${pad("lost", 6)}${pad("rel p50", 9)}${pad("rel p99", 9)}${pad("rel max", 9)}` +
      `${pad("age p50", 9)}${pad("age p99", 9)}${pad("stale max", 10)}${pad("c loop", 11)}${pad("s loop", 11)}${pad("drop %", 8)}`,
  );
  const levels = [...new Set(results.map((r) => r.loss_pct))];
  for (const pct of levels) {
    const rows = results.filter((r) => r.loss_pct === pct).sort((a, b) => a.transport.localeCompare(b.transport));
    for (const [i, r] of rows.entries()) {
      console.log(
        `${(i === 0 ? `${pct} %` : "").padEnd(6)}${r.transport.padEnd(14)}${pad(r.pings, 7)}${pad(r.rel_lost, 6)}${pad(f(r.rel_p50_ms), 9)}${pad(f(r.rel_p99_ms), 9)}${pad(f(r.rel_max_ms), 9)}` +
          `${pad(f(r.state_age_p50_ms), 9)}${pad(f(r.state_age_p99_ms), 9)}${pad(f(r.stale_max_ms), 10)}${pad(`${f(r.client_loop_p99_ms)}/${f(r.client_loop_max_ms)}`, 11)}${pad(`${f(r.server_loop_p99_ms)}/${f(r.server_loop_max_ms)}`, 11)}${pad(f(r.drop_pct), 8)}` +
          (r.failures.length ? `  ${r.failures.join("; ")}` : ""),
      );
    }
    const fn = rows.find((r) => r.transport === "fastnet");
    const ws = rows.find((r) => r.transport === "ws-transport");
    if (fn && ws) {
      console.log(
        `${"".padEnd(6)}${"ws/fastnet".padEnd(14)}${pad("", 13)}${pad(ratio(ws.rel_p50_ms, fn.rel_p50_ms), 9)}${pad(ratio(ws.rel_p99_ms, fn.rel_p99_ms), 9)}${pad(ratio(ws.rel_max_ms, fn.rel_max_ms), 9)}` +
          `${pad(ratio(ws.state_age_p50_ms, fn.state_age_p50_ms), 9)}${pad(ratio(ws.state_age_p99_ms, fn.state_age_p99_ms), 9)}${pad(ratio(ws.stale_max_ms, fn.stale_max_ms), 10)}`,
      );
    }
  }
  const lost = results.filter((r) => r.rel_lost > 0);
  console.log(lost.length ? `LOST PINGS: ${lost.map((r) => `${r.transport} at ${r.loss_pct} %: ${r.rel_lost}`).join(", ")}` : `no ping lost (every reliable ping of every window was answered)`);
}

export function printBlackout(rows: BlackoutResult[]): void {
  if (rows.length === 0) return;
  console.log(`blackout: 100 % drop for ${rows[0]!.blackout_ms} ms, then 0 %; from its end to each client's first pong / first state stamped after it (p50 and slowest of the clients)`);
  console.log(`${"transport".padEnd(14)}${pad("reply p50", 10)}${pad("reply max", 10)}${pad("state p50", 10)}${pad("state max", 10)}${pad("rel max", 9)}${pad("lost", 6)}${pad("stale max", 10)}`);
  for (const r of rows) {
    console.log(
      `${r.transport.padEnd(14)}${pad(f(r.first_reply_p50_ms), 10)}${pad(f(r.first_reply_max_ms), 10)}${pad(f(r.first_state_p50_ms), 10)}${pad(f(r.first_state_max_ms), 10)}${pad(f(r.rel_max_ms), 9)}${pad(r.rel_lost, 6)}${pad(f(r.stale_max_ms), 10)}` +
        (r.failures.length ? `  ${r.failures.join("; ")}` : ""),
    );
  }
  const fn = rows.find((r) => r.transport === "fastnet");
  const ws = rows.find((r) => r.transport === "ws-transport");
  if (fn && ws) {
    console.log(`${"ws/fastnet".padEnd(14)}${pad(ratio(ws.first_reply_p50_ms, fn.first_reply_p50_ms), 10)}${pad(ratio(ws.first_reply_max_ms, fn.first_reply_max_ms), 10)}${pad(ratio(ws.first_state_p50_ms, fn.first_state_p50_ms), 10)}${pad(ratio(ws.first_state_max_ms, fn.first_state_max_ms), 10)}`);
  }
}

/** fastnet's own view of each phase: packets declared lost per side, probe timeouts, datagrams dropped by congestion control. */
export function printEngine(results: LevelResult[], blackout: BlackoutResult[]): void {
  const rows: [string, PhaseEngineStats][] = [
    ...results.filter((r) => r.engine).map((r): [string, PhaseEngineStats] => [`${r.loss_pct} %`, r.engine]),
    ...blackout.filter((b) => b.engine).map((b): [string, PhaseEngineStats] => ["blackout", b.engine]),
  ];
  if (rows.length === 0) return;
  console.log(`fastnet engine counters per phase (join to drain; c = the 8 clients, s = the server's 8 sessions): packets sent, declared lost, probe timeouts, datagrams sent and dropped by congestion control`);
  console.log(`${"phase".padEnd(10)}${pad("c sent", 8)}${pad("c lost", 8)}${pad("c PTO", 7)}${pad("s sent", 8)}${pad("s lost", 8)}${pad("s PTO", 7)}${pad("s dgrams", 10)}${pad("s dgram cc drop", 16)}`);
  for (const [name, e] of rows) {
    const { client: c, server: s } = e!;
    console.log(`${name.padEnd(10)}${pad(c.packetsSent, 8)}${pad(c.packetsLost, 8)}${pad(c.probeTimeouts, 7)}${pad(s.packetsSent, 8)}${pad(s.packetsLost, 8)}${pad(s.probeTimeouts, 7)}${pad(s.datagramsSent, 10)}${pad(s.datagramsDroppedCongestion, 16)}`);
  }
}
