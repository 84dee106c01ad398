import createDebug from "debug";
import { NO_STATUS_RECEIVED, closeReasonText, isCloseCode } from "../node/close-code.js";
import { connect, type ConnectOptions, type FastnetClientSession, type RebindOptions } from "../node/client.js";
import { FastnetError } from "../protocol/errors.js";
import { DEFAULT_ENDPOINT_OPTIONS, DEFAULT_SESSION_OPTIONS } from "../protocol/options.js";
import { SendBacklog } from "../node/send-backlog.js";
import { ReadyState } from "../node/session.js";
import type { ConnectionStats } from "../protocol/stats.js";
import { SdkWebSocketTransport, webSocketUrl } from "./websocket-transport.js";

const log = createDebug("fastnet:sdk");

/** The SDK's transport event object (`ITransportEventMap`): the Room assigns its handlers on it. */
export interface TransportEvents {
  onopen?: ((ev: any) => any) | null;
  onmessage?: ((ev: any) => any) | null;
  onclose?: ((ev: any) => any) | null;
  onerror?: ((ev: any) => any) | null;
}

/** Close code the SDK reads as "connection lost": it calls onDrop and starts reconnecting. */
const ABNORMAL_CLOSURE = 1006;
/** WebSocket's close code for a failed TLS handshake: not one the SDK retries. */
const TLS_HANDSHAKE_FAILURE = 1015;

/** The path a room connection runs over: encrypted UDP (fastnet), or Colyseus' standard WebSocket. */
export type ClientPath = "udp" | "websocket";

/**
 * Which path FastnetClient connects over (its `path` option): "auto" tries UDP and falls back to
 * WebSocket when the UDP bind gets no answer within `udpFallbackMs`; "udp" and "websocket" force one.
 */
export type PathChoice = "auto" | ClientPath;

/** Default `udpFallbackMs`: how long "auto" waits for the UDP bind's answer before using WebSocket. */
export const DEFAULT_UDP_FALLBACK_MS = 1000;

/**
 * Whether "auto" tries the WebSocket path after a fastnet failure with this code: yes when no UDP came
 * back (BIND_TIMEOUT), the network refused the UDP port (SERVER_UNREACHABLE: a firewall that rejects
 * rather than drops, or a UDP port not published), or the fastnet upgrade itself did not go through (HANDSHAKE_FAILED: e.g. a proxy
 * that passes only WebSocket upgrades). Never after CERTIFICATE_REJECTED: a certificate that does not
 * verify must not lead to a path that an attacker who caused it might find weaker; nor SERVER_BUSY,
 * the server's own answer.
 */
export function fallsBackToWebSocket(code: string): boolean {
  return code === "BIND_TIMEOUT" || code === "SERVER_UNREACHABLE" || code === "HANDSHAKE_FAILED";
}

/** While more than this waits unsent on the WebSocket, sendUnreliable drops (as congestion does on UDP). */
const WEBSOCKET_UNRELIABLE_DROP_BYTES = 64 * 1024;

/** Where the transport takes per-connection facts from: the seat reservation's pin, the options. */
export interface ClientTransportContext {
  /** Engine, TLS and socket options for every connection. */
  options: ConnectOptions;
  /** SHA-256 pin of the server's dev certificate, when the matchmaking response published one. */
  fingerprint?: Uint8Array;
  /** Which path to use (default "auto"). */
  path?: PathChoice;
  /** "auto": milliseconds the UDP bind may go unanswered before the WebSocket path is used (default 1000). */
  udpFallbackMs?: number;
}

/**
 * The SDK `ITransport` over a fastnet session, or over Colyseus' standard WebSocket path of the same
 * server (the SDK's own WebSocketTransport) when UDP does not get through or `path` says so; `path`
 * tells which. `connect` may be called again after a close (the SDK reconnects on the same transport):
 * each call chooses the path anew, so a reconnection tries UDP first again under "auto". One frame per
 * `onmessage`.
 */
export class FastnetClientTransport {
  readonly events: TransportEvents;
  /** The URL given to the last `connect` (fastnet://host:port/processId/roomId?...). */
  url = "";
  /** The current fastnet session, while connecting or open (null on the WebSocket path). */
  session: FastnetClientSession | null = null;
  /** The SDK WebSocket transport of the current connection, while connecting or open on the WebSocket path. */
  webSocket: SdkWebSocketTransport | null = null;
  /**
   * The path of the current connection ("udp" or "websocket"), or of the last one once closed;
   * null before the first connection opened.
   */
  path: ClientPath | null = null;
  /** Why UDP was given up for the current WebSocket connection under "auto" (null otherwise). */
  udpFailure: FastnetError | null = null;
  private readonly context: ClientTransportContext;
  private attempt = 0;
  private backlog: SendBacklog | null = null;
  private closedByUser = false;
  /** Bounds the opening of the current WebSocket (cleared once it opens, fails, or is abandoned). */
  private openTimer: NodeJS.Timeout | undefined;
  /** Why the last `connect` failed (cleared by the next one): what FastnetClient puts on join errors. */
  lastFailure: FastnetError | null = null;

  constructor(events: TransportEvents, context: ClientTransportContext) {
    this.events = events;
    this.context = context;
  }

  get isOpen(): boolean {
    return this.session?.readyState === ReadyState.OPEN || (this.webSocket?.isOpen ?? false);
  }

  /** Statistics of the current fastnet session (RTT, packets, losses, drops, congestion window); null on the WebSocket path. */
  getStats(): ConnectionStats | null {
    return this.session?.getStats() ?? null;
  }

  /**
   * Moves the session to a new local socket (another local address, or a fresh port) and resolves
   * when the new path works. The server keeps the same session: the room sees nothing.
   */
  rebind(options: RebindOptions = {}): Promise<void> {
    if (!this.session) {
      const why = this.webSocket ? "the room is connected over WebSocket, which has no UDP socket to move" : "not connected";
      return Promise.reject(new FastnetError("NOT_OPEN", `cannot rebind: ${why}`));
    }
    return this.session.rebind(options);
  }

  /**
   * Reliable-ordered send; `data` is copied at once. Dropped (as by a closed WebSocket) when not open.
   * Throws FastnetError MESSAGE_TOO_LARGE, sending nothing, for a message above the server's
   * `maxMessageSize` (announced in the handshake): the connection carries on.
   */
  send(data: Buffer | Uint8Array): void {
    if (this.webSocket) {
      if (this.webSocket.isOpen) this.webSocket.send(data);
      else log("send while not open: dropped %d bytes", data.length);
      return;
    }
    if (!this.isOpen || !this.backlog) {
      log("send while not open: dropped %d bytes", data.length);
      return;
    }
    const limit = this.session!.maxMessageSize;
    if (data.length > limit) {
      throw new FastnetError(
        "MESSAGE_TOO_LARGE",
        `room.send(): message of ${data.length} bytes exceeds the server's limit of ${limit} bytes ` +
          `(maxMessageSize, set on the server: new FastnetTransport({ maxMessageSize })); nothing was sent, the connection carries on`,
      );
    }
    this.backlog.send(data);
  }

  /**
   * Unreliable datagram. Returns false when it was not sent: not open, dropped by congestion (counted
   * in getStats()), or larger than one datagram (`maxUnreliableSize`); the last also logs one
   * console.warn per session, naming the size and the limit. On the WebSocket path it is sent over the
   * socket (the room handles it as any message; the SDK does the same), unless more than 64 KiB wait
   * unsent there: then it is dropped, as congestion drops it on UDP.
   */
  sendUnreliable(data: Buffer | Uint8Array): boolean {
    const ws = this.webSocket;
    if (ws) {
      if (!ws.isOpen || ws.bufferedAmount > WEBSOCKET_UNRELIABLE_DROP_BYTES) return false;
      ws.send(data);
      return true;
    }
    const s = this.session;
    if (!s || !this.isOpen) return false;
    if (data.length > s.maxUnreliableSize && !this.warnedUnreliable.has(s)) {
      this.warnedUnreliable.add(s);
      console.warn(
        `fastnet: room.sendUnreliable(): message of ${data.length} bytes exceeds the ${s.maxUnreliableSize} bytes of one datagram; ` +
          `dropped (counted in getStats().datagramsDropped.tooLarge). Use room.send() for larger messages. (Warned once per connection.)`,
      );
    }
    return s.sendUnreliable(data);
  }

  /** Sessions whose oversized sendUnreliable was already warned about (one warning per session). */
  private readonly warnedUnreliable = new WeakSet<FastnetClientSession>();

  /**
   * Connects to `url`: `fastnet://host:port/<processId>/<roomId>?sessionId=..` (`fastnets://` when the
   * client was given an https endpoint; the handshake then still runs TLS 1.3 inside the upgrade).
   * `headers` are the SDK's client headers, passed on to the server's auth context. Under "auto", a
   * UDP bind unanswered within `udpFallbackMs` (or a fastnet upgrade that did not go through) is given
   * up, and the same URL (seat reservation or reconnection token) is used over WebSocket.
   */
  connect(url: string, headers?: Record<string, string>): void {
    this.url = url;
    this.closedByUser = false;
    this.lastFailure = null;
    this.udpFailure = null;
    this.webSocket?.abandon();
    this.webSocket = null;
    clearTimeout(this.openTimer);
    const attempt = ++this.attempt;
    const choice = this.context.path ?? "auto";
    if (choice === "websocket") this.connectWebSocket(url, headers, attempt);
    else this.connectUdp(url, headers, attempt, choice === "auto");
  }

  private connectUdp(url: string, headers: Record<string, string> | undefined, attempt: number, fallback: boolean): void {
    const parsed = new URL(url);
    const base = `${parsed.protocol === "fastnets:" ? "https" : "http"}://${parsed.host}`;
    const options: ConnectOptions = {
      ...this.context.options,
      path: `${parsed.pathname}${parsed.search}`,
      headers: headers && typeof headers === "object" ? { ...headers } : undefined,
    };
    if (this.context.fingerprint && options.fingerprint === undefined) options.fingerprint = this.context.fingerprint;
    // Under "auto" the bind waits only the fallback budget; the configured bindTimeoutMs is put back
    // once bound, as later rebinds (migration) use it.
    const bindTimeoutMs = options.bindTimeoutMs ?? DEFAULT_SESSION_OPTIONS.bindTimeoutMs;
    if (fallback) options.bindTimeoutMs = Math.min(bindTimeoutMs, this.context.udpFallbackMs ?? DEFAULT_UDP_FALLBACK_MS);
    connect(base, options).then(
      (session) => {
        if (attempt !== this.attempt || this.closedByUser) {
          session.abort(1000, "superseded");
          return;
        }
        session.connection.options.bindTimeoutMs = bindTimeoutMs;
        this.session = session;
        this.path = "udp";
        // Beyond the send queue, sends wait (bounded) as on a WebSocket; a backlog that overflows closes
        // the connection with 1009 and the reason. (A message above the limit throws in send() first.)
        this.backlog = new SendBacklog(session, (err) => session.close(1009, `${err.code}: ${err.message}`));
        session.on("message", (data) => this.fire("onmessage", { data: toArrayBuffer(data) }));
        session.on("datagram", (data) => this.fire("onmessage", { data: toArrayBuffer(data) }));
        session.once("close", (code, reason) => {
          if (this.session === session) this.session = null;
          this.fire("onclose", { code, reason });
        });
        this.fire("onopen", {});
      },
      (err: Error) => {
        if (attempt !== this.attempt) return;
        log("connect to %s failed: %s", base, err.message);
        if (fallback && err instanceof FastnetError && fallsBackToWebSocket(err.code)) {
          log("UDP path failed (%s): trying WebSocket", err.code);
          this.udpFailure = err;
          this.connectWebSocket(url, headers, attempt);
          return;
        }
        // The SDK turns a close before JOIN into the join's rejection (code, reason), and a close
        // after it into onDrop + reconnection: both want the cause in the reason.
        // A certificate that does not verify will not verify on a retry: 1015 (TLS handshake failure)
        // ends the SDK's reconnection at once; other failures (1006) are worth retrying.
        const code = err instanceof FastnetError && err.code === "CERTIFICATE_REJECTED" ? TLS_HANDSHAKE_FAILURE : ABNORMAL_CLOSURE;
        // The SDK passes on only (code, reason): the reason starts with the fastnet code, so onDrop,
        // onLeave and onError handlers can tell BIND_TIMEOUT from CERTIFICATE_REJECTED (docs/errors.md).
        this.lastFailure = err instanceof FastnetError ? err : null;
        const reason = err instanceof FastnetError ? `${err.code}: ${err.message}` : err.message;
        this.fire("onclose", { code, reason, fastnetCode: this.lastFailure?.code });
      },
    );
  }

  /**
   * The same room URL over the server's WebSocket path, through the SDK's WebSocketTransport. Its
   * events are relayed, not wired to the room directly: a WebSocket that fails to open reports an
   * `error` event (no code) before its close, which the room would take for the join's answer. A
   * WebSocket closed before its first message (never opened, or refused by the server) reports the
   * cause in its close instead, naming the UDP failure too when this is a fallback.
   */
  private connectWebSocket(url: string, headers: Record<string, string> | undefined, attempt: number): void {
    const current = () => attempt === this.attempt && this.webSocket === ws;
    let opened = false;
    let heard = false;
    // Node's WebSocket reports a failed TLS handshake or upgrade with an error event and never closes;
    // an unanswered TCP connect waits on the OS. Both end here, as a close naming the cause.
    const fail = (reason: string): void => {
      clearTimeout(timer);
      ws.abandon();
      this.webSocket = null;
      this.fire("onclose", this.webSocketFailure(url, ABNORMAL_CLOSURE, reason, true));
    };
    const openTimeoutMs = this.context.options.handshakeTimeoutMs ?? DEFAULT_ENDPOINT_OPTIONS.handshakeTimeoutMs;
    const timer = setTimeout(() => {
      if (current()) fail(`not open within ${openTimeoutMs} ms (handshakeTimeoutMs)`);
    }, openTimeoutMs);
    this.openTimer = timer;
    const ws = new SdkWebSocketTransport(
      {
        onopen: () => {
          if (!current()) return;
          clearTimeout(timer);
          opened = true;
          this.path = "websocket";
          this.fire("onopen", {});
        },
        onmessage: (ev: { data: ArrayBuffer }) => {
          if (!current()) return;
          heard = true;
          this.fire("onmessage", { data: ev.data });
        },
        onclose: (ev: { code?: number; reason?: string }) => {
          if (!current()) return;
          clearTimeout(timer);
          this.webSocket = null;
          const code = typeof ev?.code === "number" ? ev.code : ABNORMAL_CLOSURE;
          const reason = typeof ev?.reason === "string" ? ev.reason : "";
          this.fire("onclose", heard ? { code, reason } : this.webSocketFailure(url, code, reason, false));
        },
        onerror: (ev: { message?: string; error?: Error }) => {
          if (!current()) return;
          const message = ev?.error?.message ?? ev?.message ?? "";
          log("WebSocket error: %s", message || "(no detail)");
          if (!opened) fail(message || "error (no detail)");
        },
      },
      this.context.options.tls,
    );
    this.webSocket = ws;
    try {
      ws.connect(webSocketUrl(url), headers && typeof headers === "object" ? { ...headers } : undefined);
    } catch (err) {
      // An invalid URL or header: report it as a failed connection, as any other.
      queueMicrotask(() => {
        if (current()) fail((err as Error).message);
      });
    }
  }

  /**
   * The close event of a WebSocket that ended before its first message: its code, and a reason naming
   * the cause on each path tried and what to do. `local` says the failure was seen here (an error, a
   * timeout) rather than a close the server sent, whose reason names its own cause. After a UDP
   * failure, `lastFailure` is that FastnetError with the combined message (so
   * `FastnetJoinError.fastnetCode` says what stopped UDP).
   */
  private webSocketFailure(url: string, code: number, reason: string, local: boolean): { code: number; reason: string; fastnetCode?: string } {
    const target = webSocketUrl(url).replace(/\?.*$/, "");
    const wsCause = local
      ? `WebSocket to ${target} failed: ${reason}`
      : `WebSocket to ${target} closed before the join (${code}${reason ? `: ${reason}` : ", no reason"})`;
    const udp = this.udpFailure;
    if (local && /server response: 503\b/.test(reason)) {
      // The server's WebSocket path is full (its maxConnections): the server's own answer, as a 503 to
      // the fastnet handshake is; what stopped UDP first, if anything, is named after it.
      const message = `${wsCause}: the server is busy, try again later${udp ? `; UDP: ${udp.message}` : ""}`;
      this.lastFailure = new FastnetError("SERVER_BUSY", message, udp ? { cause: udp } : undefined);
      return { code: ABNORMAL_CLOSURE, reason: `SERVER_BUSY: ${message}`, fastnetCode: "SERVER_BUSY" };
    }
    if (!udp) {
      if (reason && !local) return { code, reason };
      return {
        code,
        reason: `${wsCause}; check the endpoint, that the server's WebSocket path is on (webSocket option) and reachable, and its certificate (tls option)`,
      };
    }
    const message =
      `both paths failed. UDP: ${udp.message}. ${wsCause}. ` +
      `Open the server's UDP port (see docs/errors.md, BIND_TIMEOUT), or make its WebSocket path reachable (webSocket option, proxies passing WebSocket upgrades)`;
    this.lastFailure = new FastnetError(udp.code, message, { cause: udp });
    return { code: ABNORMAL_CLOSURE, reason: `${udp.code}: ${message}`, fastnetCode: udp.code };
  }

  /**
   * Calls one of the SDK's handlers. What a handler throws (the SDK's decoding, a user's onMessage or
   * onLeave) is reported with console.error and goes no further, as a browser reports an exception in
   * a WebSocket's onmessage: the session, its acknowledgements and its timers carry on.
   */
  private fire(handler: keyof TransportEvents, ev: any): void {
    try {
      this.events[handler]?.(ev);
    } catch (err) {
      console.error(`fastnet: the room's ${handler} handler threw (the connection carries on):`, err);
    }
  }

  /**
   * Closes the session with `code`; the SDK gets `onclose` once it is closed. Without a code (the SDK's
   * `room.leave(false)`) the close is 1005 at both ends, as a WebSocket closed without a status: the
   * room sees an unconsented leave (onDrop) and the SDK reconnects. Never throws: a code the wire
   * cannot carry (not an integer in 0..65535) is replaced by 1000, with a console.warn naming it (a
   * browser WebSocket would throw; the SDK does not expect that of a close).
   */
  close(code?: number, reason?: string): void {
    this.closedByUser = true;
    let text = closeReasonText(reason);
    if (code !== undefined && !isCloseCode(code)) {
      console.warn(`fastnet: close(${String(code)}): not a close code (0..65535); closing with 1000`);
      text = text || `invalid close code ${String(code)}`;
      code = 1000;
    }
    const s = this.session;
    const ws = this.webSocket;
    if (s) s.close(code ?? NO_STATUS_RECEIVED, text);
    else if (ws?.isOpen) {
      // A WebSocket takes 1000 and 3000..4999 only; without a code it closes without a status (1005).
      const allowed = code === undefined || code === 1000 || (code >= 3000 && code <= 4999);
      ws.close(allowed ? code : 1000, text);
    } else {
      ws?.abandon();
      this.webSocket = null;
      clearTimeout(this.openTimer);
      // Still connecting: abandon the attempt and report the close as a WebSocket would.
      this.attempt++;
      this.fire("onclose", { code: code ?? NO_STATUS_RECEIVED, reason: text });
    }
  }
}

/** The Room reads `new Uint8Array(event.data)`: an exact ArrayBuffer avoids a copy there. */
function toArrayBuffer(data: Uint8Array): ArrayBuffer | Uint8Array {
  const buf = data.buffer;
  if (data.byteOffset === 0 && data.byteLength === buf.byteLength && buf instanceof ArrayBuffer) return buf;
  return data;
}
