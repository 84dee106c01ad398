/**
 * Summarizes `bench/scale.ts --perf DIR`: each <row>-<N>.perf.data (`perf record -e cpu-clock -g` of the
 * server child during one measuring window, JS symbols from --perf-basic-prof) with its .json sidecar
 * (messages delivered, the process's user and system CPU in the window). cpu-clock samples only a
 * running thread, so the shares are shares of CPU time, kernel included, whatever else the machine runs.
 *
 * Every sample goes to one category, from its leaf frame:
 *   kernel: UDP send / UDP receive / TCP write / TCP read / epoll / other   a kernel leaf, by the first
 *                 user-space frame under it (libuv's uv__udp_sendmsg, uv__udp_recvmsg, uv__write, ...)
 *   AEAD          ChaCha20-Poly1305 code (libsodium, OpenSSL) or a frame of the AEAD backends' JS
 *   GC, V8 compiler   V8's heap and compiler code (any thread)
 *   otherwise the first JS frame from the leaf up names it, with bench/support/scale-profile.ts's
 *   categoryOfScript (protocol core, driver, adapter, ws library, colyseus, bench room, node net/dgram,
 *   node other), so V8 builtins and C++ called from JS count for their caller;
 *   JS, unresolved   a JS frame whose perf-map name is module top-level code (Eval:/Script:, or an
 *                 unnamed function at 1:1, a CommonJS wrapper): a stale
 *                 entry for an address V8 reused; other = scripts outside these categories (node_modules)
 *   native loop   main-thread user-space code with no JS frame above it (libuv, node's C++ before JS)
 *   other threads the rest
 * The perf map names of JIT code go stale (V8 moves and reuses code addresses), so with --v8 DIR2 (the
 * .cpuprofile files of the same windows, `bench/scale.ts --perf DIR --profile DIR2`) the JS time perf
 * measured (every category named by a JS frame, the stale ones included) is split again in the
 * proportions of the V8 profile's self time of JS functions (native frames excluded: perf has them):
 * the second table.
 * Usage: node --import tsx bench/support/scale-perf.ts DIR [--top K] [--v8 DIR2]
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { categoryOfScript, summarizeJs, type Category, type CpuProfile } from "./scale-profile.js";

interface Frame {
  sym: string;
  dso: string;
}
interface Sample {
  tid: number;
  frames: Frame[];
}

/** Parses `perf script -F tid,ip,sym,dso` with call chains: a header line, then one frame a line. */
export function parsePerfScript(text: string): Sample[] {
  const out: Sample[] = [];
  let cur: Sample | null = null;
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      cur = null;
      continue;
    }
    if (!/^\s/.test(line)) {
      cur = { tid: Number(line.trim().split(/\s+/)[0]), frames: [] };
      out.push(cur);
      continue;
    }
    const m = /^\s*[0-9a-f]+\s+(.*)\s+\((.*)\)\s*$/.exec(line);
    if (cur && m) cur.frames.push({ sym: m[1]!.replace(/\+0x[0-9a-f]+$/, ""), dso: m[2]! });
  }
  return out;
}

const KERNEL_BY_CALLER: [RegExp, string][] = [
  [/uv__udp_sendmsg|uv_udp_try_send|uv__udp_send|sendmmsg|__sendmsg|sendmsg/, "kernel: UDP send"],
  [/uv__udp_recvmsg|uv__udp_recvmmsg|uv__udp_io|recvmsg|recvmmsg/, "kernel: UDP receive"],
  [/uv__write|uv_try_write|uv__try_write|writev|__write/, "kernel: TCP write"],
  [/uv__read|__read|read$/, "kernel: TCP read"],
  [/epoll/, "kernel: epoll"],
];

const isJs = (f: Frame): boolean => /^(JS|LazyCompile|Function|Script|InterpretedFunction|Builtin|RegExp):/.test(f.sym) || f.dso.includes("perf-");
const jsUrl = (sym: string): string => /\s(\S+?)(:\d+)+$/.exec(sym)?.[1] ?? sym;

/** The category of one sample (`mainTid`: the process's main thread). */
export function categorize(s: Sample, mainTid: number): string {
  const leaf = s.frames[0];
  if (!leaf) return "other threads";
  if (leaf.dso.includes("kernel")) {
    const user = s.frames.find((f) => !f.dso.includes("kernel"));
    if (!user) return "kernel: other";
    for (const f of s.frames) {
      if (f.dso.includes("kernel")) continue;
      for (const [re, name] of KERNEL_BY_CALLER) if (re.test(f.sym)) return name;
    }
    return "kernel: other";
  }
  if (/sodium/.test(leaf.dso) || /chacha|poly1305|ChaCha|Poly1305|EVP_(Cipher|Encrypt|Decrypt)|aead/i.test(leaf.sym)) return "AEAD (native)";
  if (/v8::internal::(Heap|Scavenger|MarkCompact|Mark|Sweeper|Evacuat|Concurrent|MinorM|GC|PagedSpace|LargeObjectSpace|MemoryAllocator|Scavenge|IncrementalMarking|ArrayBufferSweeper)|Heap::|Scavenge/.test(leaf.sym)) return "GC";
  if (/v8::internal::(compiler|maglev|baseline|Compiler|Parser|Zone|Turbofan|OptimizingCompile)/.test(leaf.sym)) return "V8 compiler";
  const js = s.frames.find(isJs);
  // Module top-level code does not run in a steady window: such a name is a stale entry of the perf map
  // (V8 reused the address; --perf-basic-prof never removes entries).
  // Same for a CommonJS module's wrapper (an unnamed function at 1:1).
  if (js && (/^(Eval|Script):/.test(js.sym) || /^\w+:[~*^]?\s\S+:1:1$/.test(js.sym))) return "JS, unresolved (stale map)";
  if (js) {
    const cat = categoryOfScript(jsUrl(js.sym)) ?? "other";
    if (cat === "node net/dgram" && !isJs(leaf)) return "node net/dgram (C++)";
    return cat;
  }
  return s.tid === mainTid ? "native loop" : "other threads";
}

interface Sidecar {
  messages: number;
  cpuUserUs: number;
  cpuSystemUs: number;
  windowS: number;
}

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string" }, v8: { type: "string" } } });
  const dir = positionals[0];
  if (!dir) throw new Error("usage: scale-perf.ts DIR [--top K] [--v8 DIR]");
  const top = Number(values.top ?? 0);
  const files = readdirSync(dir).filter((f) => f.endsWith(".perf.data")).sort();
  const v8Dir = values.v8;
  const columns: { name: string; perMsg: Map<string, number> }[] = [];
  const merged: { name: string; perMsg: Map<string, number> }[] = [];
  const names = new Set<string>();
  for (const f of files) {
    const side = JSON.parse(readFileSync(join(dir, `${f}.json`), "utf8")) as Sidecar;
    const text = execFileSync("perf", ["script", "-i", join(dir, f), "-F", "pid,tid,ip,sym,dso"], { maxBuffer: 1 << 30, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    // The header is "pid/tid": keep the tid, and the pid for the main thread.
    const fixed = text.replace(/^(\s*)(\d+)\/(\d+)/gm, "$1$3 $2");
    const samples = parsePerfScript(fixed);
    const pidOf = Number(/^\s*\d+\s+(\d+)/m.exec(fixed)?.[1] ?? 0);
    const counts = new Map<string, number>();
    const fnCounts = new Map<string, number>();
    for (const s of samples) {
      const c = categorize(s, pidOf);
      counts.set(c, (counts.get(c) ?? 0) + 1);
      names.add(c);
      const leaf = s.frames[0];
      const key = `${c} | ${leaf ? `${leaf.sym.slice(0, 110)} (${leaf.dso.replace(/.*\//, "")})` : "?"}`;
      fnCounts.set(key, (fnCounts.get(key) ?? 0) + 1);
    }
    const m = Math.max(1, side.messages);
    const cpuUs = side.cpuUserUs + side.cpuSystemUs;
    const perMsg = new Map<string, number>();
    // Each category's share of the samples times the process's CPU per message (cpuUsage, all threads).
    for (const [c, n] of counts) perMsg.set(c, (n / samples.length) * (cpuUs / m));
    perMsg.set("TOTAL (cpuUsage)", cpuUs / m);
    perMsg.set("  of which sys", side.cpuSystemUs / m);
    perMsg.set("samples", samples.length);
    perMsg.set("messages/s", side.messages / side.windowS);
    const name = f.replace(/\.perf\.data$/, "");
    columns.push({ name, perMsg });
    if (v8Dir) merged.push({ name, perMsg: mergeWithV8(perMsg, JSON.parse(readFileSync(join(v8Dir, `${name}.cpuprofile`), "utf8")) as CpuProfile) });
    if (top > 0) {
      console.log(`\n${f}: top ${top} leaf symbols (µs per message)`);
      for (const [k, n] of [...fnCounts].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((n / samples.length) * (cpuUs / m)).toFixed(3).padStart(7)}  ${k}`);
    }
  }
  console.log(`\nµs of server CPU per delivered message, by category (perf cpu-clock samples' shares x cpuUsage per message)`);
  const w = (c: { name: string }): number => Math.max(12, c.name.length + 2);
  console.log(`${"category".padEnd(24)}${columns.map((c) => c.name.padStart(w(c))).join("")}`);
  const order = [...names].sort((a, b) => Math.max(...columns.map((c) => c.perMsg.get(b) ?? 0)) - Math.max(...columns.map((c) => c.perMsg.get(a) ?? 0)));
  for (const r of [...order, "TOTAL (cpuUsage)", "  of which sys", "samples", "messages/s"]) {
    const dec = r === "samples" || r === "messages/s" ? 0 : 2;
    console.log(`${r.padEnd(24)}${columns.map((c) => (c.perMsg.get(r) ?? 0).toFixed(dec).padStart(w(c))).join("")}`);
  }
  if (!merged.length) return;
  console.log(`\nThe same, perf's JS time split in the V8 profile's proportions (µs per message)`);
  console.log(`${"category".padEnd(24)}${merged.map((c) => c.name.padStart(w(c))).join("")}`);
  for (const r of MERGED_ROWS) console.log(`${r.padEnd(24)}${merged.map((c) => (c.perMsg.get(r) ?? 0).toFixed(2).padStart(w(c))).join("")}`);
}

/** perf's categories that are JS time (named by a JS frame); the rest is native, kernel or VM. */
const PERF_JS = new Set(["protocol core", "driver", "adapter", "ws library", "colyseus", "bench room", "node net/dgram", "node other", "other", "HTTP", "TLS handshake", "AEAD", "JS, unresolved (stale map)"]);
const MERGED_ROWS = [
  "AEAD (native)",
  "AEAD (JS)",
  "protocol core",
  "driver",
  "adapter",
  "ws library",
  "colyseus",
  "bench room",
  "node JS (net, streams, events, timers)",
  "native loop + node C++ (libuv, malloc)",
  "kernel: send (UDP send / TCP write)",
  "kernel: receive (UDP receive / TCP read)",
  "kernel: epoll, other",
  "GC, V8 compiler, other threads",
  "TOTAL (cpuUsage)",
  "  of which sys",
];

/** perf's per-message categories with its JS part re-split by the V8 profile's JS self-time shares. */
function mergeWithV8(perf: Map<string, number>, v8: CpuProfile): Map<string, number> {
  const get = (k: string): number => perf.get(k) ?? 0;
  let jsUs = 0;
  for (const [k, v] of perf) if (PERF_JS.has(k)) jsUs += v;
  const shares = summarizeJs(v8);
  const total = [...shares.values()].reduce((a, b) => a + b, 0) || 1;
  const js = (c: Category): number => (jsUs * (shares.get(c) ?? 0)) / total;
  return new Map<string, number>([
    ["AEAD (native)", get("AEAD (native)")],
    ["AEAD (JS)", js("AEAD")],
    ["protocol core", js("protocol core")],
    ["driver", js("driver")],
    ["adapter", js("adapter")],
    ["ws library", js("ws library")],
    ["colyseus", js("colyseus")],
    ["bench room", js("bench room")],
    ["node JS (net, streams, events, timers)", js("node net/dgram") + js("node other") + js("other") + js("HTTP") + js("TLS handshake")],
    ["native loop + node C++ (libuv, malloc)", get("native loop") + get("node net/dgram (C++)")],
    ["kernel: send (UDP send / TCP write)", get("kernel: UDP send") + get("kernel: TCP write")],
    ["kernel: receive (UDP receive / TCP read)", get("kernel: UDP receive") + get("kernel: TCP read")],
    ["kernel: epoll, other", get("kernel: epoll") + get("kernel: other")],
    ["GC, V8 compiler, other threads", get("GC") + get("V8 compiler") + get("other threads")],
    ["TOTAL (cpuUsage)", get("TOTAL (cpuUsage)")],
    ["  of which sys", get("  of which sys")],
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
