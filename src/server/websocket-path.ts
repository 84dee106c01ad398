import type http from "node:http";
import type { Duplex } from "node:stream";
import {
  CloseCode,
  Protocol,
  type ServerError,
  connectClientToRoom,
  createAuthContext,
  isDevMode,
  logger,
  matchMaker,
} from "@colyseus/core";
import createDebug from "debug";
import { WebSocketServer, type WebSocket } from "ws";
import { DEFAULT_SESSION_OPTIONS } from "../protocol/options.js";
import { DEFAULT_BACKLOG_BYTES } from "../node/send-backlog.js";
import type { LatencySetting } from "./server-client.js";
import { WebSocketRoomClient, type WebSocketClientCounters, type WebSocketSendLimits } from "./websocket-client.js";

const log = createDebug("fastnet:websocket");

/** Latency probes (a WebSocket naming no room) are closed after this long, as ws-transport does. */
const PROBE_LIFETIME_MS = 1000;
/** After shutdown sent its close frames, sockets whose peer has not closed are cut after this long. */
const SHUTDOWN_LINGER_MS = 1000;
/** `/<processId>/<roomId>` at the end of a room connection's path (anything before it is a proxy's prefix). */
const ROOM_PATH = /\/([a-zA-Z0-9_-]+)\/([a-zA-Z0-9_-]+)$/;

/**
 * Tuning of the WebSocket path (`webSocket` option of FastnetTransport). Every field is optional.
 */
export interface WebSocketOptions {
  /** Largest message a client may send, bytes; a larger one closes it with 1009 (default: `maxMessageSize`, 512 KiB). */
  maxPayload?: number;
  /** Bytes waiting unsent to one client before it is cut, the room seeing a drop (default: `sendQueueBytes` + 2 MiB, the fastnet path's bound). */
  maxBufferedBytes?: number;
  /** While more than this waits unsent to a client, its `@unreliable` patches are dropped (default 64 KiB). */
  unreliableDropBytes?: number;
  /** Ping every client this often, ms; 0 turns the heartbeat off (default 3000, as ws-transport). */
  pingIntervalMs?: number;
  /** Unanswered pings after which a client is cut (the room sees 1006, a drop) (default 2, as ws-transport). */
  pingMaxRetries?: number;
  /** Open WebSockets at most; further upgrades get a 503 (default: `maxSessions`, 10000). */
  maxConnections?: number;
}

/** Counters of the WebSocket path. */
export interface WebSocketStats extends WebSocketClientCounters {
  /** WebSocket upgrades completed (room connections and latency probes). */
  connections: number;
  /** Upgrades answered with 503 because `maxConnections` sockets were open. */
  refused: number;
  /** Connections accepted into a room (joins and reconnections). */
  joins: number;
  /** Connections whose join failed (expired seat, bad token, onAuth/onJoin error): told why, then closed. */
  joinsFailed: number;
  /** Latency probes served. */
  probes: number;
  /** Sockets cut after `pingMaxRetries` unanswered pings. */
  unresponsive: number;
}

/** What the WebSocket path needs from its transport. */
export interface WebSocketPathHost {
  /** The transport's simulated one-way latency. */
  readonly latency: LatencySetting;
  /** Limits the defaults follow: the transport's engine options. */
  readonly maxMessageSize?: number;
  readonly sendQueueBytes?: number;
  readonly maxSessions?: number;
  /**
   * Called before a reconnection (a join with a reconnection token) of `sessionId` joins, on either
   * path: drops a live connection it replaces, or returns the error to refuse it with.
   */
  takeOverStale(sessionId: string, reconnectionToken: string): ServerError | undefined;
}

/**
 * Colyseus' standard WebSocket room connections, served next to fastnet on the transport's HTTP port:
 * what a browser or a plain `@colyseus/sdk` Client uses. Built from `ws` (a WebSocketServer in noServer
 * mode, fed only by the transport's single upgrade router, see `route`) and ws-transport's
 * WebSocketClient (see WebSocketRoomClient); joins go through Colyseus' `connectClientToRoom`, as
 * ws-transport's do, so rooms cannot tell the two kinds of client apart, `@unreliable` fields aside
 * (WebSocket clients get them over the socket).
 */
export class WebSocketPath {
  readonly stats: WebSocketStats = {
    connections: 0,
    refused: 0,
    joins: 0,
    joinsFailed: 0,
    probes: 0,
    unresponsive: 0,
    unreliableDropped: 0,
    overflowClosed: 0,
  };
  private readonly wss: WebSocketServer;
  private readonly joined = new Map<string, WebSocketRoomClient>();
  private readonly missedPongs = new WeakMap<WebSocket, number>();
  private readonly limits: WebSocketSendLimits;
  private readonly pingIntervalMs: number;
  private readonly pingMaxRetries: number;
  private readonly maxConnections: number;
  private heartbeat: NodeJS.Timeout | null = null;
  private shutDown = false;

  constructor(
    private readonly host: WebSocketPathHost,
    options: WebSocketOptions = {},
  ) {
    this.limits = {
      maxBufferedBytes: options.maxBufferedBytes ?? (host.sendQueueBytes ?? DEFAULT_SESSION_OPTIONS.sendQueueBytes) + DEFAULT_BACKLOG_BYTES,
      unreliableDropBytes: options.unreliableDropBytes ?? 64 * 1024,
    };
    this.pingIntervalMs = options.pingIntervalMs ?? 3000;
    this.pingMaxRetries = options.pingMaxRetries ?? 2;
    this.maxConnections = options.maxConnections ?? host.maxSessions ?? 10_000;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxPayload ?? host.maxMessageSize ?? DEFAULT_SESSION_OPTIONS.maxMessageSize,
      perMessageDeflate: false,
    });
    this.wss.on("error", (err) => logger.error?.(`fastnet: WebSocket server error: ${err.message}`));
  }

  /** Clients in a room over WebSocket, by sessionId. */
  get clients(): ReadonlyMap<string, WebSocketRoomClient> {
    return this.joined;
  }

  /** Open WebSockets (room connections, probes, joins in progress). */
  get openCount(): number {
    return this.wss.clients.size;
  }

  /**
   * The WebSocket branch of the transport's upgrade router: takes (true) a WebSocket upgrade to a room
   * of this process (`.../<processId>/<roomId>`, what a seat reservation names) or to a path ending in
   * "/" without a sessionId (the SDK's latency probe, `getLatency()`). Anything else is left (false) to
   * other 'upgrade' listeners, or refused when there are none.
   */
  readonly route = (req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean => {
    const url = webSocketUrl(req);
    if (!url) return false;
    const room = ROOM_PATH.exec(url.pathname);
    const ours = room ? room[1] === matchMaker.processId : url.pathname.endsWith("/") && !url.searchParams.has("sessionId");
    if (!ours) return false;
    socket.on("error", (err) => log("upgrade socket error: %s", err.message));
    if (this.shutDown || this.wss.clients.size >= this.maxConnections) {
      this.stats.refused++;
      const why = this.shutDown ? "server shutting down" : `server full: ${this.maxConnections} WebSocket connections open`;
      log("refusing a WebSocket upgrade: %s", why);
      socket.resume();
      socket.once("finish", () => socket.destroy());
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: ${why.length + 1}\r\nConnection: close\r\n\r\n${why}\n`);
      return true;
    }
    // ws answers a malformed upgrade (bad key, version) with 400 itself and never calls back.
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req, url));
    return true;
  };

  /** Accepts upgrades again after close() (the transport listens again). */
  open(): void {
    this.shutDown = false;
  }

  /**
   * Server shutdown: refuses new upgrades, sends every open WebSocket a close frame with `code` and
   * `reason` (rooms already closed theirs with their own code), and cuts any whose peer has not closed
   * within SHUTDOWN_LINGER_MS, so the HTTP server can finish closing.
   */
  close(code: number, reason: string): void {
    this.shutDown = true;
    this.stopHeartbeat();
    const sockets = [...this.wss.clients];
    if (sockets.length === 0) return;
    for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.close(code, reason);
    setTimeout(() => {
      for (const ws of sockets) ws.terminate();
    }, SHUTDOWN_LINGER_MS).unref();
  }

  private onConnection(ws: WebSocket, req: http.IncomingMessage, url: URL): void {
    this.stats.connections++;
    // A socket error is followed by 'close' (code 1006): the room sees a drop.
    ws.on("error", (err) => log("WebSocket error: %s", err.message));
    ws.on("pong", () => this.missedPongs.set(ws, 0));
    this.startHeartbeat();
    const sessionId = url.searchParams.get("sessionId");
    const roomId = ROOM_PATH.exec(url.pathname)?.[2] ?? null;
    if (!sessionId && !roomId) this.probe(ws);
    else void this.join(ws, req, url, sessionId ?? "", roomId);
  }

  /** The SDK's latency probe: every message is answered with a PING frame; closed after a second. */
  private probe(ws: WebSocket): void {
    this.stats.probes++;
    const timer = setTimeout(() => ws.close(CloseCode.NORMAL_CLOSURE), PROBE_LIFETIME_MS);
    ws.once("close", () => clearTimeout(timer));
    ws.on("message", () => {
      if (ws.readyState !== ws.OPEN) return;
      // A probe that sends faster than it reads is done.
      if (ws.bufferedAmount > this.limits.unreliableDropBytes) ws.terminate();
      else ws.send(Uint8Array.of(Protocol.PING));
    });
  }

  private async join(ws: WebSocket, req: http.IncomingMessage, url: URL, sessionId: string, roomId: string | null): Promise<void> {
    const reconnectionToken = url.searchParams.get("reconnectionToken");
    const client = new WebSocketRoomClient(sessionId, ws, this.host.latency, this.limits, this.stats);
    const refusal = reconnectionToken === null ? undefined : this.host.takeOverStale(sessionId, reconnectionToken);
    if (refusal) {
      this.refuse(client, refusal, true);
      return;
    }
    const room = roomId ? matchMaker.getLocalRoomById(roomId) : undefined;
    try {
      await connectClientToRoom(
        room,
        client,
        // As ws-transport: the Upgrade request's headers (proxy headers included) and TCP peer.
        createAuthContext({
          headers: req.headers as Record<string, string | undefined>,
          token: url.searchParams.get("_authToken"),
          remoteAddress: req.socket.remoteAddress,
        }),
        { reconnectionToken: reconnectionToken ?? undefined, skipHandshake: url.searchParams.has("skipHandshake") },
      );
    } catch (e) {
      this.refuse(client, e, reconnectionToken !== null);
      return;
    }
    if (ws.readyState !== ws.OPEN) return; // gone during the join: the room already saw its 'close'
    this.stats.joins++;
    this.joined.set(sessionId, client);
    ws.once("close", () => {
      if (this.joined.get(sessionId) === client) this.joined.delete(sessionId);
    });
  }

  /** Fails a join as ws-transport does: the ERROR frame, then 4003/4010 for a reconnection, else 4002. */
  private refuse(client: WebSocketRoomClient, e: unknown, reconnecting: boolean): void {
    this.stats.joinsFailed++;
    const err = e as { code?: number; message?: string };
    const message = err?.message ?? String(e);
    log("WebSocket join of %s failed: %s", client.sessionId, message);
    const code = reconnecting ? (isDevMode ? CloseCode.MAY_TRY_RECONNECT : CloseCode.FAILED_TO_RECONNECT) : CloseCode.WITH_ERROR;
    client.error(typeof err?.code === "number" ? err.code : 0, message, () => client.leave(code, message));
  }

  private startHeartbeat(): void {
    if (this.heartbeat || this.pingIntervalMs <= 0 || this.pingMaxRetries <= 0) return;
    this.heartbeat = setInterval(() => this.beat(), this.pingIntervalMs);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** Pings every client; one that left `pingMaxRetries` pings unanswered is cut (its TCP path died). */
  private beat(): void {
    if (this.wss.clients.size === 0) {
      this.stopHeartbeat();
      return;
    }
    for (const ws of this.wss.clients) {
      const missed = this.missedPongs.get(ws) ?? 0;
      if (missed >= this.pingMaxRetries) {
        this.stats.unresponsive++;
        log("cutting an unresponsive WebSocket (%d pings unanswered)", missed);
        ws.terminate();
        continue;
      }
      this.missedPongs.set(ws, missed + 1);
      if (ws.readyState === ws.OPEN) ws.ping();
    }
  }
}

/** The URL of a WebSocket upgrade request, or null for another protocol or a path `new URL` rejects. */
function webSocketUrl(req: http.IncomingMessage): URL | null {
  if ((req.headers.upgrade ?? "").trim().toLowerCase() !== "websocket") return null;
  try {
    return new URL(req.url ?? "/", "ws://server");
  } catch {
    return null;
  }
}
