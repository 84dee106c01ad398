/**
 * The whole cluster with one command: redis-server, three game processes (server.ts, server ids 1-3,
 * on RedisPresence + RedisDriver) and nginx in front (nginx.conf: one public UDP port routed by
 * connection ID, matchmaking on one TCP port, a TCP port per process), then BOTS arena bots
 * (examples/arena/bot.ts) playing through nginx.
 *
 *   node --import tsx examples/cluster/main.ts          (npm run cluster)
 *   BOTS=20 DURATION_MS=10000 npm run cluster
 *
 * Ports are those of nginx.conf: public 127.0.0.1:2567 (TCP and UDP), 2571-2573 (TCP, per process),
 * processes on 2581-2583, Redis on 2590. Needs redis-server, nginx with the stream and stream-js
 * modules (Debian: redis-server nginx-light libnginx-mod-stream libnginx-mod-stream-js). Ctrl-C or
 * SIGTERM: the bots leave, then nginx, the processes and Redis stop.
 */
import { startBots, type ArenaBot } from "../arena/bot.js";
import { startCluster, type Cluster } from "./cluster.js";
import { DEFAULT_LAYOUT } from "./nginx.js";

const BOTS = Math.max(0, Math.floor(Number(process.env.BOTS ?? 6)) || 0);
const DURATION_MS = Number(process.env.DURATION_MS ?? 0);

let cluster: Cluster | null = null;
let bots: ArenaBot[] = [];
let timer: NodeJS.Timeout | undefined;
let stopping: Promise<void> | null = null;

function stop(): Promise<void> {
  stopping ??= (async () => {
    clearInterval(timer);
    await Promise.all(bots.map((b) => b.stop()));
    await cluster?.stop();
  })();
  return stopping;
}

process.on("SIGINT", () => void stop().then(() => process.exit(0)));
process.on("SIGTERM", () => void stop().then(() => process.exit(0)));

try {
  cluster = await startCluster({ layout: DEFAULT_LAYOUT, redisPort: 2590 });
  console.log(`cluster up: matchmaking ${cluster.endpoint}, UDP ${DEFAULT_LAYOUT.host}:${DEFAULT_LAYOUT.udpPort} (nginx), logs in ${cluster.dir}`);
  for (const g of cluster.games) console.log(`  process ${g.info.serverId}: ${g.info.processId} on 127.0.0.1:${g.info.port}, reached via nginx at ${g.env.PUBLIC_ADDRESS}`);
  bots = await startBots(cluster.endpoint, BOTS, { log: (line) => console.log(line) });
  const started = performance.now();
  timer = setInterval(() => {
    const where = new Map<number, number>();
    for (const bot of bots) {
      const cid = (bot.room?.connection.transport as { session?: { connection: { cid: Uint8Array } } } | undefined)?.session?.connection.cid;
      if (cid) where.set(cid[1]!, (where.get(cid[1]!) ?? 0) + 1);
    }
    const patches = bots.reduce((a, b) => a + b.sample().patchesPerSec, 0);
    const spread = [...where].sort(([a], [b]) => a - b).map(([id, n]) => `server ${id}: ${n}`).join(", ");
    console.log(`bots ${bots.filter((b) => b.joined).length} (${spread}) | patches ${patches.toFixed(0)}/s | ${Math.round((performance.now() - started) / 1000)}s`);
    if (DURATION_MS > 0 && performance.now() - started >= DURATION_MS) void stop();
  }, 1000);
} catch (err) {
  console.error(err);
  await stop();
  process.exitCode = 1;
}
