/**
 * The arena's synchronised state, shared by the room (server) and, as types only, by the bots.
 *
 * Positions are `@unreliable` (`t.number().unreliable()`): after a player is added (that ADD travels
 * reliably), every change of x/y goes out as a datagram with the next patch, and a lost one is simply
 * superseded by the next. Names, scores and the coin are ordinary reliable state.
 */
import { schema, t, type SchemaType } from "@colyseus/schema";

/** Arena geometry and rules, shared by the room and the bots. */
export const ARENA = {
  width: 800,
  height: 600,
  /** Distance from the coin's centre at which a player picks it up. */
  pickupRadius: 24,
  /** Fastest a player may move, in units per second (the room clamps every move to it). */
  maxSpeed: 240,
} as const;

export const Player = schema(
  {
    name: t.string().default(""),
    x: t.number().unreliable().default(0),
    y: t.number().unreliable().default(0),
    score: t.uint32().default(0),
    /** False while the player's connection is lost and its seat is held for a reconnection. */
    connected: t.boolean().default(true),
    /** How the player's connection reaches the room: "UDP" (fastnet) or "WebSocket"; set by the room. */
    path: t.string().default(""),
    /** The player's round trip as the server measures it, ms (0 until the first sample), about once a second. */
    rtt: t.number().default(0),
  },
  "Player",
);
export type Player = SchemaType<typeof Player>;

export const Coin = schema(
  {
    x: t.number().default(0),
    y: t.number().default(0),
  },
  "Coin",
);
export type Coin = SchemaType<typeof Coin>;

export const ArenaState = schema(
  {
    players: t.map(Player),
    coin: Coin,
    coinsCollected: t.uint32().default(0),
  },
  "ArenaState",
);
export type ArenaState = SchemaType<typeof ArenaState>;

/** Chat as the room broadcasts it. */
export interface ChatMessage {
  from: string;
  sessionId: string;
  text: string;
}

/** What a client sends with `room.sendUnreliable("move", ...)`: where it wants to be. */
export interface MoveMessage {
  x: number;
  y: number;
  /** Increases with every move; the room drops a move older than the last one it applied. */
  seq?: number;
}
