import { createHmac, randomFillSync } from "node:crypto";
import dgram from "node:dgram";
import { EventEmitter, once } from "node:events";
import http from "node:http";
import { isIPv6 } from "node:net";
import createDebug from "debug";
import type { AeadBackend } from "../protocol/aead.js";
import { generateCid } from "../protocol/cid.js";
import { Connection, type TransportParams } from "../protocol/connection.js";
import {
  DEFAULT_ENDPOINT_OPTIONS,
  DEFAULT_SESSION_OPTIONS,
  resolveOptions,
  type EndpointOptions,
  type SessionOptions,
} from "../protocol/options.js";
import { CID_OFFSET, MIN_PACKET_LENGTH } from "../protocol/packet-header.js";
import { SessionTable } from "../protocol/session-table.js";
import { MAX_DATAGRAM_SIZE } from "../protocol/version.js";
import { selectAeadBackend } from "./aead-select.js";
import { generateDevCertificate } from "./dev-certificate.js";
import { HandshakeServer, type PendingHandshake } from "./handshake-server.js";
import { RESET_TOKEN_LENGTH, type ClientHello } from "./handshake-messages.js";
import { FastnetSession, clock } from "./session.js";

const log = createDebug("fastnet:server");

export interface FastnetServerOptions extends Partial<SessionOptions>, Partial<EndpointOptions> {
  /** PEM certificate chain and key. Without them a self-signed dev certificate is generated at listen(). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** An existing HTTP server to run the handshake on (it is not listened on by us). */
  server?: http.Server;
  /** UDP port; defaults to the TCP port number. */
  udpPort?: number;
  /** UDP bind address; defaults to the host given to listen(), else all interfaces. */
  udpHost?: string;
  /** Address clients should send UDP to, when it differs from what they connected to (NAT, proxies). */
  publicAddress?: string;
  /** UDP port clients should send to, when a port mapping puts it elsewhere than the bound one. */
  publicPort?: number;
  /** Server id placed in every connection ID (QUIC-LB layout), 0 to 3 bytes (default none). */
  serverId?: Uint8Array;
  /** Upgrade path of the handshake (default "/.fastnet"). */
  handshakePath?: string;
  /**
   * Decides whether a handshake may proceed, before a session is created (e.g. a seat reservation check).
   * Throw or reject to refuse: the client's connect fails with the error's message.
   */
  verifyHello?: (hello: ClientHello, remoteAddress: string) => void | Promise<void>;
}

/** Information about the client that opened a session. */
export interface SessionInfo {
  hello: ClientHello;
  remoteAddress: string;
}

/** Counters of the server endpoint (per-session counters are in each session's stats). */
export interface EndpointStats {
  datagramsReceived: number;
  /** Datagrams shorter than a packet or longer than 1200 bytes. */
  malformed: number;
  /** Datagrams for a connection ID no session has. */
  unknownCid: number;
  /** Handshakes refused because `maxSessions` sessions are open. */
  sessionsRefused: number;
  sessionsOpened: number;
}

interface ServerSessionState {
  session: FastnetSession;
  /** Peer address; set by the authenticated bind packet, never by unauthenticated input. */
  address: string | null;
  port: number;
  pending: PendingHandshake | null;
}

/**
 * The server endpoint: an HTTP server (own or given) running TLS 1.3 handshakes, and one UDP socket
 * demultiplexing datagrams by connection ID into sessions. Emits 'session'(session, info) once a
 * client's UDP bind authenticated, and 'error'(err) for socket errors after listen.
 */
export class FastnetServer extends EventEmitter<{ session: [FastnetSession, SessionInfo]; error: [Error] }> {
  readonly http: http.Server;
  readonly stats: EndpointStats = { datagramsReceived: 0, malformed: 0, unknownCid: 0, sessionsRefused: 0, sessionsOpened: 0 };
  private readonly options: FastnetServerOptions;
  private readonly sessionOptions: SessionOptions;
  private readonly endpointOptions: EndpointOptions;
  private readonly aead: AeadBackend;
  private readonly table = new SessionTable<ServerSessionState>();
  private readonly ownsHttp: boolean;
  private socket: dgram.Socket | null = null;
  private handshakes: HandshakeServer | null = null;
  private _fingerprint: Uint8Array | null = null;
  private resetSecret = new Uint8Array(32);
  private udpBoundPort = 0;

  constructor(options: FastnetServerOptions = {}) {
    super();
    this.options = options;
    this.sessionOptions = resolveOptions(DEFAULT_SESSION_OPTIONS, options);
    this.endpointOptions = resolveOptions(DEFAULT_ENDPOINT_OPTIONS, options);
    this.aead = selectAeadBackend(this.endpointOptions.aead);
    this.ownsHttp = !options.server;
    this.http = options.server ?? http.createServer();
    randomFillSync(this.resetSecret);
  }

  /** SHA-256 of the dev certificate (null with a user certificate): what clients pin. */
  get fingerprint(): Uint8Array | null {
    return this._fingerprint;
  }

  /** AEAD backend in use. */
  get aeadBackend(): string {
    return this.aead.name;
  }

  /** Bound UDP port (0 before listen). */
  get udpPort(): number {
    return this.udpBoundPort;
  }

  /** Bound TCP port of the HTTP server. */
  get port(): number {
    const a = this.http.address();
    return a && typeof a === "object" ? a.port : 0;
  }

  get sessionCount(): number {
    return this.table.size;
  }

  /**
   * Binds the HTTP server (unless one was given already listening) and the UDP socket. Port 0 picks a
   * free TCP port, and UDP then takes the same number unless `udpPort` says otherwise.
   */
  async listen(port = 0, host?: string): Promise<void> {
    let cert = this.options.tls?.cert?.toString();
    let key = this.options.tls?.key?.toString();
    if (!cert || !key) {
      const dev = await generateDevCertificate();
      cert = dev.cert;
      key = dev.key;
      this._fingerprint = dev.fingerprint;
    }
    this.handshakes = new HandshakeServer({
      server: this.http,
      cert,
      key,
      path: this.options.handshakePath,
      timeoutMs: this.endpointOptions.handshakeTimeoutMs,
      maxPending: this.endpointOptions.maxPendingHandshakes,
      maxPendingPerAddress: this.endpointOptions.maxPendingHandshakesPerAddress,
    });
    this.handshakes.on("handshake", (p) => void this.onHandshake(p));
    if (this.ownsHttp || !this.http.listening) {
      this.http.listen(port, host);
      await once(this.http, "listening");
    }
    const tcp = this.http.address();
    const tcpPort = tcp && typeof tcp === "object" ? tcp.port : port;
    const udpHost = this.options.udpHost ?? host;
    const type = udpHost && isIPv6(udpHost) ? "udp6" : "udp4";
    const socket = dgram.createSocket({ type, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    socket.on("message", this.onDatagram);
    const bound = new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(this.options.udpPort ?? tcpPort, udpHost, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    try {
      await bound;
    } catch (err) {
      socket.close();
      if (this.ownsHttp) this.http.close();
      throw err;
    }
    socket.on("error", (err) => this.emit("error", err));
    this.socket = socket;
    this.udpBoundPort = socket.address().port;
    log("listening tcp %d udp %d aead %s", tcpPort, this.udpBoundPort, this.aead.name);
  }

  private async onHandshake(p: PendingHandshake): Promise<void> {
    if (this.table.size >= this.endpointOptions.maxSessions) {
      this.stats.sessionsRefused++;
      p.reject(`server full: ${this.endpointOptions.maxSessions} sessions open`, 503);
      return;
    }
    if (this.options.verifyHello) {
      try {
        await this.options.verifyHello(p.hello, p.remoteAddress);
      } catch (err) {
        const e = err as { message?: string; code?: unknown };
        p.reject(e?.message ?? String(err), typeof e?.code === "number" ? e.code : undefined);
        return;
      }
    }
    if (!this.socket) return p.reject("server is shutting down");
    let cid: Uint8Array;
    do cid = generateCid(randomFillSync, this.options.serverId);
    while (this.table.get(cid) !== undefined);
    const params: TransportParams = {
      maxMessageSize: this.sessionOptions.maxMessageSize,
      receiveBufferBytes: this.sessionOptions.receiveBufferBytes,
      idleTimeoutMs: this.sessionOptions.idleTimeoutMs,
    };
    let keyingMaterial: Uint8Array;
    try {
      keyingMaterial = p.accept({
        cid,
        udpPort: this.options.publicPort ?? this.udpBoundPort,
        udpHost: this.options.publicAddress,
        resetToken: this.resetToken(cid),
        params,
      });
    } catch (err) {
      log("accept failed: %s", (err as Error).message);
      return;
    }
    const connection = new Connection({
      role: "server",
      cid,
      keyingMaterial,
      aead: this.aead,
      now: clock(),
      random: randomFillSync,
      alloc: Buffer.allocUnsafe,
      peerParams: p.hello.params,
      options: this.sessionOptions,
    });
    const state: ServerSessionState = { session: null!, address: null, port: 0, pending: p };
    state.session = new FastnetSession(connection, {
      send: (d) => this.sendTo(state, d),
      closed: () => {
        this.table.delete(cid);
        state.pending?.finish();
        state.pending = null;
      },
    });
    this.table.add(cid, state);
    // If TLS dies or times out before the UDP bind, the half-made session goes with it.
    const abandon = (): void => {
      if (state.pending && state.address === null) {
        state.pending = null;
        this.table.delete(cid);
      }
    };
    p.once("close", abandon);
    p.once("timeout", abandon);
    state.session.once("open", () => {
      this.stats.sessionsOpened++;
      // The UDP path works; the session must not depend on TCP any longer.
      state.pending?.finish();
      state.pending = null;
      this.emit("session", state.session, { hello: p.hello, remoteAddress: state.address ?? p.remoteAddress });
    });
  }

  /** Stateless reset token for a CID: a keyed hash, so a restarted server cannot produce it. */
  private resetToken(cid: Uint8Array): Uint8Array {
    // HMAC-style derivation with the per-process secret (RFC 9000 §10.3.2).
    return hmacSha256(this.resetSecret, cid).subarray(0, RESET_TOKEN_LENGTH);
  }

  private sendTo(state: ServerSessionState, d: Uint8Array): void {
    if (!this.socket || state.address === null) return;
    // No completion callback: without one node sends synchronously once the address is resolved (an IP
    // literal resolves on the next tick), which is measurably cheaper per packet.
    this.socket.send(d, state.port, state.address);
  }

  private readonly onDatagram = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    this.stats.datagramsReceived++;
    if (msg.length < MIN_PACKET_LENGTH || msg.length > MAX_DATAGRAM_SIZE) {
      this.stats.malformed++;
      return;
    }
    const state = this.table.lookup(msg, CID_OFFSET);
    if (!state) {
      this.stats.unknownCid++;
      return;
    }
    try {
      const wasUnbound = state.address === null;
      if (wasUnbound) {
        // Tentatively answer where the bind came from; kept only if it authenticates.
        state.address = rinfo.address;
        state.port = rinfo.port;
      }
      const verdict = state.session.receive(msg);
      if (verdict === 0 && wasUnbound && state.session.readyState === 0) state.address = null;
    } catch (err) {
      // A bug, not input: keep the process alive and say so.
      log("internal error on receive: %s", (err as Error).stack);
    }
  };

  /**
   * Closes every session with `code` and `reason` (their CLOSE packets are handed to the socket first),
   * then the UDP socket and, if we created it, the HTTP server.
   */
  async close(code = 1001, reason = "server closing"): Promise<void> {
    for (const state of [...this.table.values()]) state.session.close(code, reason);
    this.handshakes?.close();
    this.handshakes = null;
    const socket = this.socket;
    if (socket) {
      // Let the CLOSE packets leave: sends wait a tick for the address lookup, and a socket closed
      // before that drops them. setImmediate runs after that tick.
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.socket = null;
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    }
    if (this.ownsHttp && this.http.listening) {
      this.http.closeAllConnections?.();
      await new Promise<void>((resolve) => this.http.close(() => resolve()));
    }
  }
}

function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return createHmac("sha256", key).update(data).digest();
}
