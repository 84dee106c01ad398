/**
 * Test harness for the Colyseus integration tests: a real `@colyseus/core` Server on a FastnetTransport
 * bound to loopback with OS-chosen ports, real `@colyseus/sdk` rooms through FastnetClient, bounded
 * waits, and a teardown that closes every server, client session and SDK reconnection loop it started.
 */
import { Server, matchMaker, type Room } from "@colyseus/core";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetTransport, type FastnetTransportOptions } from "../../src/index.js";
import { FastnetClient, type FastnetClientOptions } from "../../src/client.js";
import type { FastnetClientTransport } from "../../src/client.js";
import { pollUntil, within } from "./wait.js";

export { within };

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
    // A join that unexpectedly succeeded: leave it so it does not outlive the test.
    const room = outcome.v as { leave?: (consented?: boolean) => unknown } | undefined;
    if (room && typeof room.leave === "function") void room.leave(false);
    throw new Error(`${what}: expected a rejection, but it resolved`);
  }
  return outcome.e as Error & { code?: number };
}

/** What an SDK room reported: every onLeave/onDrop/onReconnect/onError, in order of arrival. */
export interface SdkRoomEvents {
  leave: Array<{ code: number; reason?: string; at: number }>;
  drop: Array<{ code: number; reason?: string; at: number }>;
  reconnect: number[];
  error: Array<{ code: number; message?: string }>;
}

/**
 * Records a room's lifecycle signals with persistent handlers. (The SDK's `signal.once` removes a
 * handler by swapping in the last one during dispatch, which can skip a sibling `once` handler.)
 */
export function recordEvents(room: SdkRoom): SdkRoomEvents {
  const ev: SdkRoomEvents = { leave: [], drop: [], reconnect: [], error: [] };
  room.onLeave((code, reason) => void ev.leave.push({ code, reason, at: performance.now() }));
  room.onDrop((code, reason) => void ev.drop.push({ code, reason, at: performance.now() }));
  room.onReconnect(() => void ev.reconnect.push(performance.now()));
  room.onError((code, message) => void ev.error.push({ code, message }));
  return ev;
}

/**
 * A FastnetClient that records the protocol code (first byte) of every frame each of its rooms
 * receives, from the very first one: the hook is placed before the room connects.
 */
export class FrameRecordingClient extends FastnetClient {
  private readonly frames = new WeakMap<object, number[]>();

  protected override createRoom<T>(roomName: string, rootSchema?: any): SdkRoom<any, T> {
    const room = super.createRoom<T>(roomName, rootSchema);
    const codes: number[] = [];
    this.frames.set(room, codes);
    const original = (room as any).onMessageCallback as (ev: { data: ArrayBuffer | Uint8Array }) => void;
    (room as any).onMessageCallback = function (this: unknown, ev: { data: ArrayBuffer | Uint8Array }) {
      codes.push(new Uint8Array(ev.data as ArrayBuffer)[0]!);
      return original.call(this, ev);
    };
    return room;
  }

  /** Protocol codes of the frames `room` received so far, in order. */
  framesOf(room: SdkRoom): number[] {
    return this.frames.get(room) ?? [];
  }
}

/**
 * One Colyseus server on a FastnetTransport (127.0.0.1, OS-chosen TCP port, UDP on the same number),
 * plus the SDK clients and rooms a test makes through it. `stop()` undoes all of it.
 */
export class ColyseusHarness {
  server!: Server;
  transport!: FastnetTransport;
  private readonly rooms: SdkRoom[] = [];
  private stopped = false;

  /** Boots the server with `rooms` defined (name → Room class). */
  async start(rooms: Record<string, new (...args: any[]) => Room>, options: FastnetTransportOptions = {}): Promise<this> {
    this.transport = new FastnetTransport(options);
    // gracefullyShutdown: false only stops Colyseus from installing process signal handlers per server.
    this.server = new Server({ transport: this.transport, greet: false, gracefullyShutdown: false });
    for (const [name, cls] of Object.entries(rooms)) this.server.define(name, cls);
    await within(this.server.listen(0, "127.0.0.1"), 10_000, "server.listen");
    return this;
  }

  /** TCP (matchmaking and handshake) port; UDP is bound to the same number. */
  get port(): number {
    return this.transport.engine.port;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A FastnetClient for this server (it pins the dev certificate the matchmaking response publishes). */
  client(options: FastnetClientOptions = {}): FastnetClient {
    return new FastnetClient(this.endpoint, options);
  }

  /** Registers an SDK room so teardown ends it (and any reconnection loop it might start). */
  track<R extends SdkRoom>(room: R): R {
    this.rooms.push(room);
    return room;
  }

  /** Joins (or creates) `name` through `client` and tracks the room. */
  async join<R extends SdkRoom = SdkRoom>(client: FastnetClient, name: string, options: any = {}, ms = 10_000): Promise<R> {
    const room = (await within(client.joinOrCreate(name, options), ms, `joinOrCreate(${name})`)) as unknown as R;
    return this.track(room);
  }

  /**
   * Shuts the server down (rooms get 4001) and waits until its sockets are closed and every tracked SDK
   * room's fastnet session has ended; a session still open after `graceMs` is aborted (and the test that
   * cares about close codes has asserted before). Idempotent.
   */
  async stop(graceMs = 3000): Promise<void> {
    if (this.stopped || !this.server) return;
    this.stopped = true;
    for (const room of this.rooms) {
      // No reconnection attempts after teardown: they would keep timers alive past the test.
      room.reconnection.enabled = false;
      room.reconnection.maxRetries = 0;
    }
    // Rooms still open leave first (a consented leave closes both sides at once); shutdown tests call
    // server.gracefullyShutdown() themselves before this runs.
    await Promise.all(
      this.rooms
        .filter((r) => (r.connection?.transport as unknown as FastnetClientTransport | undefined)?.isOpen)
        .map((r) => within(r.leave(), 2000, "leave at teardown").catch(() => {})),
    );
    const serverRooms = (await matchMaker.query({})).map((c) => matchMaker.getLocalRoomById(c.roomId)).filter((r) => !!r);
    await within(this.server.gracefullyShutdown(false), 10_000, "gracefullyShutdown");
    // Core keeps a 15 s timer per seat that was reserved but never consumed (a refused join), even after
    // the room is disposed: clear them, or they hold the process open long after the tests.
    for (const room of serverRooms) {
      const timers = (room as unknown as { _reservedSeatTimeouts: Record<string, NodeJS.Timeout> })._reservedSeatTimeouts;
      for (const t of Object.values(timers ?? {})) clearTimeout(t);
    }
    // FastnetTransport.shutdown() is synchronous and closes the engine in the background.
    await waitFor(() => !this.transport.server.listening, 5_000, "the transport's HTTP server to close");
    const sessions = () =>
      this.rooms
        .map((r) => (r.connection?.transport as unknown as FastnetClientTransport | undefined)?.session)
        .filter((s): s is NonNullable<typeof s> => !!s && s.readyState < 3);
    await waitFor(() => sessions().length === 0, graceMs, "client sessions to close").catch(() => {});
    for (const s of sessions()) s.abort(1000, "test teardown");
  }
}
