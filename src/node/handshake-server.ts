import { EventEmitter } from "node:events";
import type http from "node:http";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import createDebug from "debug";
import { FastnetError } from "../protocol/errors.js";
import { CID_LENGTH, EXPORTER_LABEL, EXPORTER_LENGTH, PROTOCOL_VERSION, exporterContext } from "../protocol/version.js";
import {
  MessageReader,
  RESET_TOKEN_LENGTH,
  encodeBase64,
  encodeHandshakeMessage,
  parseClientHello,
  parseTransportParams,
  type ClientHello,
  type ServerAccept,
  type ServerReject,
  type TransportParams,
} from "./handshake-messages.js";
import { proxyHeadersOf } from "./proxy-headers.js";
import { answerStrayRequest, refuseUpgrade, type StrayContext } from "./stray-upgrade.js";

const log = createDebug("fastnet:handshake");

/** Value of the HTTP Upgrade header that starts a fastnet handshake. */
export const FASTNET_UPGRADE = `fastnet/${PROTOCOL_VERSION}`;

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
  /** Handshakes in progress at once; over it the upgrade gets a 503. */
  maxPending: number;
  /** Handshakes in progress at once from one IP address; over it the upgrade gets a 503. */
  maxPendingPerAddress: number;
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

/** Outcome counters. */
export interface HandshakeStats {
  /** accept() calls. */
  accepted: number;
  /** reject() calls. */
  rejected: number;
  /** Upgrades refused with 503 because a pending limit was reached. */
  busy: number;
  /** Handshakes destroyed for not finishing within timeoutMs. */
  timedOut: number;
  /** Connections that died without an outcome: bad TLS, bad hello, peer gone. */
  failed: number;
}

/** What the server grants a client; accept() encodes it into the ServerAccept. */
export interface AcceptParams {
  cid: Uint8Array;
  udpPort: number;
  udpHost?: string;
  resetToken: Uint8Array;
  params: TransportParams;
}

type ConnState = "tls" | "pending" | "accepted" | "ending" | "closed";

/** How long a gracefully ending connection may linger before it is destroyed, if the peer never closes. */
const LINGER_CAP_MS = 5000;

/**
 * A client whose TLS handshake is done and whose ClientHello has been read, waiting for the server's decision.
 * Events: 'timeout' (timeoutMs passed before finish(); the connection is then destroyed),
 * 'close' (the connection went away before finish() or reject(), for whatever reason, including timeout).
 */
export class PendingHandshake extends EventEmitter<{ timeout: []; close: [] }> {
  /** @internal */
  constructor(
    private readonly conn: Connection,
    readonly hello: ClientHello,
    readonly remoteAddress: string,
    readonly remotePort: number,
    /**
     * Proxy headers (`x-forwarded-for`, `x-real-ip`, `forwarded`, ...) of the HTTP Upgrade request,
     * lower-case names: what a reverse proxy in front of the server says about the client. Unlike
     * `hello.headers`, which the client writes inside TLS, these come from whoever sent the Upgrade.
     */
    readonly upgradeHeaders: Readonly<Record<string, string>> = {},
  ) {
    super();
  }

  /** TLS version negotiated, e.g. "TLSv1.3". */
  get protocol(): string {
    return this.conn.tls?.getProtocol() ?? "unknown";
  }

  /**
   * Sends the ServerAccept and returns the 64 bytes exported from TLS with the CID as context,
   * the same bytes the client derives. Throws if the connection is gone or was already answered.
   */
  accept(a: AcceptParams): Uint8Array {
    return this.conn.accept(a);
  }

  /** Sends a ServerReject and closes the connection. */
  reject(message: string, code?: number): void {
    this.conn.reject(message, code);
  }

  /** Ends the TLS connection gracefully once the UDP session is bound; the client sees its `closed` resolve. */
  finish(): void {
    this.conn.finish();
  }
}

/**
 * Runs fastnet handshakes on an existing HTTP server: `Upgrade: fastnet/2` requests to `path` become
 * TLS 1.3 connections carrying one ClientHello and one answer. Emits 'handshake'(PendingHandshake).
 */
export class HandshakeServer extends EventEmitter<{ handshake: [PendingHandshake] }> {
  readonly stats: HandshakeStats = { accepted: 0, rejected: 0, busy: 0, timedOut: 0, failed: 0 };
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

  /** Stops watching upgrades and destroys every connection still open. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.off("upgrade", this.onUpgrade);
    this.server.off("request", this.onRequest);
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
    const fromAddress = this.slots.get(address) ?? 0;
    if (this.slotCount >= this.maxPending || fromAddress >= this.maxPendingPerAddress) {
      this.stats.busy++;
      log("busy: refusing %s:%d (%d pending, %d from address)", address, port, this.slotCount, fromAddress);
      socket.resume(); // drain whatever the client sent, so closing does not turn into a reset that eats the 503
      socket.once("finish", () => socket.destroy());
      socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const conn = new Connection(this, socket, address, port, proxyHeadersOf(req.headers));
    this.connections.add(conn);
    this.slots.set(address, fromAddress + 1);
    this.slotCount++;
    conn.start(head);
  };

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

/** One upgraded connection, from the 101 through TLS and the hello to its end. */
class Connection {
  tls: tls.TLSSocket | undefined;
  private state: ConnState = "tls";
  private pending: PendingHandshake | undefined;
  private timer: NodeJS.Timeout | undefined;
  private holdsSlot = true;
  private outcome = false;
  private readonly reader = new MessageReader();

  constructor(
    private readonly owner: HandshakeServer,
    private readonly socket: Duplex,
    readonly address: string,
    readonly port: number,
    private readonly upgradeHeaders: Record<string, string>,
  ) {}

  start(head: Buffer): void {
    this.timer = setTimeout(() => this.onTimeout(), this.owner.timeoutMs);
    const announce = this.owner.announcedFingerprint;
    const extra = announce ? `Fastnet-Dev-Certificate: ${Buffer.from(announce).toString("hex")}\r\n` : "";
    this.socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${FASTNET_UPGRADE}\r\nConnection: Upgrade\r\n${extra}\r\n`);
    // Bytes the client sent right behind its request belong to the TLS stream. The TLSSocket feeds whatever is
    // buffered in the wrapped socket to OpenSSL before reading from the handle, so unshifting them is enough.
    if (head.length > 0) this.socket.unshift(head);
    const t = new tls.TLSSocket(this.socket, { isServer: true, secureContext: this.owner.secureContext });
    this.tls = t;
    t.on("error", (err) => this.destroy(`TLS error: ${err.message}`));
    t.on("data", (chunk: Buffer) => this.onData(chunk));
    t.on("end", () => this.destroy("peer ended the connection"));
    t.on("close", () => this.destroy("connection closed"));
    this.socket.on("close", () => this.destroy("connection closed"));
  }

  private onData(chunk: Buffer): void {
    if (this.state !== "tls") {
      // The client speaks once; anything after the hello is a protocol violation.
      this.destroy("unexpected data after the client hello");
      return;
    }
    let messages: unknown[];
    let hello: ClientHello;
    try {
      messages = this.reader.push(chunk);
      if (messages.length === 0) return;
      if (messages.length > 1) throw new Error("more than one message before the answer");
      hello = parseClientHello(messages[0]);
    } catch (err) {
      this.destroy((err as Error).message);
      return;
    }
    this.state = "pending";
    const pending = new PendingHandshake(this, hello, this.address, this.port, this.upgradeHeaders);
    this.pending = pending;
    log("hello from %s:%d path %s", this.address, this.port, hello.path);
    try {
      this.owner.dispatch(pending);
    } catch (err) {
      // A throwing 'handshake' listener must not take the server down with it.
      log("handshake listener threw: %s", (err as Error).message);
      this.destroy("handshake listener failed");
    }
  }

  accept(a: AcceptParams): Uint8Array {
    if (this.state !== "pending") throw this.answeredError("accept");
    if (a.cid.length !== CID_LENGTH) throw invalidOption(`cid must be ${CID_LENGTH} bytes, got ${a.cid.length}`);
    if (a.resetToken.length !== RESET_TOKEN_LENGTH) {
      throw invalidOption(`resetToken must be ${RESET_TOKEN_LENGTH} bytes, got ${a.resetToken.length}`);
    }
    if (!Number.isInteger(a.udpPort) || a.udpPort < 1 || a.udpPort > 65535) {
      throw invalidOption(`udpPort must be 1..65535, got ${a.udpPort}`);
    }
    let params: TransportParams;
    try {
      params = parseTransportParams(a.params);
    } catch (err) {
      throw invalidOption((err as Error).message);
    }
    const t = this.tls!;
    const keys = t.exportKeyingMaterial(EXPORTER_LENGTH, EXPORTER_LABEL, Buffer.from(exporterContext(a.cid)));
    const msg: ServerAccept = {
      v: PROTOCOL_VERSION,
      cid: encodeBase64(a.cid),
      udpPort: a.udpPort,
      ...(a.udpHost !== undefined ? { udpHost: a.udpHost } : {}),
      resetToken: encodeBase64(a.resetToken),
      params,
    };
    t.write(encodeHandshakeMessage(msg));
    this.state = "accepted";
    this.outcome = true;
    this.owner.stats.accepted++;
    log("accepted %s:%d", this.address, this.port);
    return new Uint8Array(keys);
  }

  reject(message: string, code?: number): void {
    if (this.state !== "pending") throw this.answeredError("reject");
    const msg: ServerReject = { v: PROTOCOL_VERSION, error: message, ...(code !== undefined ? { code } : {}) };
    this.state = "ending";
    this.outcome = true;
    this.owner.stats.rejected++;
    log("rejected %s:%d: %s", this.address, this.port, message);
    this.endGracefully(encodeHandshakeMessage(msg));
  }

  finish(): void {
    if (this.state === "ending" || this.state === "closed") return;
    if (this.state === "tls") throw new FastnetError("HANDSHAKE_FAILED", "finish() before the client hello");
    this.state = "ending";
    this.endGracefully();
  }

  private answeredError(what: string): FastnetError {
    const why = this.state === "closed" ? "the connection is closed" : "the handshake was already answered";
    return new FastnetError("HANDSHAKE_FAILED", `cannot ${what}: ${why}`);
  }

  /** close_notify and FIN; the slot is free at once, the socket goes when the peer closes or the linger ends. */
  private endGracefully(last?: Buffer): void {
    this.releaseSlot();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.destroy("peer did not close"), Math.min(this.owner.timeoutMs, LINGER_CAP_MS));
    if (last) this.tls!.end(last);
    else this.tls!.end();
  }

  private onTimeout(): void {
    this.timer = undefined;
    if (this.state === "closed") return;
    this.owner.stats.timedOut++;
    this.outcome = true;
    log("handshake from %s:%d timed out in state %s", this.address, this.port, this.state);
    this.pending?.emit("timeout");
    this.destroy("timed out");
  }

  private releaseSlot(): void {
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    this.owner.releaseSlot(this);
  }

  destroy(reason: string): void {
    if (this.state === "closed") return;
    const wasEnding = this.state === "ending";
    this.state = "closed";
    clearTimeout(this.timer);
    this.releaseSlot();
    this.owner.forget(this);
    this.tls?.destroy();
    this.socket.destroy();
    if (wasEnding) return; // finish() or reject() ended it: nothing to report
    if (!this.outcome && reason !== "server closed") this.owner.stats.failed++;
    log("connection %s:%d closed: %s", this.address, this.port, reason);
    this.pending?.emit("close");
  }
}

function invalidOption(message: string): FastnetError {
  return new FastnetError("INVALID_OPTION", message);
}

/** "::ffff:1.2.3.4" and "1.2.3.4" are one source for the per-address limit. */
function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}
