/**
 * CPU time per round trip, client and server in one process over loopback UDP (sodium backend):
 * `node --import tsx bench/support/cpu-round-trip.ts [repo root] [payload]`. Process CPU time, not
 * wall time, so it holds still on a noisy shared machine where the two-process latency of bench:rtt
 * does not; used to compare two checkouts (A/B), each given as the root.
 */
import { openEchoPair, THIS_ROOT } from "./echo-pair.js";

const root = process.argv[2] ?? THIS_ROOT;
const pair = await openEchoPair(root);
const payload = new Uint8Array(Number(process.argv[3] ?? 32));
const N = 20000, WARM = 2000;
let t0 = 0;
let c0: NodeJS.CpuUsage | undefined;
await pair.run(payload, WARM, N, () => {
  t0 = performance.now();
  c0 = process.cpuUsage();
});
const c = process.cpuUsage(c0), wall = performance.now() - t0;
console.log(JSON.stringify({ root: root.split("/").pop(), payload: payload.length, cpu_us_per_rt: +((c.user + c.system) / N).toFixed(2), wall_us_per_rt: +(wall * 1000 / N).toFixed(2) }));
await pair.close();
process.exit(0);
