import { randomFillSync } from "node:crypto";
import dgram from "node:dgram";
import { EventEmitter, once } from "node:events";
import http from "node:http";
import { isIPv6 } from "node:net";
import createDebug from "debug";
import type { AeadBackend } from "../protocol/aead.js";
import { CidAuthority, cidToHex, deriveCidKey } from "../protocol/cid.js";
import { Connection, Received } from "../protocol/connection.js";
import {
  DEFAULT_ENDPOINT_OPTIONS,
  DEFAULT_SESSION_OPTIONS,
  resolveOptions,
  transportParams,
  type EndpointOptions,
  type SessionOptions,
} from "../protocol/options.js";
import { CID_OFFSET, PacketType, parseHeader, type ParsedHeader } from "../protocol/packet-header.js";
import { SessionTable } from "../protocol/session-table.js";
import { DEFAULT_MIGRATION_OPTIONS, MigrationManager, SessionPaths, sameAddress, type PathAddress } from "../protocol/migration.js";
import { MIN_RESET_LENGTH, RateLimiter, buildStatelessReset, deriveResetKey, statelessResetToken } from "../protocol/stateless-reset.js";
import { CID_LENGTH } from "../protocol/version.js";
import { FastnetError } from "../protocol/errors.js";
import { selectAeadBackend } from "./aead-select.js";
import { generateDevCertificate, loadOrCreateDevCertificate } from "./dev-certificate.js";
import { HandshakeServer, type PendingHandshake, type UpgradeTaker } from "./handshake-server.js";
import type { ClientHello } from "./handshake-messages.js";
import { FastnetSession, clock } from "./session.js";
import { AddressSockets } from "./udp-sockets.js";
import { literalLookup } from "./udp-lookup.js";

const log = createDebug("fastnet:server");

/** How long close() lets sessions drain their reliable messages before it aborts them. */
const CLOSE_WAIT_MS = 2500;

export interface FastnetServerOptions extends Partial<SessionOptions>, Partial<EndpointOptions> {
  /**
   * PEM certificate chain and key. Without them listen() uses the dev certificate kept in
   * `devCertificateDir` (a self-signed one, made there on first use and reused across restarts).
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * Where the dev certificate is kept when no `tls` is given (default `.fastnet` under the working
   * directory): restarts and every process started with the same directory present the same
   * certificate, so clients' pins keep working. `false`: a new in-memory certificate per listen().
   */
  devCertificateDir?: string | false;
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
   * What a WebSocket client is told when it reaches this server with no other 'upgrade' listener to
   * take it: it gets a WebSocket close 1008 with this reason (at most 123 bytes are sent).
   */
  webSocketRefusal?: string;
  /** Offered every Upgrade that is no fastnet handshake before it is refused (see HandshakeServerOptions.otherUpgrade). */
  otherUpgrade?: UpgradeTaker;
  /**
   * Secret behind stateless reset tokens and the keyed tag in every connection ID; it must survive a
   * restart for clients to learn of it at once. Default: derived from `tls.key` when given, else from
   * the stored dev certificate's key, else (`devCertificateDir: false`) random per process.
   */
  statelessResetKey?: string | Uint8Array;
  /** Stateless resets sent per second at most (default 100). */
  statelessResetsPerSecond?: number;
  /** Addresses validated at once per session (default 3). */
  maxCandidatePaths?: number;
  /** Migrations a session may start per `migrationWindowMs` (default 30 per 10 s). */
  maxMigrations?: number;
  migrationWindowMs?: number;
  /**
   * Decides whether a handshake may proceed, before a session is created (e.g. a seat reservation check).
   * Throw or reject to refuse: the client's connect fails with the error's message.
   */
  verifyHello?: (hello: ClientHello, remoteAddress: string) => void | Promise<void>;
}

/** Information about the client that opened a session. */
export interface SessionInfo {
  hello: ClientHello;
  /** The UDP address the session was bound from. */
  remoteAddress: string;
  /** The TCP peer of the handshake's HTTP Upgrade request (a reverse proxy, if there is one). */
  handshakeAddress: string;
  /** Proxy headers of the Upgrade request (see PendingHandshake.upgradeHeaders); never from the hello. */
  upgradeHeaders: Readonly<Record<string, string>>;
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
  /** Validated migrations: sessions that moved to a new peer address. */
  migrations: number;
  /** Migrations refused by the per-session rate limit. */
  migrationsRefused: number;
  /** Path validations that failed (the session went back to its last validated address). */
  pathValidationsFailed: number;
  /** Stateless resets sent for unknown connection IDs, and those held back by the rate limit. */
  statelessResetsSent: number;
  statelessResetsLimited: number;
}

/** A validated move of a session to a new peer address. */
export interface MigrationEvent {
  session: FastnetSession;
  from: PathAddress;
  to: PathAddress;
}

interface ServerSessionState {
  session: FastnetSession;
  /** Where packets go, the last validated address, candidates: moved only by authenticated packets. */
  paths: SessionPaths;
  pending: PendingHandshake | null;
}

/**
 * The server endpoint: an HTTP server (own or given) running TLS 1.3 handshakes, and one UDP socket
 * demultiplexing datagrams by connection ID into sessions. Emits 'session'(session, info) once a
 * client's UDP bind authenticated, and 'error'(err) for socket errors after listen.
 */
export class FastnetServer extends EventEmitter<{ session: [FastnetSession, SessionInfo]; migration: [MigrationEvent]; error: [Error] }> {
  readonly http: http.Server;
  readonly stats: EndpointStats = {
    datagramsReceived: 0,
    malformed: 0,
    unknownCid: 0,
    sessionsRefused: 0,
    sessionsOpened: 0,
    migrations: 0,
    migrationsRefused: 0,
    pathValidationsFailed: 0,
    statelessResetsSent: 0,
    statelessResetsLimited: 0,
  };
  /** Paths, validation and rate limits of every session; also the address index. */
  readonly migration: MigrationManager<FastnetSession>;
  private readonly resets: RateLimiter;
  private readonly options: FastnetServerOptions;
  private readonly sessionOptions: SessionOptions;
  private readonly endpointOptions: EndpointOptions;
  private readonly aead: AeadBackend;
  /** Every active CID of every session (up to ACTIVE_CID_LIMIT per session) → its session. */
  private readonly table = new SessionTable<ServerSessionState>();
  /** Sessions from accept to close (the table holds each under several CIDs). */
  private readonly states = new Set<ServerSessionState>();
  private readonly ownsHttp: boolean;
  private socket: dgram.Socket | null = null;
  private handshakes: HandshakeServer | null = null;
  private _fingerprint: Uint8Array | null = null;
  private resetSecret: Uint8Array;
  /** Issues and verifies this server's self-authenticating connection IDs (rekeyed by listen() from a stored dev key). */
  private cids: CidAuthority;
  private _devCertificate: DevCertificateInfo | null = null;
  /** Scratch for the header check of every datagram (no allocation per packet). */
  private readonly header: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  private udpBoundPort = 0;
  private startedHttp = false;

  constructor(options: FastnetServerOptions = {}) {
    super();
    this.options = options;
    this.sessionOptions = resolveOptions(DEFAULT_SESSION_OPTIONS, options);
    this.endpointOptions = resolveOptions(DEFAULT_ENDPOINT_OPTIONS, options);
    this.aead = selectAeadBackend(this.endpointOptions.aead);
    this.ownsHttp = !options.server;
    this.http = options.server ?? http.createServer();
    const secret = longLivedSecret(options);
    this.resetSecret = deriveResetKey(secret);
    this.cids = new CidAuthority(deriveCidKey(secret), options.serverId);
    this.migration = new MigrationManager(
      resolveOptions(DEFAULT_MIGRATION_OPTIONS, {
        maxCandidatePaths: options.maxCandidatePaths,
        maxMigrations: options.maxMigrations,
        migrationWindowMs: options.migrationWindowMs,
      }),
    );
    this.resets = new RateLimiter(options.statelessResetsPerSecond ?? 100, clock());
  }

  /** SHA-256 of the dev certificate (null with a user certificate): what clients pin. */
  get fingerprint(): Uint8Array | null {
    return this._fingerprint;
  }

  /** Where the dev certificate in use is stored, and whether this listen() made it (null with `tls` or `devCertificateDir: false`). */
  get devCertificate(): DevCertificateInfo | null {
    return this._devCertificate;
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
    return this.states.size;
  }

  /**
   * Binds the HTTP server (unless one was given already listening) and the UDP socket. Port 0 picks a
   * free TCP port, and UDP then takes the same number unless `udpPort` says otherwise.
   */
  async listen(port = 0, host?: string): Promise<void> {
    let cert = this.options.tls?.cert?.toString();
    let key = this.options.tls?.key?.toString();
    if (!cert || !key) {
      const dir = this.options.devCertificateDir ?? DEFAULT_DEV_CERTIFICATE_DIR;
      if (dir === false) {
        const dev = await generateDevCertificate();
        cert = dev.cert;
        key = dev.key;
        this._fingerprint = dev.fingerprint;
      } else {
        const dev = await loadOrCreateDevCertificate(dir);
        cert = dev.cert;
        key = dev.key;
        this._fingerprint = dev.fingerprint;
        this._devCertificate = { certPath: dev.certPath, keyPath: dev.keyPath, created: dev.created, validTo: dev.validTo };
        log("dev certificate %s %s", dev.created ? "created in" : "reused from", dev.certPath);
        // The stored key outlives the process like a given tls.key does: reset tokens and CID tags
        // derived from it let clients of the previous run learn at once that their session is gone.
        if (this.options.statelessResetKey === undefined) this.rekey(new TextEncoder().encode(key));
      }
    }
    this.handshakes = new HandshakeServer({
      server: this.http,
      cert,
      key,
      path: this.options.handshakePath,
      webSocketRefusal: this.options.webSocketRefusal,
      otherUpgrade: this.options.otherUpgrade,
      timeoutMs: this.endpointOptions.handshakeTimeoutMs,
      maxPending: this.endpointOptions.maxPendingHandshakes,
      maxPendingPerAddress: this.endpointOptions.maxPendingHandshakesPerAddress,
      maxQueued: this.endpointOptions.maxQueuedHandshakes,
      maxQueuedPerAddress: this.endpointOptions.maxQueuedHandshakesPerAddress,
      announceFingerprint: this._fingerprint ?? undefined,
    });
    // onHandshake catches what it expects; anything else is a bug to report, not an unhandled rejection.
    this.handshakes.on("handshake", (p) => {
      this.onHandshake(p).catch((err: unknown) => this.reportError(err instanceof Error ? err : new Error(String(err))));
    });
    // Port 0 asks for any free port, and UDP takes the number TCP got: a number free for TCP may be
    // held by some process's UDP socket, so then both are released and another number is tried.
    const anyPort = port === 0 && this.options.udpPort === undefined && (this.ownsHttp || !this.http.listening);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.listenOnce(port, host);
        return;
      } catch (err) {
        // Nothing of a failed listen may stay open: no socket, timer or listener keeps the process alive.
        this.releaseSockets();
        if ((this.ownsHttp || this.startedHttp) && this.http.listening) {
          this.http.close();
          await once(this.http, "close");
        }
        this.startedHttp = false;
        const retry = anyPort && attempt < ANY_PORT_ATTEMPTS && (err as FastnetError)?.code === "UDP_PORT_IN_USE";
        if (retry) {
          log("listen(0): UDP port taken (%s), trying another number", (err as Error).message);
          continue;
        }
        this.handshakes?.close();
        this.handshakes = null;
        throw err;
      }
    }
  }

  /** One attempt of listen(): TCP (unless already listening), then UDP on the same port number. */
  private async listenOnce(port: number, host: string | undefined): Promise<void> {
    if (this.ownsHttp || !this.http.listening) {
      this.http.listen(port, host);
      await once(this.http, "listening");
      this.startedHttp = true;
    }
    const tcp = this.http.address();
    const tcpPort = tcp && typeof tcp === "object" ? tcp.port : port;
    const udpHost = this.options.udpHost ?? host;
    const udpPort = this.options.udpPort ?? tcpPort;
    const socket = await this.bindUdpSockets(udpPort, udpHost, tcpPort);
    this.socket = socket;
    this.udpBoundPort = socket.address().port;
    log("listening tcp %d udp %d aead %s", tcpPort, this.udpBoundPort, this.aead.name);
  }

  /**
   * The UDP socket(s) of listen(). No host: all interfaces, IPv4 and IPv6 alike, as the HTTP server
   * listens: one socket per local address, so replies leave from the address each client wrote to
   * (see AddressSockets). Port 0 (OS-chosen, differing per address) keeps one dual-stack wildcard
   * socket. A port someone else holds fails with FastnetError UDP_PORT_IN_USE.
   */
  private async bindUdpSockets(udpPort: number, udpHost: string | undefined, tcpPort: number): Promise<dgram.Socket> {
    try {
      if (udpHost === undefined && udpPort !== 0) {
        const sockets = new AddressSockets(udpPort, bindUdp, (s) => this.attachUdp(s), true);
        this.addressSockets = sockets;
        await sockets.start();
        // A TCP connection (matchmaking, handshake) on a local address with no socket yet: 127.0.0.2 is
        // local without being listed. Not an 'upgrade' listener: that would change who answers strays.
        this.http.on("connection", this.onTcpConnection);
        return sockets.first!;
      }
      const socket =
        udpHost === undefined
          ? await bindUdp("udp6", udpPort, undefined).catch(() => bindUdp("udp4", udpPort, undefined))
          : await bindUdp(isIPv6(udpHost) ? "udp6" : "udp4", udpPort, udpHost);
      this.attachUdp(socket);
      return socket;
    } catch (err) {
      throw udpBindError(err, udpPort, udpHost, tcpPort);
    }
  }

  /** Per-address UDP sockets when bound to all interfaces (null with a udpHost). */
  private addressSockets: AddressSockets | null = null;
  /** The socket the datagram being handled arrived on (set around onDatagram). */
  private receiving: dgram.Socket | null = null;
  /** The socket each session replies through: the one its last authenticated packet arrived on. */
  private readonly replySockets = new WeakMap<ServerSessionState, dgram.Socket>();

  private attachUdp(socket: dgram.Socket): void {
    socket.on("message", (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      this.receiving = socket;
      try {
        this.onDatagram(msg, rinfo);
      } finally {
        this.receiving = null;
      }
    });
    socket.on("error", (err) => this.emit("error", err));
  }

  private readonly onTcpConnection = (tcp: import("node:net").Socket): void => {
    void this.addressSockets?.ensure(tcp.localAddress);
  };

  /** Replaces the long-lived secret (before any session exists: listen() calls it first). */
  private rekey(secret: Uint8Array): void {
    this.resetSecret = deriveResetKey(secret);
    this.cids = new CidAuthority(deriveCidKey(secret), this.options.serverId);
  }

  /** An unexpected failure outside any session: to 'error' listeners, else console.error (never silent). */
  private reportError(err: Error): void {
    if (this.listenerCount("error") > 0) this.emit("error", err);
    else console.error("fastnet: server error:", err);
  }

  /** Answers a handshake with a ServerReject, unless its connection is already gone (then nothing is owed). */
  private refuse(p: PendingHandshake, message: string, code?: number): void {
    try {
      p.reject(message, code);
    } catch (err) {
      log("handshake from %s not refused (%s): %s", p.remoteAddress, message, (err as Error).message);
    }
  }

  private async onHandshake(p: PendingHandshake): Promise<void> {
    if (this.states.size >= this.endpointOptions.maxSessions) {
      this.stats.sessionsRefused++;
      this.refuse(p, `server full: ${this.endpointOptions.maxSessions} sessions open`, 503);
      return;
    }
    if (this.options.verifyHello) {
      try {
        await this.options.verifyHello(p.hello, p.remoteAddress);
      } catch (err) {
        // The client may have gone while the hook ran: then there is no one left to tell.
        const e = err as { message?: string; code?: unknown };
        this.refuse(p, e?.message ?? String(err), typeof e?.code === "number" ? e.code : undefined);
        return;
      }
    }
    if (!this.socket) return this.refuse(p, "server is shutting down");
    const cid = this.newCid();
    const params = transportParams(this.sessionOptions);
    let keyingMaterial: Uint8Array;
    try {
      keyingMaterial = p.accept({
        cid,
        udpPort: this.options.publicPort ?? this.udpBoundPort,
        udpHost: this.options.publicAddress,
        resetToken: statelessResetToken(this.resetSecret, cid),
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
      // Spare CIDs (NEW_CONNECTION_ID) route here as soon as they are made; retired ones stop routing.
      cidIssuer: {
        issue: () => {
          const spare = this.newCid();
          this.table.add(spare, state);
          return { cid: spare, resetToken: statelessResetToken(this.resetSecret, spare) };
        },
        retire: (old) => void this.table.delete(old),
      },
    });
    const state: ServerSessionState = { session: null!, paths: new SessionPaths(), pending: p };
    state.session = new FastnetSession(connection, {
      send: (d) => this.sendTo(state, d),
      closed: () => {
        this.forget(state);
        this.migration.remove(state.session, state.paths);
        state.pending?.finish();
        state.pending = null;
      },
    });
    state.session.on("pathValidated", (data) => {
      const moved = this.migration.validated(state.session, state.paths, data);
      if (sameAddress(state.paths.validated, state.paths.current)) connection.rememberValidatedCid();
      if (!moved) return;
      this.stats.migrations++;
      log("session %s migrated %s:%d -> %s:%d", cidToHex(cid), moved.from.address, moved.from.port, moved.to.address, moved.to.port);
      this.emit("migration", { session: state.session, from: moved.from, to: moved.to });
    });
    state.session.on("pathFailed", (data) => {
      const back = this.migration.failed(state.paths, data);
      if (!back) return;
      this.stats.pathValidationsFailed++;
      state.session.connection.revertPath();
      // Back on the old path: with the CID used there, so the two paths stay unlinkable.
      state.session.connection.restoreValidatedCid();
    });
    this.table.add(cid, state);
    this.states.add(state);
    // If TLS dies or times out before the UDP bind, the half-made session goes with it.
    const abandon = (): void => {
      if (state.pending && state.paths.current === null) {
        state.pending = null;
        this.forget(state);
      }
    };
    p.once("close", abandon);
    p.once("timeout", abandon);
    state.session.once("open", () => {
      this.stats.sessionsOpened++;
      // The UDP path works; the session must not depend on TCP any longer.
      state.pending?.finish();
      state.pending = null;
      this.emit("session", state.session, {
        hello: p.hello,
        remoteAddress: state.paths.current?.address ?? p.remoteAddress,
        handshakeAddress: p.remoteAddress,
        upgradeHeaders: p.upgradeHeaders,
      });
    });
  }

  /** A CID no session uses: config octet, server id, random nonce, keyed tag. */
  private newCid(): Uint8Array {
    let cid: Uint8Array;
    do cid = this.cids.generate(randomFillSync);
    while (this.table.get(cid) !== undefined);
    return cid;
  }

  /** Stops routing every CID of a session to it, and stops counting it. */
  private forget(state: ServerSessionState): void {
    for (const cid of state.session.connection.activeCids()) this.table.delete(cid);
    this.states.delete(state);
  }

  private sendTo(state: ServerSessionState, d: Uint8Array): void {
    const to = state.paths.current;
    if (!this.socket || to === null) return;
    const socket = this.replySockets.get(state) ?? this.socket;
    // No completion callback: without one node sends synchronously once the address is resolved (an IP
    // literal resolves on the next tick), which is measurably cheaper per packet.
    socket.send(d, to.port, to.address);
  }

  /** Sessions whose validated address is `address:port` (the address index). */
  sessionsAt(address: string, port: number): FastnetSession[] {
    return this.migration.sessionsAt({ address, port });
  }

  private readonly onDatagram = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    this.stats.datagramsReceived++;
    // docs/protocol.md §3.1 step 1 (size, type, reserved bits) before anything else: a malformed
    // datagram is dropped even under a CID we issued, so it cannot draw a stateless reset either.
    if (!parseHeader(msg, this.header)) {
      this.stats.malformed++;
      return;
    }
    const state = this.table.lookup(msg, CID_OFFSET);
    if (!state) {
      this.stats.unknownCid++;
      this.maybeReset(msg, rinfo);
      return;
    }
    try {
      const from: PathAddress = { address: rinfo.address, port: rinfo.port };
      const fromCurrent = state.paths.current === null || sameAddress(state.paths.current, from);
      state.session.receive(msg, (verdict) => {
        // Runs after authentication and before any reply is sent: decide where replies go.
        if (verdict === Received.Dropped) return;
        if (this.receiving) this.replySockets.set(state, this.receiving);
        const paths = state.paths;
        if (paths.current === null) {
          this.migration.bind(state.session, paths, from);
          return;
        }
        const decision = this.migration.consider(paths, from, verdict === Received.AcceptedNewest, clock());
        if (decision.kind === "return") state.session.connection.revertPath();
        else if (decision.kind === "migrate") {
          const data = state.session.connection.startPathValidation(clock(), msg.length, decision.newNetwork);
          this.migration.challenged(paths, data, from);
        } else if (decision.kind === "stay" && decision.reason === "rate-limited") {
          // The address stays, so does the CID sent there: the new path's CID must not appear on the old one.
          state.session.connection.keepPreviousCid();
          if (decision.first) this.stats.migrationsRefused++;
        }
      }, fromCurrent);
    } catch (err) {
      // A bug, not input: keep the process alive and say so.
      log("internal error on receive: %s", (err as Error).stack);
    }
  };

  /** Answers a packet for an unknown CID with a stateless reset, if it is long enough and the rate allows. */
  private maybeReset(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!this.socket || msg.length <= MIN_RESET_LENGTH) return;
    // Only CIDs we issued (config octet, server id and keyed tag verify; an earlier process with the
    // same secret counts): anything else, random garbage included, is dropped without a reply.
    if (!this.cids.verify(msg, CID_OFFSET)) return;
    if (!this.resets.take(clock())) {
      this.stats.statelessResetsLimited++;
      return;
    }
    const cid = msg.subarray(CID_OFFSET, CID_OFFSET + CID_LENGTH);
    const reset = buildStatelessReset(cid, statelessResetToken(this.resetSecret, cid), msg.length, randomFillSync);
    if (!reset) return;
    this.stats.statelessResetsSent++;
    (this.receiving ?? this.socket).send(reset, rinfo.port, rinfo.address);
  }

  /**
   * Closes every session with `code` and `reason`, letting each deliver its unacknowledged messages
   * first (bounded by CLOSE_WAIT_MS), then closes as closeNow() does.
   */
  async close(code = 1001, reason = "server closing"): Promise<void> {
    const sessions = [...this.states].map((state) => state.session);
    const closed = sessions.map((session) => (session.readyState === 3 ? Promise.resolve() : once(session, "close")));
    for (const session of sessions) session.close(code, reason);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(closed), new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
    await this.closeNow(code, reason);
  }

  /**
   * Closes at once, for a process about to exit or a port about to be reused: every session still open
   * gets its CLOSE now (with the code of its own earlier close() if it was draining one, else `code`),
   * unacknowledged messages are dropped, and the UDP sockets and the HTTP listener close before this
   * returns, unless the kernel did not take a CLOSE at once: then the sockets wait for it, at most
   * SEND_FLUSH_MS. The CLOSE packets are handed to the kernel synchronously (the sockets resolve IP
   * literals without a tick), so they leave even when the process exits in the same tick. The HTTP
   * server is closed when we own it or started it listening, or with `closeHttp: true`; its open
   * connections are closed too. The promise resolves when everything is closed.
   */
  closeNow(code = 1001, reason = "server closing", options: { closeHttp?: boolean } = {}): Promise<void> {
    for (const state of [...this.states]) state.session.closeNow(code, reason);
    this.handshakes?.close();
    this.handshakes = null;
    const sockets = this.udpSockets();
    this.socket = null;
    const done: Promise<unknown>[] = [];
    const release = (): void => {
      for (const socket of sockets) closeQuietly(socket);
      this.releaseSockets();
    };
    if (sockets.length > 0) done.push(flushThenClose(sockets, release));
    else release();
    const closeHttp = options.closeHttp ?? (this.ownsHttp || this.startedHttp);
    if (closeHttp && this.http.listening) {
      done.push(new Promise<void>((resolve) => this.http.close(() => resolve())));
      this.http.closeAllConnections?.();
    }
    this.startedHttp = false;
    return Promise.all(done).then(() => undefined);
  }

  /** Every UDP socket of this server (the per-address ones, or the one socket). */
  private udpSockets(): dgram.Socket[] {
    if (this.addressSockets) return this.addressSockets.all();
    return this.socket ? [this.socket] : [];
  }

  /** Closes every UDP socket and the address refresh timer; no socket is bound after this. */
  private releaseSockets(): void {
    this.http.off("connection", this.onTcpConnection);
    if (this.addressSockets) this.addressSockets.close();
    else if (this.socket) closeQuietly(this.socket);
    this.addressSockets = null;
    this.socket = null;
  }
}

/** How long closeNow() keeps a socket open for datagrams the kernel did not take at once. */
const SEND_FLUSH_MS = 200;

/** Closes `sockets` (through `close`) once their send queues are empty, or after SEND_FLUSH_MS. */
function flushThenClose(sockets: dgram.Socket[], close: () => void): Promise<void> {
  const closed = Promise.all(sockets.map((s) => once(s, "close").catch(() => undefined))).then(() => undefined);
  const queued = (): boolean => sockets.some((s) => sendQueueCount(s) > 0);
  if (!queued()) {
    close();
    return closed;
  }
  const deadline = Date.now() + SEND_FLUSH_MS;
  const poll = (): void => {
    if (queued() && Date.now() < deadline) setTimeout(poll, 1);
    else close();
  };
  setTimeout(poll, 1);
  return closed;
}

/** Datagrams a socket holds that the kernel has not taken yet (0 once closed). */
function sendQueueCount(socket: dgram.Socket): number {
  try {
    return socket.getSendQueueCount();
  } catch {
    return 0;
  }
}

/** Closes a socket that may be closed already. */
export function closeQuietly(socket: dgram.Socket): void {
  try {
    socket.close();
  } catch {
    // ERR_SOCKET_DGRAM_NOT_RUNNING: closed already
  }
}

/**
 * A UDP bind failure as the user should read it: EADDRINUSE becomes FastnetError UDP_PORT_IN_USE,
 * naming the UDP port (the TCP one may well be free) and the option that moves it.
 */
function udpBindError(err: unknown, udpPort: number, udpHost: string | undefined, tcpPort: number): unknown {
  const e = err as NodeJS.ErrnoException & { address?: string };
  if (e?.code !== "EADDRINUSE") return err;
  const address = udpHost ?? e.address;
  const where = `UDP port ${udpPort}${address ? ` (on ${address})` : ""}`;
  const tcp = udpPort === tcpPort ? `; TCP port ${tcpPort} was free, the UDP one is not` : "";
  return new FastnetError(
    "UDP_PORT_IN_USE",
    `${where} is already in use by another process${tcp}. Set the \`udpPort\` option to a free port (fastnet sessions run on UDP), or stop the other process`,
    { cause: err },
  );
}

/** listen(0): numbers tried before a UDP port held elsewhere is reported (each is a fresh OS choice). */
const ANY_PORT_ATTEMPTS = 8;

/** Default `devCertificateDir`, relative to the working directory. */
export const DEFAULT_DEV_CERTIFICATE_DIR = ".fastnet";

/** Where a stored dev certificate is (see FastnetServer.devCertificate). */
export interface DevCertificateInfo {
  certPath: string;
  keyPath: string;
  /** True when this listen() generated it, false when it reused the stored one. */
  created: boolean;
  validTo: Date;
}

/**
 * A bound UDP socket (large buffers: one socket serves every session). Its sends to an IP literal go
 * to the kernel synchronously (see literalLookup), so a CLOSE sent just before process.exit() leaves.
 */
function bindUdp(type: "udp4" | "udp6", port: number, host: string | undefined): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type, ipv6Only: false, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, lookup: literalLookup });
  return new Promise<dgram.Socket>((resolve, reject) => {
    socket.once("error", (err) => {
      socket.close();
      reject(err);
    });
    socket.bind(port, host, () => {
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}

/**
 * The secret behind reset tokens and CID tags: `statelessResetKey`, else the TLS key (stable across
 * restarts), else random. Strings count as their UTF-8 bytes.
 */
function longLivedSecret(options: FastnetServerOptions): Uint8Array {
  const given = options.statelessResetKey ?? options.tls?.key;
  if (given !== undefined && given.length > 0) return typeof given === "string" ? new TextEncoder().encode(given) : Uint8Array.from(given);
  return randomFillSync(new Uint8Array(32));
}
