import { EventEmitter } from "node:events";
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
import type { HandshakeServer } from "./handshake-server.js";

/**
 * One upgraded handshake connection on the server, from the 101 through TLS and the ClientHello to
 * its answer and end, and the PendingHandshake the application decides on. The HandshakeServer
 * (handshake-server.ts) owns admission: the Upgrade routing, pending slots and the fair queue.
 */

const log = createDebug("fastnet:handshake");

/** Value of the HTTP Upgrade header that starts a fastnet handshake. */
export const FASTNET_UPGRADE = `fastnet/${PROTOCOL_VERSION}`;

/** What the server grants a client; accept() encodes it into the ServerAccept. */
export interface AcceptParams {
  cid: Uint8Array;
  udpPort: number;
  udpHost?: string;
  resetToken: Uint8Array;
  params: TransportParams;
}

type ConnState = "tls" | "pending" | "accepted" | "ending" | "closed";

/** The ServerReject code for a hello the server cannot read or serve: WebSocket's 1002, protocol error. */
export const HELLO_REFUSED_CODE = 1002;

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
    private readonly conn: HandshakeConnection,
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

  /**
   * When accept() wrote the ServerAccept (performance.now()), undefined before. The time from then to
   * the client's first authenticated Bind is the server's first RTT sample (docs/protocol.md §2.4).
   */
  get acceptedAt(): number | undefined {
    return this.conn.acceptedAt;
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

/** One upgraded connection, from the 101 through TLS and the hello to its end. */
export class HandshakeConnection {
  tls: tls.TLSSocket | undefined;
  acceptedAt: number | undefined;
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
    // After a ServerReject or finish(), whatever else comes is drained and dropped until the close.
    if (this.state === "ending") return;
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
      this.refuseHello((err as Error).message);
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
    this.acceptedAt = performance.now();
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

  /**
   * Answers a hello that cannot be served (bad framing, bad fields, another version) with a
   * ServerReject naming the cause, code 1002, then ends the connection (docs/protocol.md §2.3: the
   * server always answers). Counted as a failure, not a reject.
   */
  private refuseHello(message: string): void {
    this.owner.stats.failed++;
    this.outcome = true;
    this.state = "ending";
    log("refused the hello of %s:%d: %s", this.address, this.port, message);
    const msg: ServerReject = { v: PROTOCOL_VERSION, error: message, code: HELLO_REFUSED_CODE };
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
