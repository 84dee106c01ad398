import { AsyncLocalStorage } from "node:async_hooks";
import { Client, MatchMakeError, Protocol, Room, ServerError, type ClientOptions, type EndpointSettings } from "@colyseus/sdk";
import { FastnetError, type FastnetErrorCode } from "../protocol/errors.js";
import { connect, type ConnectOptions } from "../node/client.js";
import { ENGINE_OPTION_KEYS, checkOptionKeys, keysOf } from "../node/option-keys.js";
import { parseFingerprint } from "../node/fingerprint.js";
import type { EndpointOptions, SessionOptions } from "../protocol/options.js";
import {
  DEFAULT_UDP_FALLBACK_MS,
  FastnetClientTransport,
  fallsBackToWebSocket,
  type ClientPath,
  type ClientTransportContext,
  type PathChoice,
} from "./client-transport.js";
import { createTlsFetch } from "./tls-fetch.js";

/** Protocol byte of a Colyseus PING frame (latency probe; the server answers any frame with a PING). */
const PROTOCOL_PING = Protocol.PING;
/** Close code for a failed latency measurement, as the SDK uses. */
const ABNORMAL_CLOSURE = 1006;

/** Options of FastnetClient: the SDK's ClientOptions plus TLS, socket and engine tuning. */
export interface FastnetClientOptions extends Omit<ClientOptions, "protocol">, Partial<SessionOptions>, Partial<EndpointOptions> {
  /**
   * Certificate verification, as in node:tls: trust anchors, whether to verify at all, the name to
   * verify. Applies to the fastnet handshake and to the SDK's https requests (matchmaking), which then
   * run through node:https instead of the global fetch (unless `fetchFn` is given).
   */
  tls?: { ca?: string | string[] | Buffer; rejectUnauthorized?: boolean; servername?: string };
  /** Pin this SHA-256 certificate fingerprint instead of CA verification ("AB:CD:..", bytes or number[]). */
  fingerprint?: string | Uint8Array | number[];
  /**
   * Pin the fingerprint a dev server publishes in its matchmaking response (default true), as the SDK
   * does for WebTransport. Set false to require CA verification even against a dev server.
   */
  pinDevCertificate?: boolean;
  /** Local address (and port) for the UDP socket. */
  localAddress?: string;
  localPort?: number;
  /** Keep-alive intervals of silence before rebinding to a fresh local port by itself (default 3; 0: off). */
  autoRebindAfterKeepAlives?: number;
  /**
   * Which path room connections use (default "auto"):
   * - "auto": fastnet over UDP; when the UDP bind gets no answer within `udpFallbackMs` (a network
   *   that blocks UDP), or the fastnet upgrade does not go through, the same seat reservation is used
   *   over the server's WebSocket path (no second matchmaking request). Every reconnection (the SDK's
   *   automatic one included) chooses again, so a session whose UDP path dies for good keeps its seat
   *   over WebSocket. A certificate that does not verify never falls back.
   * - "udp": fastnet only; a blocked network fails the join with BIND_TIMEOUT after `bindTimeoutMs`.
   * - "websocket": Colyseus' standard WebSocket path only (what a browser uses), UDP never tried.
   *
   * With an `http://` endpoint the WebSocket path is not encrypted (fastnet always is): use an
   * `https://` endpoint, or "udp", where that matters. `transportOf(room).path` (or `pathOf(room)`)
   * says which path a room is on.
   */
  path?: PathChoice;
  /**
   * "auto" only: milliseconds the UDP bind may go unanswered before the WebSocket path is used
   * (default 1000; at most `bindTimeoutMs`). A join on a UDP-blocked network takes about this long
   * more than one over WebSocket directly; too short a budget gives up on UDP over a slow or lossy
   * path that would have worked.
   */
  udpFallbackMs?: number;
}

/** Every key FastnetClient takes: a key not in this list throws FastnetOptionError at construction. */
const CLIENT_OPTION_KEYS: ReadonlySet<string> = new Set([
  ...ENGINE_OPTION_KEYS,
  ...keysOf<Omit<FastnetClientOptions, keyof SessionOptions | keyof EndpointOptions>>({
    headers: true,
    urlBuilder: true,
    fetchFn: true,
    tls: true,
    fingerprint: true,
    pinDevCertificate: true,
    localAddress: true,
    localPort: true,
    autoRebindAfterKeepAlives: true,
    path: true,
    udpFallbackMs: true,
  }),
]);

export interface LatencyOptions {
  /** Number of pings; the average is returned (default 1). */
  pingCount?: number;
  /** Milliseconds before the measurement fails (default 1500). */
  timeout?: number;
}

/**
 * A join (`joinOrCreate`, `join`, `joinById`, `create`, `reconnect`) that failed in the fastnet
 * connection: still the SDK's MatchMakeError (same `code`, 1006 or 1015, and message), plus the named
 * cause: `fastnetCode` ("BIND_TIMEOUT", "CERTIFICATE_REJECTED", ...; docs/errors.md) and the
 * FastnetError as `cause`.
 */
export class FastnetJoinError extends MatchMakeError {
  readonly fastnetCode: FastnetErrorCode;
  override readonly cause: FastnetError;

  constructor(message: string, code: number, cause: FastnetError) {
    super(message, code);
    // MatchMakeError sets its own prototype in its constructor: restore ours.
    Object.setPrototypeOf(this, FastnetJoinError.prototype);
    this.name = "FastnetJoinError";
    this.fastnetCode = cause.code;
    this.cause = cause;
  }
}

/**
 * The fastnet code behind an error the SDK gave: a FastnetError's `code`, a FastnetJoinError's
 * `fastnetCode`, the `fastnetCode` FastnetClient adds to `consumeSeatReservation`'s ServerError, or
 * the code a close reason starts with ("SERVER_UNREACHABLE: ..." in onDrop/onLeave). Else undefined.
 */
export function fastnetCodeOf(errOrReason: unknown): FastnetErrorCode | undefined {
  if (typeof errOrReason === "string") return /^([A-Z][A-Z_]+): /.exec(errOrReason)?.[1] as FastnetErrorCode | undefined;
  if (typeof errOrReason !== "object" || errOrReason === null) return undefined;
  const e = errOrReason as { fastnetCode?: unknown; code?: unknown; name?: unknown };
  if (typeof e.fastnetCode === "string") return e.fastnetCode as FastnetErrorCode;
  if (e.name === "FastnetError" && typeof e.code === "string") return e.code as FastnetErrorCode;
  return undefined;
}

/** Per matchmaking request: the fastnet failure behind its seat reservation's connection, if any. */
const joinContext = new AsyncLocalStorage<{ failure?: FastnetError }>();

/**
 * The `@colyseus/sdk` Client over fastnet: `joinOrCreate`, `join`, `joinById`, `create` and `reconnect`
 * return ordinary SDK rooms whose `room.connection.transport` is a {@link FastnetClientTransport}.
 */
export class FastnetClient extends Client {
  /** Options every room connection of this client uses. */
  readonly fastnet: { options: ConnectOptions; pinDevCertificate: boolean; path: PathChoice; udpFallbackMs: number };
  /** The last fingerprint a matchmaking response published (used by getLatency when none was given). */
  private lastFingerprint: Uint8Array | undefined;

  constructor(settings?: string | EndpointSettings, options: FastnetClientOptions = {}) {
    // `protocol` is the SDK's ("ws" or "h3"): this client's protocol is fastnet, so it is unknown here.
    checkOptionKeys(options, CLIENT_OPTION_KEYS, "FastnetClient options");
    const { tls, fingerprint, pinDevCertificate, localAddress, localPort, headers, urlBuilder, fetchFn, path, udpFallbackMs, ...tuning } = options;
    if (path !== undefined && path !== "auto" && path !== "udp" && path !== "websocket") {
      throw new FastnetError("INVALID_OPTION", `option path must be "auto", "udp" or "websocket", got ${JSON.stringify(path)}`);
    }
    if (udpFallbackMs !== undefined && (typeof udpFallbackMs !== "number" || !Number.isFinite(udpFallbackMs) || udpFallbackMs <= 0)) {
      throw new FastnetError("INVALID_OPTION", `option udpFallbackMs must be a positive number, got ${String(udpFallbackMs)}`);
    }
    // The SDK's HTTP requests (matchmaking) verify https with the same tls settings as the session,
    // unless the application brings its own fetch.
    const tlsFetch = !fetchFn && tls && (tls.ca !== undefined || tls.rejectUnauthorized !== undefined || tls.servername !== undefined);
    super(settings, { headers, urlBuilder, fetchFn: tlsFetch ? createTlsFetch(tls) : fetchFn });
    // The room URL is built as `${protocol}://host:port/processId/roomId?...`; the transport parses it.
    (this.settings as { protocol?: string }).protocol = "fastnet";
    this.fastnet = {
      options: {
        ...tuning,
        tls,
        fingerprint: fingerprint !== undefined ? parseFingerprint(fingerprint) : undefined,
        localAddress,
        localPort,
      },
      pinDevCertificate: pinDevCertificate ?? true,
      path: path ?? "auto",
      udpFallbackMs: udpFallbackMs ?? DEFAULT_UDP_FALLBACK_MS,
    };
  }

  protected override createRoom<T>(roomName: string, rootSchema?: any): Room<any, T> {
    const room = new FastnetRoom<T>(roomName, rootSchema, this, (fp) => (this.lastFingerprint = fp));
    this.createdRoom = room;
    return room;
  }

  /** The room the SDK's consumeSeatReservation just made (it calls createRoom synchronously, first). */
  private createdRoom: FastnetRoom | undefined;

  /**
   * As the SDK's, but a connection that failed in fastnet rejects with the SDK's ServerError carrying
   * `fastnetCode` and `cause` (the FastnetError), so the named cause reaches the caller.
   */
  override async consumeSeatReservation<T>(response: Parameters<Client["consumeSeatReservation"]>[0], rootSchema?: any): Promise<Room<any, T>> {
    this.createdRoom = undefined;
    const pending = super.consumeSeatReservation<T>(response, rootSchema);
    const room = this.createdRoom as FastnetRoom | undefined;
    this.createdRoom = undefined;
    try {
      return await pending;
    } catch (err) {
      const failure = room?.fastnetTransport?.lastFailure;
      if (failure && err instanceof ServerError) {
        Object.assign(err, { fastnetCode: failure.code, cause: failure });
        const ctx = joinContext.getStore();
        if (ctx) ctx.failure = failure;
      }
      throw err;
    }
  }

  /** As the SDK's; a fastnet failure becomes a FastnetJoinError (a MatchMakeError with `fastnetCode`). */
  protected override async createMatchMakeRequest<T>(method: string, roomName: string, options: any = {}, rootSchema?: any): Promise<Room<any, T>> {
    const ctx: { failure?: FastnetError } = {};
    try {
      return await joinContext.run(ctx, () => super.createMatchMakeRequest<T>(method, roomName, options, rootSchema));
    } catch (err) {
      if (ctx.failure && err instanceof MatchMakeError && !(err instanceof FastnetJoinError)) {
        throw new FastnetJoinError(err.message, err.code, ctx.failure);
      }
      throw err;
    }
  }

  /**
   * Round-trip time of a PING over a fresh connection to this endpoint (a latency probe), on the path
   * rooms would use: fastnet; with `path: "websocket"` the SDK's WebSocket probe; under "auto" the
   * WebSocket probe when the fastnet one fails (a UDP-blocked network).
   */
  override async getLatency(options: LatencyOptions = {}): Promise<number> {
    if (this.fastnet.path === "websocket") return super.getLatency({ ...options, protocol: "ws" });
    try {
      return await this.fastnetLatency(options);
    } catch (err) {
      // As for rooms: a certificate that does not verify (or a busy server) is an answer, not a blocked path.
      const code = fastnetCodeOf(err);
      if (this.fastnet.path === "udp" || (code !== undefined && !fallsBackToWebSocket(code))) throw err;
      try {
        return await super.getLatency({ ...options, protocol: "ws" });
      } catch (wsErr) {
        const why = (e: unknown) => (e instanceof Error ? e.message : String(e));
        throw new ServerError(ABNORMAL_CLOSURE, `Failed to get latency on both paths: fastnet: ${why(err)}; WebSocket: ${why(wsErr)}`);
      }
    }
  }

  private fastnetLatency(options: LatencyOptions): Promise<number> {
    const pingCount = options.pingCount ?? 1;
    const timeout = options.timeout ?? 1500;
    const url = new URL(this["getHttpEndpoint"]());
    const pin = this.fastnet.options.fingerprint ?? (this.fastnet.pinDevCertificate ? this.lastFingerprint : undefined);
    const fail = (message: string) => new ServerError(ABNORMAL_CLOSURE, `Failed to get latency: ${message}`);
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      let close = (): void => {};
      const timer = setTimeout(() => settle(() => reject(fail(`timed out after ${timeout}ms`))), timeout);
      const settle = (run: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        close();
        run();
      };
      connect(`${url.protocol}//${url.host}`, {
        ...this.fastnet.options,
        fingerprint: pin,
        path: "/",
        handshakeTimeoutMs: timeout,
        bindTimeoutMs: timeout,
      }).then(
        (session) => {
          close = () => session.abort(1000, "latency measured");
          if (settled) return close();
          const samples: number[] = [];
          let sentAt = performance.now();
          session.on("message", () => {
            samples.push(performance.now() - sentAt);
            if (samples.length < pingCount) {
              sentAt = performance.now();
              session.send(Uint8Array.of(PROTOCOL_PING));
            } else {
              settle(() => resolve(samples.reduce((a, b) => a + b, 0) / samples.length));
            }
          });
          session.once("close", (code, reason) => settle(() => reject(fail(`connection closed (${code})${reason ? `: ${reason}` : ""}`))));
          session.send(Uint8Array.of(PROTOCOL_PING));
        },
        (err: Error) => settle(() => reject(err instanceof FastnetError ? Object.assign(fail(err.message), { fastnetCode: err.code, cause: err }) : fail(err.message))),
      );
    });
  }

  /** The endpoint with the lowest fastnet latency, as a FastnetClient. */
  static override async selectByLatency(
    endpoints: Array<string | EndpointSettings>,
    options?: FastnetClientOptions,
    latencyOptions: LatencyOptions = {},
  ): Promise<FastnetClient> {
    const clients = endpoints.map((e) => new FastnetClient(e, options));
    const results = await Promise.allSettled(clients.map((c) => c.getLatency(latencyOptions)));
    let best = -1;
    results.forEach((r, i) => {
      if (r.status === "fulfilled" && (best < 0 || r.value < (results[best] as PromiseFulfilledResult<number>).value)) best = i;
    });
    if (best < 0) throw new Error("All endpoints failed to respond");
    return clients[best]!;
  }
}

/**
 * An SDK Room whose connection runs over fastnet. The SDK has no transport hook: `Room.connect` does
 * `this.connection = new Connection(protocol)`, so an own accessor on `connection` swaps the
 * connection's transport for ours the moment it is assigned (a prototype accessor would be shadowed:
 * `connection` is a class field).
 */
export class FastnetRoom<State = any> extends Room<any, State> {
  private readonly transportContext: ClientTransportContext;
  /** The fastnet transport of the current connection (undefined before the first connect). */
  fastnetTransport: FastnetClientTransport | undefined;

  constructor(name: string, rootSchema: any, client: FastnetClient, onFingerprint: (fp: Uint8Array) => void) {
    super(name, rootSchema);
    const ctx: ClientTransportContext = {
      options: client.fastnet.options,
      path: client.fastnet.path,
      udpFallbackMs: client.fastnet.udpFallbackMs,
    };
    this.transportContext = ctx;
    this.pinDevCertificate = client.fastnet.pinDevCertificate;
    this.onFingerprint = onFingerprint;
    let connection: any;
    Object.defineProperty(this, "connection", {
      configurable: true,
      enumerable: true,
      get: () => connection,
      set: (c: any) => {
        connection = c;
        if (c && !(c.transport instanceof FastnetClientTransport)) c.transport = new FastnetClientTransport(c.events, ctx);
        if (c) this.fastnetTransport = c.transport;
      },
    });
  }

  private readonly pinDevCertificate: boolean;
  private readonly onFingerprint: (fp: Uint8Array) => void;

  /**
   * Keeps the seat reservation's certificate pin, then connects as the SDK does. A reservation without
   * one (made on the server with `matchMaker.reserveSeatFor`) pins the dev certificate the room's
   * process announces in its handshake response instead, when pinDevCertificate is on.
   */
  override connect(endpoint: string, options?: any, headers?: any): void {
    const fp = options?.fingerprint;
    if (this.pinDevCertificate && Array.isArray(fp) && fp.length > 0) {
      this.transportContext.fingerprint = parseFingerprint(fp);
      this.onFingerprint(this.transportContext.fingerprint);
    } else if (this.pinDevCertificate) {
      this.transportContext.options = { ...this.transportContext.options, pinAnnouncedFingerprint: true };
    }
    super.connect(endpoint, options, headers);
  }
}

/**
 * The fastnet transport of a room joined through FastnetClient, typed (the SDK types
 * `room.connection.transport` as its generic ITransport): `transportOf(room).getStats()`, `.rebind()`,
 * `.path` ("udp" or "websocket").
 */
export function transportOf(room: Room<any, any>): FastnetClientTransport {
  const t = (room.connection as { transport?: unknown } | undefined)?.transport;
  if (!(t instanceof FastnetClientTransport)) throw new TypeError("this room is not connected through FastnetClient");
  return t;
}

/**
 * Which path a room joined through FastnetClient is on: "udp" (fastnet) or "websocket" (the fallback,
 * or `path: "websocket"`). Throws a TypeError for a room not joined through FastnetClient, or one whose
 * first connection has not opened yet.
 */
export function pathOf(room: Room<any, any>): ClientPath {
  const path = transportOf(room).path;
  if (!path) throw new TypeError("this room has not connected yet");
  return path;
}
