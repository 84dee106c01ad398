/**
 * The whole layout: one redis-server, three game processes (server.ts) on it, each with its own
 * server id and TCP/UDP port, and optionally nginx in front (one public UDP port routed by connection
 * ID, see nginx.ts). `startCluster` starts it all; `stop` stops it all, also after a failed start.
 */
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNginx, type Nginx, type NginxLayout } from "./nginx.js";
import { startGame, startRedis, type Child, type GameEnv, type GameProcess } from "./processes.js";

export interface ClusterOptions {
  /** Game processes (default 3), server ids 1..n. */
  processes?: number;
  /** Put nginx in front (default true). */
  nginx?: boolean;
  /** Fixed ports (main.ts); without them every port is picked free (tests). */
  layout?: NginxLayout;
  redisPort?: number;
  host?: string;
}

/** The running layout. `endpoint` is where clients match (nginx's TCP port, else process 1's). */
export class Cluster {
  readonly games: GameProcess[] = [];
  redis: Child | null = null;
  nginx: Nginx | null = null;
  layout: NginxLayout | null = null;
  endpoint = "";

  constructor(
    /** Temp directory of this run: redis' working directory, the shared dev certificate, nginx's prefix. */
    readonly dir: string,
    readonly redisUrl: string,
    readonly statelessResetKey: string,
  ) {}

  /** The process with this server id. */
  game(serverId: number): GameProcess {
    const game = this.games.find((g) => g.info.serverId === serverId);
    if (!game) throw new Error(`no game process with server id ${serverId}`);
    return game;
  }

  /**
   * Kills the process with `serverId` (SIGKILL, as in a crash) and starts it again with the same
   * environment: same port, server id and stateless reset key. Resolves once the new one is ready.
   */
  async restart(serverId: number): Promise<GameProcess> {
    const index = this.games.findIndex((g) => g.info.serverId === serverId);
    const old = this.game(serverId);
    await old.child.kill();
    const next = await startGame(old.env);
    this.games[index] = next;
    return next;
  }

  /** Stops everything that runs (nginx, the game processes, redis) and removes the directory. */
  async stop(): Promise<void> {
    await this.nginx?.child.stop(5000);
    await Promise.all(this.games.map((g) => g.child.stop(10_000)));
    await this.redis?.stop(5000);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Starts redis, the game processes and (by default) nginx. On any failure, stops what started. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const host = options.host ?? "127.0.0.1";
  const count = options.layout?.backends.length ?? options.processes ?? 3;
  const dir = await mkdtemp(join(tmpdir(), "fastnet-cluster-"));
  const redisPort = options.redisPort ?? (await freePort(host, false));
  const cluster = new Cluster(dir, `redis://${host}:${redisPort}`, randomBytes(32).toString("hex"));
  try {
    cluster.redis = await startRedis(redisPort, dir);
    const withNginx = options.nginx ?? true;
    const layout = options.layout ?? (await freeLayout(host, count));
    const envs: GameEnv[] = layout.backends.map((b) => ({
      PORT: String(b.port),
      SERVER_ID: String(b.serverId),
      REDIS_URL: cluster.redisUrl,
      STATELESS_RESET_KEY: cluster.statelessResetKey,
      DEV_CERT_DIR: join(dir, "dev-certificate"),
      // Behind nginx: the seat reservation sends the client to this process's port on nginx, and the
      // handshake tells it to send UDP to nginx's public port. Without nginx: straight to the process.
      PUBLIC_ADDRESS: `${host}:${withNginx ? b.publicTcpPort : b.port}`,
      ...(withNginx ? { UDP_PUBLIC_HOST: layout.host, UDP_PUBLIC_PORT: String(layout.udpPort) } : {}),
    }));
    // The first one alone: it makes the shared dev certificate, the others reuse it.
    cluster.games.push(await startGame(envs[0]!));
    cluster.games.push(...(await Promise.all(envs.slice(1).map((env) => startGame(env)))));
    if (withNginx) {
      cluster.layout = layout;
      cluster.nginx = await startNginx(layout, dir);
      cluster.endpoint = `http://${layout.host}:${layout.tcpPort}`;
    } else {
      cluster.endpoint = `http://${host}:${cluster.games[0]!.info.port}`;
    }
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/** A layout on ports that were free a moment ago (the OS picks them). */
async function freeLayout(host: string, count: number): Promise<NginxLayout> {
  const taken = new Set<number>();
  const pick = async (udp: boolean): Promise<number> => {
    for (let i = 0; i < 20; i++) {
      const port = await freePort(host, udp);
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
    throw new Error("no free port found in 20 tries");
  };
  const udpPort = await pick(true);
  const tcpPort = await pick(false);
  const backends = [];
  for (let i = 1; i <= count; i++) backends.push({ serverId: i, host, port: await pick(true), publicTcpPort: await pick(false) });
  return { host, udpPort, tcpPort, backends };
}

/**
 * A TCP port the OS picked and closed again; with `udp`, one free for UDP as well (a game process
 * binds both on one number).
 */
export async function freePort(host: string, udp: boolean): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = net.createServer();
    server.listen(0, host);
    await once(server, "listening");
    const port = (server.address() as net.AddressInfo).port;
    let udpFree = true;
    if (udp) {
      const socket = dgram.createSocket("udp4");
      udpFree = await new Promise<boolean>((resolve) => {
        socket.once("error", () => resolve(false));
        socket.bind(port, host, () => resolve(true));
      });
      if (udpFree) await new Promise<void>((resolve) => socket.close(() => resolve()));
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (udpFree) return port;
  }
  throw new Error(`no port free for TCP and UDP on ${host} in 20 tries`);
}
