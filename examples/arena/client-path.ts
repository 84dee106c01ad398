/**
 * Which path a room's client came in on, and its round trip as the server sees it.
 *
 * FastnetTransport gives the room one of two `Client` classes: a FastnetServerClient for a fastnet
 * session (UDP) and a WebSocketRoomClient for Colyseus' standard WebSocket connection (browsers, plain
 * `@colyseus/sdk` clients). On a reconnection the room gets the new connection's Client, so the path is
 * read again then: a player may come back on the other path.
 */
import type { Client } from "colyseus";
import type WebSocket from "ws";
import { FastnetServerClient, WebSocketRoomClient } from "../../src/index.js";

/** What the arena shows as a player's path. */
export type PlayerPath = "UDP" | "WebSocket";

/** The path of `client`, or "" for a Client of another transport. */
export function pathOf(client: Client): PlayerPath | "" {
  if (client instanceof FastnetServerClient) return "UDP";
  if (client instanceof WebSocketRoomClient) return "WebSocket";
  return "";
}

/** Marks our ping payloads, so the transport's own heartbeat pings (answered on the same socket) are not mistaken for ours. */
const RTT_PING_TAG = "arena-rtt:";

/** Sockets whose pong listener is installed (one per socket, whichever Client holds it now). */
const listening = new WeakSet<WebSocket>();

/**
 * Measures `client`'s round trip and reports it (ms) through `report`:
 * - fastnet: the session's smoothed RTT, from its acknowledgements (reported at once);
 * - WebSocket: a WebSocket ping carrying its send time, reported when the browser's pong (which
 *   every browser sends by itself) echoes it.
 * A client on neither path, or one not open, is skipped.
 */
export function measureRtt(client: Client, report: (ms: number) => void): void {
  if (client instanceof FastnetServerClient) {
    if (client.readyState === 1) report(client.session.getStats().rtt.smoothedMs);
    return;
  }
  if (!(client instanceof WebSocketRoomClient)) return;
  // `ref` follows the connection: on a reconnection Colyseus moves the new socket onto the old Client.
  const ws = client.ref as WebSocket;
  if (ws.readyState !== 1) return;
  if (!listening.has(ws)) {
    listening.add(ws);
    ws.on("pong", (data: Buffer) => {
      const text = data.toString("latin1");
      if (!text.startsWith(RTT_PING_TAG)) return;
      const sentAt = Number(text.slice(RTT_PING_TAG.length));
      if (Number.isFinite(sentAt)) report(performance.now() - sentAt);
    });
  }
  ws.ping(Buffer.from(`${RTT_PING_TAG}${performance.now()}`, "latin1"));
}
