import { EventEmitter } from "node:events";
import {
  ClientState,
  CloseCode,
  Protocol,
  enqueueClientRaw,
  getMessageBytes,
  logger,
  type Client,
  type ClientPrivate,
  type ISendOptions,
} from "@colyseus/core";
import { NO_STATUS_RECEIVED, closeReasonText, isCloseCode } from "../node/close-code.js";
import { SendBacklog } from "../node/send-backlog.js";
import { ReadyState, type FastnetSession } from "../node/session.js";
import { currentClient, ownRef } from "./current-client.js";

/** Close code of a message that cannot be delivered (too large, or the backlog is full): WebSocket's 1009. */
const MESSAGE_TOO_BIG = 1009;

/** What the transport shares with its clients: the simulated one-way latency, in ms. */
export interface LatencySetting {
  ms: number;
}

/**
 * The server-side Colyseus `Client` of one fastnet session. `ref` emits exactly one 'message' per
 * Colyseus frame (reliable messages and datagrams alike, never a duplicate) and one 'close' with the
 * real close code. `rawUnreliable` exists, so `@unreliable` state fields travel as datagrams.
 *
 * After a reconnection Colyseus moves the new connection onto the Client object the room saw first
 * (`ref` swapped): every method here then acts on the live connection (see current-client.ts), so a
 * reference kept from `onJoin` keeps sending, even when the player came back over WebSocket.
 */
export class FastnetServerClient implements Client, ClientPrivate {
  "~messages": any;
  id: string;
  sessionId: string;
  state: ClientState = ClientState.JOINING;
  reconnectionToken!: string;
  /** This session's events ('message', 'close'), for the room. */
  private readonly events = new EventEmitter();
  /** The connection's events; Colyseus replaces it with the new connection's on a reconnection. */
  ref: EventEmitter = this.events;
  auth?: any;
  userData?: any;
  view?: any;

  _enqueuedMessages: any[] = [];
  _reconnectionToken?: string;
  _joinedAt = 0;
  _numMessagesLastSecond = 0;
  _messageCountResetsAt = 0;
  _lastMessageTime = 0;

  private readonly ownSession: FastnetSession;
  private readonly latency: LatencySetting;
  private readonly backlog: SendBacklog;

  constructor(sessionId: string, session: FastnetSession, latency: LatencySetting) {
    this.id = this.sessionId = sessionId;
    this.ownSession = session;
    ownRef(this.events, this);
    this.latency = latency;
    // Never a gap in the reliable stream: what cannot be sent closes the session, and the room sees it.
    this.backlog = new SendBacklog(session, (err) => {
      logger.error?.(`fastnet: closing ${sessionId}: ${err.message}`);
      // The SDK user's onLeave reason starts with the named code, as on the client (docs/errors.md).
      session.close(MESSAGE_TOO_BIG, `${err.code}: ${err.message}`);
    });
    session.on("message", (data) => this.toRoom("message", data));
    session.on("datagram", (data) => this.toRoom("message", data));
    session.once("close", (code) => this.toRoom("close", code));
    // A listener-less 'error' would throw; nothing in this transport emits it, but user code might.
    this.events.on("error", (err) => logger.error?.(err));
  }

  /**
   * The fastnet session carrying this client (its statistics are `session.getStats()`): after a
   * reconnection over fastnet, the new one; after one over WebSocket, the old (closed) one.
   */
  get session(): FastnetSession {
    const current = currentClient(this);
    return current instanceof FastnetServerClient ? current.ownSession : this.ownSession;
  }

  /** The Client of the live connection, when a reconnection replaced this one (else undefined). */
  private get successor(): (Client & ClientPrivate) | undefined {
    // Every send asks: while `ref` is still our own emitter (no reconnection moved one onto this
    // Client), currentClient would find us; skip its WeakMap lookup on the hot path.
    if (this.ref === this.events) return undefined;
    const current = currentClient(this);
    return current === this ? undefined : (current as Client & ClientPrivate);
  }

  /**
   * Hands an event to the room. A room handler that throws (a user's onMessage, without
   * `onUncaughtException`) is reported through Colyseus' logger, naming the client; the session
   * carries on as with any other message.
   */
  private toRoom(event: "message" | "close", arg: Uint8Array | number): void {
    try {
      // This session's own emitter, not `ref`: once a reconnection took `ref` over, a late event of
      // the old session (its 'close') must not reach the room as the new connection's.
      this.events.emit(event, arg);
    } catch (err) {
      logger.error(`fastnet: a room handler threw on '${event}' of client ${this.sessionId}: ${(err as Error)?.stack ?? String(err)}`);
    }
  }

  sendBytes(type: string | number, bytes: Buffer | Uint8Array, options?: ISendOptions): void {
    this.enqueueRaw(getMessageBytes.raw(Protocol.ROOM_DATA_BYTES, type, undefined, bytes), options);
  }

  send(messageOrType: any, messageOrOptions?: any, options?: ISendOptions): void {
    this.enqueueRaw(getMessageBytes.raw(Protocol.ROOM_DATA, messageOrType, messageOrOptions), options);
  }

  enqueueRaw(data: Uint8Array | Buffer, options?: ISendOptions): void {
    const successor = this.successor;
    if (successor) successor.enqueueRaw(data, options);
    else enqueueClientRaw(this, data, options);
  }

  /** Reliable-ordered channel. `data` is copied before this returns (callers reuse their buffers). */
  raw(data: Uint8Array | Buffer, options?: ISendOptions, cb?: (err?: Error) => void): void {
    const successor = this.successor;
    if (successor) successor.raw(data, options, cb);
    else this.deliver(data, false, cb);
  }

  /** Unreliable channel: one datagram, dropped (and counted) rather than queued when it cannot go. */
  rawUnreliable(data: Uint8Array | Buffer, options?: ISendOptions, cb?: (err?: Error) => void): void {
    const successor = this.successor;
    if (successor?.rawUnreliable) successor.rawUnreliable(data, options, cb);
    else if (successor) cb?.(); // a connection without the channel: dropped, as a lost datagram would be
    else this.deliver(data, true, cb);
  }

  private deliver(data: Uint8Array, unreliable: boolean, cb?: (err?: Error) => void): void {
    const ms = this.latency.ms;
    if (ms > 0) {
      const copy = Uint8Array.from(data); // the caller may reuse `data` before the timer fires
      setTimeout(() => this.sendNow(copy, unreliable, cb), ms).unref?.();
      return;
    }
    this.sendNow(data, unreliable, cb);
  }

  private sendNow(data: Uint8Array, unreliable: boolean, cb?: (err?: Error) => void): void {
    const session = this.ownSession;
    if (session.readyState !== ReadyState.OPEN) {
      cb?.(new Error(`fastnet session is not open (readyState ${session.readyState})`));
      return;
    }
    if (unreliable) session.sendUnreliable(data); // dropped and counted when it cannot go
    else this.backlog.send(data);
    cb?.();
  }

  error(code: number, message = "", cb?: (err?: Error) => void): void {
    this.raw(getMessageBytes[Protocol.ERROR](code, message), undefined, cb);
  }

  /** The live connection's state (`ReadyState.OPEN` while open), followed across a reconnection. */
  get readyState(): ReadyState {
    return (this.successor?.readyState as ReadyState | undefined) ?? this.ownSession.readyState;
  }

  /**
   * Closes the session: the SDK receives `code` and `reason`, and the room sees 'close'(code); without
   * a code both see 1005, as with ws-transport (a WebSocket closed without a status). A code
   * the wire cannot carry (not an integer in 0..65535, e.g. -1 or 4000.5) never throws into Colyseus:
   * it is logged and replaced by 4002 (WITH_ERROR), the reason naming the code given.
   */
  leave(code?: number, data?: string): void {
    const successor = this.successor;
    if (successor) {
      successor.leave(code, data);
      return;
    }
    let reason = closeReasonText(data);
    if (code !== undefined && !isCloseCode(code)) {
      logger.warn(`fastnet: client.leave(${String(code)}) for ${this.sessionId}: not a close code (0..65535); closing with ${CloseCode.WITH_ERROR}`);
      reason = reason || `invalid close code ${String(code)}`;
      code = CloseCode.WITH_ERROR;
    }
    this.ownSession.close(code ?? NO_STATUS_RECEIVED, reason);
  }

  /** @deprecated use leave() */
  close(code?: number, data?: string): void {
    logger.warn("DEPRECATION WARNING: use client.leave() instead of client.close()");
    this.leave(code, data);
  }

  toJSON(): { sessionId: string; readyState: ReadyState } {
    return { sessionId: this.sessionId, readyState: this.readyState };
  }
}
