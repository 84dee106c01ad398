import { createHash, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import http from "node:http";
import { createRequire } from "node:module";
import {
  CloseCode,
  ErrorCode,
  Protocol,
  ServerError,
  Transport,
  connectClientToRoom,
  createAuthContext,
  isDevMode,
  logger,
  matchMaker,
} from "@colyseus/core";
import createDebug from "debug";
import { formatFingerprint } from "../node/fingerprint.js";
import { FastnetError } from "../protocol/errors.js";
import { ENGINE_OPTION_KEYS, checkOptionKeys, keysOf } from "../node/option-keys.js";
import { isProxyHeader } from "../node/proxy-headers.js";
import type { EndpointOptions, SessionOptions } from "../protocol/options.js";
import { FastnetServer, type EndpointStats, type FastnetServerOptions, type SessionInfo } from "../node/server.js";
import { ReadyState, type FastnetSession } from "../node/session.js";
import { FastnetServerClient, type LatencySetting } from "./server-client.js";
import type { WebSocketRoomClient } from "./websocket-client.js";
import { WebSocketPath, type WebSocketOptions } from "./websocket-path.js";

const log = createDebug("fastnet:transport");

/**
 * What a plain @colyseus/sdk (WebSocket) client is told when the WebSocket path is off (`webSocket:
 * false`): the SDK rejects its join with this message (at most 123 bytes: a WebSocket close reason).
 * "colyseus.sdk" is for @colyseus/testing, whose test server makes a WebSocket SDK client:
 * `colyseus.sdk = new FastnetClient(url)` replaces it.
 */
const WEBSOCKET_REFUSAL = "this server's rooms use fastnet, not WebSocket: connect with FastnetClient (colyseus-fastnet/client), e.g. as colyseus.sdk";
/** What a WebSocket to a path that names no room of this server is told (the WebSocket path is on). */
const WEBSOCKET_NO_ROOM = "no room of this server at this path: WebSocket room connections go to /<processId>/<roomId> of a seat reservation";

/** Latency probes (a handshake naming no room) are closed after this long, as ws-transport does. */
const PROBE_LIFETIME_MS = 1000;

/**
 * Options of the Colyseus transport: every engine option (see the README's table) plus
 * `tls: { cert, key }` (PEM; without it a dev certificate is generated and its fingerprint published),
 * `server` (an existing http.Server), `udpPort` (default: the TCP port number), `udpHost`,
 * `publicAddress`, `publicPort`, `serverId` and `webSocket`.
 */
export type FastnetTransportOptions = Omit<FastnetServerOptions, "verifyHello" | "otherUpgrade"> & {
  /**
   * Colyseus' standard WebSocket room connections on the same HTTP port, for browsers, plain
   * `@colyseus/sdk` clients and networks that block UDP: they join the same rooms as fastnet players,
   * `@unreliable` fields included (sent over the socket). Default `true`; an object tunes it (see
   * WebSocketOptions). `false`: UDP only; a WebSocket client then fails at once, its close (1008)
   * naming the cause and FastnetClient as the way in.
   */
  webSocket?: boolean | WebSocketOptions;
};

/**
 * Every key `new FastnetTransport()` takes: a key not in this list throws FastnetOptionError. The
 * compiler keeps it equal to FastnetTransportOptions (a key added to FastnetServerOptions must be
 * added here), as the engine takes these options from here.
 */
const TRANSPORT_OPTION_KEYS: ReadonlySet<string> = new Set([
  ...ENGINE_OPTION_KEYS,
  ...keysOf<Omit<FastnetTransportOptions, keyof SessionOptions | keyof EndpointOptions>>({
    tls: true,
    devCertificateDir: true,
    server: true,
    udpPort: true,
    udpHost: true,
    publicAddress: true,
    publicPort: true,
    serverId: true,
    handshakePath: true,
    webSocketRefusal: true,
    statelessResetKey: true,
    statelessResetsPerSecond: true,
    maxCandidatePaths: true,
    maxMigrations: true,
    migrationWindowMs: true,
    webSocket: true,
  }),
]);

/** Every key of the `webSocket` option's object. */
const WEBSOCKET_OPTION_KEYS = keysOf<WebSocketOptions>({
  maxPayload: true,
  maxBufferedBytes: true,
  unreliableDropBytes: true,
  pingIntervalMs: true,
  pingMaxRetries: true,
  maxConnections: true,
});

/** An address on the transport's events. */
export interface PeerAddress {
  address: string;
  port: number;
}

/** Events of the transport: `transport.on("migration", (sessionId, from, to) => ...)`. */
export interface FastnetTransportEvents {
  /** A client's address changed and the new path was validated; its room saw nothing. */
  migration: [sessionId: string, from: PeerAddress, to: PeerAddress];
}

/**
 * Colyseus transport over encrypted UDP: `new Server({ transport: new FastnetTransport() })`.
 * Matchmaking runs on the transport's HTTP server, the TLS 1.3 handshake on the same TCP port
 * (HTTP Upgrade), and sessions on UDP (same port number unless `udpPort` says otherwise).
 */
export class FastnetTransport extends Transport {
  /** The engine: its `stats`, `sessionCount`, `udpPort` and events are public. */
  readonly engine: FastnetServer;
  /** The WebSocket path (its `stats`, `clients`, `openCount`), null with `webSocket: false`. */
  readonly webSocket: WebSocketPath | null;
  declare server: http.Server;
  override protocol = "fastnet";
  private readonly latency: LatencySetting = { ms: 0 };
  private readonly fastnetClients = new Map<string, FastnetServerClient>();
  private readonly bySession = new WeakMap<FastnetSession, FastnetServerClient>();
  private readonly events = new EventEmitter<FastnetTransportEvents>();
  private expressApp: unknown;

  constructor(options: FastnetTransportOptions = {}) {
    super();
    checkOptionKeys(options, TRANSPORT_OPTION_KEYS, "FastnetTransport options");
    if (typeof options.webSocket === "object") checkOptionKeys(options.webSocket, WEBSOCKET_OPTION_KEYS, "FastnetTransport's webSocket option");
    const { webSocket = true, ...engineOptions } = options;
    this.webSocket =
      webSocket === false
        ? null
        : new WebSocketPath(
            {
              latency: this.latency,
              maxMessageSize: options.maxMessageSize,
              sendQueueBytes: options.sendQueueBytes,
              maxSessions: options.maxSessions,
              takeOverStale: (sessionId, token) => this.takeOverStale(sessionId, token),
            },
            webSocket === true ? {} : webSocket,
          );
    // A hello whose path is no room path is refused at the handshake, before any session exists.
    this.engine = new FastnetServer({
      webSocketRefusal: this.webSocket ? WEBSOCKET_NO_ROOM : WEBSOCKET_REFUSAL,
      ...engineOptions,
      // The engine's one 'upgrade' listener routes: fastnet handshake, else WebSocket room, else refusal.
      otherUpgrade: this.webSocket?.route,
      verifyHello: (hello) => void parseRoomPath(hello.path),
    });
    this.server = this.engine.http;
    this.engine.on("session", (session, info) => this.onSession(session, info));
    this.engine.on("error", (err) => logger.error?.(`fastnet: ${err.message}`));
    this.engine.on("migration", ({ session, from, to }) => {
      const client = this.bySession.get(session);
      if (client) this.events.emit("migration", client.sessionId, { ...from }, { ...to });
    });
  }

  on<K extends keyof FastnetTransportEvents>(event: K, listener: (...args: FastnetTransportEvents[K]) => void): this {
    this.events.on(event, listener as never);
    return this;
  }

  once<K extends keyof FastnetTransportEvents>(event: K, listener: (...args: FastnetTransportEvents[K]) => void): this {
    this.events.once(event, listener as never);
    return this;
  }

  off<K extends keyof FastnetTransportEvents>(event: K, listener: (...args: FastnetTransportEvents[K]) => void): this {
    this.events.off(event, listener as never);
    return this;
  }

  /**
   * Every client in a room through this transport, by sessionId: fastnet sessions and WebSocket
   * connections alike (a snapshot; `engine.sessionCount` and `webSocket.clients` count each kind).
   */
  get clients(): ReadonlyMap<string, FastnetServerClient | WebSocketRoomClient> {
    return new Map<string, FastnetServerClient | WebSocketRoomClient>([...this.fastnetClients, ...(this.webSocket?.clients ?? [])]);
  }

  /** Endpoint counters: sessions opened, migrations, drops, stateless resets (see EndpointStats). */
  get stats(): EndpointStats {
    return this.engine.stats;
  }

  /** Binds TCP (matchmaking and handshake) and UDP; calls back once both are bound, or with the error. */
  listen(port?: number | string, hostname?: string, _backlog?: number, listeningListener?: Function): this {
    this.engine.listen(port === undefined ? 0 : Number(port), hostname).then(
      () => {
        const fp = this.engine.fingerprint;
        if (fp) {
          this.fingerprint = Array.from(fp);
          const stored = this.engine.devCertificate;
          const where = stored
            ? ` ${stored.created ? "created in" : "reused from"} ${stored.certPath} (key ${stored.keyPath}, valid until ${stored.validTo.toISOString()}; option devCertificateDir)`
            : " (in memory, new on every start)";
          logger.info?.(
            `fastnet: no TLS certificate given: using a self-signed dev certificate${where}, SHA-256 ${formatFingerprint(fp)}, published to clients for pinning`,
          );
        }
        log("listening: tcp %d, udp %d", this.engine.port, this.engine.udpPort);
        this.webSocket?.open();
        listeningListener?.();
      },
      (err: Error) => listeningListener?.(err),
    );
    return this;
  }

  /**
   * Closes everything at once, as Colyseus expects (it calls this without awaiting it, then may exit
   * the process or listen on the same port): every session (UDP or WebSocket) gets its CLOSE before this returns (the
   * code of its room's leave, e.g. 4001, else 4001, or 4010 in devMode), then the UDP sockets and the
   * HTTP server (given or own, as ws-transport does) stop listening, freeing both ports.
   */
  shutdown(): void {
    const code = isDevMode ? CloseCode.MAY_TRY_RECONNECT : CloseCode.SERVER_SHUTDOWN;
    this.webSocket?.close(code, "server shutdown");
    void this.engine.closeNow(code, "server shutdown", { closeHttp: true });
  }

  /** Delays both channels by `milliseconds` (Colyseus passes half the round trip). */
  simulateLatency(milliseconds: number): void {
    this.latency.ms = milliseconds > Number.EPSILON ? milliseconds : 0;
  }

  /**
   * The Express app serving this transport's HTTP requests (Colyseus' `express` option). Synchronous,
   * as Colyseus' router calls it without awaiting; `express` is loaded only when asked for, so a server
   * without the option does not need it installed.
   */
  override getExpressApp(): any {
    if (!this.expressApp) {
      let express: () => (req: http.IncomingMessage, res: http.ServerResponse) => void;
      try {
        express = createRequire(import.meta.url)("express");
      } catch (err) {
        throw new FastnetError(
          "INVALID_OPTION",
          `Colyseus' \`express\` option needs the express package: npm install express (${(err as Error).message})`,
        );
      }
      const app = express();
      this.server.on("request", app);
      this.expressApp = app;
    }
    return this.expressApp;
  }

  private onSession(session: FastnetSession, info: SessionInfo): void {
    // Any other listener's exception on this session goes to Colyseus' logger too, not to console.
    session.on("listenerError", (err, event) => {
      const who = this.bySession.get(session)?.sessionId ?? "a client joining";
      logger.error(`fastnet: a '${event}' listener of ${who} threw: ${(err as Error)?.stack ?? String(err)}`);
    });
    let url: URL;
    try {
      url = parseRoomPath(info.hello.path);
    } catch (err) {
      // verifyHello refused these already; never let one throw out of the engine's event.
      session.close(CloseCode.WITH_ERROR, (err as Error).message);
      return;
    }
    const sessionId = url.searchParams.get("sessionId");
    const roomId = /\/[a-zA-Z0-9_-]+\/([a-zA-Z0-9_-]+)$/.exec(url.pathname)?.[1] ?? null;

    if (!sessionId && !roomId) {
      // Latency probe: echo every PING, close after a second.
      const timer = setTimeout(() => session.close(CloseCode.NORMAL_CLOSURE), PROBE_LIFETIME_MS);
      session.on("message", () => {
        if (session.readyState !== ReadyState.OPEN) return;
        try {
          session.send(Uint8Array.of(Protocol.PING));
        } catch {
          // A probe that sends faster than it acknowledges fills its send queue: it is done.
          session.close(CloseCode.NORMAL_CLOSURE);
        }
      });
      session.once("close", () => clearTimeout(timer));
      return;
    }
    void this.join(session, info, url, sessionId ?? "", roomId);
  }

  private async join(session: FastnetSession, info: SessionInfo, url: URL, sessionId: string, roomId: string | null): Promise<void> {
    const reconnectionToken = url.searchParams.get("reconnectionToken");
    const skipHandshake = url.searchParams.has("skipHandshake");
    const client = new FastnetServerClient(sessionId, session, this.latency);
    // `sessionId` is only a claim until Colyseus accepts the join: nothing is indexed by it before then.
    const refusal = reconnectionToken === null ? undefined : this.takeOverStale(sessionId, reconnectionToken);
    if (refusal) {
      this.refuse(client, refusal, true);
      return;
    }
    const room = roomId ? matchMaker.getLocalRoomById(roomId) : undefined;
    const headers = authHeaders(info);
    try {
      await connectClientToRoom(
        room,
        client,
        // The IP, as with ws-transport, is the Upgrade request's: its proxy headers, else its TCP peer.
        createAuthContext({ headers, token: url.searchParams.get("_authToken"), remoteAddress: info.handshakeAddress }),
        { reconnectionToken: reconnectionToken ?? undefined, skipHandshake },
      );
    } catch (e) {
      this.refuse(client, e, reconnectionToken !== null);
      return;
    }
    if (session.readyState > ReadyState.OPEN) return; // gone during the join: the room already saw its 'close'
    // Accepted: from now on `sessionId` names this client (a later reconnection replaces the entry).
    this.fastnetClients.set(sessionId, client);
    this.bySession.set(session, client);
    session.once("close", () => {
      if (this.fastnetClients.get(sessionId) === client) this.fastnetClients.delete(sessionId);
    });
  }

  /**
   * A reconnection of `sessionId` (on either path) while we still think a connection of it alive: if
   * it holds that connection's reconnection token, the live one is stale (its path died); drop it now,
   * so the room runs onDrop and reserves the seat, instead of waiting for a timeout. Anyone else (every
   * player sees the others' sessionIds) gets the error to refuse it with, and the live one is untouched.
   */
  private takeOverStale(sessionId: string, reconnectionToken: string): ServerError | undefined {
    const fastnet = this.fastnetClients.get(sessionId);
    const webSocket = this.webSocket?.clients.get(sessionId);
    const live = fastnet && fastnet.readyState <= ReadyState.OPEN ? fastnet : webSocket && webSocket.readyState <= ReadyState.OPEN ? webSocket : undefined;
    if (!live) return undefined;
    if (!sameToken(reconnectionToken, live.reconnectionToken)) {
      log("refusing a reconnection to live client %s: bad reconnection token", sessionId);
      return new ServerError(ErrorCode.MATCHMAKE_EXPIRED, BAD_RECONNECTION_TOKEN);
    }
    log("dropping stale connection of %s for its reconnection", sessionId);
    if (live instanceof FastnetServerClient) live.session.abort(CloseCode.ABNORMAL_CLOSURE, "replaced by a reconnection");
    else live.ref.terminate();
    return undefined;
  }

  /** Fails a join: the ERROR frame, then the close code the SDK expects (4003/4010 for a reconnection, else 4002). */
  private refuse(client: FastnetServerClient, e: unknown, reconnecting: boolean): void {
    const err = e as { code?: number; message?: string };
    const message = err?.message ?? String(e);
    log("join of %s failed: %s", client.sessionId, message);
    const code = reconnecting ? (isDevMode ? CloseCode.MAY_TRY_RECONNECT : CloseCode.FAILED_TO_RECONNECT) : CloseCode.WITH_ERROR;
    // The ERROR frame is delivered before the close: a close waits for the reliable stream.
    client.error(typeof err?.code === "number" ? err.code : 0, message, () => client.leave(code, message));
  }
}

/** Why a reconnection to a live session was refused (the same words Colyseus uses outside production). */
const BAD_RECONNECTION_TOKEN = "bad reconnection token";

/**
 * The URL of a hello path: `/<processId>/<roomId>?sessionId=..` for a room, `/` for a latency probe.
 * Throws FastnetError HANDSHAKE_FAILED, naming the path, for anything that is not an absolute path
 * `new URL` can parse (a client writes it, so it may be anything).
 */
function parseRoomPath(path: string): URL {
  const shown = JSON.stringify(path.length > 100 ? `${path.slice(0, 100)}...` : path);
  if (!path.startsWith("/") || path.startsWith("//")) {
    throw new FastnetError("HANDSHAKE_FAILED", `invalid hello path ${shown}: expected /<processId>/<roomId>?sessionId=...`);
  }
  try {
    return new URL(path, "fastnet://server");
  } catch {
    throw new FastnetError("HANDSHAKE_FAILED", `invalid hello path ${shown}: not a URL path`);
  }
}

/** A header name (RFC 9110 token) and value (no CR, LF or NUL) that `new Headers()` accepts. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[^\r\n\0]*$/;

/**
 * Headers of the auth context: the hello's (the SDK client's own headers, lower-cased, proxy headers
 * and names `Headers` would reject dropped), then the proxy headers of the HTTP Upgrade request. The
 * hello is written by the client inside TLS, so an `x-forwarded-for` there is a lie no proxy vouched for.
 */
function authHeaders(info: SessionInfo): Record<string, string> {
  const headers: Record<string, string> = Object.create(null);
  for (const [name, value] of Object.entries(info.hello.headers ?? {})) {
    if (isProxyHeader(name) || !HEADER_NAME.test(name) || !HEADER_VALUE.test(value)) continue;
    headers[name.toLowerCase()] = value;
  }
  for (const [name, value] of Object.entries(info.upgradeHeaders)) headers[name] = value;
  return headers;
}

/** Constant-time comparison of a claimed reconnection token with the issued one (by their SHA-256). */
function sameToken(claimed: string, issued: string | undefined): boolean {
  if (typeof issued !== "string" || issued.length === 0) return false;
  const a = createHash("sha256").update(claimed).digest();
  const b = createHash("sha256").update(issued).digest();
  return timingSafeEqual(a, b);
}
