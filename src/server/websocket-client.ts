import { CloseCode, enqueueClientRaw, logger, type Client, type ClientPrivate, type ISendOptions } from "@colyseus/core";
import { WebSocketClient } from "@colyseus/ws-transport/WebSocketClient";
import type WebSocket from "ws";
import { closeReasonText, isCloseCode } from "../node/close-code.js";
import { closeReasonBytes } from "../node/stray-upgrade.js";
import { currentClient, ownRef } from "./current-client.js";
import type { LatencySetting } from "./server-client.js";

/** Close code of a client whose send backlog overflowed: WebSocket's 1009, as on the fastnet path. */
const MESSAGE_TOO_BIG = 1009;

/** Limits of one WebSocket client's outgoing traffic. */
export interface WebSocketSendLimits {
  /** Bytes the socket may hold unsent; a reliable frame beyond it cuts the client (the room sees 1006). */
  maxBufferedBytes: number;
  /** While more than this is unsent, `@unreliable` patches are dropped (and counted), as lost datagrams would be. */
  unreliableDropBytes: number;
}

/** What the clients of one WebSocket path count together. */
export interface WebSocketClientCounters {
  /** `@unreliable` patches not sent because the socket was backed up. */
  unreliableDropped: number;
  /** Clients cut because their send backlog overflowed `maxBufferedBytes`. */
  overflowClosed: number;
}

/**
 * The server-side Colyseus `Client` of one WebSocket connection: ws-transport's WebSocketClient (its
 * `send`, `sendBytes`, `error`, `enqueueRaw`, `readyState`, and the `ws` socket as `ref`, whose
 * 'message' and 'close'(code) events the room listens to), plus:
 * - `rawUnreliable`, so `@unreliable` schema fields reach WebSocket players too (Colyseus skips every
 *   client without it): the frames go over the same socket, and are dropped rather than queued while
 *   the socket is backed up, as a datagram would be lost;
 * - `raw` copies the frame (ws keeps a reference until the kernel takes it, and Colyseus reuses its
 *   encode buffer), honours the transport's simulated latency, and bounds what may wait unsent (a
 *   client that stops reading is cut, where ws-transport would buffer without limit);
 * - `leave` never throws into Colyseus: a code or reason a close frame cannot carry is replaced;
 * - after a reconnection (Colyseus moves the new connection onto the Client object the room saw
 *   first), every method acts on the live connection, fastnet or WebSocket (see current-client.ts):
 *   with ws-transport, what is sent through a reference kept from `onJoin` is lost from then on.
 */
export class WebSocketRoomClient extends WebSocketClient {
  /** This client's own socket (`ref` becomes a reconnection's connection). */
  private readonly socket: WebSocket;

  constructor(
    sessionId: string,
    ws: WebSocket,
    private readonly latency: LatencySetting,
    private readonly limits: WebSocketSendLimits,
    private readonly counters: WebSocketClientCounters,
  ) {
    super(sessionId, ws);
    this.socket = ws;
    ownRef(ws, this);
  }

  /** The Client of the live connection, when a reconnection replaced this one (else undefined). */
  private get successor(): (Client & ClientPrivate) | undefined {
    const current = currentClient(this);
    return current === this ? undefined : (current as Client & ClientPrivate);
  }

  override enqueueRaw(data: Uint8Array | Buffer, options?: ISendOptions): void {
    const successor = this.successor;
    if (successor) successor.enqueueRaw(data, options);
    else enqueueClientRaw(this, data, options);
  }

  /** Reliable-ordered channel. `data` is copied before this returns (callers reuse their buffers). */
  override raw(data: Uint8Array | Buffer, options?: ISendOptions, cb?: (err?: Error) => void): void {
    const successor = this.successor;
    if (successor) successor.raw(data, options, cb);
    else this.deliver(Buffer.from(data), false, cb);
  }

  /** The `@unreliable` channel, over the same socket. */
  rawUnreliable(data: Uint8Array | Buffer, options?: ISendOptions, cb?: (err?: Error) => void): void {
    const successor = this.successor;
    if (successor?.rawUnreliable) successor.rawUnreliable(data, options, cb);
    else if (successor) cb?.(); // a connection without the channel: dropped, as a lost datagram would be
    else this.deliver(Buffer.from(data), true, cb);
  }

  override get readyState(): WebSocket["readyState"] {
    return (this.successor?.readyState as WebSocket["readyState"] | undefined) ?? this.socket.readyState;
  }

  private deliver(frame: Buffer, unreliable: boolean, cb?: (err?: Error) => void): void {
    const ms = this.latency.ms;
    if (ms > 0) setTimeout(() => this.sendNow(frame, unreliable, cb), ms).unref?.();
    else this.sendNow(frame, unreliable, cb);
  }

  private sendNow(frame: Buffer, unreliable: boolean, cb?: (err?: Error) => void): void {
    // The own socket, not `ref`: a frame delayed (simulated latency) from before a reconnection must not
    // reach the new connection, ahead of its JOIN_ROOM.
    const ws = this.socket;
    if (ws.readyState !== ws.OPEN) {
      cb?.(new Error(`WebSocket is not open (readyState ${ws.readyState})`));
      return;
    }
    const buffered = ws.bufferedAmount;
    if (unreliable && buffered > this.limits.unreliableDropBytes) {
      this.counters.unreliableDropped++;
      cb?.();
      return;
    }
    if (!unreliable && buffered + frame.length > this.limits.maxBufferedBytes) {
      // Never a gap in the reliable stream: a client that cannot keep up is cut, and the room sees a
      // drop (1006) at once. A close frame (1009) is sent first but sits behind the backlog, so the
      // socket is not left waiting for a close handshake that cannot happen.
      this.counters.overflowClosed++;
      const why = `send backlog of ${buffered + frame.length} bytes exceeds ${this.limits.maxBufferedBytes}`;
      logger.error?.(`fastnet: cutting WebSocket client ${this.sessionId}: ${why}`);
      this.closeSocket(MESSAGE_TOO_BIG, why);
      ws.terminate();
      cb?.(new Error(why));
      return;
    }
    ws.send(frame, { binary: true }, cb);
  }

  /**
   * Closes the WebSocket: the SDK receives `code` and `reason`, and the room sees 'close'(code). A code
   * a close frame cannot carry (1005, 1006, anything outside 1000-1014 and 3000-4999) is logged and
   * replaced by 4002 (WITH_ERROR); the reason is cut to the 123 bytes a close frame holds.
   */
  override leave(code?: number, data?: string): void {
    const successor = this.successor;
    if (successor) successor.leave(code, data);
    else this.closeSocket(code, data);
  }

  private closeSocket(code?: number, data?: string): void {
    let reason = closeReasonText(data);
    if (code !== undefined && !isWebSocketCloseCode(code)) {
      logger.warn(`fastnet: client.leave(${String(code)}) for WebSocket client ${this.sessionId}: not a WebSocket close code; closing with ${CloseCode.WITH_ERROR}`);
      reason = reason || `invalid close code ${String(code)}`;
      code = CloseCode.WITH_ERROR;
    }
    // No code stays no code (the peer sees 1005, a drop), as with ws-transport; a reason needs a code.
    this.socket.close(code, code === undefined ? undefined : closeReasonBytes(reason));
  }
}

/** RFC 6455 §7.4: the codes an endpoint may send in a close frame. */
function isWebSocketCloseCode(code: number): boolean {
  if (!isCloseCode(code)) return false;
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
}
