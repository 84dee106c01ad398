/**
 * A hostile player for the Colyseus tests: a raw engine session (`connect()`) with real keys, sending
 * whatever hello path and headers it likes, as anyone can with the public API.
 */
import { matchMaker } from "@colyseus/core";
import { connect, type ConnectOptions, type FastnetClientSession } from "../../src/index.js";
import type { ColyseusHarness } from "./colyseus-harness.js";

/** A raw session and what it received: every reliable frame, and the close once it happens. */
export interface RawPlayer {
  session: FastnetClientSession;
  frames: Uint8Array[];
  close: { code: number; reason: string } | null;
  closed: Promise<{ code: number; reason: string }>;
}

/** Every raw session opened through `rawPlayer`, so a test's teardown can end them all. */
const open = new Set<FastnetClientSession>();

/** The hello path of a room connection on this process: `/<processId>/<roomId>?<query>`. */
export function roomPath(roomId: string, query: string): string {
  return `/${matchMaker.processId}/${roomId}?${query}`;
}

/** Opens a session to the harness's server with `path` in the hello (pinning its dev certificate). */
export async function rawPlayer(h: ColyseusHarness, path: string, options: ConnectOptions = {}): Promise<RawPlayer> {
  const session = await connect(h.endpoint, { fingerprint: h.transport.fingerprint, ...options, path });
  open.add(session);
  const player: RawPlayer = { session, frames: [], close: null, closed: null! };
  session.on("message", (data) => void player.frames.push(data));
  player.closed = new Promise((resolve) => {
    session.once("close", (code, reason) => {
      open.delete(session);
      player.close = { code, reason };
      resolve(player.close);
    });
  });
  return player;
}

/** Aborts every raw session still open (test teardown). */
export function abortRawPlayers(): void {
  for (const s of [...open]) if (s.readyState < 3) s.abort(1000, "test teardown");
  open.clear();
}
