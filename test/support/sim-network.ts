/**
 * A deterministic simulated network for two sans-IO `Connection`s.
 *
 * Everything is driven by a seeded PRNG and a virtual clock (milliseconds): per-direction loss, base delay
 * plus jitter (which reorders), duplication, an optional bandwidth cap with a drop-tail queue. Deliveries and
 * scheduled actions sit in one event queue ordered by (time, insertion order); timers come from each side's
 * `pollTimeout()`. After every input to a side its `pollTransmit` is drained and its events are collected.
 *
 * The loop is bounded in steps, in steps without the clock advancing, and in virtual time, and throws
 * SimLimitError when a bound is exceeded, so a livelock (a timer that stays due, a send loop that never ends)
 * fails a test instead of hanging it. Timers fire on whole milliseconds by default, as setTimeout would
 * (`timerGranularityMs`; 0 fires them at exactly the deadline pollTimeout returned).
 */
import type { AeadBackend } from "../../src/protocol/aead.js";
import type { Allocator } from "../../src/protocol/allocator.js";
import { Connection, type ConnectionEvent } from "../../src/protocol/connection.js";
import { transportParams, type SessionOptions } from "../../src/protocol/options.js";
import type { TransportParams } from "../../src/protocol/connection.js";
import { CID_LENGTH } from "../../src/protocol/version.js";
import { selectAeadBackend } from "../../src/node/aead-select.js";

// ------------------------------------------------------------------------------------------------ PRNG

/** mulberry32: small, fast, good enough for test decisions; never use for keys outside tests. */
export class Prng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability p (never for p <= 0, always for p >= 1). */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  fill(out: Uint8Array): Uint8Array {
    let i = 0;
    for (; i + 4 <= out.length; i += 4) {
      const v = this.u32();
      out[i] = v & 0xff;
      out[i + 1] = (v >>> 8) & 0xff;
      out[i + 2] = (v >>> 16) & 0xff;
      out[i + 3] = v >>> 24;
    }
    if (i < out.length) {
      let v = this.u32();
      for (; i < out.length; i++, v >>>= 8) out[i] = v & 0xff;
    }
    return out;
  }

  bytes(n: number): Uint8Array {
    return this.fill(new Uint8Array(n));
  }

  /** An independent generator derived from this one. */
  fork(): Prng {
    return new Prng(this.u32() ^ 0x9e3779b9);
  }

  /** Fisher-Yates, in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }
}

// ------------------------------------------------------------------------------------------------ pairs

export type Side = "client" | "server";
export const other = (side: Side): Side => (side === "client" ? "server" : "client");

let cachedBackend: AeadBackend | null = null;
/** The fastest AEAD backend available (sodium, node, else noble); chosen once. */
export function fastBackend(): AeadBackend {
  return (cachedBackend ??= selectAeadBackend("auto"));
}

export interface PairConfig {
  seed: number;
  /** Virtual time at which both connections are created (default 1_000_000: not zero, on purpose). */
  now?: number;
  /** Options for both sides; `clientOptions` / `serverOptions` override per side. */
  options?: Partial<SessionOptions>;
  clientOptions?: Partial<SessionOptions>;
  serverOptions?: Partial<SessionOptions>;
  /** What each side believes the peer announced (defaults to the peer's own options, as a handshake would). */
  clientPeerParams?: TransportParams;
  serverPeerParams?: TransportParams;
  keyingMaterial?: Uint8Array;
  cid?: Uint8Array;
  aead?: AeadBackend;
  initialRttMs?: number;
  /** Buffer allocator for both connections (default: the core's own). */
  alloc?: Allocator;
}

export interface Pair {
  client: Connection;
  server: Connection;
  keyingMaterial: Uint8Array;
  cid: Uint8Array;
  now: number;
}

/** What a side with options `o` announces in its handshake (limits and optional features). */
function paramsOf(o: SessionOptions): TransportParams {
  return transportParams(o);
}

/** Two connections sharing keying material and CID, as a finished TLS handshake would leave them. */
export function makePair(cfg: PairConfig): Pair {
  const rng = new Prng(cfg.seed ^ 0x5eed_0001);
  const now = cfg.now ?? 1_000_000;
  const keyingMaterial = cfg.keyingMaterial ?? rng.bytes(64);
  const cid = cfg.cid ?? rng.bytes(CID_LENGTH);
  const aead = cfg.aead ?? fastBackend();
  const clientRng = rng.fork();
  const serverRng = rng.fork();
  const clientOpts = { ...cfg.options, ...cfg.clientOptions };
  const serverOpts = { ...cfg.options, ...cfg.serverOptions };
  // Build once without peer params to learn each side's resolved options, as the handshake would announce them.
  const probe = (role: "client" | "server", options: Partial<SessionOptions>) =>
    new Connection({ role, cid, keyingMaterial, aead, now, random: () => {}, options }).options;
  const clientResolved = probe("client", clientOpts);
  const serverResolved = probe("server", serverOpts);
  const client = new Connection({
    role: "client",
    cid,
    keyingMaterial,
    aead,
    now,
    random: (out) => void clientRng.fill(out),
    options: clientOpts,
    peerParams: cfg.clientPeerParams ?? paramsOf(serverResolved),
    ...(cfg.alloc ? { alloc: cfg.alloc } : {}),
    ...(cfg.initialRttMs !== undefined ? { initialRttMs: cfg.initialRttMs } : {}),
  });
  const server = new Connection({
    role: "server",
    cid,
    keyingMaterial,
    aead,
    now,
    random: (out) => void serverRng.fill(out),
    options: serverOpts,
    peerParams: cfg.serverPeerParams ?? paramsOf(clientResolved),
    ...(cfg.alloc ? { alloc: cfg.alloc } : {}),
    ...(cfg.initialRttMs !== undefined ? { initialRttMs: cfg.initialRttMs } : {}),
  });
  return { client, server, keyingMaterial, cid, now };
}

/**
 * An allocator like Buffer.allocUnsafe, made hostile: small buffers are consecutive slices of shared 8 KiB
 * pools (non-zero byteOffset, shared ArrayBuffer), and every byte starts as seeded garbage. Code that reads
 * a byte it did not write, or assumes it owns `.buffer`, shows up as a difference from the default allocator.
 */
export function poisonedPoolAllocator(seed: number): Allocator & { allocations: number } {
  const rng = new Prng(seed ^ 0xa110c);
  let pool: Uint8Array = new Uint8Array(0);
  let used = 0;
  const alloc = ((size: number) => {
    alloc.allocations++;
    if (size > 4096) return rng.fill(new Uint8Array(size));
    if (used + size > pool.length) {
      pool = rng.fill(new Uint8Array(8192));
      used = 0;
    }
    const out = pool.subarray(used, used + size);
    used += (size + 7) & ~7;
    return out;
  }) as Allocator & { allocations: number };
  alloc.allocations = 0;
  return alloc;
}

// ------------------------------------------------------------------------------------------------ network

/** One direction of the link. Probabilities are in [0, 1], times in ms. */
export interface LinkProfile {
  /** Probability that a datagram is lost. */
  loss?: number;
  /** One-way base delay (default 20 ms). */
  delayMs?: number;
  /** Extra delay uniform in [0, jitterMs): reorders datagrams when larger than their spacing. */
  jitterMs?: number;
  /** Probability that a datagram is delivered twice (the copy gets its own jitter). */
  duplicate?: number;
  /** Bandwidth cap in bytes per ms (1 byte/ms = 8 kbit/s); unset = unlimited. */
  bytesPerMs?: number;
  /** With a bandwidth cap: drop datagrams that would wait longer than this in the queue (default 250 ms). */
  maxQueueMs?: number;
}

export interface LinkStats {
  sent: number;
  lost: number;
  queueDropped: number;
  duplicated: number;
  delivered: number;
  /** Deliveries dropped because the receiving side was frozen or the sim filtered them. */
  filtered: number;
}

export interface TimedEvent {
  time: number;
  event: ConnectionEvent;
}

export interface SentRecord {
  time: number;
  from: Side;
  data: Uint8Array;
}

export interface SimConfig {
  seed: number;
  /** Profile of both directions unless one is given per direction. */
  link?: LinkProfile;
  clientToServer?: LinkProfile;
  serverToClient?: LinkProfile;
  /** Step budget of the whole simulation (default 1,000,000). */
  maxSteps?: number;
  /** Steps allowed without the virtual clock advancing (default 10,000): a due timer that never clears. */
  maxStepsPerInstant?: number;
  /** Virtual time budget from the start (default 30 minutes). */
  maxVirtualMs?: number;
  /** Keep every transmitted datagram in `sent` (for transcript comparisons). */
  record?: boolean;
  /**
   * Timers fire on multiples of this (default 1 ms, like setTimeout): `handleTimeout` is called at the
   * deadline rounded up. 0 calls it at exactly the deadline `pollTimeout` returned (the strictest reading
   * of the sans-IO contract).
   */
  timerGranularityMs?: number;
}

type QueueItem =
  | { time: number; seq: number; kind: "deliver"; to: Side; data: Uint8Array }
  | { time: number; seq: number; kind: "action"; fn: () => void };

/** Binary min-heap on (time, seq): deterministic order for equal times. */
class EventQueue {
  private readonly items: QueueItem[] = [];

  get length(): number {
    return this.items.length;
  }

  private less(a: QueueItem, b: QueueItem): boolean {
    return a.time < b.time || (a.time === b.time && a.seq < b.seq);
  }

  push(item: QueueItem): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  peek(): QueueItem | undefined {
    return this.items[0];
  }

  pop(): QueueItem | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }

  /** Removes every queued delivery to `to` (for freezing a side). Returns how many. */
  dropDeliveries(to: Side): number {
    const keep = this.items.filter((it) => !(it.kind === "deliver" && it.to === to));
    const n = this.items.length - keep.length;
    this.items.length = 0;
    for (const it of keep) this.push(it);
    return n;
  }
}

export class SimLimitError extends Error {
  override name = "SimLimitError";
}

/**
 * The simulated network. Create it with a pair (see `makePair`), then call `run*`. Application actions
 * (send, close, ...) may be done directly on `client` / `server` between runs or from `at()` / `onStep`
 * callbacks; the next step transmits whatever they queued.
 */
export class SimNetwork {
  readonly client: Connection;
  readonly server: Connection;
  /** The pair this network drives (keying material and CID included). */
  readonly pair: Pair;
  readonly events: Record<Side, TimedEvent[]> = { client: [], server: [] };
  readonly linkStats: Record<Side, LinkStats> = { client: emptyLinkStats(), server: emptyLinkStats() }; // by sender
  /** With `record`: every datagram a side emitted (including ones the network then lost or a hook took). */
  readonly sent: SentRecord[] = [];
  /** With `record`: every datagram handed to a side by the network, at its arrival time (`from` is the sender). */
  readonly delivered: SentRecord[] = [];
  readonly startTime: number;
  /** Called after every step (after timers and deliveries); use it to feed a workload. */
  onStep: (() => void) | null = null;
  /**
   * Sees every datagram a side emits, before the network decides its fate. Return "drop" to take it off
   * the network (e.g. to hold it for a test), anything else to let it go.
   */
  onTransmit: ((from: Side, data: Uint8Array, time: number) => "drop" | void) | null = null;

  private clock: number;
  private steps = 0;
  private seq = 0;
  private readonly queue = new EventQueue();
  private readonly rng: Record<Side, Prng>; // by sender
  private readonly links: Record<Side, Required<Omit<LinkProfile, "bytesPerMs">> & { bytesPerMs: number }>; // by sender
  private readonly busyUntil: Record<Side, number> = { client: -Infinity, server: -Infinity };
  private readonly frozen: Record<Side, boolean> = { client: false, server: false };
  private readonly maxSteps: number;
  private readonly maxStepsPerInstant: number;
  private stepsThisInstant = 0;
  private readonly deadline: number;
  private readonly record: boolean;
  private readonly granularity: number;

  constructor(pair: Pair, cfg: SimConfig) {
    this.pair = pair;
    this.client = pair.client;
    this.server = pair.server;
    this.clock = pair.now;
    this.startTime = pair.now;
    const base = new Prng(cfg.seed ^ 0x0e7e);
    this.rng = { client: base.fork(), server: base.fork() };
    this.links = {
      client: resolveLink({ ...cfg.link, ...cfg.clientToServer }),
      server: resolveLink({ ...cfg.link, ...cfg.serverToClient }),
    };
    this.maxSteps = cfg.maxSteps ?? 1_000_000;
    this.maxStepsPerInstant = cfg.maxStepsPerInstant ?? 10_000;
    this.deadline = pair.now + (cfg.maxVirtualMs ?? 30 * 60_000);
    this.record = cfg.record ?? false;
    // Timers fire at exactly pollTimeout() by default, the strictest driver (a deadline that stays due
    // is caught as a livelock); FASTNET_SIM_TIMER_GRANULARITY=1 rounds up to whole ms like setTimeout.
    const envGranularity = process.env.FASTNET_SIM_TIMER_GRANULARITY;
    this.granularity = cfg.timerGranularityMs ?? (envGranularity !== undefined && envGranularity !== "" ? Number(envGranularity) : 0);
  }

  get now(): number {
    return this.clock;
  }

  get stepCount(): number {
    return this.steps;
  }

  conn(side: Side): Connection {
    return side === "client" ? this.client : this.server;
  }

  /** Replaces the profile of the direction sent by `from` (takes effect for datagrams sent from now on). */
  setLink(from: Side, profile: LinkProfile): void {
    this.links[from] = resolveLink(profile);
  }

  /** Cuts the link: every datagram sent from now on in the given direction(s) is lost. */
  cut(direction: Side | "both" = "both"): void {
    for (const s of direction === "both" ? (["client", "server"] as const) : [direction]) {
      this.links[s] = { ...this.links[s], loss: 1 };
    }
  }

  /**
   * Freezes a side: its connection is no longer driven (no timers, no transmit) and datagrams to it vanish,
   * as if its process stopped. Datagrams already queued to it are discarded.
   */
  freeze(side: Side): void {
    this.frozen[side] = true;
    this.linkStats[other(side)].filtered += this.queue.dropDeliveries(side);
  }

  /** Runs `fn` at virtual time `time` (absolute). */
  at(time: number, fn: () => void): void {
    this.queue.push({ time: Math.max(time, this.clock), seq: this.seq++, kind: "action", fn });
  }

  /** Runs `fn` `delayMs` from now. */
  after(delayMs: number, fn: () => void): void {
    this.at(this.clock + delayMs, fn);
  }

  /**
   * Hands a datagram straight to a side at the current time, as if it had just arrived; drains the side's
   * transmissions into the network and collects its events. Returns what handleDatagram returned and how
   * many datagrams and events the side produced in response.
   */
  inject(to: Side, data: Uint8Array): { result: number; transmitted: number; events: number } {
    const conn = this.conn(to);
    const eventsBefore = this.events[to].length;
    const result = conn.handleDatagram(data, this.clock);
    const transmitted = this.drain(to);
    this.collect(to);
    return { result, transmitted, events: this.events[to].length - eventsBefore };
  }

  /** Drains both sides' transmissions (after application calls made outside the loop). */
  flush(): number {
    const n = this.drain("client") + this.drain("server");
    this.collect("client");
    this.collect("server");
    return n;
  }

  /** Runs until the virtual clock reaches `untilMs` (absolute) or nothing is left to happen. */
  run(until: number | (() => boolean), maxMs?: number): void {
    if (typeof until === "number") this.runUntilTime(until);
    else this.runUntil(until, maxMs);
  }

  /** Runs for `ms` of virtual time. */
  runFor(ms: number): void {
    this.runUntilTime(this.clock + ms);
  }

  runUntilTime(untilMs: number): void {
    if (untilMs > this.deadline) throw new SimLimitError(`run target ${untilMs} is past the virtual time budget ${this.deadline}`);
    for (;;) {
      const t = this.nextTime();
      if (t > untilMs) {
        this.clock = Math.max(this.clock, untilMs);
        this.flush();
        return;
      }
      this.step(t);
    }
  }

  /**
   * Runs until `pred()` holds (checked before the first step and after every step). Throws when it does
   * not hold within `maxMs` of virtual time or when nothing is left to happen.
   */
  runUntil(pred: () => boolean, maxMs = 120_000): void {
    const limit = Math.min(this.clock + maxMs, this.deadline);
    this.flush();
    while (!pred()) {
      const t = this.nextTime();
      if (t === Infinity) throw new SimLimitError(`stalled: nothing left to happen and the condition does not hold\n${this.describe()}`);
      if (t > limit) throw new SimLimitError(`condition not reached within ${maxMs} ms of virtual time\n${this.describe()}`);
      this.step(t);
    }
  }

  /**
   * Runs until nothing is left in the network or the action queue, and neither side has unacknowledged data
   * or packets in flight (a closed or frozen side counts as quiet). Keep-alive traffic resumes afterwards.
   */
  runUntilQuiet(maxMs = 120_000): void {
    this.runUntil(() => this.queue.length === 0 && this.sidesQuiet(), maxMs);
  }

  private sidesQuiet(): boolean {
    for (const s of ["client", "server"] as const) {
      const c = this.conn(s);
      if (this.frozen[s] || c.state === "closed") continue;
      if (c.state === "closing") return false;
      const st = c.getStats();
      if (st.bytesInFlight > 0 || c.queuedBytes > 0) return false;
    }
    return true;
  }

  /** Time of the next thing to happen (may be in the past for a due timer), Infinity when nothing will. */
  private nextTime(): number {
    let t = this.queue.peek()?.time ?? Infinity;
    for (const s of ["client", "server"] as const) {
      if (this.frozen[s]) continue;
      const to = this.timerOf(s);
      if (to < t) t = to;
    }
    return t;
  }

  /** When the sim fires `side`'s timer: its pollTimeout() rounded up to the granularity; Infinity if none. */
  private timerOf(side: Side): number {
    const to = this.conn(side).pollTimeout();
    if (to === null) return Infinity;
    return this.granularity > 0 ? Math.ceil(to / this.granularity) * this.granularity : to;
  }

  private step(t: number): void {
    if (++this.steps > this.maxSteps) throw new SimLimitError(`step budget ${this.maxSteps} exceeded (livelock?)\n${this.describe()}`);
    if (t > this.deadline) throw new SimLimitError(`virtual time budget exceeded at ${t}\n${this.describe()}`);
    if (t > this.clock) {
      this.clock = t;
      this.stepsThisInstant = 0;
    } else if (++this.stepsThisInstant > this.maxStepsPerInstant) {
      throw new SimLimitError(`${this.maxStepsPerInstant} steps without the clock advancing (a timer that stays due?)\n${this.describe()}`);
    }
    const head = this.queue.peek();
    if (head && head.time <= t) {
      this.queue.pop();
      if (head.kind === "action") {
        head.fn();
        this.flush();
      } else if (this.frozen[head.to]) {
        this.linkStats[other(head.to)].filtered++;
      } else {
        this.linkStats[other(head.to)].delivered++;
        if (this.record) this.delivered.push({ time: this.clock, from: other(head.to), data: head.data });
        this.conn(head.to).handleDatagram(head.data, this.clock);
        this.drain(head.to);
        this.collect(head.to);
      }
    } else {
      for (const s of ["client", "server"] as const) {
        if (this.frozen[s]) continue;
        const c = this.conn(s);
        if (this.timerOf(s) <= t) {
          c.handleTimeout(this.clock);
          this.drain(s);
          this.collect(s);
          break;
        }
      }
    }
    // Application code may have queued sends (or closed) in reaction to events.
    if (this.onStep) {
      this.onStep();
      this.flush();
    }
  }

  /** Polls a side's transmissions into the network; returns how many datagrams it produced. */
  private drain(from: Side): number {
    if (this.frozen[from]) return 0;
    const c = this.conn(from);
    let n = 0;
    for (;;) {
      const d = c.pollTransmit(this.clock);
      if (d === null) return n;
      if (++n > 100_000) throw new SimLimitError(`${from} produced over 100000 datagrams in one instant (livelock?)`);
      this.transmit(from, d);
    }
  }

  private transmit(from: Side, data: Uint8Array): void {
    const stats = this.linkStats[from];
    stats.sent++;
    if (this.record) this.sent.push({ time: this.clock, from, data: data.slice() });
    if (this.onTransmit && this.onTransmit(from, data, this.clock) === "drop") {
      stats.filtered++;
      return;
    }
    const link = this.links[from];
    const rng = this.rng[from];
    // Decisions are drawn in a fixed order whatever the outcome, so runs stay comparable.
    const lost = rng.chance(link.loss);
    const dup = rng.chance(link.duplicate);
    const j1 = rng.next() * link.jitterMs;
    const j2 = rng.next() * link.jitterMs;
    if (lost) {
      stats.lost++;
      return;
    }
    let departure = this.clock;
    if (link.bytesPerMs > 0) {
      const start = Math.max(this.clock, this.busyUntil[from]);
      if (start - this.clock > link.maxQueueMs) {
        stats.queueDropped++;
        return;
      }
      departure = start + data.length / link.bytesPerMs;
      this.busyUntil[from] = departure;
    }
    const to = other(from);
    this.queue.push({ time: departure + link.delayMs + j1, seq: this.seq++, kind: "deliver", to, data });
    if (dup) {
      stats.duplicated++;
      this.queue.push({ time: departure + link.delayMs + j2, seq: this.seq++, kind: "deliver", to, data: data.slice() });
    }
  }

  private collect(side: Side): void {
    const c = this.conn(side);
    for (let ev = c.pollEvent(); ev !== null; ev = c.pollEvent()) this.events[side].push({ time: this.clock, event: ev });
  }

  // -------------------------------------------------------------------------------------------- queries

  /** Reliable messages received by `side`, in delivery order. */
  messages(side: Side): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const e of this.events[side]) if (e.event.type === "message") out.push(e.event.data);
    return out;
  }

  /** Unreliable datagrams received by `side`, in delivery order. */
  datagrams(side: Side): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const e of this.events[side]) if (e.event.type === "datagram") out.push(e.event.data);
    return out;
  }

  /** Counts `side`'s events of a type. */
  countEvents(side: Side, type: ConnectionEvent["type"]): number {
    let n = 0;
    for (const e of this.events[side]) if (e.event.type === type) n++;
    return n;
  }

  /** The close event `side` saw, with its time, or null. */
  closeEvent(side: Side): { time: number; code: number; reason: string; remote: boolean } | null {
    for (const e of this.events[side]) {
      if (e.event.type === "close") return { time: e.time, code: e.event.code, reason: e.event.reason, remote: e.event.remote };
    }
    return null;
  }

  opened(side: Side): boolean {
    return this.events[side].some((e) => e.event.type === "open");
  }

  bothOpen(): boolean {
    return this.client.state === "open" && this.server.state === "open" && this.opened("client") && this.opened("server");
  }

  /** Datagrams currently in the network. */
  get inFlight(): number {
    return this.queue.length;
  }

  describe(): string {
    const side = (s: Side) => {
      const c = this.conn(s);
      const st = c.getStats();
      const ev = this.closeEvent(s);
      return `${s}: state=${c.state} queued=${c.queuedBytes} inFlight=${st.bytesInFlight} cwnd=${st.congestionWindow} ` +
        `sent=${st.packetsSent} recv=${st.packetsReceived} lost=${st.packetsLost} pto=${st.probeTimeouts} ` +
        `msgs=${st.messagesReceived}/${st.messagesSent} keyGen=${c.keyGeneration} timeout=${c.pollTimeout()} frozen=${this.frozen[s]}` +
        (ev ? ` closed at t=${ev.time - this.startTime} ${ev.code} ${JSON.stringify(ev.reason)}${ev.remote ? " (remote)" : ""}` : "");
    };
    let out = `t=${this.clock - this.startTime} ms after start, steps=${this.steps}, queue=${this.queue.length}\n  ${side("client")}\n  ${side("server")}`;
    if (process.env.FASTNET_SIM_DEBUG) out += `\n  client internals: ${internals(this.client)}\n  server internals: ${internals(this.server)}`;
    return out;
  }
}

/** Debugging aid (FASTNET_SIM_DEBUG=1): the timer-related private fields of a Connection. Best effort. */
function internals(conn: Connection): string {
  const c = conn as unknown as Record<string, unknown> & { [k: string]: any };
  const pick: Record<string, unknown> = {};
  for (const k of ["now", "lastReceived", "lossTime", "lastAckElicitingSent", "ptoCount", "ackPending", "ackDeadline", "pacerWait",
    "recvPrevUntil", "probesPending", "pingNeeded", "largestAckedPn", "nextPn", "addressValidated", "bytesReceivedUnvalidated",
    "bytesSentUnvalidated", "sendGen", "recvGen", "sendGenConfirmed"]) pick[k] = c[k];
  try {
    pick.keepAliveAt = c.keepAliveAt();
    pick.lossDetectionDeadline = c.lossDetectionDeadline();
    pick.sent = (c.sent as { pn: number; timeSent: number }[]).slice(0, 8).map((p) => `${p.pn}@${p.timeSent}`);
    pick.rtt = { latest: c.rtt.latest, smoothed: c.rtt.smoothed };
  } catch {
    // fields renamed: print what we have
  }
  return JSON.stringify(pick);
}

function emptyLinkStats(): LinkStats {
  return { sent: 0, lost: 0, queueDropped: 0, duplicated: 0, delivered: 0, filtered: 0 };
}

function resolveLink(p: LinkProfile): Required<Omit<LinkProfile, "bytesPerMs">> & { bytesPerMs: number } {
  return {
    loss: p.loss ?? 0,
    delayMs: p.delayMs ?? 20,
    jitterMs: p.jitterMs ?? 0,
    duplicate: p.duplicate ?? 0,
    bytesPerMs: p.bytesPerMs ?? 0,
    maxQueueMs: p.maxQueueMs ?? 250,
  };
}

/** Creates a pair and a network around it, and runs until both sides are open. */
export function openSim(pairCfg: PairConfig, simCfg: Omit<SimConfig, "seed"> & { seed?: number }, maxMs = 60_000): SimNetwork {
  const sim = new SimNetwork(makePair(pairCfg), { seed: pairCfg.seed, ...simCfg });
  sim.runUntil(() => sim.bothOpen(), maxMs);
  return sim;
}
