/**
 * Parity harness: the same transport-agnostic Colyseus behaviour tests run on three legs, so that a
 * behaviour where fastnet differs from ws-transport shows up as a failing row:
 * - "ws": @colyseus/ws-transport with the plain @colyseus/sdk Client (the reference);
 * - "fastnet": FastnetTransport with FastnetClient forced onto UDP (`path: "udp"`), so a broken UDP path
 *   fails here instead of passing silently over the WebSocket fallback of the default "auto";
 * - "fastnet-ws": FastnetTransport with the plain @colyseus/sdk Client, i.e. the dual-stack WebSocket path
 *   that browsers (and FastnetClient's fallback) use.
 *
 * A test file declares one table of cases; `describeParity` turns it into one `describe` per transport.
 * Every case gets a {@link ParityContext}: servers on 127.0.0.1 with OS-chosen ports, SDK clients, a log
 * of what the server rooms saw, bounded waits, and a teardown that closes every server, SDK room,
 * reconnection loop, seat timer and temporary directory the case made.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LocalPresence, Server, matchMaker, type Presence, type Room, type Transport } from "@colyseus/core";
import { Client, type Room as SdkRoom } from "@colyseus/sdk";
import { WebSocketTransport as SdkWebSocketTransport } from "@colyseus/sdk/transport/WebSocketTransport";
import { WebSocketTransport } from "@colyseus/ws-transport";
import { FastnetTransport } from "../../src/index.js";
import { FastnetClient, transportOf, type FastnetClientTransport } from "../../src/client.js";
import { pollUntil, within } from "./wait.js";

export { within };

/** A transport under test: how to make its server side and its SDK client. */
export interface ParityTransport {
  /** Shown in the describe title: "ws" (the reference), "fastnet" or "fastnet-ws". */
  readonly name: string;
  /** A fresh server transport; `devCertificateDir` is the case's own temporary directory. */
  createTransport(devCertificateDir: string): Transport;
  /** An SDK client for the HTTP endpoint `endpoint`. */
  createClient(endpoint: string): Client;
  /**
   * Throws if a room this leg's client joined (or got back by reconnect / consumeSeatReservation) is not
   * on the path the leg is about; called on every room the case tracks.
   */
  checkRoom?(room: SdkRoom<any, any>): void;
}

/** The reference: what Colyseus users get by default. */
export const WS_TRANSPORT: ParityTransport = {
  name: "ws",
  createTransport: () => new WebSocketTransport(),
  createClient: (endpoint) => new Client(endpoint),
};

/**
 * This project over UDP: FastnetClient with `path: "udp"`, so that no case can pass over the WebSocket
 * fallback (a UDP failure fails the case). The dev certificate is kept under the case's temporary
 * directory, never the repository.
 */
export const FASTNET_TRANSPORT: ParityTransport = {
  name: "fastnet",
  createTransport: (devCertificateDir) => new FastnetTransport({ devCertificateDir }),
  createClient: (endpoint) => new FastnetClient(endpoint, { path: "udp" }),
  checkRoom: (room) => {
    const path = transportOf(room).path;
    if (path !== "udp") throw new Error(`parity fastnet: the room is on the ${path} path, not UDP`);
  },
};

/**
 * The dual-stack path: the same FastnetTransport server, joined by the stock @colyseus/sdk Client over
 * Colyseus' standard WebSocket path (what a browser does), held to the same behaviours as ws-transport.
 */
export const FASTNET_WS_TRANSPORT: ParityTransport = {
  name: "fastnet-ws",
  createTransport: (devCertificateDir) => new FastnetTransport({ devCertificateDir }),
  createClient: (endpoint) => new Client(endpoint),
  checkRoom: (room) => {
    const t = (room.connection as { transport?: unknown } | undefined)?.transport;
    if (!(t instanceof SdkWebSocketTransport)) throw new Error("parity fastnet-ws: the room does not run over the SDK's own WebSocketTransport");
  },
};

export const PARITY_TRANSPORTS: readonly ParityTransport[] = [WS_TRANSPORT, FASTNET_TRANSPORT, FASTNET_WS_TRANSPORT];

/** One row of a parity table: a behaviour every transport must show the same way. */
export interface ParityCase {
  name: string;
  /** Time limit of the case (mocha's), default 30 s. */
  timeoutMs?: number;
  run(ctx: ParityContext): Promise<void>;
}

/** Options of {@link ParityContext.startServer}. */
export interface ParityServerOptions {
  /** TCP port (fastnet binds UDP on the same number); default 0, chosen by the OS. */
  port?: number;
  /** Colyseus devMode (rooms and seats cached on shutdown, restored on the next start). */
  devMode?: boolean;
  /** A presence to share between servers started one after the other (devMode keeps its cache there). */
  presence?: Presence;
}

/** A Colyseus Server with its transport, bound to 127.0.0.1. */
export class ParityServer {
  readonly server: Server;
  readonly transport: Transport;
  stopped = false;

  constructor(server: Server, transport: Transport) {
    this.server = server;
    this.transport = transport;
  }

  /** The TCP port (matchmaking; for fastnet the UDP port has the same number). */
  get port(): number {
    return (this.transport.server!.address() as AddressInfo).port;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Colyseus' own shutdown (rooms disconnect their clients, then `transport.shutdown()`), without
   * exiting the process. It resolves when Colyseus is done, as in Colyseus' tests: the transport may
   * still be closing in the background, which is part of what the cases check.
   */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await within(this.server.gracefullyShutdown(false), 10_000, "gracefullyShutdown");
  }
}

/** What one case works with; everything it makes through here is closed at teardown. */
export class ParityContext {
  readonly transport: ParityTransport;
  /** Temporary directory of this case (fastnet's dev certificate lives here). */
  readonly dir: string;
  private readonly servers: ParityServer[] = [];
  private readonly rooms: SdkRoom[] = [];
  private readonly cleanups: Array<() => void | Promise<void>> = [];
  private devModeUsed = false;
  private readonly devModeCacheExisted: boolean;

  private constructor(transport: ParityTransport, dir: string) {
    this.transport = transport;
    this.dir = dir;
    this.devModeCacheExisted = existsSync(DEVMODE_CACHE_FILE);
  }

  static async create(transport: ParityTransport): Promise<ParityContext> {
    return new ParityContext(transport, await mkdtemp(join(tmpdir(), `parity-${transport.name}-`)));
  }

  /** Starts a Colyseus Server on this case's transport with `rooms` defined (name → Room class). */
  async startServer(rooms: Record<string, new (...args: any[]) => Room>, options: ParityServerOptions = {}): Promise<ParityServer> {
    const transport = this.transport.createTransport(this.dir);
    if (options.devMode) this.devModeUsed = true;
    // gracefullyShutdown: false only keeps Colyseus from installing process signal handlers per server.
    const server = new Server({ transport, greet: false, gracefullyShutdown: false, devMode: options.devMode === true, presence: options.presence });
    for (const [name, cls] of Object.entries(rooms)) server.define(name, cls);
    const ps = new ParityServer(server, transport);
    this.servers.push(ps);
    await within(server.listen(options.port ?? 0, "127.0.0.1"), 10_000, `server.listen(${options.port ?? 0})`);
    return ps;
  }

  /** A fresh presence to share between servers started one after the other (devMode restarts). */
  sharedPresence(): LocalPresence {
    return new LocalPresence();
  }

  /** An SDK client of this case's transport for `server`. */
  client(server: ParityServer): Client {
    return this.transport.createClient(server.endpoint);
  }

  /**
   * Registers an SDK room so teardown ends it (and any reconnection loop it might be in), and checks that
   * it is on the path this leg is about (see {@link ParityTransport.checkRoom}).
   */
  track<R extends SdkRoom<any, any>>(room: R): R {
    this.rooms.push(room as unknown as SdkRoom);
    this.transport.checkRoom?.(room);
    return room;
  }

  /** `client.joinOrCreate(name, options)`, bounded and tracked. */
  async join<S = any>(client: Client, name: string, options: Record<string, unknown> = {}, rootSchema?: new () => S): Promise<SdkRoom<any, S>> {
    const room = await within(client.joinOrCreate(name, options, rootSchema as any), 10_000, `joinOrCreate(${name})`);
    return this.track(room as unknown as SdkRoom<any, S>);
  }

  /** Runs `fn` at teardown (before the servers stop). */
  onTeardown(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** Closes every room, server and timer the case made; never throws, bounded. */
  async teardown(): Promise<void> {
    for (const fn of this.cleanups.reverse()) await Promise.resolve().then(fn).catch(() => undefined);
    for (const room of this.rooms) {
      // No reconnection attempts after teardown: they would keep timers alive past the test.
      room.reconnection.enabled = false;
      room.reconnection.maxRetries = 0;
    }
    await Promise.all(
      this.rooms
        .filter((r) => r.connection?.isOpen)
        .map((r) => within(r.leave(), 2000, "leave at teardown").catch(() => undefined)),
    );
    for (const s of this.servers) {
      if (s.stopped) continue;
      const serverRooms = (await matchMaker.query({}).catch(() => [])).map((c) => matchMaker.getLocalRoomById(c.roomId)).filter((r) => !!r);
      await s.shutdown().catch(() => undefined);
      // Core keeps a 15 s timer per seat reserved and never consumed, even after the room is disposed.
      for (const room of serverRooms) {
        const timers = (room as unknown as { _reservedSeatTimeouts?: Record<string, NodeJS.Timeout> })._reservedSeatTimeouts;
        for (const t of Object.values(timers ?? {})) clearTimeout(t);
      }
    }
    for (const s of this.servers) {
      await waitFor(() => !s.transport.server?.listening, 5000, "the transport's HTTP server to close").catch(() => undefined);
    }
    // A fastnet client session the server's close did not reach in time is aborted (the case that
    // cares about close codes asserted them before); a WebSocket has no such leftover.
    const sessions = () =>
      this.rooms
        .map((r) => (r.connection?.transport as unknown as FastnetClientTransport | undefined)?.session)
        .filter((s): s is NonNullable<typeof s> => !!s && typeof s.readyState === "number" && s.readyState < 3);
    await waitFor(() => sessions().length === 0, 3000, "client sessions to close").catch(() => undefined);
    for (const s of sessions()) s.abort(1000, "test teardown");
    for (const room of this.rooms) room.removeAllListeners();
    // devMode writes Colyseus' cache file into the working directory on shutdown: leave none behind.
    if (this.devModeUsed && !this.devModeCacheExisted) await rm(DEVMODE_CACHE_FILE, { force: true });
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Where Colyseus' devMode keeps its cache (core resolves `.devmode.json` against the working directory). */
const DEVMODE_CACHE_FILE = resolve(".devmode.json");

/**
 * One `describe` per transport over the same table of cases: `parity <transport>: <title>`.
 * Each case runs in its own {@link ParityContext}, torn down after it whatever the outcome.
 */
export function describeParity(title: string, cases: readonly ParityCase[], transports: readonly ParityTransport[] = PARITY_TRANSPORTS): void {
  for (const transport of transports) {
    describe(`parity ${transport.name}: ${title}`, function () {
      for (const c of cases) {
        it(c.name, async function () {
          this.timeout(c.timeoutMs ?? 30_000);
          const ctx = await ParityContext.create(transport);
          try {
            await c.run(ctx);
          } finally {
            await ctx.teardown();
          }
        });
      }
    });
  }
}

/** Polls `cond` every 5 ms until it holds; fails after `ms` with `what` (and `detail()` if given). */
export function waitFor(cond: () => boolean, ms: number, what: string, detail?: () => string): Promise<void> {
  return pollUntil(cond, ms, what, detail, 5);
}

/** The rejection of `p` (fails if it resolves), bounded by `ms`. */
export async function rejectionOf(p: Promise<unknown>, ms: number, what: string): Promise<Error & { code?: number }> {
  const outcome = await within(
    p.then(
      (v) => ({ ok: true as const, v }),
      (e: unknown) => ({ ok: false as const, e }),
    ),
    ms,
    what,
  );
  if (outcome.ok) {
    const room = outcome.v as { leave?: (consented?: boolean) => unknown } | undefined;
    if (room && typeof room.leave === "function") void room.leave(true);
    throw new Error(`${what}: expected a rejection, but it resolved`);
  }
  return outcome.e as Error & { code?: number };
}

/** What an SDK room reported, in order of arrival: "join", "drop:<code>", "reconnect", "leave:<code>", "error:<code>". */
export function recordClient(room: SdkRoom<any, any>): string[] {
  const seen: string[] = [];
  room.onDrop((code) => void seen.push(`drop:${code}`));
  room.onReconnect(() => void seen.push("reconnect"));
  room.onLeave((code) => void seen.push(`leave:${code}`));
  room.onError((code) => void seen.push(`error:${code}`));
  return seen;
}

/**
 * What the server rooms saw, as strings ("join:<sid>", "drop:<sid>:<code>", ...): rooms push to it,
 * tests wait on it. One per test file, cleared before each case.
 */
export class ServerLog {
  readonly events: string[] = [];

  push(event: string): void {
    this.events.push(event);
  }

  clear(): void {
    this.events.length = 0;
  }

  has(event: string): boolean {
    return this.events.includes(event);
  }

  /** Waits until `event` was logged. */
  waitFor(event: string, ms: number): Promise<void> {
    return waitFor(() => this.has(event), ms, `server event ${event}`, () => `server saw ${JSON.stringify(this.events)}`);
  }

  /** The logged events that start with `prefix`. */
  matching(prefix: string): string[] {
    return this.events.filter((e) => e.startsWith(prefix));
  }
}

/**
 * Holds `room`'s reconnection attempts until the returned function is called: the SDK still drops the
 * room and schedules its attempts on its own timers, but an attempt that falls due while held opens its
 * connection only on release (at once if released already). For a case that restarts the server on the
 * same port: it orders "the new server listens" before "the client's first attempt", whatever the
 * restart takes.
 *
 * Needed on the stock-SDK legs under Node 22: the SDK's WebSocket there is Node's own (undici 6.x),
 * which on a refused connection fires `error` but never `close` and stays CONNECTING
 * (nodejs/undici#3506); the SDK retries only on `close` and has no connect timeout, so an attempt
 * made while no server listens waits forever, on ws-transport exactly as on fastnet's WebSocket path.
 * No server code takes part in such an attempt.
 */
export function holdReconnection(room: SdkRoom<any, any>): () => void {
  const connection = room.connection as unknown as { reconnect(query: Record<string, unknown>): void };
  const reconnect = connection.reconnect;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  connection.reconnect = (query) => {
    void released.then(() => reconnect.call(connection, query));
  };
  return () => {
    connection.reconnect = reconnect;
    release();
  };
}

/** Resolves when `room` fires onLeave (with its code); bounded. */
export function nextLeave(room: SdkRoom<any, any>, ms: number, what: string): Promise<number> {
  return within(new Promise<number>((res) => room.onLeave((code) => res(code))), ms, what);
}

/** Resolves when `room` fires onReconnect; bounded. */
export function nextReconnect(room: SdkRoom<any, any>, ms: number, what: string): Promise<void> {
  return within(new Promise<void>((res) => room.onReconnect(() => res())), ms, what);
}

/** Resolves with the next message of `type` on `room`; bounded. */
export function nextMessage<T = unknown>(room: SdkRoom<any, any>, type: string, ms: number): Promise<T> {
  return within(
    new Promise<T>((res) => {
      const off = room.onMessage(type, (payload: T) => {
        off();
        res(payload);
      });
    }),
    ms,
    `message "${type}"`,
  );
}
