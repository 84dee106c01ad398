/**
 * A headless arena player over fastnet: joins (or creates) "arena", runs towards the coin sending its
 * position with `room.sendUnreliable("move", ...)` at 25 Hz, chats now and then, and keeps counters
 * of what it sends and receives and of its session's RTT.
 *
 * Alone: `ENDPOINT=http://127.0.0.1:2567 BOTS=3 node --import tsx examples/arena/bot.ts` against a
 * running server (examples/arena/server.ts); Ctrl-C makes the bots leave.
 */
import { pathToFileURL } from "node:url";
import type { Room } from "@colyseus/sdk";
import { FastnetClient, type FastnetClientTransport } from "../../src/client.js";
import { ARENA, type ArenaState, type ChatMessage, type MoveMessage } from "./state.js";

const CHAT_LINES = [
  "gg",
  "that coin is mine",
  "lag? what lag",
  "anyone else on UDP?",
  "nice grab",
  "brb",
  "how is everyone this fast",
  "coin left, coin right...",
];

export interface BotOptions {
  /** Move messages per second (default 25). */
  rateHz?: number;
  /** A chat line every this many ms, give or take half (default 5000). */
  chatEveryMs?: number;
  /** Where the bot reports joins, drops and errors (default: nowhere). */
  log?: (line: string) => void;
}

/** Counters since the bot started; `sample()` turns them into rates. */
export interface BotCounters {
  /** Frames sent: moves (unreliable) and chats (reliable). */
  sent: number;
  /** Frames received: state patches (reliable and unreliable) and messages. */
  received: number;
  /** State frames received (full state and patches, reliable and unreliable). */
  patches: number;
  chatsSent: number;
  chatsReceived: number;
  drops: number;
  reconnects: number;
}

export interface BotSample {
  /** Smoothed RTT of the bot's session (ms), null while not connected. */
  rttMs: number | null;
  sentPerSec: number;
  receivedPerSec: number;
  patchesPerSec: number;
}

export class ArenaBot {
  readonly name: string;
  readonly counters: BotCounters = { sent: 0, received: 0, patches: 0, chatsSent: 0, chatsReceived: 0, drops: 0, reconnects: 0 };
  room: Room<any, ArenaState> | null = null;
  /** True from a join until the bot left (or was removed) for good. */
  joined = false;
  lastChat: ChatMessage | null = null;

  private readonly client: FastnetClient;
  private readonly rateHz: number;
  private readonly chatEveryMs: number;
  private readonly log: (line: string) => void;
  private readonly speed: number;
  private tickTimer: NodeJS.Timeout | undefined;
  private chatTimer: NodeJS.Timeout | undefined;
  private pos: { x: number; y: number } | null = null;
  private seq = 0;
  private lastTickAt = 0;
  private lastSample = { at: performance.now(), sent: 0, received: 0, patches: 0 };
  private stopped = false;
  private leftResolve: (() => void) | null = null;
  private readonly left = new Promise<void>((resolve) => (this.leftResolve = resolve));

  constructor(client: FastnetClient, name: string, options: BotOptions = {}) {
    this.client = client;
    this.name = name;
    this.rateHz = options.rateHz ?? 25;
    this.chatEveryMs = options.chatEveryMs ?? 5000;
    this.log = options.log ?? (() => {});
    // Not all equally fast, so the race for the coin is not a tie every time.
    this.speed = ARENA.maxSpeed * (0.6 + Math.random() * 0.35);
  }

  /** Joins the arena and starts playing. */
  async start(): Promise<void> {
    const room = await this.client.joinOrCreate<ArenaState>("arena", { name: this.name });
    if (this.stopped) {
      // stop() came while joining: leave at once.
      await room.leave(true);
      return;
    }
    this.room = room;
    this.joined = true;
    room.onStateChange(() => {
      this.counters.patches++;
      this.counters.received++;
    });
    room.onMessage("chat", (message: ChatMessage) => {
      this.counters.received++;
      this.counters.chatsReceived++;
      this.lastChat = message;
    });
    room.onDrop((code, reason) => {
      this.counters.drops++;
      this.log(`${this.name}: connection lost (${code}${reason ? `: ${reason}` : ""}), reconnecting`);
    });
    room.onReconnect(() => {
      this.counters.reconnects++;
      this.log(`${this.name}: reconnected`);
    });
    room.onLeave((code, reason) => {
      this.joined = false;
      this.clearTimers();
      if (code !== 1000 && code !== 4000) this.log(`${this.name}: left the arena (${code}${reason ? `: ${reason}` : ""})`);
      this.leftResolve?.();
    });
    room.onError((code, message) => this.log(`${this.name}: error ${code}: ${message ?? ""}`));

    this.lastTickAt = performance.now();
    this.tickTimer = setInterval(() => this.tick(), 1000 / this.rateHz);
    this.scheduleChat();
  }

  /** RTT and per-second rates since the previous call. */
  sample(): BotSample {
    const now = performance.now();
    const seconds = Math.max((now - this.lastSample.at) / 1000, 1e-3);
    const c = this.counters;
    const s: BotSample = {
      rttMs: this.rttMs(),
      sentPerSec: (c.sent - this.lastSample.sent) / seconds,
      receivedPerSec: (c.received - this.lastSample.received) / seconds,
      patchesPerSec: (c.patches - this.lastSample.patches) / seconds,
    };
    this.lastSample = { at: now, sent: c.sent, received: c.received, patches: c.patches };
    return s;
  }

  /** Smoothed RTT of the current fastnet session, from the transport's statistics. */
  rttMs(): number | null {
    const transport = this.room?.connection?.transport as FastnetClientTransport | undefined;
    return transport?.getStats()?.rtt.smoothedMs ?? null;
  }

  /** Lowest RTT sample of the current session (ms): the path's own round trip, without ACK delays. */
  minRttMs(): number | null {
    const transport = this.room?.connection?.transport as FastnetClientTransport | undefined;
    const min = transport?.getStats()?.rtt.minMs;
    return min !== undefined && Number.isFinite(min) ? min : null;
  }

  /** Leaves the arena (consented: the seat is freed at once) and stops every timer. */
  async stop(timeoutMs = 2000): Promise<void> {
    this.stopped = true;
    this.clearTimers();
    const room = this.room;
    if (!room || !this.joined) return;
    // No automatic reconnection from here on.
    room.reconnection.enabled = false;
    if (room.connection.isOpen) void room.leave(true);
    else void room.leave(false);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.left, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  private tick(): void {
    const room = this.room;
    const now = performance.now();
    const dt = Math.min((now - this.lastTickAt) / 1000, 0.25);
    this.lastTickAt = now;
    if (!room || !room.connection.isOpen || !room.state?.players) return;
    const me = room.state.players.get(room.sessionId);
    if (!me) return;
    // Follow the server where we disagree by much (spawn, reconnection, a move the room clamped).
    if (!this.pos || Math.hypot(this.pos.x - me.x, this.pos.y - me.y) > 60) this.pos = { x: me.x, y: me.y };
    const coin = room.state.coin;
    const dx = coin.x - this.pos.x;
    const dy = coin.y - this.pos.y;
    const distance = Math.hypot(dx, dy);
    const step = Math.min(distance, this.speed * dt);
    if (distance > 0) {
      this.pos.x += (dx / distance) * step;
      this.pos.y += (dy / distance) * step;
    }
    const move: MoveMessage = { x: Math.round(this.pos.x * 10) / 10, y: Math.round(this.pos.y * 10) / 10, seq: ++this.seq };
    room.sendUnreliable("move", move);
    this.counters.sent++;
  }

  private scheduleChat(): void {
    const delay = this.chatEveryMs * (0.5 + Math.random());
    this.chatTimer = setTimeout(() => {
      const room = this.room;
      if (room?.connection.isOpen) {
        room.send("chat", { text: CHAT_LINES[Math.floor(Math.random() * CHAT_LINES.length)] });
        this.counters.sent++;
        this.counters.chatsSent++;
      }
      this.scheduleChat();
    }, delay);
  }

  private clearTimers(): void {
    clearInterval(this.tickTimer);
    clearTimeout(this.chatTimer);
    this.tickTimer = undefined;
    this.chatTimer = undefined;
  }
}

/** Starts `count` bots against `endpoint` (one FastnetClient each, as separate players would have). */
export async function startBots(endpoint: string, count: number, options: BotOptions = {}): Promise<ArenaBot[]> {
  const bots: ArenaBot[] = [];
  for (let i = 0; i < count; i++) {
    const bot = new ArenaBot(new FastnetClient(endpoint), `bot-${i + 1}`, options);
    bots.push(bot);
  }
  // Joined one after another: the first creates the room, the others join it.
  for (const bot of bots) await bot.start();
  return bots;
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const endpoint = process.env.ENDPOINT ?? "http://127.0.0.1:2567";
  const bots = await startBots(endpoint, Number(process.env.BOTS ?? 3), { log: (l) => console.log(l) });
  const timer = setInterval(() => {
    const samples = bots.map((b) => b.sample());
    const rtts = samples.map((s) => s.rttMs).filter((r): r is number => r !== null);
    const sum = (f: (s: BotSample) => number) => samples.reduce((a, s) => a + f(s), 0);
    console.log(
      `bots ${bots.filter((b) => b.joined).length}  rtt avg ${avg(rtts).toFixed(2)} ms  ` +
        `up ${sum((s) => s.sentPerSec).toFixed(0)} msg/s  down ${sum((s) => s.receivedPerSec).toFixed(0)} msg/s`,
    );
  }, 1000);
  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(130);
    stopping = true;
    clearInterval(timer);
    void Promise.all(bots.map((b) => b.stop()));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

function avg(values: number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0;
}
