import { EventEmitter } from "node:events";
import type http from "node:http";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import createDebug from "debug";
import { FastnetError } from "../protocol/errors.js";
import { FASTNET_UPGRADE, HandshakeConnection as Connection, PendingHandshake } from "./handshake-connection.js";
import { proxyHeadersOf } from "./proxy-headers.js";
import { answerStrayRequest, refuseUpgrade, type StrayContext } from "./stray-upgrade.js";

const log = createDebug("fastnet:handshake");

export { FASTNET_UPGRADE, HELLO_REFUSED_CODE, PendingHandshake, type AcceptParams } from "./handshake-connection.js";

/** Default request path of the handshake upgrade. */
export const DEFAULT_HANDSHAKE_PATH = "/.fastnet";

export interface HandshakeServerOptions {
  /** HTTP server whose 'upgrade' requests are watched; typically the one Colyseus matchmaking listens on. */
  server: http.Server;
  /** Certificate chain, PEM. */
  cert: string;
  /** Private key, PEM. */
  key: string;
  /**
   * Upgrade path (default "/.fastnet"). Other paths and other Upgrade protocols are left to other
   * 'upgrade' listeners when there are any; without one they are refused at once (see stray-upgrade.ts).
   */
  path?: string;
  /** What a WebSocket client that reaches this server is told (its close reason; default: "this server speaks fastnet, not WebSocket"). */
  webSocketRefusal?: string;
  /**
   * Offered every Upgrade that is not a fastnet handshake, before it is left to other listeners or
   * refused: returns true when it took the request (e.g. a Colyseus WebSocket room connection). This
   * one listener routes everything, so the outcome never depends on the order listeners were added in.
   */
  otherUpgrade?: UpgradeTaker;
  /** From the upgrade request to finish(); past it the connection is destroyed. */
  timeoutMs: number;
  /** Handshakes in progress at once; over it an upgrade waits in the queue (or gets a 503 when that is full). */
  maxPending: number;
  /**
   * Handshakes in progress at once from one IP address; over it an upgrade from that address waits in
   * the queue (or gets a 503 when that is full). It keeps one address (many players behind one NAT, or
   * a flood) to a bounded share of the pending handshakes.
   */
  maxPendingPerAddress: number;
  /**
   * Upgrades that may wait for a pending slot, over all addresses (default DEFAULT_MAX_QUEUED; 0: none
   * wait, every upgrade over a limit gets a 503 at once). Free slots go to the waiting addresses in
   * turn, oldest upgrade first within an address, so a flood from one address cannot starve the others.
   */
  maxQueued?: number;
  /** Upgrades from one IP address that may wait (default DEFAULT_MAX_QUEUED_PER_ADDRESS). */
  maxQueuedPerAddress?: number;
  /** Longest an upgrade waits in the queue before it gets a 503 (default: half of timeoutMs). */
  maxQueueWaitMs?: number;
  /**
   * SHA-256 of a dev certificate to announce in the 101 response (header `Fastnet-Dev-Certificate`),
   * for clients holding a seat reservation without a fingerprint (one made on the server).
   */
  announceFingerprint?: Uint8Array;
}

/** Takes an Upgrade request (true) or leaves it untouched (false). */
export type UpgradeTaker = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => boolean;

/** Header of the 101 response naming the dev certificate's SHA-256 (hex). */
export const DEV_CERTIFICATE_HEADER = "fastnet-dev-certificate";

/** Default of HandshakeServerOptions.maxQueued. */
export const DEFAULT_MAX_QUEUED = 2048;
/**
 * Default of HandshakeServerOptions.maxQueuedPerAddress: a burst of 500 joins from one address (a match
 * start behind carrier-grade NAT) is queued whole, and a single address still fills at most half the queue.
 */
export const DEFAULT_MAX_QUEUED_PER_ADDRESS = 1024;

/** Outcome counters. */
export interface HandshakeStats {
  /** accept() calls. */
  accepted: number;
  /** reject() calls. */
  rejected: number;
  /** Upgrades refused with 503: over a pending limit with the queue full, or waited past maxQueueWaitMs. */
  busy: number;
  /** Handshakes destroyed for not finishing within timeoutMs. */
  timedOut: number;
  /** Connections that died without an outcome: bad TLS, bad hello, peer gone. */
  failed: number;
}

/**
 * Runs fastnet handshakes on an existing HTTP server: `Upgrade: fastnet/2` requests to `path` become
 * TLS 1.3 connections carrying one ClientHello and one answer. Emits 'handshake'(PendingHandshake).
 */
export class HandshakeServer extends EventEmitter<{ handshake: [PendingHandshake] }> {
  readonly stats: HandshakeStats = { accepted: 0, rejected: 0, busy: 0, timedOut: 0, failed: 0 };
  /** The queue's counters: upgrades that had to wait for a slot, and those of them that got a 503 for waiting too long. */
  readonly queueStats = { queued: 0, expired: 0 };
  readonly path: string;
  /** @internal */
  readonly secureContext: tls.SecureContext;
  /** @internal */
  readonly timeoutMs: number;
  /** What the 101 announces (see HandshakeServerOptions.announceFingerprint). */
  readonly announcedFingerprint: Uint8Array | undefined;
  private readonly server: http.Server;
  private readonly maxPending: number;
  private readonly maxPendingPerAddress: number;
  private readonly connections = new Set<Connection>();
  /** Connections holding a pending slot (upgrade until finish/reject/death), by address. */
  private readonly slots = new Map<string, number>();
  private slotCount = 0;
  /**
   * Upgrades waiting for a slot, by address, oldest first. The Map's order is the turn order: the address
   * served last moves to the end (see pump()).
   */
  private readonly queues = new Map<string, Waiting[]>();
  private queued = 0;
  private readonly maxQueued: number;
  private readonly maxQueuedPerAddress: number;
  private readonly maxQueueWaitMs: number;
  private closed = false;
  private readonly stray: StrayContext;
  private readonly otherUpgrade: UpgradeTaker | undefined;

  constructor(opts: HandshakeServerOptions) {
    super();
    this.announcedFingerprint = opts.announceFingerprint;
    for (const key of ["timeoutMs", "maxPending", "maxPendingPerAddress"] as const) {
      const v = opts[key];
      if (typeof v !== "number" || !(v > 0)) {
        throw new FastnetError("INVALID_OPTION", `${key} must be a positive number, got ${String(v)}`);
      }
    }
    this.server = opts.server;
    this.otherUpgrade = opts.otherUpgrade;
    this.path = opts.path ?? DEFAULT_HANDSHAKE_PATH;
    this.timeoutMs = opts.timeoutMs;
    this.maxPending = opts.maxPending;
    this.maxPendingPerAddress = opts.maxPendingPerAddress;
    for (const key of ["maxQueued", "maxQueuedPerAddress"] as const) {
      const v = opts[key];
      if (v !== undefined && !(Number.isInteger(v) && v >= 0)) {
        throw new FastnetError("INVALID_OPTION", `${key} must be a non-negative integer, got ${String(v)}`);
      }
    }
    if (opts.maxQueueWaitMs !== undefined && !(opts.maxQueueWaitMs > 0)) {
      throw new FastnetError("INVALID_OPTION", `maxQueueWaitMs must be a positive number, got ${String(opts.maxQueueWaitMs)}`);
    }
    this.maxQueued = opts.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.maxQueuedPerAddress = opts.maxQueuedPerAddress ?? DEFAULT_MAX_QUEUED_PER_ADDRESS;
    this.maxQueueWaitMs = opts.maxQueueWaitMs ?? opts.timeoutMs / 2;
    this.secureContext = tls.createSecureContext({ cert: opts.cert, key: opts.key, minVersion: "TLSv1.3" });
    this.stray = {
      path: this.path,
      token: FASTNET_UPGRADE,
      webSocketRefusal: opts.webSocketRefusal ?? "this server speaks fastnet, not WebSocket",
    };
    this.server.on("upgrade", this.onUpgrade);
    this.server.on("request", this.onRequest);
  }

  /** Handshakes holding a pending slot. */
  get pendingCount(): number {
    return this.slotCount;
  }

  /** Upgrades waiting in the queue for a pending slot. */
  get queuedCount(): number {
    return this.queued;
  }

  /** Stops watching upgrades and destroys every connection still open, queued ones included. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.off("upgrade", this.onUpgrade);
    this.server.off("request", this.onRequest);
    for (const list of [...this.queues.values()]) for (const w of [...list]) this.unqueue(w).socket.destroy();
    this.queues.clear();
    for (const conn of [...this.connections]) conn.destroy("server closed");
  }

  private readonly onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (!this.matches(req)) {
      if (!this.closed && this.otherUpgrade?.(req, socket, head)) return;
      // Someone else's upgrade: do not touch the socket at all. With no one else to answer it, node
      // would leave it open without a word or a timeout: refuse it at once instead.
      if (this.server.listenerCount("upgrade") > 1) return;
      socket.on("error", (err) => log("stray upgrade socket error: %s", err.message));
      log("refusing a stray upgrade to %s (%s)", req.url, req.headers.upgrade);
      refuseUpgrade(req, socket, this.stray);
      return;
    }
    const address = normalizeAddress(req.socket.remoteAddress ?? "");
    const port = req.socket.remotePort ?? 0;
    socket.on("error", (err) => log("socket error from %s:%d: %s", address, port, err.message));
    if (this.closed) {
      socket.destroy();
      return;
    }
    const headers = proxyHeadersOf(req.headers);
    const list = this.queues.get(address);
    // Within an address, first come first served: a newcomer does not overtake the upgrades already waiting.
    if (!list && this.hasSlotFor(address)) {
      this.begin(socket, address, port, headers, head);
      return;
    }
    if (this.queued >= this.maxQueued || (list?.length ?? 0) >= this.maxQueuedPerAddress) {
      this.refuseBusy(socket, address, port);
      return;
    }
    this.enqueue({ socket, address, port, headers, head, timer: undefined, onClose: undefined });
  };

  /** True when `address` may start a handshake now: a slot is free overall and it is under its own limit. */
  private hasSlotFor(address: string): boolean {
    return this.slotCount < this.maxPending && (this.slots.get(address) ?? 0) < this.maxPendingPerAddress;
  }

  /** Takes a pending slot for `address` and starts the TLS handshake on `socket`. */
  private begin(socket: Duplex, address: string, port: number, headers: Record<string, string>, head: Buffer): void {
    const conn = new Connection(this, socket, address, port, headers);
    this.connections.add(conn);
    this.slots.set(address, (this.slots.get(address) ?? 0) + 1);
    this.slotCount++;
    conn.start(head);
  }

  /** Answers 503 and closes: the client's SERVER_BUSY (its retry, if any, is the client's business). */
  private refuseBusy(socket: Duplex, address: string, port: number): void {
    this.stats.busy++;
    log("busy: refusing %s:%d (%d pending, %d from address, %d queued)", address, port, this.slotCount, this.slots.get(address) ?? 0, this.queued);
    socket.resume(); // drain whatever the client sent, so closing does not turn into a reset that eats the 503
    socket.once("finish", () => socket.destroy());
    socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  }

  /**
   * Puts an upgrade in its address's queue until a slot frees (pump()), the client goes away, or
   * maxQueueWaitMs passes (then a 503, so the client can retry instead of waiting out its timeout).
   */
  private enqueue(w: Waiting): void {
    let list = this.queues.get(w.address);
    if (!list) {
      list = [];
      this.queues.set(w.address, list);
    }
    list.push(w);
    this.queued++;
    this.queueStats.queued++;
    w.onClose = () => {
      this.unqueue(w);
      log("queued upgrade from %s:%d went away", w.address, w.port);
    };
    w.socket.once("close", w.onClose);
    w.timer = setTimeout(() => {
      this.queueStats.expired++;
      this.unqueue(w);
      this.refuseBusy(w.socket, w.address, w.port);
    }, this.maxQueueWaitMs);
    log("queued %s:%d (%d pending, %d queued)", w.address, w.port, this.slotCount, this.queued);
  }

  /** Removes `w` from the queue (a no-op when it is not there) and drops its timer and listener. */
  private unqueue(w: Waiting): Waiting {
    clearTimeout(w.timer);
    if (w.onClose) w.socket.off("close", w.onClose);
    w.onClose = undefined;
    const list = this.queues.get(w.address);
    const i = list ? list.indexOf(w) : -1;
    if (i < 0) return w;
    list!.splice(i, 1);
    this.queued--;
    if (list!.length === 0) this.queues.delete(w.address);
    return w;
  }

  /**
   * Hands free slots to waiting upgrades: the addresses take turns (the one served moves to the back of
   * the order), each under its own per-address limit, so one address's backlog delays another address
   * by at most one handshake per turn.
   */
  private pump(): void {
    if (this.closed) return;
    while (this.queued > 0 && this.slotCount < this.maxPending) {
      let next: Waiting | undefined;
      for (const [address, list] of this.queues) {
        if ((this.slots.get(address) ?? 0) >= this.maxPendingPerAddress) continue;
        next = list[0];
        break;
      }
      if (!next) return; // every waiting address is at its own limit
      this.unqueue(next);
      const list = this.queues.get(next.address);
      if (list) {
        // Its turn is used: to the back of the order.
        this.queues.delete(next.address);
        this.queues.set(next.address, list);
      }
      this.begin(next.socket, next.address, next.port, next.headers, next.head);
    }
  }

  /** A request without `Connection: Upgrade`: answered only when no one else handles requests (else node never answers it). */
  private readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (this.server.listenerCount("request") > 1) return;
    answerStrayRequest(req, res, this.stray);
  };

  private matches(req: http.IncomingMessage): boolean {
    if (req.headers.upgrade?.trim().toLowerCase() !== FASTNET_UPGRADE) return false;
    const url = req.url ?? "";
    const q = url.indexOf("?");
    return (q < 0 ? url : url.slice(0, q)) === this.path;
  }

  /** @internal */
  releaseSlot(conn: Connection): void {
    const n = this.slots.get(conn.address) ?? 0;
    if (n <= 1) this.slots.delete(conn.address);
    else this.slots.set(conn.address, n - 1);
    this.slotCount--;
    this.pump();
  }

  /** @internal */
  forget(conn: Connection): void {
    this.connections.delete(conn);
  }

  /** @internal */
  dispatch(pending: PendingHandshake): void {
    this.emit("handshake", pending);
  }
}

/** An upgrade waiting for a pending slot: what begin() needs, its wait timer and its close listener. */
interface Waiting {
  socket: Duplex;
  address: string;
  port: number;
  headers: Record<string, string>;
  head: Buffer;
  timer: NodeJS.Timeout | undefined;
  onClose: (() => void) | undefined;
}

/** "::ffff:1.2.3.4" and "1.2.3.4" are one source for the per-address limit. */
function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}
