/**
 * ArenaRoom: players run around an 800x600 arena collecting a coin, and chat.
 *
 * - positions: clients send `room.sendUnreliable("move", { x, y, seq })` at 20-30 Hz; the room
 *   clamps each move to the maximum speed and writes the `@unreliable` x/y fields, which reach the
 *   other clients as datagrams with the next patch (every 40 ms);
 * - the coin, scores, names and the `connected` flag are reliable state;
 * - chat: `room.send("chat", { text })`, broadcast reliably to everyone as `"chat"`;
 * - a dropped player (connection lost, not a consented leave) keeps the seat for 20 s: the SDK
 *   reconnects on its own and `onReconnect` runs. A browser whose page was closed (WebSocket close
 *   1001, "going away") is not coming back: it leaves at once;
 * - each player's path (UDP or WebSocket) and its RTT as the server measures it, once a second.
 */
import { Room, type Client } from "colyseus";
import { measureRtt, pathOf } from "./client-path.js";
import { ARENA, ArenaState, Player, type ChatMessage } from "./state.js";

/** Seconds a dropped player's seat is held for its reconnection. */
const RECONNECT_SECONDS = 20;
const MAX_CHAT_LENGTH = 200;
/** How often every player's RTT is measured and written to the state, ms. */
const RTT_EVERY_MS = 1000;
/** WebSocket close code of a page that was closed or navigated away (RFC 6455 §7.4.1). */
const GOING_AWAY = 1001;

/** Process-wide counters of every ArenaRoom (main.ts shows them in its status line). */
export const arenaCounters = {
  /** Players currently in a seat (connected or held for a reconnection). */
  players: 0,
  /** Players whose connection is lost and whose seat is held. */
  dropped: 0,
  movesReceived: 0,
  chatsReceived: 0,
  coinsCollected: 0,
  reconnections: 0,
};

interface JoinOptions {
  name?: unknown;
}

export class ArenaRoom extends Room<{ state: ArenaState }> {
  override maxClients = 16;
  /** Patches (reliable and, for the @unreliable positions, datagrams) every 40 ms: 25 Hz. */
  override patchRate = 40;
  /** Well above 25 moves/s plus chat: a client flooding the room is kicked. */
  override maxMessagesPerSecond = 100;
  override state = new ArenaState();

  /** Per session: when its last move was applied, and its sequence number (to drop reordered moves). */
  private readonly lastMove = new Map<string, { at: number; seq: number }>();

  override messages = {
    move: (client: Client, message: unknown) => this.onMove(client, message),
    chat: (client: Client, message: unknown) => this.onChat(client, message),
  };

  override onCreate(): void {
    this.placeCoin();
    this.clock.setInterval(() => {
      for (const client of this.clients) this.measureRtt(client);
    }, RTT_EVERY_MS);
  }

  override onJoin(client: Client, options?: JoinOptions): void {
    const name =
      typeof options?.name === "string" && options.name.trim() ? options.name.trim().slice(0, 24) : `player-${client.sessionId.slice(0, 4)}`;
    const player = new Player({
      name,
      x: Math.round(Math.random() * ARENA.width),
      y: Math.round(Math.random() * ARENA.height),
      score: 0,
      connected: true,
      path: pathOf(client),
    });
    this.state.players.set(client.sessionId, player);
    this.measureRtt(client);
    this.lastMove.set(client.sessionId, { at: performance.now(), seq: -1 });
    arenaCounters.players++;
  }

  override onDrop(client: Client, code?: number): void {
    // No seat held: Colyseus runs onLeave right after this.
    if (code === GOING_AWAY) return;
    const player = this.state.players.get(client.sessionId);
    if (player) player.connected = false;
    arenaCounters.dropped++;
    // Rejected at once while the room is disposing, and after RECONNECT_SECONDS (onLeave runs then).
    this.allowReconnection(client, RECONNECT_SECONDS).catch(() => {});
  }

  override onReconnect(client: Client): void {
    const player = this.state.players.get(client.sessionId);
    if (player) {
      player.connected = true;
      // The reconnection may have come in on the other path.
      player.path = pathOf(client);
    }
    this.measureRtt(client);
    const move = this.lastMove.get(client.sessionId);
    if (move) move.at = performance.now();
    arenaCounters.dropped--;
    arenaCounters.reconnections++;
  }

  override onLeave(client: Client, _code?: number): void {
    const player = this.state.players.get(client.sessionId);
    if (player && !player.connected) arenaCounters.dropped--;
    if (this.state.players.delete(client.sessionId)) arenaCounters.players--;
    this.lastMove.delete(client.sessionId);
  }

  private onMove(client: Client, message: unknown): void {
    arenaCounters.movesReceived++;
    const player = this.state.players.get(client.sessionId);
    const last = this.lastMove.get(client.sessionId);
    if (!player || !last || !isMove(message)) return;
    // Datagrams may arrive out of order: a move older than the last applied one is stale.
    if (typeof message.seq === "number") {
      if (message.seq <= last.seq) return;
      last.seq = message.seq;
    }
    const now = performance.now();
    const elapsed = Math.min(now - last.at, 250);
    last.at = now;
    // Authoritative: no further than maxSpeed allows since the last move (plus a little jitter slack).
    const maxStep = (ARENA.maxSpeed * elapsed) / 1000 + 2;
    let dx = clamp(message.x, 0, ARENA.width) - player.x;
    let dy = clamp(message.y, 0, ARENA.height) - player.y;
    const distance = Math.hypot(dx, dy);
    if (distance > maxStep) {
      dx *= maxStep / distance;
      dy *= maxStep / distance;
    }
    player.x = round1(player.x + dx);
    player.y = round1(player.y + dy);

    const coin = this.state.coin;
    if (Math.hypot(player.x - coin.x, player.y - coin.y) <= ARENA.pickupRadius) {
      player.score++;
      this.state.coinsCollected++;
      arenaCounters.coinsCollected++;
      this.placeCoin();
    }
  }

  private onChat(client: Client, message: unknown): void {
    arenaCounters.chatsReceived++;
    const player = this.state.players.get(client.sessionId);
    const text = typeof (message as { text?: unknown })?.text === "string" ? (message as { text: string }).text.trim() : "";
    if (!player || !text) return;
    const chat: ChatMessage = { from: player.name, sessionId: client.sessionId, text: text.slice(0, MAX_CHAT_LENGTH) };
    this.broadcast("chat", chat);
  }

  private measureRtt(client: Client): void {
    const sessionId = client.sessionId;
    measureRtt(client, (ms) => {
      const player = this.state.players.get(sessionId);
      if (player) player.rtt = Math.round(ms * 100) / 100;
    });
  }

  private placeCoin(): void {
    const margin = 40;
    this.state.coin.x = Math.round(margin + Math.random() * (ARENA.width - 2 * margin));
    this.state.coin.y = Math.round(margin + Math.random() * (ARENA.height - 2 * margin));
  }
}

function isMove(m: unknown): m is { x: number; y: number; seq?: number } {
  const v = m as { x?: unknown; y?: unknown } | null;
  return typeof v === "object" && v !== null && Number.isFinite(v.x) && Number.isFinite(v.y);
}

function clamp(v: number, min: number, max: number): number {
  return v < min ? min : v > max ? max : v;
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}
