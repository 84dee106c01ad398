/**
 * CPU time per round trip, client and server in one process over loopback UDP (sodium backend):
 * `node --import tsx bench/support/cpu-round-trip.ts [repo root] [payload]`. Process CPU time, not
 * wall time, so it holds still on a noisy shared machine where the two-process latency of bench:rtt
 * does not; used to compare two checkouts (A/B), each given as the root.
 */
const root = process.argv[2] ?? new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const { FastnetServer, connect } = (await import(`${root}/src/index.ts`)) as typeof import("../../src/index.js");
const server = new FastnetServer({ aead: "sodium", devCertificateDir: false });
await server.listen(0, "127.0.0.1");
server.on("session", (s) => s.on("message", (m: Uint8Array) => s.send(m)));
const fp = Buffer.from(server.fingerprint!).toString("hex");
const client = await connect(`http://127.0.0.1:${server.port}`, { fingerprint: fp, aead: "sodium" });
const payload = new Uint8Array(Number(process.argv[3] ?? 32));
const N = 20000, WARM = 2000;
let n = 0;
let t0 = 0;
let c0: NodeJS.CpuUsage | undefined;
await new Promise<void>((resolve) => {
  client.on("message", () => {
    n++;
    if (n === WARM) { t0 = performance.now(); c0 = process.cpuUsage(); }
    if (n === WARM + N) return resolve();
    client.send(payload);
  });
  client.send(payload);
});
const c = process.cpuUsage(c0), wall = performance.now() - t0;
console.log(JSON.stringify({ root: root.split("/").pop(), payload: payload.length, cpu_us_per_rt: +((c.user + c.system) / N).toFixed(2), wall_us_per_rt: +(wall * 1000 / N).toFixed(2) }));
client.close(); await server.close(); process.exit(0);
