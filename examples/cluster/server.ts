/**
 * One game process of the cluster: Colyseus over fastnet with RedisPresence and RedisDriver, its own
 * TCP and UDP port, and its own `serverId` in every connection ID. main.ts starts three of these; the
 * tests start them too. Configured by environment:
 *
 *   PORT                 TCP (matchmaking, handshake) and UDP port to bind (0: the OS picks)
 *   HOST                 bind address (default 127.0.0.1)
 *   SERVER_ID            1..255: the process's server id (one byte in each CID); stable per slot
 *   REDIS_URL            redis://host:port shared by all processes
 *   STATELESS_RESET_KEY  secret behind CID tags and reset tokens; the same across restarts
 *   DEV_CERT_DIR         where the shared dev certificate is kept (all processes, same directory)
 *   PUBLIC_ADDRESS       Colyseus `publicAddress`: host:port where clients reach THIS process's TCP
 *                        side (its own port on the balancer, or its own port when there is none)
 *   UDP_PUBLIC_HOST      fastnet `publicAddress`: where clients send UDP (the balancer), optional
 *   UDP_PUBLIC_PORT      fastnet `publicPort`: the balancer's UDP port, optional
 *
 * Prints `READY {"port":..,"udpPort":..,"processId":..,"serverId":..}` once listening, and one line
 * `MIGRATION {"sessionId":..,"from":..,"to":..}` per validated client move. GET /cluster/stats on
 * its TCP port answers the engine's counters (see ClusterStats). Rooms: "arena" (examples/arena) and
 * "probe" (answers "where" and echoes "echo"; a dropped client keeps its seat 30 s; created on the
 * process named by the create option `onProcess`, a Colyseus processId). SIGTERM: Colyseus'
 * graceful shutdown.
 */
import { createEndpoint, createRouter, matchMaker, Room, Server, type Client } from "@colyseus/core";
import { RedisDriver } from "@colyseus/redis-driver";
import { RedisPresence } from "@colyseus/redis-presence";
import { FastnetTransport } from "../../src/index.js";
import type { EndpointStats } from "../../src/node/server.js";
import { ArenaRoom } from "../arena/room.js";

/** What GET /cluster/stats answers. */
export interface ClusterStats {
  processId: string;
  serverId: number;
  udpPort: number;
  sessions: number;
  stats: EndpointStats;
}

/** What a probe room answers to "where": who holds the room. */
export interface WhereAnswer {
  processId: string;
  serverId: number;
  roomId: string;
}

/** Handshakes in progress at once (the engine's default overall limit). */
const MAX_PENDING_HANDSHAKES = 256;

/** A room for tests and health checks: tells where it runs and echoes. */
class ProbeRoom extends Room {
  override messages = {
    where: (client: Client) => client.send("where", { processId: matchMaker.processId, serverId, roomId: this.roomId } satisfies WhereAnswer),
    echo: (client: Client, message: unknown) => client.send("echo", message),
  };

  override async onDrop(client: Client): Promise<void> {
    await this.allowReconnection(client, 30);
  }
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`examples/cluster/server.ts: set ${name} (see the comment at the top of the file)`);
  return value;
}

const serverId = Number(required("SERVER_ID"));
if (!Number.isInteger(serverId) || serverId < 1 || serverId > 255) {
  throw new Error(`SERVER_ID must be an integer from 1 to 255, got ${JSON.stringify(process.env.SERVER_ID)}`);
}
const redisUrl = required("REDIS_URL");

const transport = new FastnetTransport({
  serverId: Uint8Array.of(serverId),
  statelessResetKey: required("STATELESS_RESET_KEY"),
  devCertificateDir: process.env.DEV_CERT_DIR,
  publicAddress: process.env.UDP_PUBLIC_HOST || undefined,
  publicPort: process.env.UDP_PUBLIC_PORT ? Number(process.env.UDP_PUBLIC_PORT) : undefined,
  // Behind a proxy every handshake comes from the proxy's address: the per-address limit would be a
  // limit for everyone. The balancer limits per client instead (nginx.conf: limit_conn).
  maxPendingHandshakes: MAX_PENDING_HANDSHAKES,
  maxPendingHandshakesPerAddress: MAX_PENDING_HANDSHAKES,
});
transport.on("migration", (sessionId, from, to) => {
  process.stdout.write(`MIGRATION ${JSON.stringify({ sessionId, from, to })}\n`);
});

// Colyseus' own choice (the process with the fewest rooms, from stats it persists every few seconds).
const fewestRooms = matchMaker.selectProcessIdToCreateRoom;

const server = new Server({
  transport,
  // A probe room may ask for its process (`create("probe", { onProcess: processId })`), so that a
  // test or a health check can reach each process; everything else goes where Colyseus puts it.
  selectProcessIdToCreateRoom: async (roomName, options) => {
    const wanted = (options as { onProcess?: unknown } | undefined)?.onProcess;
    if (roomName === "probe" && typeof wanted === "string") {
      const live = await matchMaker.stats.fetchAll();
      if (live.some((p) => p.processId === wanted)) return wanted;
    }
    return fewestRooms(roomName, options);
  },
  greet: false,
  presence: new RedisPresence(redisUrl),
  driver: new RedisDriver(redisUrl),
  publicAddress: process.env.PUBLIC_ADDRESS || undefined,
});
// Not the `express` option: FastnetTransport.getExpressApp() is async, and Colyseus 0.18 needs it sync.
server.router = createRouter({
  stats: createEndpoint("/cluster/stats", { method: "GET" }, async () => {
    const body: ClusterStats = {
      processId: matchMaker.processId,
      serverId,
      udpPort: transport.engine.udpPort,
      sessions: transport.engine.sessionCount,
      stats: transport.stats,
    };
    return Response.json(body);
  }),
});
server.define("arena", ArenaRoom);
server.define("probe", ProbeRoom);

await server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? "127.0.0.1");
process.stdout.write(
  `READY ${JSON.stringify({ port: transport.engine.port, udpPort: transport.engine.udpPort, processId: matchMaker.processId, serverId })}\n`,
);
