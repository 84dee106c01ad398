/**
 * Helpers of the cluster tests (test/cluster-*.test.ts) around examples/cluster: ask a probe room
 * where it runs, read a process's counters, and read from nginx's error log which backend each
 * client UDP flow went to.
 */
import { readFile } from "node:fs/promises";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { startCluster, type Cluster, type ClusterOptions } from "../../examples/cluster/cluster.js";
import type { GameProcess } from "../../examples/cluster/processes.js";
import type { ClusterStats, WhereAnswer } from "../../examples/cluster/server.js";
import { transportOf } from "../../src/client.js";
import { within } from "./wait.js";

/** Sends `type` to the room and resolves with its first answer of the same type. */
export function ask<T>(room: SdkRoom, type: string, message?: unknown, ms = 5000): Promise<T> {
  const got = new Promise<T>((resolve) => {
    const off = room.onMessage(type, (answer: T) => {
      off();
      resolve(answer);
    });
  });
  room.send(type, message);
  return within(got, ms, `"${type}" answer from room ${room.roomId}`);
}

/** Which process holds the probe room. */
export function where(room: SdkRoom): Promise<WhereAnswer> {
  return ask<WhereAnswer>(room, "where");
}

/** The counters of one game process, read from it directly (not through nginx). */
export async function statsOf(game: GameProcess): Promise<ClusterStats> {
  const res = await within(fetch(`http://127.0.0.1:${game.info.port}/cluster/stats`), 5000, `stats of process ${game.info.serverId}`);
  if (!res.ok) throw new Error(`stats of process ${game.info.serverId}: HTTP ${res.status}`);
  return (await res.json()) as ClusterStats;
}

/** The counters of every process of the cluster, by server id. */
export async function allStats(cluster: Cluster): Promise<Map<number, ClusterStats>> {
  const all = await Promise.all(cluster.games.map((g) => statsOf(g)));
  return new Map(all.map((s) => [s.serverId, s]));
}

/** The connection ID the client sends with now, and the local address:port it sends from. */
export function clientPath(room: SdkRoom): { cid: Uint8Array; local: string } {
  const session = transportOf(room).session;
  if (!session?.socket) throw new Error("the room's fastnet session is not open");
  const { address, port } = session.socket.address();
  return { cid: Uint8Array.from(session.connection.cid), local: `${address}:${port}` };
}

/** The game processes' MIGRATION lines for `sessionId`. */
export function migrationsOf(game: GameProcess, sessionId: string): Array<{ from: { address: string; port: number }; to: { address: string; port: number } }> {
  return game.child.output
    .split("\n")
    .filter((l) => l.startsWith("MIGRATION "))
    .map((l) => JSON.parse(l.slice(10)) as { sessionId: string; from: { address: string; port: number }; to: { address: string; port: number } })
    .filter((m) => m.sessionId === sessionId);
}

/**
 * The UDP flows nginx opened, from its error log (level info): for each client address:port, the
 * backend address:port it proxied to. nginx writes `*N udp client A connected to L` when a flow
 * starts and `*N udp proxy P connected to B` once the upstream is chosen (N: the connection number,
 * with the worker's pid before it). Flows refused before an upstream (fastnet-cid.js) have no B.
 */
export async function nginxFlows(cluster: Cluster): Promise<Map<string, string | null>> {
  if (!cluster.nginx) throw new Error("this cluster runs without nginx");
  const log = await readFile(cluster.nginx.errorLog, "utf8");
  const clients = new Map<string, string>();
  const flows = new Map<string, string | null>();
  for (const line of log.split("\n")) {
    const client = /(\d+)#\d+: \*(\d+) udp client (\S+) connected to /.exec(line);
    if (client) {
      clients.set(`${client[1]}*${client[2]}`, client[3]!);
      flows.set(client[3]!, null);
      continue;
    }
    const proxy = /(\d+)#\d+: \*(\d+) udp proxy \S+ connected to (\S+)/.exec(line);
    const from = proxy && clients.get(`${proxy[1]}*${proxy[2]}`);
    if (proxy && from) flows.set(from, proxy[3]!);
  }
  return flows;
}

/**
 * nginx's HTTP access log: one entry per request, with the port it came in on and the process it
 * went to (log_format `fastnet` in nginx.conf).
 */
export async function nginxRequests(cluster: Cluster): Promise<Array<{ serverPort: number; request: string; status: number; upstream: string }>> {
  if (!cluster.nginx) throw new Error("this cluster runs without nginx");
  const log = await readFile(`${cluster.nginx.dir}/access.log`, "utf8");
  return log
    .split("\n")
    .map((l) => /^\S+ (\d+) "([^"]*)" (\d+) (\S+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ serverPort: Number(m[1]), request: m[2]!, status: Number(m[3]), upstream: m[4]! }));
}

/**
 * Mocha hooks for a suite on one cluster: started before the suite and stopped after it (also when
 * it fails); the rooms pushed to `rooms` are left after each test. Read `cluster` inside tests.
 */
export function useCluster(options: ClusterOptions): { readonly cluster: Cluster; rooms: SdkRoom[] } {
  let cluster: Cluster | undefined;
  const rooms: SdkRoom[] = [];
  before(async function () {
    this.timeout(90_000);
    cluster = await startCluster(options);
  });
  afterEach(async () => {
    for (const room of rooms.splice(0)) {
      room.reconnection.enabled = false;
      if (room.connection.isOpen) await within(room.leave(true), 3000, "leave").catch(() => undefined);
      else transportOf(room).close();
    }
  });
  after(async () => {
    await cluster?.stop();
  });
  return {
    get cluster(): Cluster {
      if (!cluster) throw new Error("the cluster is not started (before() failed?)");
      return cluster;
    },
    rooms,
  };
}
