/**
 * Child process of bench/migration.ts: runs ONE Colyseus server (@colyseus/core `Server`, greet off) with a
 * "migration" room on ONE transport and reports where it listens over IPC. Started with fork() by the
 * benchmark; never run by hand.
 * Usage (argv): migration-server.ts <transport>   "fastnet" (FastnetTransport, dev certificate, every
 *                                                  option at its default) or "ws-transport" (WebSocketTransport)
 * The room answers every "m" message (a sequence number) with an "e" message carrying the same number, and
 * counts what the benchmark must check from the server's side: joins, onDrop, onReconnect, onLeave, and
 * (fastnet) the transport's 'migration' events and endpoint counters. onDrop keeps the seat
 * (allowReconnection) so the SDK's reconnection can take it back.
 * Protocol (IPC): the same as bench/support/rtt-server.ts ({type:"ready", port, udpPort, aead?} once
 * listening, or {type:"error", message}; the parent sends {type:"stop"}), plus {type:"stats"}, answered with
 * {type:"stats", ...MigrationServerStats}. The child also exits when the IPC channel goes away (parent
 * died) or after a lifetime limit.
 */
import { Room, type Client } from "@colyseus/core";
import { FastnetTransport } from "../../src/index.js";
import { runServerChild, takeIpc, type ParentMessage } from "./child-server.js";
import { listenColyseus, transportOfKind } from "./colyseus-child.js";

/** What the room and the transport saw, as counted in this child. */
export interface MigrationServerStats {
  joins: number;
  drops: number;
  reconnects: number;
  leaves: number;
  /** "m" messages handled (each answered with one "e"). */
  messages: number;
  /** fastnet: the transport's 'migration' events (validated moves to a new client address). */
  migrationEvents: number;
  /** fastnet: endpoint counters (EndpointStats) at the time of the query. */
  engine: { migrations: number; migrationsRefused: number; pathValidationsFailed: number; statelessResetsSent: number } | null;
}

export type MigrationParentMessage = ParentMessage | { type: "stats" };
export type MigrationChildMessage = { type: "stats" } & MigrationServerStats;

/** How long onDrop keeps a seat for the SDK's reconnection. */
const RECONNECT_SECONDS = 30;

/** Our end of the IPC channel; process.send is hidden from @colyseus/core's @pm2/io (see takeIpc). */
const send = takeIpc<MigrationChildMessage>();

const stats: MigrationServerStats = { joins: 0, drops: 0, reconnects: 0, leaves: 0, messages: 0, migrationEvents: 0, engine: null };

/** Echoes every sequence number; keeps a dropped client's seat. */
class MigrationRoom extends Room {
  override onCreate(): void {
    this.onMessage("m", (client: Client, seq: unknown) => {
      stats.messages++;
      client.send("e", seq);
    });
  }

  override onJoin(): void {
    stats.joins++;
  }

  override onDrop(client: Client): void {
    stats.drops++;
    this.allowReconnection(client, RECONNECT_SECONDS).catch(() => {});
  }

  override onReconnect(): void {
    stats.reconnects++;
  }

  override onLeave(): void {
    stats.leaves++;
  }
}

runServerChild<MigrationParentMessage>("migration-server", "migration", send, async () => {
  const kind = process.argv[2];
  const transport = transportOfKind(kind);
  if (transport instanceof FastnetTransport) {
    transport.on("migration", () => {
      stats.migrationEvents++;
    });
  }

  const server = await listenColyseus(transport, "migration", MigrationRoom, send);

  return {
    stop: () => server.gracefullyShutdown(false),
    onMessage: (msg) => {
      if (msg.type !== "stats") return;
      if (transport instanceof FastnetTransport) {
        const s = transport.stats;
        stats.engine = {
          migrations: s.migrations,
          migrationsRefused: s.migrationsRefused,
          pathValidationsFailed: s.pathValidationsFailed,
          statelessResetsSent: s.statelessResetsSent,
        };
      }
      send?.({ type: "stats", ...stats });
    },
  };
});
