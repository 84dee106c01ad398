/**
 * Where the CPU of a round trip goes, client and server in one process over loopback UDP (sodium
 * backend): V8's CPU profiler (50 µs sampling) over N round trips after a warm-up, self time grouped by
 * layer. `node --import tsx bench/support/profile-round-trip.ts [payload] [round trips] [repo root]`.
 * Layers: "driver" src/node, "core" src/protocol, "sodium" sodium-native's wrapper and the native call,
 * "node:dgram" Node's UDP module and its native send/receive (the syscalls), "gc", "idle", "other".
 */
import { Session } from "node:inspector/promises";
import { openEchoPair, THIS_ROOT } from "./echo-pair.js";

const pair = await openEchoPair(process.argv[4] ?? THIS_ROOT);
const payload = new Uint8Array(Number(process.argv[2] ?? 32));
const N = Number(process.argv[3] ?? 30000), WARM = 5000;
const ins = new Session();
ins.connect();
await ins.post("Profiler.enable");
await ins.post("Profiler.setSamplingInterval", { interval: 50 });
let started: Promise<unknown> | null = null;
await pair.run(payload, WARM, N, () => {
  started = ins.post("Profiler.start");
});
await started;
const { profile } = await ins.post("Profiler.stop");
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const layer = (url: string, fn: string): string => {
  if (url.includes("/src/node/")) return "driver";
  if (url.includes("/src/protocol/")) return "core";
  if (url.includes("sodium-native") || fn.startsWith("crypto_aead")) return "sodium";
  if (url === "" && (fn === "send" || fn === "SendWrap")) return "udp send (native, syscall)";
  if (fn.startsWith("post") && url === "node:inspector") return "profiler";
  if (url === "node:dgram" || url.startsWith("node:internal/dgram")) return "node:dgram";
  if (fn === "(garbage collector)") return "gc";
  if (fn === "(idle)") return "idle";
  if (fn === "(program)") return "program";
  return "other";
};
const layers = new Map<string, number>();
const fns = new Map<string, number>();
let total = 0;
const deltas = profile.timeDeltas ?? [];
(profile.samples ?? []).forEach((id, i) => {
  const node = byId.get(id)!;
  const { url, functionName } = node.callFrame;
  const d = deltas[i] ?? 0;
  total += d;
  const l = layer(url, functionName);
  layers.set(l, (layers.get(l) ?? 0) + d);
  const f = `${functionName || "(anon)"} ${url.split("/").pop()}`;
  fns.set(f, (fns.get(f) ?? 0) + d);
});
console.log(`µs per round trip (both ends, wall of the profiled window): ${(total / N).toFixed(2)}`);
for (const [k, v] of [...layers].sort((a, b) => b[1] - a[1])) console.log(`${(v / N).toFixed(2).padStart(7)} µs  ${(100 * v / total).toFixed(1).padStart(5)} %  ${k}`);
console.log("top functions:");
for (const [k, v] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${(v / N).toFixed(2).padStart(7)} µs  ${k}`);
await pair.close();
process.exit(0);
