/**
 * A minimal Colyseus stack for the migration and stateless-reset tests: a real @colyseus/core Server on a
 * FastnetTransport bound to 127.0.0.1 (OS-chosen port, or a given one for a restart on the same ports),
 * SDK rooms through FastnetClient, and teardown that ends reconnection loops, sessions and sockets.
 */
import { Server, type Room } from "@colyseus/core";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetTransport, type FastnetTransportOptions } from "../../src/index.js";
import { FastnetClient, type FastnetClientOptions } from "../../src/client.js";
import type { FastnetClientTransport } from "../../src/client/client-transport.js";
import { waitFor, within, type Cleanup } from "./migration-net.js";

export interface ColyseusStack {
  server: Server;
  transport: FastnetTransport;
  port: number;
  endpoint: string;
  /** Shuts the Colyseus server down and waits until the transport's sockets are closed (idempotent). */
  stop(): Promise<void>;
}

/** Boots a Colyseus server with `rooms` on 127.0.0.1:`port` (0: OS-chosen; UDP on the same number). */
export async function startColyseus(
  cleanup: Cleanup,
  rooms: Record<string, new (...args: any[]) => Room>,
  options: FastnetTransportOptions = {},
  port = 0,
): Promise<ColyseusStack> {
  const transport = new FastnetTransport(options);
  // gracefullyShutdown: false only keeps Colyseus from installing process signal handlers.
  const server = new Server({ transport, greet: false, gracefullyShutdown: false });
  for (const [name, cls] of Object.entries(rooms)) server.define(name, cls);
  await within(server.listen(port, "127.0.0.1"), 10_000, "colyseus listen");
  let stopped: Promise<void> | null = null;
  const stack: ColyseusStack = {
    server,
    transport,
    port: transport.engine.port,
    endpoint: `http://127.0.0.1:${transport.engine.port}`,
    stop: () =>
      (stopped ??= (async () => {
        await within(server.gracefullyShutdown(false), 10_000, "gracefullyShutdown");
        // FastnetTransport.shutdown() closes the engine in the background.
        await waitFor(() => !transport.server.listening, 5000, "the transport's HTTP server to close");
        await waitFor(() => transport.engine.sessionCount === 0, 5000, "the engine's sessions to close");
      })()),
  };
  cleanup.add(() => stack.stop());
  return stack;
}

/** The fastnet transport under an SDK room. */
export function transportOf(room: SdkRoom): FastnetClientTransport {
  return room.connection.transport as unknown as FastnetClientTransport;
}

/** Joins (or creates) `name` through a new FastnetClient; teardown ends the room and any reconnection loop. */
export async function joinRoom<R extends SdkRoom = SdkRoom>(
  cleanup: Cleanup,
  endpoint: string,
  name: string,
  clientOptions: FastnetClientOptions = {},
): Promise<R> {
  const client = new FastnetClient(endpoint, clientOptions);
  const room = (await within(client.joinOrCreate(name), 10_000, `joinOrCreate(${name})`)) as unknown as R;
  cleanup.add(async () => {
    room.reconnection.enabled = false;
    room.reconnection.maxRetries = 0;
    const t = transportOf(room);
    if (t?.isOpen) await within(room.leave(), 3000, "leave at teardown").catch(() => {});
    const s = transportOf(room)?.session;
    if (s && s.readyState < 3) s.abort(1000, "test teardown");
  });
  return room;
}

/** What an SDK room reported, in order of arrival, with times. */
export interface RoomSignals {
  leave: Array<{ code: number; reason?: string; at: number }>;
  drop: Array<{ code: number; reason?: string; at: number }>;
  reconnect: number[];
  error: Array<{ code: number; message?: string; at: number }>;
}

/** Records a room's lifecycle signals with persistent handlers. */
export function recordSignals(room: SdkRoom): RoomSignals {
  const s: RoomSignals = { leave: [], drop: [], reconnect: [], error: [] };
  room.onLeave((code, reason) => void s.leave.push({ code, reason, at: performance.now() }));
  room.onDrop((code, reason) => void s.drop.push({ code, reason, at: performance.now() }));
  room.onReconnect(() => void s.reconnect.push(performance.now()));
  room.onError((code, message) => void s.error.push({ code, message, at: performance.now() }));
  return s;
}
