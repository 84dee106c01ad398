/**
 * The room of bench/scale.ts: game-shaped, like the arena. Rooms of 16; each client sends an "input"
 * 20 times a second ([seq, x, y, echo]); the room's 20 Hz simulation moves every player a step towards
 * its last input, so every position changes every tick, and the 20 Hz patches carry them to all 16
 * clients. An input with echo = 1 is answered at once with "echo" (its seq): the client's input->echo
 * latency, which shows how far behind the server's event loop runs.
 *
 * Positions are reliable state in the "reliable" mode (the comparison rows: ws-transport never sends
 * `@unreliable` fields, so reliable on both transports is like with like) and `@unreliable` in the
 * "unreliable" mode (fastnet only: datagrams with each patch).
 */
import { Room, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";

export const ROOM_SIZE = 16;
export const TICK_MS = 50;
/** One input in this many asks for an echo (4 latency samples per client and second). */
export const ECHO_EVERY = 5;

const ReliablePlayer = schema({ x: t.number().default(0), y: t.number().default(0), seq: t.uint32().default(0) }, "ScaleReliablePlayer");
const UnreliablePlayer = schema(
  { x: t.number().unreliable().default(0), y: t.number().unreliable().default(0), seq: t.uint32().unreliable().default(0) },
  "ScaleUnreliablePlayer",
);
// Nothing else changes every tick: in the unreliable mode a tick is one datagram per client, no reliable patch.
const ReliableState = schema({ players: t.map(ReliablePlayer) }, "ScaleReliableState");
const UnreliableState = schema({ players: t.map(UnreliablePlayer) }, "ScaleUnreliableState");

export type PositionMode = "reliable" | "unreliable";

/** Process-wide counters of every scale room (the server child reports them). */
export const scaleCounters = { inputs: 0, echoes: 0, rooms: 0, players: 0 };

interface Player {
  x: number;
  y: number;
  seq: number;
}

/** The room class for a position mode. */
export function scaleRoom(mode: PositionMode): new () => Room {
  const PlayerType = mode === "reliable" ? ReliablePlayer : UnreliablePlayer;
  const StateType = mode === "reliable" ? ReliableState : UnreliableState;
  return class ScaleRoom extends Room {
    override maxClients = ROOM_SIZE;
    override patchRate = TICK_MS;
    override state = new StateType();
    /** Last input of each player: where it wants to go. */
    private readonly targets = new Map<string, { x: number; y: number; seq: number }>();

    override onCreate(): void {
      scaleCounters.rooms++;
      this.setSimulationInterval(() => this.step(), TICK_MS);
      this.onMessage("input", (client: Client, m: unknown) => {
        scaleCounters.inputs++;
        if (!Array.isArray(m) || m.length !== 4) return;
        const [seq, x, y, echo] = m as number[];
        const target = this.targets.get(client.sessionId);
        if (target && typeof seq === "number" && typeof x === "number" && typeof y === "number") {
          target.x = x;
          target.y = y;
          target.seq = seq;
        }
        if (echo === 1) {
          scaleCounters.echoes++;
          client.send("echo", seq);
        }
      });
    }

    override onJoin(client: Client): void {
      scaleCounters.players++;
      const x = Math.round(Math.random() * 8000) / 10;
      const y = Math.round(Math.random() * 6000) / 10;
      (this.state.players as Map<string, unknown>).set(client.sessionId, new PlayerType({ x, y, seq: 0 }));
      this.targets.set(client.sessionId, { x, y, seq: 0 });
    }

    override onLeave(client: Client): void {
      scaleCounters.players--;
      (this.state.players as Map<string, unknown>).delete(client.sessionId);
      this.targets.delete(client.sessionId);
    }

    override onDispose(): void {
      scaleCounters.rooms--;
    }

    /** One simulation tick: every player moves half-way to its target (rounded to 0.1, as a game would quantize). */
    private step(): void {
      for (const [id, p] of this.state.players as Map<string, Player>) {
        const target = this.targets.get(id);
        if (!target) continue;
        p.x = Math.round((p.x + (target.x - p.x) / 2) * 10) / 10;
        p.y = Math.round((p.y + (target.y - p.y) / 2) * 10) / 10;
        p.seq = target.seq;
      }
    }
  };
}
