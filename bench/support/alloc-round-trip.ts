/**
 * JS heap bytes allocated per round trip, by allocating function, client and server in one process over
 * loopback UDP (sodium backend), sampled by V8's heap profiler with the objects the GC already collected:
 * `node --import tsx bench/support/alloc-round-trip.ts [payload] [round trips] [repo root]`. Functions
 * named `splice`, `subarray`, `push`, `(V8 API)`, `allocUnsafe` and `Socket.send` are also listed by caller.
 */
import { Session } from "node:inspector/promises";
import { openEchoPair, THIS_ROOT } from "./echo-pair.js";

const pair = await openEchoPair(process.argv[4] ?? THIS_ROOT);
const payload = new Uint8Array(Number(process.argv[2] ?? 32));
const N = Number(process.argv[3] ?? 20000), WARM = 5000;
const ins = new Session(); ins.connect();
await pair.run(payload, WARM, N, () => {
  void ins.post("HeapProfiler.startSampling", { samplingInterval: 256, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
});
const { profile } = await ins.post("HeapProfiler.stopSampling");
const self = new Map<string, number>();
let total = 0;
type ProfileNode = (typeof profile)["head"];
const walk = (node: ProfileNode, stack: string): void => {
  const f = node.callFrame; const name = `${f.functionName || "(anon)"} ${f.url.split("/").pop()}:${f.lineNumber + 1}`;
  if (node.selfSize && /^(splice|subarray|push|\(V8 API\)|allocUnsafe|Socket.send) /.test(name)) { const k2 = `${name} <- ${stack}`; self.set(k2, (self.get(k2) ?? 0) + node.selfSize); }
  if (node.selfSize) { self.set(name, (self.get(name) ?? 0) + node.selfSize); total += node.selfSize; }
  for (const c of node.children) walk(c, name);
};
walk(profile.head, "");
console.log(`bytes per round trip (both ends): ${(total / N).toFixed(0)}`);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${(v / N).toFixed(0).padStart(6)} B/rt  ${k}`);
await pair.close();
process.exit(0);
