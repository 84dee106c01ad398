/**
 * The players of bench/loss.ts: PLAYERS @colyseus/sdk rooms in ONE room of the server child (the first
 * client creates it, the others join it by id), on one transport:
 *   fastnet        FastnetClient with `path: "udp"` (no WebSocket fallback: loss must not switch paths)
 *   ws-transport   the SDK's plain `new Client(url)` (WebSocket over TCP)
 * Every client sends a reliable "ping" (a sequence number) every TICK_MS, its first one at a random offset
 * in the tick; the room answers "pong". Measured here, in this process:
 *   reliable RTT   per ping, from just before room.send to the pong's callback (CLOCK_MONOTONIC, ms)
 *   lost           counted pings whose pong never came (after the drain)
 *   state age      on every state change, for every player whose stamp advanced: now - stamp (the room
 *                  stamps positions with its CLOCK_MONOTONIC time just before each patch)
 *   stale gap      per (client, player): the time between two arrivals of a fresher stamp, and from the
 *                  last one to the end of the window; stale_max is the longest
 * Only what happens inside a window (beginWindow .. endWindow) counts; pings sent in it are followed
 * until their pong or the end of drain().
 */
import { Client, type Room } from "@colyseus/sdk";
import { FastnetClient, transportOf } from "../../src/client.js";
import { addEngineStats, emptyEngineStats, type LossEngineStats } from "./loss-engine-stats.js";
import { LOSS_ROOM, monoMs, PLAYERS, TICK_MS } from "./loss-room.js";
import { withTimeout } from "./rtt-clients.js";

export type LossTransport = "fastnet" | "ws-transport";

const LEAVE_TIMEOUT_MS = 5_000;
const DRAIN_POLL_MS = 20;

interface Fresh {
  stamp: number;
  at: number;
}

interface Player {
  room: Room;
  seq: number;
  /** seq -> [sent at (ms), counted] for pings without pong yet. */
  pending: Map<number, { at: number; counted: boolean }>;
  /** sessionId of each player in the state -> freshest stamp seen and when it arrived. */
  fresh: Map<string, Fresh>;
  timer: NodeJS.Timeout | undefined;
  /** Blackout marks: first pong and first state stamped at or after `mark`, arrival times. */
  firstPong: number;
  firstState: number;
}

/** What a window measured, all clients together. */
export interface WindowStats {
  rtts: number[];
  sent: number;
  lost: number;
  ages: number[];
  staleMax: number;
}

export class LossPlayers {
  private readonly players: Player[] = [];
  private recording = false;
  private rtts: number[] = [];
  private ages: number[] = [];
  private sent = 0;
  private staleMax = 0;
  private mark = Infinity;
  private closing = false;
  /** Drops, leaves and errors of any room while not closing. */
  readonly failures: string[] = [];

  private constructor(readonly transport: LossTransport) {}

  /** Joins PLAYERS clients to a fresh room; rejects if a join takes over `timeoutMs`. */
  static async join(transport: LossTransport, port: number, timeoutMs: number): Promise<LossPlayers> {
    const endpoint = `http://127.0.0.1:${port}`;
    const sdk = transport === "fastnet" ? new FastnetClient(endpoint, { path: "udp" }) : new Client(endpoint);
    const set = new LossPlayers(transport);
    try {
      const first = await withTimeout(sdk.create(LOSS_ROOM), timeoutMs, `${transport}: create("${LOSS_ROOM}")`);
      set.add(first);
      for (let i = 1; i < PLAYERS; i++) set.add(await withTimeout(sdk.joinById(first.roomId), timeoutMs, `${transport}: joinById`));
    } catch (err) {
      await set.leave();
      throw err;
    }
    return set;
  }

  private add(room: Room): void {
    const p: Player = { room, seq: 0, pending: new Map(), fresh: new Map(), timer: undefined, firstPong: NaN, firstState: NaN };
    this.players.push(p);
    room.onMessage("pong", (seq: unknown) => {
      const now = monoMs();
      if (typeof seq !== "number") return;
      const ping = p.pending.get(seq);
      if (!ping) return;
      p.pending.delete(seq);
      if (ping.counted) this.rtts.push(now - ping.at);
      if (now >= this.mark && Number.isNaN(p.firstPong)) p.firstPong = now;
    });
    room.onStateChange((state: unknown) => {
      const now = monoMs();
      const players = (state as { players?: { forEach(cb: (v: { stamp: number }, k: string) => void): void } }).players;
      players?.forEach((v, id) => {
        const prev = p.fresh.get(id);
        if (prev && v.stamp <= prev.stamp) return;
        if (this.recording) {
          this.ages.push(now - v.stamp);
          if (prev) this.staleMax = Math.max(this.staleMax, now - prev.at);
        }
        if (v.stamp >= this.mark && Number.isNaN(p.firstState)) p.firstState = now;
        p.fresh.set(id, { stamp: v.stamp, at: now });
      });
    });
    const fail = (what: string): void => {
      if (!this.closing) this.failures.push(`${this.transport}: ${what}`);
    };
    room.onDrop((code, reason) => fail(`connection dropped (${code}${reason ? ` ${reason}` : ""})`));
    room.onReconnect(() => fail("reconnected"));
    room.onLeave((code, reason) => fail(`left the room (${code}${reason ? ` ${reason}` : ""})`));
    room.onError((code, message) => fail(`room error ${code}${message ? ` ${message}` : ""}`));
  }

  /** Every client pings every TICK_MS from now on (first ping at a random offset in the tick). */
  startPings(): void {
    for (const p of this.players) {
      p.timer = setTimeout(() => {
        this.ping(p);
        p.timer = setInterval(() => this.ping(p), TICK_MS);
      }, Math.random() * TICK_MS);
    }
  }

  private ping(p: Player): void {
    const seq = ++p.seq;
    p.pending.set(seq, { at: monoMs(), counted: this.recording });
    if (this.recording) this.sent++;
    p.room.send("ping", seq);
  }

  stopPings(): void {
    for (const p of this.players) {
      clearTimeout(p.timer);
      clearInterval(p.timer);
      p.timer = undefined;
    }
  }

  beginWindow(): void {
    this.rtts = [];
    this.ages = [];
    this.sent = 0;
    this.staleMax = 0;
    const now = monoMs();
    // A gap that straddles the start counts from the start.
    for (const p of this.players) for (const f of p.fresh.values()) f.at = Math.max(f.at, now);
    this.recording = true;
  }

  /** Stops counting new pings and state; a player's fresh state still pending counts up to now. */
  endWindow(): void {
    const now = monoMs();
    for (const p of this.players) for (const f of p.fresh.values()) this.staleMax = Math.max(this.staleMax, now - f.at);
    this.recording = false;
  }

  private countedPending(): number {
    let n = 0;
    for (const p of this.players) for (const v of p.pending.values()) if (v.counted) n++;
    return n;
  }

  /** Waits until every counted ping has its pong, at most `maxMs`. */
  async drain(maxMs: number): Promise<void> {
    const until = monoMs() + maxMs;
    while (this.countedPending() > 0 && monoMs() < until) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
  }

  /** The window's measurements (call after drain()). */
  stats(): WindowStats {
    return { rtts: [...this.rtts].sort((a, b) => a - b), sent: this.sent, lost: this.countedPending(), ages: [...this.ages].sort((a, b) => a - b), staleMax: this.staleMax };
  }

  /** Blackout: from `at` (ms, monoMs clock) on, note each client's first pong and first state stamped at or after it. */
  markFrom(at: number): void {
    this.mark = at;
    for (const p of this.players) p.firstPong = p.firstState = NaN;
  }

  /** Per client, ms from the mark to its first pong and to its first fresh state (NaN: none yet). */
  recovery(): { pong: number[]; state: number[] } {
    return { pong: this.players.map((p) => p.firstPong - this.mark), state: this.players.map((p) => p.firstState - this.mark) };
  }

  get recovered(): boolean {
    return this.players.every((p) => !Number.isNaN(p.firstPong) && !Number.isNaN(p.firstState));
  }

  /** fastnet: the clients' engine counters summed (null for ws-transport). */
  engineStats(): LossEngineStats | null {
    if (this.transport !== "fastnet") return null;
    const total = emptyEngineStats();
    for (const p of this.players) {
      const s = transportOf(p.room).getStats();
      if (s) addEngineStats(total, s);
    }
    return total;
  }

  /** Leaves every room (bounded); safe to call twice. */
  async leave(): Promise<void> {
    this.stopPings();
    this.closing = true;
    await Promise.all(this.players.map((p) => withTimeout(p.room.leave(true), LEAVE_TIMEOUT_MS, "leave").catch(() => undefined)));
  }
}
