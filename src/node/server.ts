import { randomFillSync } from "node:crypto";
import type dgram from "node:dgram";
import { EventEmitter, once } from "node:events";
import http from "node:http";
import createDebug from "debug";
import type { AeadBackend } from "../protocol/aead.js";
import { cidToHex } from "../protocol/cid.js";
import { Endpoint, type EndpointSession, type EndpointStats } from "../protocol/endpoint.js";
import type { FastnetError } from "../protocol/errors.js";
import type { MigrationManager } from "../protocol/migration.js";
import { DEFAULT_ENDPOINT_OPTIONS, DEFAULT_SESSION_OPTIONS, resolveOptions, transportParams, type EndpointOptions, type SessionOptions } from "../protocol/options.js";
import { selectAeadBackend } from "./aead-select.js";
import { HandshakeServer, type PendingHandshake } from "./handshake-server.js";
import {
  longLivedSecret,
  serverCertificate,
  type DevCertificateInfo,
  type FastnetServerOptions,
  type MigrationEvent,
  type SessionInfo,
} from "./server-options.js";
import { ServerSockets } from "./server-sockets.js";
import { FastnetSession, clock } from "./session.js";

export { DEFAULT_DEV_CERTIFICATE_DIR, type DevCertificateInfo, type FastnetServerOptions, type MigrationEvent, type SessionInfo } from "./server-options.js";
export { closeQuietly } from "./server-sockets.js";
export type { EndpointStats } from "../protocol/endpoint.js";

const log = createDebug("fastnet:server");

/** How long close() lets sessions drain their reliable messages before it aborts them. */
const CLOSE_WAIT_MS = 2500;
/** listen(0): numbers tried before a UDP port held elsewhere is reported (each is a fresh OS choice). */
const ANY_PORT_ATTEMPTS = 8;

/** A server session in the endpoint: the driver's handle is the FastnetSession, its local socket a dgram socket. */
type ServerSession = EndpointSession<FastnetSession, dgram.Socket>;

/**
 * The server's Node driver: an HTTP server (own or given) running TLS 1.3 handshakes, and UDP sockets
 * whose datagrams go to the sans-IO Endpoint (src/protocol/endpoint.ts), which finds the session by
 * connection ID and decides about migration; this class only moves bytes, times and events. Emits
 * 'session'(session, info) once a client's UDP bind authenticated, 'migration'(event) when a session
 * moved to a validated new address, and 'error'(err) for socket errors after listen.
 */
export class FastnetServer extends EventEmitter<{ session: [FastnetSession, SessionInfo]; migration: [MigrationEvent]; error: [Error] }> {
  readonly http: http.Server;
  /** The sans-IO endpoint: session table, CIDs, stateless resets, migration. */
  private readonly endpoint: Endpoint<FastnetSession, dgram.Socket>;
  private readonly options: FastnetServerOptions;
  private readonly sessionOptions: SessionOptions;
  private readonly endpointOptions: EndpointOptions;
  private readonly aead: AeadBackend;
  private readonly ownsHttp: boolean;
  private readonly sockets: ServerSockets;
  private handshakes: HandshakeServer | null = null;
  private _fingerprint: Uint8Array | null = null;
  private _devCertificate: DevCertificateInfo | null = null;
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
    this.endpoint = new Endpoint({
      secret: longLivedSecret(options),
      serverId: options.serverId,
      random: randomFillSync,
      now: clock(),
      maxSessions: this.endpointOptions.maxSessions,
      statelessResetsPerSecond: options.statelessResetsPerSecond,
      migration: { maxCandidatePaths: options.maxCandidatePaths, maxMigrations: options.maxMigrations, migrationWindowMs: options.migrationWindowMs },
    });
    this.sockets = new ServerSockets(this.http, this.onDatagram, (err) => this.emit("error", err));
  }

  /** Counters of the endpoint (per-session counters are in each session's stats). */
  get stats(): EndpointStats {
    return this.endpoint.stats;
  }

  /** @internal Paths, validation policy, rate limits and address index of every session. */
  get migration(): MigrationManager<ServerSession> {
    return this.endpoint.table.migration;
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
    return this.endpoint.sessionCount;
  }

  /** The UDP socket replies use by default (null before listen and once closing); tests tap it. */
  private get socket(): dgram.Socket | null {
    return this.sockets.primary;
  }

  /** Sessions whose validated address is `address:port` (the address index). */
  sessionsAt(address: string, port: number): FastnetSession[] {
    return this.endpoint.sessionsAt({ address, port }).map((s) => s.handle!);
  }

  // ---------------------------------------------------------------- receive path

  /**
   * Every datagram of every UDP socket: the endpoint finds its session and runs it through the
   * connection (and the migration policy); the session then delivers its events ('message' reaches
   * Colyseus' onMessage there) and sends what the connection has. What the endpoint itself has to
   * send or tell (a stateless reset, a validated migration) comes out after.
   */
  private readonly onDatagram = (msg: Buffer, rinfo: dgram.RemoteInfo, socket: dgram.Socket): void => {
    try {
      const session = this.endpoint.receive(msg, rinfo, clock(), socket);
      if (session !== null) session.handle?.drive();
      else this.sendEndpointTransmits();
      this.emitEndpointEvents();
    } catch (err) {
      // A bug, not input: keep the process alive and say so.
      log("internal error on receive: %s", (err as Error).stack);
    }
  };

  /** Sends the endpoint's own datagrams (stateless resets), from the socket the trigger came in on. */
  private sendEndpointTransmits(): void {
    for (let t = this.endpoint.pollTransmit(); t !== null; t = this.endpoint.pollTransmit()) {
      const socket = t.local ?? this.socket;
      socket?.send(t.datagram, t.to.port, t.to.address);
    }
  }

  /** Tells users what the endpoint did: validated migrations become 'migration' events. */
  private emitEndpointEvents(): void {
    for (let ev = this.endpoint.pollEvent(); ev !== null; ev = this.endpoint.pollEvent()) {
      log("session %s migrated %s:%d -> %s:%d", cidToHex(ev.session.connection.cid), ev.from.address, ev.from.port, ev.to.address, ev.to.port);
      try {
        this.emit("migration", { session: ev.session, from: ev.from, to: ev.to });
      } catch (err) {
        // A listener's bug: said out loud, and neither the other events nor the receive path stop.
        this.reportError(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /** A session's datagram, to where it sends now, through the socket its last authenticated packet came in on. */
  private sendTo(s: ServerSession, d: Uint8Array): void {
    const to = s.paths.current;
    const primary = this.socket;
    if (primary === null || to === null) return;
    // No completion callback: without one node sends synchronously once the address is resolved (which
    // literalLookup does at once for an IP literal), which is measurably cheaper per packet.
    (s.local ?? primary).send(d, to.port, to.address);
  }

  // ---------------------------------------------------------------- handshakes and sessions

  private async onHandshake(p: PendingHandshake): Promise<void> {
    if (!this.endpoint.admit()) return this.refuseFull(p);
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
    // Sessions may have opened while the hook ran.
    if (!this.endpoint.admit()) return this.refuseFull(p);
    const cid = this.endpoint.newCid();
    let keyingMaterial: Uint8Array;
    try {
      keyingMaterial = p.accept({
        cid,
        udpPort: this.options.publicPort ?? this.udpBoundPort,
        udpHost: this.options.publicAddress,
        resetToken: this.endpoint.resetToken(cid),
        params: transportParams(this.sessionOptions),
      });
    } catch (err) {
      log("accept failed: %s", (err as Error).message);
      return;
    }
    const s = this.endpoint.accept(cid, {
      keyingMaterial,
      aead: this.aead,
      now: clock(),
      alloc: Buffer.allocUnsafe,
      peerParams: p.hello.params,
      acceptedAt: p.acceptedAt,
      options: this.sessionOptions,
    })!; // admitted just above, with nothing asynchronous since
    let pending: PendingHandshake | null = p;
    const session = new FastnetSession(s.connection, {
      send: (d) => this.sendTo(s, d),
      closed: () => {
        this.endpoint.remove(s);
        pending?.finish();
        pending = null;
      },
      events: s, // path events stop at the endpoint
    });
    s.handle = session;
    // If TLS dies or times out before the UDP bind, the half-made session goes with it.
    const abandon = (): void => {
      if (pending && !s.bound) {
        pending = null;
        this.endpoint.remove(s);
      }
    };
    p.once("close", abandon);
    p.once("timeout", abandon);
    session.once("open", () => {
      // The UDP path works; the session must not depend on TCP any longer.
      pending?.finish();
      pending = null;
      this.emit("session", session, {
        hello: p.hello,
        remoteAddress: s.paths.current?.address ?? p.remoteAddress,
        handshakeAddress: p.remoteAddress,
        upgradeHeaders: p.upgradeHeaders,
      });
    });
  }

  private refuseFull(p: PendingHandshake): void {
    this.refuse(p, `server full: ${this.endpointOptions.maxSessions} sessions open`, 503);
  }

  /** Answers a handshake with a ServerReject, unless its connection is already gone (then nothing is owed). */
  private refuse(p: PendingHandshake, message: string, code?: number): void {
    try {
      p.reject(message, code);
    } catch (err) {
      log("handshake from %s not refused (%s): %s", p.remoteAddress, message, (err as Error).message);
    }
  }

  /** An unexpected failure outside any session: to 'error' listeners, else console.error (never silent). */
  private reportError(err: Error): void {
    if (this.listenerCount("error") > 0) this.emit("error", err);
    else console.error("fastnet: server error:", err);
  }

  // ---------------------------------------------------------------- listen and close

  /**
   * Binds the HTTP server (unless one was given already listening) and the UDP socket. Port 0 picks a
   * free TCP port, and UDP then takes the same number unless `udpPort` says otherwise.
   */
  async listen(port = 0, host?: string): Promise<void> {
    const { cert, key, fingerprint, stored } = await serverCertificate(this.options);
    this._fingerprint = fingerprint;
    this._devCertificate = stored;
    if (stored) {
      log("dev certificate %s %s", stored.created ? "created in" : "reused from", stored.certPath);
      // The stored key outlives the process like a given tls.key does: reset tokens and CID tags
      // derived from it let clients of the previous run learn at once that their session is gone.
      if (this.options.statelessResetKey === undefined) this.endpoint.rekey(new TextEncoder().encode(key));
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
        this.sockets.release();
        if ((this.ownsHttp || this.startedHttp) && this.http.listening) {
          this.http.close();
          await once(this.http, "close");
        }
        this.startedHttp = false;
        if (anyPort && attempt < ANY_PORT_ATTEMPTS && (err as FastnetError)?.code === "UDP_PORT_IN_USE") {
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
    await this.sockets.bind(this.options.udpPort ?? tcpPort, this.options.udpHost ?? host, tcpPort);
    this.udpBoundPort = this.sockets.port;
    log("listening tcp %d udp %d aead %s", tcpPort, this.udpBoundPort, this.aead.name);
  }

  /**
   * Closes every session with `code` and `reason`, letting each deliver its unacknowledged messages
   * first (bounded by CLOSE_WAIT_MS), then closes as closeNow() does.
   */
  async close(code = 1001, reason = "server closing"): Promise<void> {
    const sessions = [...this.endpoint.sessions()].map((s) => s.handle!);
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
   * 200 ms. The CLOSE packets are handed to the kernel synchronously (the sockets resolve IP
   * literals without a tick), so they leave even when the process exits in the same tick. The HTTP
   * server is closed when we own it or started it listening, or with `closeHttp: true`; its open
   * connections are closed too. The promise resolves when everything is closed.
   */
  closeNow(code = 1001, reason = "server closing", options: { closeHttp?: boolean } = {}): Promise<void> {
    for (const s of [...this.endpoint.sessions()]) s.handle!.closeNow(code, reason);
    this.handshakes?.close();
    this.handshakes = null;
    const done: Promise<unknown>[] = [this.sockets.close()];
    const closeHttp = options.closeHttp ?? (this.ownsHttp || this.startedHttp);
    if (closeHttp && this.http.listening) {
      done.push(new Promise<void>((resolve) => this.http.close(() => resolve())));
      this.http.closeAllConnections?.();
    }
    this.startedHttp = false;
    return Promise.all(done).then(() => undefined);
  }
}
