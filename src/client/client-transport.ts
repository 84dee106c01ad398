import createDebug from "debug";
import { NO_STATUS_RECEIVED, closeReasonText, isCloseCode } from "../node/close-code.js";
import { connect, type ConnectOptions, type FastnetClientSession, type RebindOptions } from "../node/client.js";
import { FastnetError } from "../protocol/errors.js";
import { SendBacklog } from "../node/send-backlog.js";
import type { ConnectionStats } from "../protocol/stats.js";

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

/** Where the transport takes per-connection facts from: the seat reservation's pin, the options. */
export interface ClientTransportContext {
  /** Engine, TLS and socket options for every connection. */
  options: ConnectOptions;
  /** SHA-256 pin of the server's dev certificate, when the matchmaking response published one. */
  fingerprint?: Uint8Array;
}

/**
 * The SDK `ITransport` over a fastnet session. `connect` may be called again after a close (the SDK
 * reconnects on the same transport): each call runs a new handshake. One frame per `onmessage`.
 */
export class FastnetClientTransport {
  readonly events: TransportEvents;
  /** The URL given to the last `connect` (fastnet://host:port/processId/roomId?...). */
  url = "";
  /** The current session, while connecting or open. */
  session: FastnetClientSession | null = null;
  private readonly context: ClientTransportContext;
  private attempt = 0;
  private backlog: SendBacklog | null = null;
  private closedByUser = false;
  /** Why the last `connect` failed (cleared by the next one): what FastnetClient puts on join errors. */
  lastFailure: FastnetError | null = null;

  constructor(events: TransportEvents, context: ClientTransportContext) {
    this.events = events;
    this.context = context;
  }

  get isOpen(): boolean {
    return this.session?.readyState === 1;
  }

  /** Statistics of the current session (RTT, packets, losses, drops, congestion window). */
  getStats(): ConnectionStats | null {
    return this.session?.getStats() ?? null;
  }

  /**
   * Moves the session to a new local socket (another local address, or a fresh port) and resolves
   * when the new path works. The server keeps the same session: the room sees nothing.
   */
  rebind(options: RebindOptions = {}): Promise<void> {
    if (!this.session) return Promise.reject(new FastnetError("NOT_OPEN", "cannot rebind: not connected"));
    return this.session.rebind(options);
  }

  /**
   * Reliable-ordered send; `data` is copied at once. Dropped (as by a closed WebSocket) when not open.
   * Throws FastnetError MESSAGE_TOO_LARGE, sending nothing, for a message above the server's
   * `maxMessageSize` (announced in the handshake): the connection carries on.
   */
  send(data: Buffer | Uint8Array): void {
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
   * console.warn per session, naming the size and the limit.
   */
  sendUnreliable(data: Buffer | Uint8Array): boolean {
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
   * `headers` are the SDK's client headers, passed on to the server's auth context.
   */
  connect(url: string, headers?: Record<string, string>): void {
    this.url = url;
    this.closedByUser = false;
    this.lastFailure = null;
    const attempt = ++this.attempt;
    const parsed = new URL(url);
    const base = `${parsed.protocol === "fastnets:" ? "https" : "http"}://${parsed.host}`;
    const options: ConnectOptions = {
      ...this.context.options,
      path: `${parsed.pathname}${parsed.search}`,
      headers: headers && typeof headers === "object" ? { ...headers } : undefined,
    };
    if (this.context.fingerprint && options.fingerprint === undefined) options.fingerprint = this.context.fingerprint;
    connect(base, options).then(
      (session) => {
        if (attempt !== this.attempt || this.closedByUser) {
          session.abort(1000, "superseded");
          return;
        }
        this.session = session;
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
    if (s) s.close(code ?? NO_STATUS_RECEIVED, text);
    else {
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
