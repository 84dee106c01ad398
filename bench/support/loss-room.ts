/**
 * The room of bench/loss.ts: 8 players, game-like. Every client sends a reliable "ping" (its sequence
 * number) every 50 ms, which the room answers at once with "pong" (the same number). Every patch
 * (patchRate 50 ms) the room moves every player and stamps it, in onBeforePatch, with the server's
 * CLOCK_MONOTONIC time in ms (process.hrtime, the same clock in every process of the machine, so a client
 * can compute how old a position is) and a per-player sequence number.
 *
 * Positions are `@unreliable` in the "unreliable" mode (fastnet: datagrams after each patch, a lost one is
 * not resent) and reliable state in the "reliable" mode (ws-transport: Colyseus never sends `@unreliable`
 * fields to WebSocket clients, so the comparison uses a reliable position there).
 */
import { Room, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";

export const LOSS_ROOM = "loss";
export const PLAYERS = 8;
export const TICK_MS = 50;

export type PositionMode = "reliable" | "unreliable";

const ReliablePlayer = schema({ x: t.float32().default(0), stamp: t.float64().default(0), seq: t.uint32().default(0) }, "LossReliablePlayer");
const UnreliablePlayer = schema(
  { x: t.float32().unreliable().default(0), stamp: t.float64().unreliable().default(0), seq: t.uint32().unreliable().default(0) },
  "LossUnreliablePlayer",
);
const ReliableState = schema({ players: t.map(ReliablePlayer) }, "LossReliableState");
const UnreliableState = schema({ players: t.map(UnreliablePlayer) }, "LossUnreliableState");

/** CLOCK_MONOTONIC in milliseconds (µs resolution): comparable between processes of one machine. */
export const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;

interface PlayerFields {
  x: number;
  stamp: number;
  seq: number;
}

/** The room class for a position mode. */
export function lossRoom(mode: PositionMode): new () => Room {
  const PlayerType = mode === "reliable" ? ReliablePlayer : UnreliablePlayer;
  const StateType = mode === "reliable" ? ReliableState : UnreliableState;
  return class LossRoom extends Room {
    override maxClients = PLAYERS;
    override patchRate = TICK_MS;
    override state = new StateType();

    override onCreate(): void {
      this.onMessage("ping", (client: Client, seq: unknown) => {
        client.send("pong", seq);
      });
    }

    override onJoin(client: Client): void {
      (this.state.players as Map<string, unknown>).set(client.sessionId, new PlayerType({ x: 0, stamp: monoMs(), seq: 0 }));
    }

    override onLeave(client: Client): void {
      (this.state.players as Map<string, unknown>).delete(client.sessionId);
    }

    /** Every patch carries fresh positions: each player moves and gets this patch's stamp. */
    override onBeforePatch(): void {
      const stamp = monoMs();
      for (const p of (this.state.players as Map<string, PlayerFields>).values()) {
        p.seq++;
        p.x = Math.round(Math.sin(p.seq / 20) * 1000) / 10;
        p.stamp = stamp;
      }
    }
  };
}
