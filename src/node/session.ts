import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import type { Connection, ConnectionEvent, Received } from "../protocol/connection.js";
import type { ConnectionStats } from "../protocol/stats.js";

/** WebSocket-like ready states, as Colyseus compares them. */
export const ReadyState = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;
export type ReadyState = (typeof ReadyState)[keyof typeof ReadyState];

export interface SessionEvents {
  open: [];
  /** A reliable message, delivered exactly once and in order. */
  message: [data: Uint8Array];
  /** An unreliable datagram. */
  datagram: [data: Uint8Array];
  /** The session ended: `remote` is true when the peer closed it. Emitted once. */
  close: [code: number, reason: string, remote: boolean];
  /** The send queue has room again after `requestDrain()` (half of sendQueueBytes is free). */
  drain: [];
  /**
   * A listener of `event` threw `error`. The session carried on: the other listeners ran, and its
   * packets and timers went out as usual (a handler's bug must not wedge the connection). Without a
   * listener for this event the error is reported with console.error.
   */
  listenerError: [error: unknown, event: string];
}

/** How a session reaches the network: the endpoint that owns the UDP socket supplies it. */
export interface SessionIo {
  /** Sends one datagram to the session's current peer address. */
  send(datagram: Uint8Array): void;
  /** Called once after the session closed, so the endpoint can forget it. */
  closed(session: FastnetSession): void;
  /**
   * Where the session reads its connection's events (default: the connection). A server session reads
   * them through its endpoint, which handles the path events itself (see EndpointSession.pollEvent).
   */
  events?: { pollEvent(): ConnectionEvent | null };
}

/** Current time for the core, in milliseconds on a monotonic clock. */
export const clock = (): number => performance.now();

/**
 * One encrypted UDP session, on either side: a thin driver around the sans-IO `Connection` that moves
 * datagrams, runs its one timer and turns its events into EventEmitter events.
 */
export class FastnetSession extends EventEmitter<SessionEvents> {
  /**
   * @internal The sans-IO state machine this session drives. Not part of the public API: drivers and
   * tests reach it here; applications use the session's methods, events and getStats().
   */
  readonly connection: Connection;
  private readonly io: SessionIo;
  private readonly eventSource: { pollEvent(): ConnectionEvent | null };
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private flushQueued = false;
  private dispatching = false;
  private held: { type: "message" | "datagram"; data: Uint8Array }[] | null = null;
  private drainWanted = false;
  private ended = false;
  /** The code and reason of the first close(), which may still be waiting for acknowledgements. */
  private closeRequest: { code: number; reason: string } | null = null;

  constructor(connection: Connection, io: SessionIo) {
    super();
    this.connection = connection;
    this.io = io;
    this.eventSource = io.events ?? connection;
  }

  /** 0 while binding, 1 open, 2 closing, 3 closed. */
  get readyState(): ReadyState {
    switch (this.connection.state) {
      case "binding":
        return ReadyState.CONNECTING;
      case "open":
        return this.connection.closing ? ReadyState.CLOSING : ReadyState.OPEN;
      case "closing":
        return ReadyState.CLOSING;
      default:
        return ReadyState.CLOSED;
    }
  }

  /** Largest payload `sendUnreliable` accepts (one datagram). */
  get maxUnreliableSize(): number {
    return this.connection.maxDatagramPayload;
  }

  /** Largest reliable message (the smaller of both sides' `maxMessageSize`). */
  get maxMessageSize(): number {
    return this.connection.maxMessageSize;
  }

  /**
   * Sends a reliable-ordered message. `data` is copied before this returns. Throws FastnetError
   * (MESSAGE_TOO_LARGE, SEND_QUEUE_FULL, NOT_OPEN) without queuing anything.
   */
  send(data: Uint8Array): void {
    this.connection.send(data);
    this.queueFlush();
  }

  /** Sends an unreliable datagram; returns false when it was dropped (counted in the statistics). */
  sendUnreliable(data: Uint8Array): boolean {
    const ok = this.connection.sendUnreliable(data);
    if (ok) this.queueFlush();
    return ok;
  }

  /**
   * Closes the session; the peer receives `code` and `reason` after every message sent before
   * (the close waits, bounded, for them to be acknowledged). 'close' is emitted then.
   */
  close(code = 1000, reason = ""): void {
    this.connection.close(code, reason);
    this.closeRequest ??= { code, reason };
    this.flush();
  }

  /**
   * Finishes the session now: a close that is still waiting for acknowledgements (see close()) sends
   * its CLOSE at once with its own code and reason; an open session is aborted with `code` and
   * `reason`. Unacknowledged messages are dropped. For an endpoint shutting down.
   */
  closeNow(code = 1001, reason = ""): void {
    if (this.readyState === ReadyState.CLOSED) return;
    const request = this.closeRequest;
    this.abort(request?.code ?? code, request ? request.reason : reason);
  }

  /** Asks for one 'drain' event once the send queue is at most half full (after a SEND_QUEUE_FULL). */
  requestDrain(): void {
    this.drainWanted = true;
  }

  /** Closes at once, dropping unacknowledged messages (a stale session being replaced). */
  abort(code = 1006, reason = ""): void {
    this.connection.abort(code, reason);
    this.flush();
  }

  /** Initiates a key update (RFC 9001 §6); false while the previous one is unconfirmed. */
  updateKeys(): boolean {
    const ok = this.connection.initiateKeyUpdate();
    if (ok) this.queueFlush();
    return ok;
  }

  getStats(): ConnectionStats {
    return this.connection.getStats();
  }

  /** @internal Client driver entry: one datagram from the socket. Returns the core's verdict. (A server session's datagrams go through its endpoint, then `drive()`.) */
  receive(datagram: Uint8Array): Received {
    const verdict = this.connection.handleDatagram(datagram, clock());
    this.flush();
    return verdict;
  }

  /** @internal Delivers the core's events, sends what it has and rearms the timer; used after any input. */
  drive(): void {
    this.flush();
  }

  // Many sends in one tick leave as full packets: the flush waits for the end of the current job.
  private queueFlush(): void {
    if (this.flushQueued || this.dispatching) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.ended) return;
    // Events first: what a 'message' handler sends joins this flush, in the packet that carries the ACK.
    this.dispatching = true;
    try {
      this.dispatchEvents();
    } finally {
      this.dispatching = false;
    }
    if (this.ended) return;
    const now = clock();
    let d: Uint8Array | null;
    while ((d = this.connection.pollTransmit(now)) !== null) this.io.send(d);
    this.dispatchEvents(); // a close finishes while its CLOSE packets are polled
    if (this.drainWanted && !this.ended && this.connection.queuedBytes <= this.connection.options.sendQueueBytes / 2) {
      this.drainWanted = false;
      this.dispatch("drain");
    }
    this.schedule();
  }

  private dispatchEvents(): void {
    let ev;
    while ((ev = this.eventSource.pollEvent()) !== null) {
      switch (ev.type) {
        case "open":
          this.dispatch("open");
          break;
        case "message":
        case "datagram":
          if (this.held) this.held.push(ev);
          else this.deliver(ev.type, ev.data);
          break;
        case "close":
          this.end(ev.code, ev.reason, ev.remote);
          return;
        // pathValidated, pathFailed: a server session's endpoint consumed them before they got here;
        // a client never challenges, so has none.
      }
    }
  }

  /**
   * @internal Holds 'message' and 'datagram' events until `releaseDelivery()`: a session handed out by
   * a promise may already carry data (the answer to the bind can hold the server's first message),
   * and the caller attaches its listeners only after the promise resolves.
   */
  holdDelivery(): void {
    this.held ??= [];
  }

  /** @internal Delivers what was held, in order, and stops holding. */
  releaseDelivery(): void {
    const q = this.held;
    this.held = null;
    if (q) for (const ev of q) this.dispatch(ev.type, ev.data);
  }

  /**
   * `dispatch` for the per-packet events. With one listener (the usual case: an adapter or the app)
   * it is called directly, as EventEmitter#emit does, without the listener-array copy of
   * rawListeners() and the arguments array of a rest parameter, which every message paid before.
   */
  private deliver(event: "message" | "datagram", data: Uint8Array): void {
    // EventEmitter keeps a lone listener as the function itself in _events (an array for several).
    const events = (this as unknown as { _events?: Record<string, unknown> })._events;
    const handler = events?.[event];
    if (typeof handler !== "function") {
      if (handler !== undefined || events === undefined) this.dispatch(event, data);
      return;
    }
    try {
      (handler as (d: Uint8Array) => void).call(this, data);
    } catch (err) {
      this.reportListenerError(err, event);
    }
  }

  /**
   * Emits `event` to each listener in turn, so that one that throws neither skips the others nor
   * unwinds the caller: the flush and timer arming that follow every dispatch must always happen.
   */
  private dispatch<K extends Exclude<keyof SessionEvents, "listenerError">>(event: K, ...args: SessionEvents[K]): void {
    const listeners = this.rawListeners(event) as Array<(...a: unknown[]) => void>;
    for (const listener of listeners) {
      try {
        listener.apply(this, args);
      } catch (err) {
        this.reportListenerError(err, event);
      }
    }
  }

  private reportListenerError(err: unknown, event: string): void {
    if (this.listenerCount("listenerError") > 0) {
      try {
        this.emit("listenerError", err, event);
        return;
      } catch (hookErr) {
        console.error("fastnet: a 'listenerError' listener threw:", hookErr);
      }
    }
    console.error(`fastnet: a '${event}' listener of a session threw (the session carries on):`, err);
  }

  private end(code: number, reason: string, remote: boolean): void {
    if (this.ended) return;
    this.releaseDelivery(); // what arrived before the close is delivered before it
    this.ended = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.io.closed(this);
    this.dispatch("close", code, reason, remote);
  }

  private schedule(): void {
    if (this.ended) return;
    const at = this.connection.pollTimeout();
    if (at === null) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.timerAt = Infinity;
      return;
    }
    // Keep an earlier timer: it fires, recomputes and rearms. Rearming on every packet costs more.
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    const delay = Math.max(0, at - clock());
    this.timer = setTimeout(this.onTimer, Math.ceil(delay));
    this.timer.unref();
  }

  /** Called on every timer wake-up, after the core ran its timers (subclasses add policies). */
  protected onTimerTick(_now: number): void {}

  private readonly onTimer = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.ended) return;
    const now = clock();
    this.connection.handleTimeout(now);
    this.flush();
    if (!this.ended) this.onTimerTick(now);
  };
}
