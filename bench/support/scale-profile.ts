/**
 * Summarizes the server profiles of `bench/scale.ts --profile DIR`: each .cpuprofile (one measuring
 * window of the server child, V8 sampling profiler) and its .json sidecar (messages delivered and the
 * process's CPU time in that window). Self time is attributed to categories by the frame's script:
 *   AEAD           seal/open: src/node/aead-*.ts, src/protocol/aead*.ts, packet-keys.ts and key-schedule.ts
 *                  (the nonce and key-phase wrappers), sodium-native, node:crypto (in a
 *                  join profile: the key schedule's HKDF too)
 *   TLS handshake  node:tls and node's TLS internals, src/node/handshake-*.ts, dev-certificate.ts
 *   HTTP           node:http and node's HTTP internals (matchmaking requests, the Upgrade)
 *   protocol core  src/protocol/* (packets, frames, ACK, recovery, streams, endpoint)
 *   driver         src/node/* but the AEAD backends (sessions, sockets, timers, lookup)
 *   adapter        src/server/* (the Colyseus transport of this package)
 *   ws library     ws and @colyseus/ws-transport (the WebSocket framing and its adapter)
 *   colyseus       @colyseus/core, @colyseus/schema, msgpackr (rooms, patches, message encoding)
 *   bench room     bench/support/* (the scale room's simulation and handlers; the sampling)
 *   send/write     the native send/write bindings called from node:dgram and node:net (the syscall
 *                  itself runs inside them: uv_udp_try_send, uv_try_write)
 *   node net/dgram node:dgram, node:net and node's stream code (JS around the sockets)
 *   node other     the rest of node's own JS (events, timers, microtasks, buffers)
 *   native (program)  V8's "(program)": C++ and libuv outside any JS frame, the receive syscalls included
 *   GC             "(garbage collector)"
 * A native frame (no script) takes its caller's category, except send/write above. "other threads":
 * the process's CPU time (user+sys) minus the sampled busy time of the main thread (the profiler's own
 * thread, GC helper threads, libuv's pool, the sampling error).
 *
 * Usage: node --import tsx bench/support/scale-profile.ts DIR [--top K]   (prints tables; K functions per category)
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export const CATEGORIES = [
  "AEAD",
  "TLS handshake",
  "HTTP",
  "protocol core",
  "driver",
  "adapter",
  "ws library",
  "colyseus",
  "bench room",
  "send/write",
  "node net/dgram",
  "node other",
  "native (program)",
  "GC",
  "other",
] as const;
export type Category = (typeof CATEGORIES)[number];

const NET_SCRIPT = /^node:(dgram|net|internal\/(dgram|net|stream_base_commons|streams\/))/;

/** The category of a frame with a script (`url`), or null for a native frame. */
export function categoryOfScript(url: string): Category | null {
  if (!url) return null;
  if (/\/src\/(node|protocol)\/(aead|packet-keys|key-schedule)/.test(url) || url.includes("/sodium-native/") || url.startsWith("node:internal/crypto")) return "AEAD";
  if (/^node:(_?tls|internal\/tls|_tls_)/.test(url) || /\/src\/node\/(handshake-|dev-certificate)/.test(url)) return "TLS handshake";
  if (/^node:(_?http|internal\/http)/.test(url) || /^node:_http_/.test(url)) return "HTTP";
  if (url.includes("/src/protocol/")) return "protocol core";
  if (url.includes("/src/node/")) return "driver";
  if (url.includes("/src/server/")) return "adapter";
  if (url.includes("/node_modules/ws/") || url.includes("/@colyseus/ws-transport/")) return "ws library";
  if (url.includes("/@colyseus/") || url.includes("/msgpackr/")) return "colyseus";
  if (url.includes("/bench/")) return "bench room";
  if (NET_SCRIPT.test(url)) return "node net/dgram";
  if (url.startsWith("node:")) return "node other";
  return "other";
}

export interface ProfileSummary {
  /** Sampled self time per category, µs (idle excluded). */
  byCategory: Map<Category, number>;
  /** Sampled self time per function ("category | name script:line"), µs. */
  byFunction: Map<string, number>;
  busyUs: number;
  idleUs: number;
}

/** Self time of every sample, attributed as above. */
export function summarize(p: CpuProfile): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const memo = new Map<number, Category>();
  const categoryOf = (id: number): Category => {
    const known = memo.get(id);
    if (known) return known;
    const node = byId.get(id)!;
    const { url, functionName } = node.callFrame;
    let cat: Category;
    if (functionName === "(garbage collector)") cat = "GC";
    else if (functionName === "(program)") cat = "native (program)";
    else {
      const own = categoryOfScript(url);
      if (own) cat = own;
      else {
        const up = parent.get(id);
        const upUrl = up === undefined ? "" : byId.get(up)!.callFrame.url;
        if (NET_SCRIPT.test(upUrl)) cat = "send/write";
        else cat = up === undefined || byId.get(up)!.callFrame.functionName === "(root)" ? "other" : categoryOf(up);
      }
    }
    memo.set(id, cat);
    return cat;
  };
  const byCategory = new Map<Category, number>();
  const byFunction = new Map<string, number>();
  let busyUs = 0;
  let idleUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    // The delta before the next sample is the time this one stood for.
    const dt = p.timeDeltas[i + 1] ?? 0;
    const node = byId.get(p.samples[i]!)!;
    if (node.callFrame.functionName === "(idle)") {
      idleUs += dt;
      continue;
    }
    busyUs += dt;
    const cat = categoryOf(node.id);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + dt);
    const f = node.callFrame;
    const key = `${cat} | ${f.functionName || "(anonymous)"} ${f.url.replace(/.*\/node_modules\//, "").replace(/.*\/(src|bench)\//, "$1/")}:${f.lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + dt);
  }
  return { byCategory, byFunction, busyUs, idleUs };
}

/** Self time of JS functions only (frames with a script), by category: for re-splitting another profiler's JS time. */
export function summarizeJs(p: CpuProfile): Map<Category, number> {
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const out = new Map<Category, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]!)!;
    const cat = categoryOfScript(node.callFrame.url);
    if (!cat) continue;
    out.set(cat, (out.get(cat) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
  }
  return out;
}

interface Sidecar {
  messages: number;
  cpuUserUs: number;
  cpuSystemUs: number;
  windowS: number;
  transport: string;
  clients: number;
}

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string" } } });
  const dir = positionals[0];
  if (!dir) throw new Error("usage: scale-profile.ts DIR [--top K]");
  const top = Number(values.top ?? 0);
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).sort();
  const columns: { name: string; perMsg: Map<string, number> }[] = [];
  for (const f of files) {
    const side = JSON.parse(readFileSync(join(dir, `${f}.json`), "utf8")) as Sidecar;
    const s = summarize(JSON.parse(readFileSync(join(dir, f), "utf8")) as CpuProfile);
    const m = Math.max(1, side.messages);
    const cpuUs = side.cpuUserUs + side.cpuSystemUs;
    const perMsg = new Map<string, number>();
    for (const c of CATEGORIES) perMsg.set(c, (s.byCategory.get(c) ?? 0) / m);
    perMsg.set("other threads", (cpuUs - s.busyUs) / m);
    perMsg.set("TOTAL (cpuUsage)", cpuUs / m);
    perMsg.set("  of which sys", side.cpuSystemUs / m);
    perMsg.set("messages/s", side.messages / side.windowS);
    columns.push({ name: f.replace(/\.cpuprofile$/, ""), perMsg });
    if (top > 0) {
      console.log(`\n${f}: top ${top} functions by self time (µs per message)`);
      const fns = [...s.byFunction].sort((a, b) => b[1] - a[1]).slice(0, top);
      for (const [k, us] of fns) console.log(`  ${(us / m).toFixed(3).padStart(7)}  ${k}`);
    }
  }
  console.log(`\nµs of server CPU per delivered message, by category (self time of the main thread's samples)`);
  console.log(`${"category".padEnd(20)}${columns.map((c) => c.name.padStart(Math.max(12, c.name.length + 2))).join("")}`);
  const rows = [...CATEGORIES, "other threads", "TOTAL (cpuUsage)", "  of which sys", "messages/s"];
  for (const r of rows) {
    console.log(`${r.padEnd(20)}${columns.map((c) => (c.perMsg.get(r) ?? 0).toFixed(r === "messages/s" ? 0 : 2).padStart(Math.max(12, c.name.length + 2))).join("")}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
